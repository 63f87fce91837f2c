"""Health, liveness, Prometheus metrics and the domain vocabulary (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from domain import market, sweep
from domain.backtest_spec import BUILTIN_STRATEGIES

from services.gateway.deps import BackendDep
from services.gateway.errors import RETRY_AFTER_SECONDS
from services.gateway.views import utc_now

router = APIRouter(tags=["system"])
API_VERSION = "1.0.0"


@router.get("/health", summary="Health check (seed 001)")
async def health(backend: BackendDep) -> JSONResponse:
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
    headers = {} if ok else {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return JSONResponse(body, status_code=200 if ok else 503, headers=headers)


@router.get("/livez", summary="Liveness: the gateway process answers", include_in_schema=False)
async def livez() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(backend: BackendDep) -> Response:
    return Response(generate_latest(backend.metrics.registry), media_type=CONTENT_TYPE_LATEST)


class TickerRule(BaseModel):
    pattern: str
    max_length: int
    examples: list[str]


class SweepLimits(BaseModel):
    strategy_types: list[str]
    period: tuple[int, int]
    step: tuple[int, int]
    min_trades: tuple[int, int]
    min_trades_default: int
    cost_pct_max: float
    timeout_seconds: tuple[int, int]


class Vocabulary(BaseModel):
    """The domain's vocabulary, so clients (the dashboard among them) need not copy it."""

    intervals: list[str]
    calendars: list[str]
    ticker: TickerRule
    strategies: list[str]
    sweep: SweepLimits


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
