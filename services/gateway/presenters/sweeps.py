"""Sweeps: the answer to a submission, and a sweep run's best combinations (seed 001's shapes)."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2
from pydantic import Field, create_model

from libs.metric_fields import SWEEP_OPTIONAL_METRICS, SWEEP_RESULT_FIELDS
from services.gateway.presenters.common import ResponseModel, timestamp, utc_now
from services.gateway.presenters.jobs import stream_url
from services.gateway.requests.sweeps import SweepRequest

_PY_TYPES = {FieldDescriptor.TYPE_DOUBLE: float, FieldDescriptor.TYPE_INT32: int, FieldDescriptor.TYPE_INT64: int,
             FieldDescriptor.TYPE_STRING: str, FieldDescriptor.TYPE_BOOL: bool}


def _row_fields() -> dict[str, Any]:
    by_name = results_pb2.SweepResult.DESCRIPTOR.fields_by_name
    out: dict[str, Any] = {}
    for name in SWEEP_RESULT_FIELDS:
        kind: Any = _PY_TYPES[by_name[name].type]
        out[name] = (kind | None, ...) if name in SWEEP_OPTIONAL_METRICS else (kind, ...)
    return out


# One combination of a sweep, in the seed's column order; its fields are the proto's
# (`hindsight.results.v1.SweepResult`); undefined metrics are null.
SweepResultRow = create_model(  # type: ignore[call-overload]
    "SweepResultRow", __base__=ResponseModel, __doc__="One (fast, slow) combination and its metrics.", **_row_fields(),
    parameters=(dict[str, int | float] | None, Field(
        None, description="a rule strategy's sweep: the combination's values (absent for crossover sweeps)"
    )),
)


class SweepParametersShown(ResponseModel):
    ticker: str | None = Field(description="null for a universe sweep")
    tickers: list[str] | None = Field(None, description="a universe sweep's tickers (only then)")
    universe: str | None = Field(None, description="the universe swept (only when one was named)")
    fast_range: list[int] | None = None
    slow_range: list[int] | None = None
    period_range: list[int] | None = Field(None, description="strategy_type RSI")
    oversold_range: list[float] | None = Field(None, description="strategy_type RSI")
    overbought_range: list[float] | None = Field(None, description="strategy_type RSI")
    threshold_step: float | None = Field(None, description="strategy_type RSI")
    step: int
    combinations: int


class SweepAccepted(ResponseModel):
    """A queued sweep (seed 001's answer, with its event stream and trace)."""

    job_id: str
    status: str
    message: str
    parameters: SweepParametersShown
    estimated_duration_seconds: int
    webhook_url: str | None
    created_at: str | None
    stream_url: str
    trace_id: str | None


class SweepOverfitting(ResponseModel):
    """How much the first row of `best` is worth after the grid's trials (defined in the API
    description, "Overfitting statistics of a sweep"); `null` values come with a `reason`."""

    trials: int = Field(description="combinations of the grid, including those under min_trades (N)")
    probabilistic_sharpe_ratio: float | None = Field(description="PSR(0) of the first row of best")
    deflated_sharpe_ratio: float | None = Field(description="PSR(SR₀) of the first row of best (DSR)")
    expected_max_sharpe: float | None = Field(description="SR₀: the expected best per-period Sharpe ratio of N trials without skill")
    pbo: float | None = Field(description="probability of backtest overfitting: the share of CSCV splits with logit ≤ 0")
    pbo_blocks: int = Field(description="CSCV blocks (S)")
    logits: list[float] | None = Field(description="the logit λ of every CSCV split, C(S, S/2) of them")
    days: int = Field(description="daily returns of each trial (T)")
    sharpe_variance: float | None = Field(description="variance (ddof = 1) of the trials' per-period Sharpe ratios (V)")
    reason: str | None = Field(description="why values are null; null when none is")
    reading: str | None = Field(description="one plain-language sentence on the DSR and the PBO")


class SweepBest(ResponseModel):
    """The best combinations of a sweep run, by score, descending."""

    sweep_run_id: str
    ticker: str
    results: list[SweepResultRow]  # type: ignore[valid-type]
    total_results: int = Field(description="combinations with at least min_trades trades")
    returned: int
    query_timestamp: str
    excluded_below_min_trades: int
    min_trades: int
    job_id: str | None
    overfitting: SweepOverfitting | None = Field(
        description="overfitting statistics of the run; null for runs stored before they existed"
    )


def sweep_row(row: results_pb2.SweepResult) -> dict[str, Any]:
    """One combo in the seed's shape; unset optional doubles are null."""
    out: dict[str, Any] = {}
    for name in SWEEP_RESULT_FIELDS:
        if name in SWEEP_OPTIONAL_METRICS:
            out[name] = getattr(row, name) if row.HasField(name) else None
        else:
            out[name] = getattr(row, name)
    if row.parameters_json:
        out["parameters"] = json.loads(row.parameters_json)
    return out


def sweep_accepted(job: jobs_pb2.Job, sweep: SweepRequest) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "status": "queued",
        "message": "Strategy sweep job queued successfully",
        "parameters": {
            "ticker": sweep.ticker,
            **_universe_shown(job, sweep),
            **({"period_range": sweep.period_range, "oversold_range": sweep.oversold_range,
                "overbought_range": sweep.overbought_range, "threshold_step": sweep.threshold_step}
               if sweep.strategy_type == "RSI"
               else {"fast_range": list(sweep.fast_range or []), "slow_range": list(sweep.slow_range or [])}),
            "step": sweep.step,
            "combinations": job.combinations or sweep.combinations,
        },
        "estimated_duration_seconds": job.estimated_duration_seconds,
        "webhook_url": sweep.webhook_url,
        "created_at": timestamp(job.created_at) or utc_now(),
        "stream_url": stream_url(job.job_id),
        "trace_id": job.trace_id or None,
    }


def _universe_shown(job: jobs_pb2.Job, sweep: SweepRequest) -> dict[str, Any]:
    """A universe sweep's tickers as results resolved them (nothing for one ticker)."""
    if not sweep.is_universe:
        return {}
    out: dict[str, Any] = {"tickers": list(job.sweep.tickers)}
    if sweep.universe is not None:
        out["universe"] = sweep.universe
    return out


def sweep_best(resp: results_pb2.GetSweepBestResponse, sweep_run_id: str) -> dict[str, Any]:
    rows = [sweep_row(r) for r in resp.results]
    return {
        "sweep_run_id": resp.sweep_run_id or sweep_run_id,
        "ticker": resp.ticker,
        "results": rows,
        "total_results": resp.total_results,
        "returned": len(rows),
        "query_timestamp": utc_now(),
        "excluded_below_min_trades": resp.excluded_below_min_trades,
        "min_trades": resp.min_trades,
        "job_id": resp.job_id or None,
        "overfitting": overfitting(resp.overfitting) if resp.HasField("overfitting") else None,
    }


def overfitting(msg: results_pb2.SweepOverfitting) -> dict[str, Any]:
    """The `overfitting` object of best (unset optional doubles are null)."""
    def opt(name: str) -> float | None:
        return getattr(msg, name) if msg.HasField(name) else None

    return {
        "trials": msg.trials,
        "probabilistic_sharpe_ratio": opt("probabilistic_sharpe_ratio"),
        "deflated_sharpe_ratio": opt("deflated_sharpe_ratio"),
        "expected_max_sharpe": opt("expected_max_sharpe"),
        "pbo": opt("pbo"),
        "pbo_blocks": msg.pbo_blocks,
        "logits": list(msg.logits) if msg.HasField("pbo") else None,
        "days": msg.days,
        "sharpe_variance": opt("sharpe_variance"),
        "reason": msg.reason or None,
        "reading": msg.reading or None,
    }


class RuleSweepAccepted(ResponseModel):
    """A queued sweep of a rule strategy's parameters; follow it at `stream_url`, read it at
    `/api/v1/sweeps/{sweep_run_id}/best` once done (the job's `sweep_run_id`)."""

    job_id: str
    status: str
    message: str
    strategy_id: str
    parameters: dict[str, list[int | float]] = Field(description="the ranges swept, [start, stop, step] each")
    combinations: int
    start_date: str
    end_date: str
    min_trades: int
    estimated_duration_seconds: int
    webhook_url: str | None
    created_at: str | None
    stream_url: str
    trace_id: str | None


def rule_sweep_accepted(job: jobs_pb2.Job, strategy_id: str, request: Any) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "status": "queued",
        "message": "Rule strategy sweep job queued successfully",
        "strategy_id": strategy_id,
        "parameters": request.parameters,
        "combinations": job.combinations,
        "start_date": request.start_date,
        "end_date": request.end_date,
        "min_trades": request.min_trades,
        "estimated_duration_seconds": job.estimated_duration_seconds,
        "webhook_url": request.webhook_url,
        "created_at": timestamp(job.created_at) or utc_now(),
        "stream_url": stream_url(job.job_id),
        "trace_id": job.trace_id or None,
    }


class SweepTickerRow(ResponseModel):
    """One ticker of a universe sweep."""

    ticker: str
    status: str = Field(description="queued, running, completed, failed or cancelled")
    error_message: str | None = Field(description="why it failed, e.g. Insufficient historical data for ticker X")
    best: SweepResultRow | None = Field(description="its best row (>= min_trades trades, by score); null when none")  # type: ignore[valid-type]
    best_score: float | None = Field(description="best.score, for sorting")
    buy_and_hold_return_pct: float | None = Field(description="buy-and-hold over the same bars, cash, fill and costs")
    bars: int
    total_results: int = Field(description="its combinations with at least min_trades trades")
    overfitting: SweepOverfitting | None = Field(description="the statistics of its own grid")


class SweepTickers(ResponseModel):
    """The tickers of a sweep, in the order they were given."""

    sweep_run_id: str
    job_id: str
    status: str
    universe: str | None
    min_trades: int
    tickers: list[SweepTickerRow]


def sweep_tickers(resp: results_pb2.GetSweepTickersResponse) -> dict[str, Any]:
    rows = []
    for t in resp.tickers:
        best = sweep_row(t.best) if t.HasField("best") else None
        rows.append({
            "ticker": t.ticker,
            "status": t.state,
            "error_message": t.error_message or None,
            "best": best,
            "best_score": best["score"] if best is not None else None,
            "buy_and_hold_return_pct": t.buy_and_hold_return_pct if t.HasField("buy_and_hold_return_pct") else None,
            "bars": t.bars,
            "total_results": t.total_results,
            "overfitting": overfitting(t.overfitting) if t.HasField("overfitting") else None,
        })
    return {
        "sweep_run_id": resp.sweep_run_id,
        "job_id": resp.job_id,
        "status": resp.state,
        "universe": resp.universe or None,
        "min_trades": resp.min_trades,
        "tickers": rows,
    }
