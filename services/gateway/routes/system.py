"""Health, liveness, Prometheus metrics and the domain vocabulary (no authentication)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from domain import market, sweep
from domain.backtest_spec import BUILTIN_STRATEGIES
from services.gateway.deps import BackendDep
from services.gateway.docs import content
from services.gateway.errors import RETRY_AFTER_SECONDS
from services.gateway.presenters.common import utc_now
from services.gateway.presenters.system import Health, SweepLimits, TickerRule, Vocabulary

router = APIRouter(tags=["system"])
API_VERSION = "1.0.0"


@router.get(
    "/health",
    summary="Health check (seed 001)",
    response_model=Health,
    responses={503: {"model": Health, "description": "results cannot serve (Retry-After says when to ask again)"}},
)
async def health(backend: BackendDep) -> Any:
    """`{"status": "healthy", "version", "timestamp"}`; 503 with status `unhealthy` when
    results cannot serve. `services` tells which part is down."""
    results = await backend.results_health()
    ok = results == "serving"
    body = {
        "status": "healthy" if ok else "unhealthy",
        "version": API_VERSION,
        "timestamp": utc_now(),
        "services": {"gateway": "serving", "results": results},
    }
    if ok:
        return body
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@router.get("/livez", summary="Liveness: the gateway process answers", include_in_schema=False)
async def livez() -> dict[str, str]:
    return {"status": "alive"}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: content(CONTENT_TYPE_LATEST.split(";")[0], "Prometheus text exposition format")},
)
async def metrics(backend: BackendDep) -> Response:
    return Response(generate_latest(backend.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/vocabulary", summary="Intervals, ticker syntax, strategies and sweep limits")
async def vocabulary() -> Vocabulary:
    return Vocabulary(
        intervals=list(market.INTERVALS),
        calendars=list(market.CALENDARS),
        ticker=TickerRule(
            pattern=market.TICKER_PATTERN,
            max_length=market.TICKER_MAX_LENGTH,
            examples=["BTC-USD", "^GSPC", "BRK/B", "ES=F", "NIFTY24OCTFUT"],
        ),
        strategies=list(BUILTIN_STRATEGIES),
        sweep=SweepLimits(
            strategy_types=list(sweep.STRATEGY_TYPES),
            period=(sweep.PERIOD_MIN, sweep.PERIOD_MAX),
            step=(sweep.STEP_MIN, sweep.STEP_MAX),
            min_trades=(sweep.MIN_TRADES_MIN, sweep.MIN_TRADES_MAX),
            min_trades_default=sweep.MIN_TRADES_DEFAULT,
            cost_pct_max=sweep.COST_PCT_MAX,
            timeout_seconds=(sweep.TIMEOUT_SECONDS_MIN, sweep.TIMEOUT_SECONDS_MAX),
        ),
    )
