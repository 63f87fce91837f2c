"""Tables of saved runs (issue 4): strategy_runs, their trades and equity, per-tenant run numbers.

Revision ID: 0002_runs
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_runs"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "strategy_runs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), nullable=False),
        sa.Column("run_number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ticker", sa.String(64), nullable=False),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("strategy_id", sa.String(64), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("start_date", sa.String(10), nullable=False),
        sa.Column("end_date", sa.String(10), nullable=False),
        sa.Column("interval", sa.String(8), nullable=False),
        sa.Column("cash", sa.Double(), nullable=False),
        sa.Column("commission_pct", sa.Double(), nullable=False),
        sa.Column("slippage_pct", sa.Double(), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("fill", sa.String(16), nullable=False),
        sa.Column("pnl", sa.Double(), nullable=True),
        sa.Column("return_pct", sa.Double(), nullable=True),
        sa.Column("sharpe_ratio", sa.Double(), nullable=True),
        sa.Column("max_drawdown", sa.Double(), nullable=True),
        sa.Column("total_trades", sa.Integer(), nullable=False),
        sa.Column("winning_trades", sa.Integer(), nullable=False),
        sa.Column("losing_trades", sa.Integer(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("replay_of", sa.Integer(), nullable=True),
        sa.Column("replay_spec", sa.JSON(), nullable=True),
        sa.Column(
            "sweep_run_id", sa.String(32), sa.ForeignKey("sweep_runs.sweep_run_id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("job_id", sa.String(96), sa.ForeignKey("jobs.job_id", ondelete="SET NULL"), nullable=True),
        sa.Column("sweep", sa.JSON(), nullable=True),
        sa.Column("bars", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.String(32), nullable=True),
        sa.Column("dataset_version", sa.Integer(), nullable=True),
        sa.Column("execution_time_seconds", sa.Double(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.UniqueConstraint("tenant_id", "run_number", name="uq_strategy_runs_tenant_number"),
    )
    op.create_index("ix_strategy_runs_tenant_ticker", "strategy_runs", ["tenant_id", "ticker"])
    op.create_index("ix_strategy_runs_tenant_strategy", "strategy_runs", ["tenant_id", "strategy"])

    op.create_table(
        "strategy_run_series",
        sa.Column("run_id", BigId, sa.ForeignKey("strategy_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("trades", sa.JSON(), nullable=False),
        sa.Column("equity", sa.JSON(), nullable=False),
    )

    op.create_table(
        "run_counters",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("last_run_number", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("run_counters")
    op.drop_table("strategy_run_series")
    op.drop_index("ix_strategy_runs_tenant_strategy", table_name="strategy_runs")
    op.drop_index("ix_strategy_runs_tenant_ticker", table_name="strategy_runs")
    op.drop_table("strategy_runs")
