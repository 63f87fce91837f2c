"""The gateway app factory: REST and SSE over the results service's gRPC API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from libs.settings import Settings
from services.gateway import errors
from services.gateway.backend import Backend
from services.gateway.body import BodyLimitMiddleware
from services.gateway.docs import APP_DESCRIPTION
from services.gateway.metrics import LatencyMiddleware
from services.gateway.routes import datasets, jobs, pipelines, session, sweeps, system


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
    for module in (system, session, sweeps, pipelines, jobs, datasets):
        app.include_router(module.router)
    # Added innermost first: latency sees everything, the catch-all sees the body limit's 413s.
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(errors.CatchAllMiddleware)
    app.add_middleware(LatencyMiddleware, metrics=backend.metrics)
    return app
