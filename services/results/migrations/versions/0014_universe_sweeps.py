"""Universe sweeps: one shard per ticker, its state and outcome (issue 11).

Revision ID: 0014_universe_sweeps
Revises: 0013_option_chains
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_universe_sweeps"
down_revision = "0013_option_chains"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sweep_shards",
        sa.Column("job_id", sa.String(96), sa.ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("shard_id", sa.String(16), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("ticker", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("bars", sa.BigInteger(), nullable=False),
        sa.Column("bar_pairs_total", sa.BigInteger(), nullable=False),
        sa.Column("bar_pairs_done", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("total_results", sa.Integer(), nullable=False),
        sa.Column("best_result_id", sa.BigInteger(), nullable=True),
        sa.Column("buy_and_hold_return_pct", sa.Double(), nullable=True),
        sa.Column("overfitting", sa.JSON(), nullable=True),
        sa.Column("engine_seconds", sa.Double(), nullable=False),
        sa.Column("started_at", Time, nullable=True),
        sa.Column("completed_at", Time, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("sweep_shards")
