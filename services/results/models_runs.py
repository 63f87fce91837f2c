"""Models of saved runs (on the shared `Base`).

`strategy_runs` has the seed's columns (ticker, strategy, parameters, dates,
interval, cash, pnl, return_pct, sharpe_ratio, max_drawdown, trade counts,
created_at) plus the tenant, the kind of run, the full metric set and what it
takes to replay it. A run's public id is its number within the tenant
(`run_number`: 1, 2, ...), so every tenant's first run is `/runs/1` and ids
say nothing about other tenants; `run_counters` hands the numbers out.
Trades and the equity curve live apart (`strategy_run_series`) so listings
never read them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from services.results.models_base import Base

_BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


class StrategyRun(Base):
    """One saved run: a synchronous backtest, a replay, a sweep (its best combination), a day-by-day backtest."""

    __tablename__ = "strategy_runs"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "run_number", name="uq_strategy_runs_tenant_number"),
        sa.Index("ix_strategy_runs_tenant_ticker", "tenant_id", "ticker"),
        sa.Index("ix_strategy_runs_tenant_strategy", "tenant_id", "strategy"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"))
    run_number: Mapped[int]
    # backtest, sweep or day_by_day
    kind: Mapped[str] = mapped_column(sa.String(16))
    # upper-cased, like datasets
    ticker: Mapped[str] = mapped_column(sa.String(64))
    # lower-cased built-in name (or a saved strategy's name)
    strategy: Mapped[str] = mapped_column(sa.String(64))
    strategy_id: Mapped[str | None] = mapped_column(sa.String(64))
    parameters: Mapped[dict[str, Any]]
    start_date: Mapped[str] = mapped_column(sa.String(10))
    end_date: Mapped[str] = mapped_column(sa.String(10))
    interval: Mapped[str] = mapped_column(sa.String(8))
    cash: Mapped[float]
    commission_pct: Mapped[float]
    slippage_pct: Mapped[float]
    direction: Mapped[str] = mapped_column(sa.String(8))
    fill: Mapped[str] = mapped_column(sa.String(16))
    pnl: Mapped[float | None]
    return_pct: Mapped[float | None]
    sharpe_ratio: Mapped[float | None]
    max_drawdown: Mapped[float | None]
    total_trades: Mapped[int]
    winning_trades: Mapped[int]
    losing_trades: Mapped[int | None]
    # every metric of the run (engine.v1.Metrics field names; null when undefined)
    metrics: Mapped[dict[str, Any]]
    # run_number of the run this one replays
    replay_of: Mapped[int | None]
    # the BacktestSpec (as a dict) that reproduces the run; null when it cannot be replayed
    replay_spec: Mapped[dict[str, Any] | None]
    sweep_run_id: Mapped[str | None] = mapped_column(sa.ForeignKey("sweep_runs.sweep_run_id", ondelete="SET NULL"))
    job_id: Mapped[str | None] = mapped_column(sa.ForeignKey("jobs.job_id", ondelete="SET NULL"))
    # for sweeps: ranges, step, combinations, min_trades, whether a best combination exists
    sweep: Mapped[dict[str, Any] | None]
    bars: Mapped[int]
    dataset_id: Mapped[str | None] = mapped_column(sa.String(32))
    dataset_version: Mapped[int | None]
    execution_time_seconds: Mapped[float]
    created_at: Mapped[datetime]


class StrategyRunSeries(Base):
    """A run's trades and (downsampled) equity curve, for exports and comparisons."""

    __tablename__ = "strategy_run_series"

    run_id: Mapped[int] = mapped_column(_BigId, sa.ForeignKey("strategy_runs.id", ondelete="CASCADE"), primary_key=True)
    # [{side, entry_ts, exit_ts, entry_price, ...}, ...]
    trades: Mapped[Any] = mapped_column(sa.JSON)
    # {"ts": [...], "equity": [...], "buy_and_hold": [...]}
    equity: Mapped[Any] = mapped_column(sa.JSON)


class RunCounter(Base):
    """The last run number handed out in a tenant (row-locked while numbering)."""

    __tablename__ = "run_counters"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True)
    last_run_number: Mapped[int]
