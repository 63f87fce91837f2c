"""The database column of secrets at rest (libs.secretbox): sealed on the way in, opened on the way out.

The results wiring attaches its SecretBox to the engine (`attach`); an engine made
elsewhere (the admin tool, tests) uses HINDSIGHT_SECRET_KEY from the environment.
"""

from __future__ import annotations

import os

import sqlalchemy as sa

from libs.secretbox import PREFIX, SecretBox, SecretKeyError


def attach(engine: sa.Engine, box: SecretBox) -> None:
    """Let `EncryptedText` columns of this engine's sessions seal and open with `box`."""
    engine.dialect.hindsight_secret_box = box  # type: ignore[attr-defined]


def _box_of(dialect: sa.Dialect) -> SecretBox:
    box = getattr(dialect, "hindsight_secret_box", None)
    if box is None:
        # An engine made outside the service's wiring (admin tools, tests): the environment's key.
        text = os.environ.get("HINDSIGHT_SECRET_KEY", "")
        if not text.strip():
            raise SecretKeyError("no HINDSIGHT_SECRET_KEY to seal or open secrets with")
        box = SecretBox(text)
        dialect.hindsight_secret_box = box  # type: ignore[attr-defined]
    return box


class EncryptedText(sa.types.TypeDecorator):
    """Text sealed with the engine's SecretBox on the way in, opened on the way out."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return _box_of(dialect).seal(value)

    def process_result_value(self, value, dialect):
        if value is None or not SecretBox.is_sealed(value):
            return value
        return _box_of(dialect).open(value)


def seal_plaintext(connection: sa.Connection, box: SecretBox) -> int:
    """Seal every plaintext secret a table still holds (rows from before encryption); the count."""
    n = 0
    for table, key, column in SEALED_COLUMNS:
        rows = connection.execute(
            sa.text(f"SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL AND {column} NOT LIKE :p"),
            {"p": PREFIX + "%"},
        ).all()
        for row_key, plain in rows:
            connection.execute(
                sa.text(f"UPDATE {table} SET {column} = :v WHERE {key} = :k AND {column} = :old"),
                {"v": box.seal(plain), "k": row_key, "old": plain},
            )
            n += 1
    return n


# (table, primary key, column) of every secret the database keeps.
SEALED_COLUMNS = (("notification_settings", "tenant_id", "webhook_secret"),)
