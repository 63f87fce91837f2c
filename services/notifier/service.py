"""Notifier wiring: joins the bus and reports healthy.

Webhook and email delivery is issue 5; until then job-ended events stay
durable in the `hindsight.job-events` queue (nothing consumes them, so none is
lost before the notifier can deliver them).
"""

from __future__ import annotations

from dataclasses import dataclass

from libs import grpc_util
from libs.bus import Bus, JOB_EVENTS_QUEUE
from libs.settings import Settings


@dataclass
class NotifierHandle:
    """A running notifier: its gRPC server (health, reflection)."""

    grpc: grpc_util.GrpcServer

    @property
    def port(self) -> int:
        return self.grpc.port

    async def stop(self, grace: float = 5.0) -> None:
        await self.grpc.stop(grace)


async def start(settings: Settings, bus: Bus, *, port: int | None = None) -> NotifierHandle:
    server = await grpc_util.start_server([], host="127.0.0.1" if settings.standalone else "0.0.0.0",
                                          port=settings.notifier_port if port is None else port)
    # Joining the bus: make sure the events queue exists so job-ended events are kept.
    await bus.declare(JOB_EVENTS_QUEUE)
    await server.set_serving(bus.is_connected())
    return NotifierHandle(server)
