"""Walk-forward optimizations: the answer to a submission and the result's shape (for /docs)."""

from __future__ import annotations

from typing import Any

from hindsight.jobs.v1 import jobs_pb2
from pydantic import Field

from services.gateway.presenters.common import ResponseModel, timestamp, utc_now
from services.gateway.presenters.jobs import stream_url


class WalkForwardAccepted(ResponseModel):
    """A queued walk-forward: one unit of work per fold."""

    job_id: str
    status: str
    message: str
    folds: int = Field(description="folds cut on the dataset's bars")
    bars: int = Field(description="bars of the dataset version the folds run on")
    combinations: int = Field(description="combinations of each training sweep")
    estimated_duration_seconds: int
    created_at: str | None
    stream_url: str
    result_url: str
    trace_id: str | None


class WindowMetrics(ResponseModel):
    """One window's metrics (the usual ones, defined below), its own equity from the initial cash."""

    score: float | None
    sharpe_ratio: float | None
    sortino_ratio: float | None
    total_return_pct: float | None
    annualized_return: float | None
    max_drawdown_pct: float | None
    win_rate_pct: float | None
    profit_factor: float | None
    total_trades: int
    trades_per_month: float | None
    avg_trade_duration: str


class WalkForwardFold(ResponseModel):
    """One fold: its windows (bar indices, `*_end` exclusive; `*_time` of the first and last
    bar), the combination its training window chose, and both windows' metrics."""

    fold: int = Field(description="from 0, in order")
    train_start: int
    train_end: int
    test_start: int
    test_end: int
    train_start_time: str
    train_end_time: str
    test_start_time: str
    test_end_time: str
    parameters: dict[str, int] | None = Field(
        description='e.g. {"fast_period": 10, "slow_period": 30}; null when no combination had min_trades trades'
    )
    in_sample: WindowMetrics | None
    out_of_sample: WindowMetrics | None


class StitchedPoint(ResponseModel):
    timestamp: str
    equity: float
    buy_and_hold: float


class Stitched(ResponseModel):
    """The out-of-sample equity compounded fold to fold, at the test windows' day ends."""

    equity: list[StitchedPoint]
    metrics: WindowMetrics


class WalkForward(ResponseModel):
    """A walk-forward optimization; `stitched` and `walk_forward_efficiency` once every fold is in."""

    job_id: str
    status: str
    error_message: str | None
    ticker: str
    interval: str
    strategy_type: str
    min_trades: int
    train_bars: int
    test_bars: int
    step_bars: int
    anchored: bool
    objective: str
    bars: int
    combinations: int
    folds_total: int
    folds_completed: int
    folds: list[WalkForwardFold]
    stitched: Stitched | None
    walk_forward_efficiency: float | None = Field(description="mean out-of-sample CAGR / mean in-sample CAGR")
    created_at: str
    completed_at: str | None


def accepted(job: jobs_pb2.Job) -> dict[str, Any]:
    spec = job.walkforward
    return {
        "job_id": job.job_id,
        "status": "queued",
        "message": "Walk-forward job queued successfully",
        "folds": spec.folds,
        "bars": spec.bars,
        "combinations": job.combinations,
        "estimated_duration_seconds": job.estimated_duration_seconds,
        "created_at": timestamp(job.created_at) or utc_now(),
        "stream_url": stream_url(job.job_id),
        "result_url": f"/api/v1/walkforward/{job.job_id}",
        "trace_id": job.trace_id or None,
    }
