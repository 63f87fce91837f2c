"""Per-day trade figures of day-by-day backtests, for the run's full metrics (issue 16).

Revision ID: 0008_day_figures
Revises: 0007_job_bar_pairs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_day_figures"
down_revision = "0007_job_bar_pairs"
branch_labels = None
depends_on = None

COLUMNS = ("gross_profit", "gross_loss", "trade_seconds")


def upgrade() -> None:
    with op.batch_alter_table("day_backtest_days") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Double(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("day_backtest_days") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
