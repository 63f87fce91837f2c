"""`python -m services.results.migrate`: run the database migrations (`upgrade head`).

Uses DATABASE_URL, or the standalone SQLite file under HINDSIGHT_DATA_DIR when
it is unset. Safe to run while replicas start (Postgres: advisory lock).
"""

from __future__ import annotations

import logging

from libs.settings import Settings
from libs.telemetry import setup_logging
from services.results.db import Database, database_url

log = logging.getLogger(__name__)


def main() -> None:
    setup_logging("results-migrate")
    settings = Settings()
    url = database_url(settings.database_url, True, settings.hindsight_data_dir)
    db = Database(url)
    try:
        db.migrate()
    finally:
        db.close()
    log.info("database at head", extra={"database": db.engine.dialect.name})


if __name__ == "__main__":
    main()
