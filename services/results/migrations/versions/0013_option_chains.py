"""Option chains (issue 15): what each chain in the columnar market-data store is; its rows
are Parquet files of the store, not in the database.

Revision ID: 0013_option_chains
Revises: 0012_walkforward
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

Time = sa.DateTime(timezone=True)

revision = "0013_option_chains"
down_revision = "0012_walkforward"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "option_chains",
        sa.Column("chain_id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), nullable=False),
        sa.Column("ticker", sa.String(64), nullable=False),
        sa.Column("underlying", sa.String(64), nullable=False),
        sa.Column("interval", sa.String(8), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("demo", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(255), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("contracts", sa.Integer(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("bytes_stored", sa.BigInteger(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("start_at", Time, nullable=False),
        sa.Column("end_at", Time, nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.UniqueConstraint("tenant_id", "ticker", "interval", name="uq_option_chains_tenant_ticker_interval"),
    )
    op.create_index("ix_option_chains_tenant_underlying", "option_chains", ["tenant_id", "underlying"])


def downgrade() -> None:
    op.drop_index("ix_option_chains_tenant_underlying", table_name="option_chains")
    op.drop_table("option_chains")
