"""`python -m services.gateway`: the gateway alone (distributed mode, or a
standalone stack whose other services run elsewhere).

Settings come from the environment. uvicorn drains on SIGTERM: it stops
accepting connections, lets in-flight requests finish (SSE streams end so
clients reconnect elsewhere with Last-Event-ID), then the lifespan closes the
channel to results.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType

import uvicorn

from libs import telemetry
from libs.grpc_util import require_internal_token
from libs.settings import Settings
from services.gateway.app import create_app

log = logging.getLogger("services.gateway")
GRACEFUL_SHUTDOWN_SECONDS = 10


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    telemetry.setup_telemetry("gateway")
    settings = Settings()
    telemetry.register_secrets(*settings.secret_values())
    if not settings.standalone:
        # The gateway keeps no database or broker (so no require_distributed()); it
        # always requires credentials there (see auth.dev_tenant_allowed), and session
        # cookies must verify on every replica, so the secret cannot be per-process.
        if not settings.hindsight_session_secret:
            raise SystemExit("distributed mode needs HINDSIGHT_SESSION_SECRET in the environment")
        require_internal_token(settings.hindsight_internal_token)
    app = create_app(settings)
    registry = app.state.backend.metrics.registry
    telemetry.add_process_collectors(registry)
    # The scrape port (Kubernetes: 9464, like the gRPC services), apart from the public HTTP port.
    metrics_server = telemetry.serve_metrics(
        settings.hindsight_metrics_port, [registry], host=settings.hindsight_metrics_host,
        token=settings.hindsight_metrics_token, process=False,
    )
    config = uvicorn.Config(
        app,
        host=settings.hindsight_host,
        port=settings.hindsight_port,
        lifespan="on",
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = uvicorn.Server(config)
    log.info(
        "gateway starting",
        extra={"url": f"http://{settings.hindsight_host}:{settings.hindsight_port}", "results": settings.results_addr},
    )
    # uvicorn handles SIGTERM/SIGINT while serving (drain, lifespan shutdown) and then
    # re-raises the signal to the handler that was in place before: this one, so a
    # drained shutdown exits 0 rather than dying of the signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    try:
        asyncio.run(server.serve())
    finally:
        if metrics_server is not None:
            metrics_server.close()


if __name__ == "__main__":
    main()
