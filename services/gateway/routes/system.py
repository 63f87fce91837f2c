"""Health, liveness and Prometheus metrics (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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
