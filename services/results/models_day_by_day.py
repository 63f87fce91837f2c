"""Models of strategies and day-by-day backtests (on the shared `Base`).

- `strategies`: a tenant's rule strategies; the id is a UUID the tenant may
  choose (PUT), so the key is (tenant_id, strategy_id).
- `day_backtests`: one row per day-by-day job (seed 002's `backtest/start`,
  seed 004's `backtest/run`): what it runs, its progress in days, and where its
  artifacts are. `active_key` is set while the job is queued or running and is
  unique: at most one active run per seed-004 user (per strategy for seed 002).
- `day_backtest_days`: one row per stored day (the metadata's daily summaries).
The artifacts themselves are gzip JSON files on disk (services.results.artifacts).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from services.results.models_base import Base

_BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


class Strategy(Base):
    """A rule strategy: dataset, session, entry and exit nodes (JSON definition)."""

    __tablename__ = "strategies"
    __table_args__ = (sa.Index("ix_strategies_tenant_created", "tenant_id", "created_at"),)

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True)
    strategy_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    definition: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DayByDayBacktest(Base):
    """A day-by-day backtest job: spec, progress in days, summary, artifact lifetime."""

    __tablename__ = "day_backtests"
    __table_args__ = (
        sa.Index("ix_day_backtests_user_strategy", "tenant_id", "user_id", "strategy_id", "created_at"),
        sa.Index("ix_day_backtests_backtest_id", "tenant_id", "backtest_id", "created_at"),
        sa.Index("ix_day_backtests_expires", "artifacts_cleared_at", "expires_at"),
    )

    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"))
    # Seed-004 user partition; "" for seed-002 runs.
    user_id: Mapped[str] = mapped_column(sa.String(64), default="")
    strategy_id: Mapped[str] = mapped_column(sa.String(36))
    strategy_name: Mapped[str] = mapped_column(sa.String(200))
    # {strategy_id}_{start_date}_{end_date}
    backtest_id: Mapped[str] = mapped_column(sa.String(64))
    start_date: Mapped[str] = mapped_column(sa.String(10))
    end_date: Mapped[str] = mapped_column(sa.String(10))
    ticker: Mapped[str] = mapped_column(sa.String(64))
    interval: Mapped[str] = mapped_column(sa.String(8))
    # The dataset version the days were counted on; the engine runs on the same bars.
    dataset_version_id: Mapped[str] = mapped_column(sa.String(40))
    initial_capital: Mapped[float]
    slippage_pct: Mapped[float]
    commission_pct: Mapped[float]
    # The strategy definition at submission.
    strategy_definition: Mapped[dict[str, Any]]
    total_days: Mapped[int]
    completed_days: Mapped[int] = mapped_column(default=0)
    # Date (YYYY-MM-DD) of the newest stored day; "" before the first.
    current_date: Mapped[str] = mapped_column(sa.String(10), default="")
    # Overall summary once completed.
    summary: Mapped[dict[str, Any] | None]
    # Shards (JobMessages) the range was split into; their engines' run time, added up.
    shards: Mapped[int] = mapped_column(default=1)
    engine_seconds: Mapped[float] = mapped_column(default=0.0)
    # "tenant/user" (seed 004) or "tenant//strategy" (seed 002) while queued or running, else NULL.
    active_key: Mapped[str | None] = mapped_column(sa.String(200), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    artifacts_cleared_at: Mapped[datetime | None]


class DayByDayBacktestDay(Base):
    """One stored day of a day-by-day backtest (a row of the metadata's daily summaries)."""

    __tablename__ = "day_backtest_days"
    __table_args__ = (sa.UniqueConstraint("job_id", "date", name="uq_day_backtest_days_job_date"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("day_backtests.job_id", ondelete="CASCADE"))
    date: Mapped[str] = mapped_column(sa.String(10))
    day_number: Mapped[int]
    positions: Mapped[int]
    pnl: Mapped[float]
    winning_trades: Mapped[int]
    losing_trades: Mapped[int]
    largest_win: Mapped[float]
    largest_loss: Mapped[float]
    # The day's positions: gross profit (>= 0), gross loss (<= 0) and summed durations (seconds),
    # for the run's profit factor and average trade duration.
    gross_profit: Mapped[float] = mapped_column(default=0.0, server_default="0")
    gross_loss: Mapped[float] = mapped_column(default=0.0, server_default="0")
    trade_seconds: Mapped[float] = mapped_column(default=0.0, server_default="0")
    # Seed 002's day summary (what day_completed carries).
    summary: Mapped[dict[str, Any]]
    # Bytes of the day's files on disk.
    file_bytes: Mapped[int]
