"""Tables of strategies and day-by-day backtests (issue 3).

Revision ID: 0004_daybyday
Revises: 0003_notifications
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_daybyday"
down_revision = "0003_notifications"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "strategies",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("strategy_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
    )
    op.create_index("ix_strategies_tenant_created", "strategies", ["tenant_id", "created_at"])
    op.create_table(
        "day_backtests",
        sa.Column("job_id", sa.String(96), sa.ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("strategy_id", sa.String(36), nullable=False),
        sa.Column("strategy_name", sa.String(200), nullable=False),
        sa.Column("backtest_id", sa.String(64), nullable=False),
        sa.Column("start_date", sa.String(10), nullable=False),
        sa.Column("end_date", sa.String(10), nullable=False),
        sa.Column("ticker", sa.String(64), nullable=False),
        sa.Column("interval", sa.String(8), nullable=False),
        sa.Column("dataset_version_id", sa.String(40), nullable=False),
        sa.Column("initial_capital", sa.Double(), nullable=False),
        sa.Column("slippage_pct", sa.Double(), nullable=False),
        sa.Column("commission_pct", sa.Double(), nullable=False),
        sa.Column("strategy_definition", sa.JSON(), nullable=False),
        sa.Column("total_days", sa.Integer(), nullable=False),
        sa.Column("completed_days", sa.Integer(), nullable=False),
        sa.Column("current_date", sa.String(10), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("shards", sa.Integer(), nullable=False),
        sa.Column("engine_seconds", sa.Double(), nullable=False),
        sa.Column("active_key", sa.String(200), nullable=True, unique=True),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("expires_at", Time, nullable=False),
        sa.Column("artifacts_cleared_at", Time, nullable=True),
    )
    op.create_index(
        "ix_day_backtests_user_strategy", "day_backtests", ["tenant_id", "user_id", "strategy_id", "created_at"]
    )
    op.create_index("ix_day_backtests_backtest_id", "day_backtests", ["tenant_id", "backtest_id", "created_at"])
    op.create_index("ix_day_backtests_expires", "day_backtests", ["artifacts_cleared_at", "expires_at"])
    op.create_table(
        "day_backtest_days",
        sa.Column("id", _BigId, primary_key=True),
        sa.Column("job_id", sa.String(96), sa.ForeignKey("day_backtests.job_id", ondelete="CASCADE"), nullable=False),
        sa.Column("date", sa.String(10), nullable=False),
        sa.Column("day_number", sa.Integer(), nullable=False),
        sa.Column("positions", sa.Integer(), nullable=False),
        sa.Column("pnl", sa.Double(), nullable=False),
        sa.Column("winning_trades", sa.Integer(), nullable=False),
        sa.Column("losing_trades", sa.Integer(), nullable=False),
        sa.Column("largest_win", sa.Double(), nullable=False),
        sa.Column("largest_loss", sa.Double(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("file_bytes", sa.Integer(), nullable=False),
        sa.UniqueConstraint("job_id", "date", name="uq_day_backtest_days_job_date"),
    )


def downgrade() -> None:
    op.drop_table("day_backtest_days")
    op.drop_index("ix_day_backtests_expires", table_name="day_backtests")
    op.drop_index("ix_day_backtests_backtest_id", table_name="day_backtests")
    op.drop_index("ix_day_backtests_user_strategy", table_name="day_backtests")
    op.drop_table("day_backtests")
    op.drop_index("ix_strategies_tenant_created", table_name="strategies")
    op.drop_table("strategies")
