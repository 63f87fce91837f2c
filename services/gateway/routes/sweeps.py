"""Sweeps: submit (`POST /api/v1/strategy/sweep`, seed 001's form or JSON) and best results."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2
from opentelemetry import trace

from domain.shards import SHARD_SIZE_RULE
from services.gateway.auth import Caller
from services.gateway.backend import Backend
from services.gateway.body import JSON_OR_FORM, BodyReader
from services.gateway.deps import BackendDep, CallerDep, checked_id
from services.gateway.docs import OVERFITTING_DOC, SCORE_DOC
from services.gateway.errors import invalid
from services.gateway.presenters import sweeps as shapes
from services.gateway.requests.fields import check_webhook, has_control_characters
from services.gateway.requests.sweeps import SweepRequest

router = APIRouter(tags=["sweeps"])
INVALID_SWEEP = "invalid sweep parameters"
_read_sweep = BodyReader(SweepRequest, message=INVALID_SWEEP, media_types=JSON_OR_FORM)


def _trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


async def read_sweep(
    sweep: Annotated[SweepRequest, Depends(_read_sweep)], backend: BackendDep
) -> SweepRequest:
    """The request's sweep, validated (webhook_url against SSRF too); 400 listing every problem otherwise."""
    await check_webhook(sweep.webhook_url, backend.webhook_policy, message=INVALID_SWEEP)
    return sweep


SweepDep = Annotated[SweepRequest, Depends(read_sweep)]


def sweep_spec(sweep: SweepRequest) -> jobs_pb2.SweepSpec:
    """A sweep request as the job's spec."""
    domain_spec = sweep.spec()
    return jobs_pb2.SweepSpec(
        ticker=sweep.ticker or "",
        interval=sweep.interval or "",
        fast_min=domain_spec.fast_range[0],
        fast_max=domain_spec.fast_range[1],
        slow_min=domain_spec.slow_range[0],
        slow_max=domain_spec.slow_range[1],
        period_min=domain_spec.period_range[0],
        period_max=domain_spec.period_range[1],
        oversold_min=domain_spec.oversold_range[0],
        oversold_max=domain_spec.oversold_range[1],
        overbought_min=domain_spec.overbought_range[0],
        overbought_max=domain_spec.overbought_range[1],
        threshold_step=domain_spec.threshold_step,
        step=sweep.step,
        min_trades=sweep.min_trades,
        strategy_type=sweep.strategy_type,
        config_path=sweep.config_path or "",
        direction=sweep.direction,
        fill=sweep.fill,
        commission_pct=sweep.commission_pct,
        slippage_pct=sweep.slippage_pct,
        initial_cash=sweep.initial_cash,
        pbo_blocks=sweep.pbo_blocks,
        # A universe sweep: results resolves the universe inside the submission's transaction.
        tickers=sweep.tickers or [],
        universe=sweep.universe or "",
    )


async def submit_sweep(backend: Backend, caller: Caller, sweep: SweepRequest) -> jobs_pb2.Job:
    """Create the job at results (which queues it in the same transaction)."""
    spec = sweep_spec(sweep)
    request = results_pb2.SubmitJobRequest(
        tenant_id=caller.tenant_id,
        job_kind=jobs_pb2.JOB_KIND_SWEEP,
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


SWEEP_DOC = (
    "Form-encoded exactly as seed 001 writes it (`fast_range: [10, 20]`), or JSON.\n"
    "`combinations` counts the (fast, slow) pairs on the step grid with fast < slow.\n\n"
    "A universe sweep names `tickers` (a list) or `universe` (a saved one) instead of `ticker`: "
    "each ticker is a shard that any engine replica may run, `combinations` counts pairs x "
    "tickers, and a ticker without enough data fails alone (`GET /api/v1/sweeps/{id}/tickers`).\n\n"
    f"Shards: {SHARD_SIZE_RULE} (`sweep.shard_bar_pairs` of `GET /api/v1/vocabulary`); a single-ticker "
    "sweep that large too. The overfitting statistics are computed over the whole grid once its last "
    "chunk is in. Progress in the stream is bar-pairs done over the total."
)


@router.post(
    "/api/v1/strategy/sweep",
    status_code=202,
    summary="Submit a parameter sweep (seed 001)",
    description=SWEEP_DOC,
    response_model=shapes.SweepAccepted,
    # The seed's answer keeps its fields: the RSI ranges are shown for RSI sweeps only, and
    # `tickers` and `universe` in `parameters` only for a universe sweep.
    response_model_exclude_unset=True,
)
async def strategy_sweep(sweep: SweepDep, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    # /docs shows SWEEP_DOC (the description above).
    job = await submit_sweep(backend, caller, sweep)
    return shapes.sweep_accepted(job, sweep)


@router.get(
    "/api/v1/sweeps/{sweep_run_id}/best",
    summary="Best combinations of a sweep run, by score (seed 001)",
    description=f"{SCORE_DOC}\n\n## Overfitting statistics (`overfitting`)\n\n{OVERFITTING_DOC}",
    response_model=shapes.SweepBest,
    # A crossover sweep's rows keep the seed's columns: `parameters` only on a rule sweep's rows.
    response_model_exclude_unset=True,
)
async def sweep_best(
    backend: BackendDep,
    caller: CallerDep,
    sweep_run_id: Annotated[str, Path()],
    ticker: Annotated[str | None, Query(max_length=32, description="one ticker's rows (a universe sweep: without it, "
                                        "every ticker's, ranked together)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> dict[str, Any]:
    checked_id(sweep_run_id, "sweep run")
    if ticker is not None and has_control_characters(ticker):
        raise invalid("invalid ticker", [{"field": "query.ticker", "message": "must not contain control characters"}])
    resp = await backend.call(
        backend.stub.GetSweepBest,
        results_pb2.GetSweepBestRequest(
            tenant_id=caller.tenant_id, sweep_run_id=sweep_run_id, ticker=ticker or "", limit=limit
        ),
    )
    return shapes.sweep_best(resp, sweep_run_id)


@router.get(
    "/api/v1/sweeps/{sweep_run_id}/tickers",
    summary="Each ticker of a universe sweep: its state, best row and buy-and-hold return",
    description="`sweep_run_id` is the sweep run id (`run_...`, from the done event), or the job id "
    "(`sweep_...`), so the table can be read while the sweep runs. A ticker's `overfitting` is "
    "the statistics of its own grid (they are per ticker; `best` without `ticker` shows none). "
    "A one-ticker sweep has one entry.",
    response_model=shapes.SweepTickers,
    # A best row shows `parameters` only when it has them, as in `best`.
    response_model_exclude_unset=True,
)
async def sweep_tickers(backend: BackendDep, caller: CallerDep, sweep_run_id: Annotated[str, Path()]) -> dict[str, Any]:
    checked_id(sweep_run_id, "sweep")
    resp = await backend.call(
        backend.stub.GetSweepTickers, results_pb2.GetSweepTickersRequest(tenant_id=caller.tenant_id, sweep_id=sweep_run_id)
    )
    return shapes.sweep_tickers(resp)
