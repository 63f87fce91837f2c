"""The gateway app factory: REST and SSE over the results service's gRPC API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from libs import telemetry
from libs.settings import Settings
from services.gateway import errors
from services.gateway.backend import Backend
from services.gateway.body import BodyLimitMiddleware
from services.gateway.browser_guard import BrowserGuard
from services.gateway.docs import APP_DESCRIPTION
from services.gateway.metrics import LatencyMiddleware
from services.gateway.openapi import install_openapi
from services.gateway.routes import (
    datasets,
    day_by_day,
    jobs,
    notifications,
    pipelines,
    session,
    strategies,
    sweeps,
    system,
    universes,
    walkforward,
)
from services.gateway.routes import runs as run_routes
from services.gateway.web import router as web


def create_app(settings: Settings) -> FastAPI:
    """A gateway for `settings`: opens its channel to results on startup, closes it on shutdown."""
    backend = Backend(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await backend.open()
        try:
            yield
        finally:
            await backend.close()

    app = FastAPI(
        title="Hindsight",
        version="1.0.0",
        description=APP_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.backend = backend
    errors.install(app)
    install_openapi(app)
    for module in (system, session, sweeps, walkforward, pipelines, jobs, datasets, notifications, universes):
        app.include_router(module.router)
    app.include_router(run_routes.router)  # seed 003: synchronous backtests and saved runs
    app.include_router(strategies.router)  # rule strategies (day-by-day backtests)
    app.include_router(day_by_day.router)  # seeds 002 and 004: day-by-day backtests
    app.include_router(web.router)  # the dashboard at /ui/ (and / for browsers)
    # Added innermost first: latency sees everything, the catch-all sees the body limit's 413s.
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(BrowserGuard, settings=settings, secret=backend.session_secret)
    app.add_middleware(errors.CatchAllMiddleware)
    app.add_middleware(LatencyMiddleware, metrics=backend.metrics)
    telemetry.instrument_app(app)  # a span per request when tracing is on
    return app
