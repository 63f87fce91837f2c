"""Alembic environment of the results service.

`services.results.db.upgrade_head` passes an open connection in
`config.attributes["connection"]`; the alembic CLI (with alembic.ini) gets
the URL from DATABASE_URL instead.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from services.results.db import normalize_url
from services.results.models import Base

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=normalize_url(os.environ["DATABASE_URL"]), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("set DATABASE_URL (or run `python -m services.results.migrate`)")
    engine = sa.create_engine(normalize_url(url))
    with engine.connect() as conn:
        _configure_and_run(conn)
        conn.commit()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
