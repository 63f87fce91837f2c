"""Secrets at rest: webhook signing secrets encrypted (issue 12, item 10).

`notification_settings.webhook_secret` becomes Text (a sealed value is longer than
the secret) and every plaintext secret is sealed with HINDSIGHT_SECRET_KEY
(libs.secretbox): the key of the running results service when it migrates, else
the environment's. Without a key the rows stay as they are (they still read) and
results seals them when it starts. Downgrade opens them again.

Revision ID: 0005_secrets_at_rest
Revises: 0004_daybyday
"""

from __future__ import annotations

import logging
import os

import sqlalchemy as sa
from alembic import context, op

from libs.secretbox import PREFIX, SecretBox
from services.results.sealed import SEALED_COLUMNS, seal_plaintext

revision = "0005_secrets_at_rest"
down_revision = "0004_daybyday"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)


def _box() -> SecretBox | None:
    box = context.config.attributes.get("secret_box")
    if box is None and os.environ.get("HINDSIGHT_SECRET_KEY", "").strip():
        box = SecretBox(os.environ["HINDSIGHT_SECRET_KEY"])
    return box


def upgrade() -> None:
    with op.batch_alter_table("notification_settings") as batch:
        batch.alter_column("webhook_secret", type_=sa.Text(), existing_type=sa.String(128), existing_nullable=False)
    box = _box()
    if box is None:
        log.warning("no HINDSIGHT_SECRET_KEY: webhook secrets stay in plaintext until results starts with one")
        return
    sealed = seal_plaintext(op.get_bind(), box)
    if sealed:
        log.info("webhook secrets encrypted", extra={"rows": sealed})


def downgrade() -> None:
    bind = op.get_bind()
    box = _box()
    for table, key, column in SEALED_COLUMNS:
        rows = bind.execute(sa.text(f"SELECT {key}, {column} FROM {table} WHERE {column} LIKE :p"),
                            {"p": PREFIX + "%"}).all()
        if rows and box is None:
            raise RuntimeError("downgrading sealed secrets needs HINDSIGHT_SECRET_KEY")
        for row_key, sealed in rows:
            bind.execute(sa.text(f"UPDATE {table} SET {column} = :v WHERE {key} = :k"),
                         {"v": box.open(sealed), "k": row_key})
    with op.batch_alter_table("notification_settings") as batch:
        batch.alter_column("webhook_secret", type_=sa.String(128), existing_type=sa.Text(), existing_nullable=False)
