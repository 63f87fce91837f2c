"""Sweeps of rule strategies (issue 14): each combination's parameter values, `best` shows them.

Revision ID: 0011_rule_sweeps
Revises: 0010_universes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_rule_sweeps"
down_revision = "0010_universes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Crossover sweeps keep NULL: their combination is (fast_period, slow_period).
    with op.batch_alter_table("sweep_results") as batch:
        batch.add_column(sa.Column("parameters", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sweep_results") as batch:
        batch.drop_column("parameters")
