"""Health, liveness and the domain vocabulary (no authentication), Prometheus metrics (a scrape token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from domain import bar_formats, market, sweep, universe
from domain.backtest_spec import BUILTIN_STRATEGIES
from domain.rules import parameters as rule_parameters
from domain.rules import sweep as rule_sweep
from libs import telemetry
from services.gateway.auth import dev_tenant_allowed
from services.gateway.deps import BackendDep
from services.gateway.docs import content
from services.gateway.errors import RETRY_AFTER_SECONDS, ApiError
from services.gateway.presenters.common import utc_now
from services.gateway.presenters.system import Health, RuleSweepLimits, SweepLimits, TickerRule, Vocabulary

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
    summary="Prometheus metrics (scrape token)",
    response_class=Response,
    responses={200: content(CONTENT_TYPE_LATEST.split(";")[0], "Prometheus text exposition format")},
)
async def metrics(request: Request, backend: BackendDep) -> Response:
    """Prometheus text. Needs `Authorization: Bearer <HINDSIGHT_METRICS_TOKEN>`, except in
    standalone mode on loopback without HINDSIGHT_REQUIRE_AUTH when no token is set.
    Deployments scrape `HINDSIGHT_METRICS_PORT` instead, a port of its own."""
    settings = backend.settings
    token = settings.hindsight_metrics_token
    open_here = not token and dev_tenant_allowed(settings)
    if not open_here and not telemetry.scrape_authorized(request.headers.get("authorization"), token):
        raise ApiError(
            401,
            "unauthenticated",
            "/metrics needs Authorization: Bearer <HINDSIGHT_METRICS_TOKEN>" if token else
            "/metrics is not served on this port without HINDSIGHT_METRICS_TOKEN; scrape HINDSIGHT_METRICS_PORT",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    return Response(generate_latest(backend.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/vocabulary", summary="Intervals, calendars, dataset formats, ticker syntax, strategies and sweep limits")
async def vocabulary(backend: BackendDep) -> Vocabulary:
    """What the API accepts; `sweep.timeout_seconds` is this server's (operator's) range."""
    timeout_max = min(sweep.TIMEOUT_SECONDS_MAX, backend.settings.hindsight_max_timeout_seconds)
    return Vocabulary(
        intervals=list(market.INTERVALS),
        calendars=list(market.CALENDARS),
        dataset_formats=list(bar_formats.FORMATS),
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
            timeout_seconds=(sweep.TIMEOUT_SECONDS_MIN, timeout_max),
            max_tickers=universe.UNIVERSE_MAX_TICKERS,
            shard_bar_pairs=backend.settings.hindsight_shard_bar_pairs,
        ),
        rule_sweep=RuleSweepLimits(
            max_combinations=rule_parameters.MAX_SWEEP_COMBINATIONS,
            max_parameters=rule_parameters.MAX_PARAMETERS,
            min_trades=(rule_sweep.MIN_TRADES_MIN, rule_sweep.MIN_TRADES_MAX),
            min_trades_default=rule_sweep.MIN_TRADES_DEFAULT,
        ),
    )
