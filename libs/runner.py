"""Run one service as its own process (the distributed mode): telemetry, bus,
start, /metrics, wait for SIGTERM/SIGINT, drain. The process refuses to start
without HINDSIGHT_INTERNAL_TOKEN (the token of its gRPC calls and server)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from libs import telemetry
from libs.bus import AmqpBus
from libs.grpc_util import PortUnavailable, install_signal_handlers, require_internal_token
from libs.settings import Settings

log = logging.getLogger(__name__)


def run_service(name: str, start: Callable[..., Awaitable[Any]], needs_database: bool = False) -> None:
    """`start(settings, bus)` returns a handle with `.port`, `.metrics.registry` and `async stop(grace)`."""
    telemetry.setup_telemetry(name)
    settings = Settings(hindsight_mode="distributed")
    telemetry.register_secrets(*settings.secret_values())
    if not settings.amqp_url or (needs_database and not settings.database_url):
        settings.require_distributed()
    require_internal_token(settings.hindsight_internal_token)

    async def main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        bus = AmqpBus(settings.amqp_url, name, settings.hindsight_job_max_deliveries)
        await bus.start()
        try:
            handle = await start(settings, bus)
        except BaseException:
            await bus.close()  # a failed start leaves no connection for the closing loop to trip on
            raise
        metrics = telemetry.serve_metrics(settings.hindsight_metrics_port, [handle.metrics.registry],
                                          host=settings.hindsight_metrics_host, token=settings.hindsight_metrics_token)
        log.info("%s serving gRPC on port %d", name, handle.port)
        await stop.wait()
        log.info("%s draining", name)
        await handle.stop(grace=10.0)
        await bus.close()
        if metrics is not None:
            metrics.close()

    try:
        asyncio.run(main())
    except PortUnavailable as exc:
        print(f"{name}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    finally:
        telemetry.shutdown_telemetry()
