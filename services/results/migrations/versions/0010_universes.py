"""Universes: a tenant's named ticker lists, which sweeps may run over (issue 11).

Revision ID: 0010_universes
Revises: 0009_sweep_overfitting
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_universes"
down_revision = "0009_sweep_overfitting"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "universes",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("tickers", sa.JSON(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("universes")
