"""Health and liveness (no authentication), Prometheus metrics (a scrape token)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from libs import telemetry
from services.gateway.auth import dev_tenant_allowed
from services.gateway.deps import BackendDep
from services.gateway.errors import RETRY_AFTER_SECONDS, ApiError
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


@router.get("/metrics", summary="Prometheus metrics (scrape token)", response_class=Response)
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
