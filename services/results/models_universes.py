"""The tables of issue 11 (on the shared `Base`): `universes`, a tenant's named ticker lists,
and `sweep_shards`, the shards of universe sweeps.

A universe's key is (tenant_id, name); `tickers` is the JSON list in its stored spelling
and order (domain.universe). A shard's key is (job_id, shard_id): its state is written
once by the engine that finishes it (services.results.universe_sweeps).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from services.results.models_base import Base


class Universe(Base):
    """A named list of tickers a sweep may run over."""

    __tablename__ = "universes"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    tickers: Mapped[list[str]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SweepShard(Base):
    """One ticker of a universe sweep, or one pair chunk of its grid: its state, progress and
    outcome (its rows are `sweep_results` of the job's sweep run, with its ticker). A
    chunked ticker's own outcome (best row, total, statistics, buy-and-hold) is kept on
    its chunk 0."""

    __tablename__ = "sweep_shards"

    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True)
    # "t0007": the spec's tickers[7]; "t0007c002of005": a pair chunk of its grid (JobMessage.shard_id, domain.shards).
    shard_id: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    position: Mapped[int]
    # The pair chunk of the ticker's grid (0 of 1: the whole grid).
    chunk: Mapped[int] = mapped_column(default=0)
    chunks: Mapped[int] = mapped_column(default=1)
    ticker: Mapped[str] = mapped_column(sa.String(64))
    # queued, running, completed, failed or cancelled.
    state: Mapped[str] = mapped_column(sa.String(16))
    error_message: Mapped[str] = mapped_column(sa.Text, default="")
    # Bars of the ticker's dataset at submission (0: none), and pairs x bars.
    bars: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    bar_pairs_total: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    # Bar-pairs done so far: only grows (a rerun after a crash reports less and is ignored).
    bar_pairs_done: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    # Times an engine took the shard (more than 1: redelivered after a crash).
    attempts: Mapped[int] = mapped_column(default=0)
    total_results: Mapped[int] = mapped_column(default=0)
    # The shard's best row (sweep_results.id), None when none has min_trades trades.
    best_result_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    buy_and_hold_return_pct: Mapped[float | None]
    overfitting: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    engine_seconds: Mapped[float] = mapped_column(default=0.0)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    # A completed pair chunk's CompleteSweepRequest (rows, trials' moments, block sums),
    # kept until the ticker's last chunk is in: then every chunk's rows are stored in grid
    # order and the statistics computed over the whole grid, and this is cleared.
    staged: Mapped[bytes | None] = mapped_column(sa.LargeBinary, default=None)
