"""Pair-chunk shards: a ticker's grid split into chunks of its (fast, slow) pairs (issue 11).

Revision ID: 0016_pair_shards
Revises: 0015_bars_in_market_store
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_pair_shards"
down_revision = "0015_bars_in_market_store"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sweep_shards") as batch:
        batch.add_column(sa.Column("chunk", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("chunks", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("staged", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sweep_shards") as batch:
        batch.drop_column("staged")
        batch.drop_column("chunks")
        batch.drop_column("chunk")
