"""Seed 001's sweep: submit (`POST /api/v1/strategy/sweep`) and best results."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2
from opentelemetry import trace
from pydantic import BaseModel, Field

from services.gateway.auth import Caller
from services.gateway.backend import Backend
from services.gateway.body import read_fields
from services.gateway.deps import BackendDep, CallerDep, checked_id
from services.gateway.docs import SCORE_DOC
from services.gateway.errors import invalid
from services.gateway.sweep_request import SweepInvalid, SweepRequest, check_webhook_target, parse_sweep
from services.gateway.views import stream_url, sweep_row, timestamp, utc_now

router = APIRouter(tags=["sweeps"])
SWEEP_KIND = "trading-sweep"


class SweepBody(BaseModel):
    """A sweep request (documentation of the body; validation is `parse_sweep`)."""

    ticker: str = Field(min_length=3, max_length=20, examples=["BTC-USD"])
    fast_range: list[int] = Field(
        min_length=2, max_length=2, examples=[[10, 20]], description='[min, max]; forms also "[10, 20]" or "10,20"'
    )
    slow_range: list[int] = Field(min_length=2, max_length=2, examples=[[20, 30]])
    step: int = Field(ge=1, le=50, examples=[5])
    min_trades: int = Field(50, ge=10, le=1000)
    strategy_type: Literal["SMA", "EMA", "MACD"] = "SMA"
    config_path: Literal["minimum", "standard"] | None = None
    webhook_url: str | None = Field(None, description="http(s) URL called when the job ends")
    interval: Literal["1m", "5m", "15m", "1h", "1d"] | None = Field(None, description="empty: finest available")
    direction: Literal["long", "short", "both"] = "long"
    fill: Literal["next_open", "close"] = "next_open"
    commission_pct: float = Field(0.0, ge=0, le=10)
    slippage_pct: float = Field(0.0, ge=0, le=10)
    initial_cash: float = Field(10000.0, gt=0)
    timeout_seconds: int | None = Field(None, ge=1, le=86400, description="default 3600")
    notify_email: str | None = None


_SWEEP_SCHEMA = SweepBody.model_json_schema()
SWEEP_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _SWEEP_SCHEMA},
            "application/json": {"schema": _SWEEP_SCHEMA},
            "multipart/form-data": {"schema": _SWEEP_SCHEMA},
        },
    }
}


def _trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


async def read_sweep(request: Request) -> SweepRequest:
    """The request's sweep, validated (webhook_url against SSRF too); 400 listing every problem otherwise."""
    fields = await read_fields(request)
    try:
        sweep = parse_sweep(fields)
        await check_webhook_target(sweep.webhook_url, request.app.state.backend.webhook_policy)
        return sweep
    except SweepInvalid as exc:
        raise invalid("invalid sweep parameters", exc.errors) from None


async def submit_sweep(backend: Backend, caller: Caller, sweep: SweepRequest) -> jobs_pb2.Job:
    """Create the job at results (which queues it in the same transaction)."""
    spec = jobs_pb2.SweepSpec(
        ticker=sweep.ticker,
        interval=sweep.interval or "",
        fast_min=sweep.fast_range[0],
        fast_max=sweep.fast_range[1],
        slow_min=sweep.slow_range[0],
        slow_max=sweep.slow_range[1],
        step=sweep.step,
        min_trades=sweep.min_trades,
        strategy_type=sweep.strategy_type,
        config_path=sweep.config_path or "",
        direction=sweep.direction,
        fill=sweep.fill,
        commission_pct=sweep.commission_pct,
        slippage_pct=sweep.slippage_pct,
        initial_cash=sweep.initial_cash,
    )
    request = results_pb2.SubmitJobRequest(
        tenant_id=caller.tenant_id,
        kind=SWEEP_KIND,
        parameters_json=json.dumps(sweep.parameters(), separators=(",", ":")),
        webhook_url=sweep.webhook_url or "",
        timeout_seconds=sweep.timeout_seconds or 0,
        sweep=spec,
        trace_id=_trace_id(),
        notify_email=sweep.notify_email or "",
    )
    resp = await backend.call(backend.stub.SubmitJob, request)
    backend.metrics.jobs_queued.labels(strategy_type=sweep.strategy_type).inc()  # a closed set (validated)
    return resp.job


@router.post(
    "/api/v1/strategy/sweep",
    status_code=202,
    summary="Submit a parameter sweep (seed 001)",
    openapi_extra=SWEEP_BODY_DOC,
)
async def strategy_sweep(request: Request, backend: BackendDep, caller: CallerDep) -> JSONResponse:
    """Form-encoded exactly as seed 001 writes it (`fast_range: [10, 20]`), or JSON.
    `combinations` counts the (fast, slow) pairs on the step grid with fast < slow."""
    sweep = await read_sweep(request)
    job = await submit_sweep(backend, caller, sweep)
    body: dict[str, Any] = {
        "job_id": job.job_id,
        "status": "queued",
        "message": "Strategy sweep job queued successfully",
        "parameters": {
            "ticker": sweep.ticker,
            "fast_range": list(sweep.fast_range),
            "slow_range": list(sweep.slow_range),
            "step": sweep.step,
            "combinations": job.combinations or sweep.combinations,
        },
        "estimated_duration_seconds": job.estimated_duration_seconds,
        "webhook_url": sweep.webhook_url,
        "created_at": timestamp(job.created_at) or utc_now(),
        "stream_url": stream_url(job.job_id),
        "trace_id": job.trace_id or None,
    }
    return JSONResponse(body, status_code=202)


@router.get(
    "/api/v1/sweeps/{sweep_run_id}/best",
    summary="Best combinations of a sweep run, by score (seed 001)",
    description=SCORE_DOC,
)
async def sweep_best(
    backend: BackendDep,
    caller: CallerDep,
    sweep_run_id: Annotated[str, Path()],
    ticker: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> dict[str, Any]:
    checked_id(sweep_run_id, "sweep run")
    if ticker is not None and any(ord(c) < 0x20 for c in ticker):
        raise invalid("invalid ticker", [{"field": "query.ticker", "message": "must not contain control characters"}])
    resp = await backend.call(
        backend.stub.GetSweepBest,
        results_pb2.GetSweepBestRequest(
            tenant_id=caller.tenant_id, sweep_run_id=sweep_run_id, ticker=ticker or "", limit=limit
        ),
    )
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
    }
