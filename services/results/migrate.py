"""`python -m services.results.migrate`: run the database migrations (`upgrade head`).

Uses DATABASE_URL, or the standalone SQLite file under HINDSIGHT_DATA_DIR when
it is unset, and the market-data store results uses (HINDSIGHT_MARKET_DIR; standalone:
HINDSIGHT_DATA_DIR/market). Safe to run while replicas start (Postgres: advisory lock).
"""

from __future__ import annotations

import logging

from libs.secretbox import SecretBox, key_text_for
from libs.settings import Settings
from libs.telemetry import setup_logging
from services.results.db import Database, database_url

log = logging.getLogger(__name__)


def main() -> None:
    setup_logging("results-migrate")
    settings = Settings()
    url = database_url(settings.database_url, True, settings.hindsight_data_dir)
    box = None
    if settings.hindsight_secret_key.strip() or not settings.database_url:
        # The environment's key, or the standalone data directory's: secrets are sealed as they migrate.
        box = SecretBox(key_text_for(settings.hindsight_secret_key, True, settings.hindsight_data_dir))
    else:
        log.warning("HINDSIGHT_SECRET_KEY is not set: secrets are encrypted when results starts")
    db = Database(url, secret_box=box)
    try:
        # Migrations move data into the market store (0015: bar datasets): results' own root.
        db.migrate(settings.market_root())
    finally:
        db.close()
    log.info("database at head", extra={"database": db.engine.dialect.name})


if __name__ == "__main__":
    main()
