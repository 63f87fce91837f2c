"""Run one service as its own process (the distributed mode): logging, bus,
start, wait for SIGTERM/SIGINT, drain."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from libs.bus import AmqpBus
from libs.grpc_util import install_signal_handlers
from libs.settings import Settings
from libs.telemetry import setup_logging

log = logging.getLogger(__name__)


def run_service(name: str, start: Callable[..., Awaitable], needs_database: bool = False) -> None:
    """`start(settings, bus)` returns a handle with `.port` and `async stop(grace)`."""
    setup_logging(name)
    settings = Settings(hindsight_mode="distributed")
    if not settings.amqp_url or (needs_database and not settings.database_url):
        settings.require_distributed()

    async def main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        bus = AmqpBus(settings.amqp_url, name, settings.hindsight_job_max_deliveries)
        await bus.start()
        handle = await start(settings, bus)
        log.info("%s serving gRPC on port %d", name, handle.port)
        await stop.wait()
        log.info("%s draining", name)
        await handle.stop(grace=10.0)
        await bus.close()

    asyncio.run(main())
