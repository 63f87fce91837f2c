"""The tables of the results service (SQLAlchemy 2 declarative models).

Public ids are strings (`sweep_...`, `run_...`, `ds_...`); rows that only
exist inside one parent (events, result rows, outbox messages) have integer
keys. Every time is stored as UTC; `UTCDateTime` (services.results.models_base)
hands back aware datetimes on both Postgres and SQLite (which keeps no zone).

The tables of later areas live in their own modules on the same `Base`
(models_day_by_day, models_notifications, models_runs); this module imports
them, so importing it puts every table into `Base.metadata` (migrations,
schema tests).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from services.results import (  # noqa: F401  (their tables)
    models_day_by_day,
    models_market,
    models_notifications,
    models_runs,
    models_universes,
    models_walkforward,
)
from services.results.models_base import Base, UTCDateTime

__all__ = ["Base", "UTCDateTime", "Tenant", "ApiKey", "Job", "JobEvent", "SweepRun", "SweepResult", "Dataset",
           "DatasetVersion", "OutboxMessage"]


class Tenant(Base):
    """An owner of jobs, datasets and keys."""

    __tablename__ = "tenants"

    tenant_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    created_at: Mapped[datetime]


class ApiKey(Base):
    """An API key of a tenant; only its SHA-256 is kept."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), index=True)
    key_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # First characters of the key, so an operator can tell keys apart in a listing.
    key_prefix: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class LoginSession(Base):
    """A session from a login with an API key (the dashboard's cookie). It ends at
    `expires_at`, at logout, or when its key is revoked; only its token's SHA-256 is kept."""

    __tablename__ = "sessions"

    token_sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(sa.ForeignKey("api_keys.key_id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]


class Job(Base):
    """A submitted job (a trading sweep) and its lifecycle."""

    __tablename__ = "jobs"
    __table_args__ = (
        sa.Index("ix_jobs_tenant_created", "tenant_id", "created_at"),
        sa.Index("ix_jobs_state_deadline", "state", "deadline_at"),
        sa.Index("ix_jobs_tenant_state", "tenant_id", "state"),
    )

    job_id: Mapped[str] = mapped_column(sa.String(96), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(32))
    # queued, running, completed, failed, cancelled
    state: Mapped[str] = mapped_column(sa.String(16))
    parameters: Mapped[dict[str, Any]]
    sweep_spec: Mapped[dict[str, Any] | None]
    webhook_url: Mapped[str] = mapped_column(sa.Text, default="")
    notify_email: Mapped[str] = mapped_column(sa.Text, default="")
    timeout_seconds: Mapped[int]
    created_at: Mapped[datetime]
    # created_at + timeout_seconds: what the timeout watchdog compares with now.
    deadline_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    error_message: Mapped[str] = mapped_column(sa.Text, default="")
    percent: Mapped[float] = mapped_column(default=0.0)
    progress_message: Mapped[str] = mapped_column(sa.Text, default="")
    sweep_run_id: Mapped[str | None] = mapped_column(sa.String(32))
    combinations: Mapped[int]
    estimated_duration_seconds: Mapped[int]
    # The job's work: a sweep's combinations × bars, a day-by-day run's bars (tenant quotas).
    bar_pairs: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    metrics: Mapped[dict[str, Any] | None]
    trace_id: Mapped[str] = mapped_column(sa.String(32), default="")
    # seq of the job's newest event; bumped under the row lock when one is appended.
    last_event_seq: Mapped[int] = mapped_column(default=0)


class JobEvent(Base):
    """One persisted event of a job's stream (the seed's SSE payloads)."""

    __tablename__ = "job_events"
    __table_args__ = (sa.UniqueConstraint("job_id", "seq", name="uq_job_events_job_seq"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.job_id", ondelete="CASCADE"))
    seq: Mapped[int]
    # progress, done or error
    type: Mapped[str] = mapped_column(sa.String(16))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class SweepRun(Base):
    """The stored outcome of one completed sweep job."""

    __tablename__ = "sweep_runs"

    sweep_run_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.job_id", ondelete="CASCADE"), unique=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), index=True)
    ticker: Mapped[str] = mapped_column(sa.String(64))
    strategy_type: Mapped[str] = mapped_column(sa.String(16))
    min_trades: Mapped[int]
    total_combinations: Mapped[int]
    execution_time_seconds: Mapped[float]
    created_at: Mapped[datetime]
    # The overfitting statistics shown by `best` (domain.overfitting.overfitting_view);
    # None for runs stored without them.
    overfitting: Mapped[dict[str, Any] | None]


class SweepResult(Base):
    """One parameter combination of a sweep run (the seed's TradingSweepResult, in float64)."""

    __tablename__ = "sweep_results"
    __table_args__ = (sa.Index("ix_sweep_results_run_score", "sweep_run_id", "score"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    sweep_run_id: Mapped[str] = mapped_column(sa.ForeignKey("sweep_runs.sweep_run_id", ondelete="CASCADE"))
    ticker: Mapped[str] = mapped_column(sa.String(64))
    strategy_type: Mapped[str] = mapped_column(sa.String(16))
    fast_period: Mapped[int]
    slow_period: Mapped[int]
    score: Mapped[float | None]
    sharpe_ratio: Mapped[float | None]
    sortino_ratio: Mapped[float | None]
    total_return_pct: Mapped[float | None]
    annualized_return: Mapped[float | None]
    max_drawdown_pct: Mapped[float | None]
    win_rate_pct: Mapped[float | None]
    profit_factor: Mapped[float | None]
    total_trades: Mapped[int]
    trades_per_month: Mapped[float | None]
    avg_trade_duration: Mapped[str] = mapped_column(sa.String(64), default="")
    # A rule sweep's combination ({name: value}); None for crossover sweeps (fast, slow).
    parameters: Mapped[dict[str, Any] | None]


class Dataset(Base):
    """A tenant's bars of one ticker at one interval; its content lives in versions."""

    __tablename__ = "datasets"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "ticker", "interval", name="uq_datasets_tenant_ticker_interval"),)

    dataset_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"))
    ticker: Mapped[str] = mapped_column(sa.String(64))
    interval: Mapped[str] = mapped_column(sa.String(8))
    # continuous (24/7) or sessions (exchange hours)
    calendar: Mapped[str] = mapped_column(sa.String(16))
    timezone: Mapped[str] = mapped_column(sa.String(64))
    demo: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class DatasetVersion(Base):
    """One immutable import of a dataset. Its bars are Parquet files in the market store
    (services/results/market_store.py, `bars/...`); the row says where and what they hold."""

    __tablename__ = "dataset_versions"
    __table_args__ = (sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_dataset_version"),)

    version_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(sa.ForeignKey("datasets.dataset_id", ondelete="CASCADE"))
    version: Mapped[int]
    bars: Mapped[int]
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    # The version's directory under the market store's root (shared by tenants for the demo datasets).
    storage_key: Mapped[str] = mapped_column(sa.String(255))
    # What its files take on disk.
    bytes_stored: Mapped[int] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime]


class OutboxMessage(Base):
    """A broker message written in the same transaction as the change it announces."""

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_unsent", "sent_at", "id"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    queue: Mapped[str] = mapped_column(sa.String(128))
    body: Mapped[bytes] = mapped_column(sa.LargeBinary)
    headers: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
