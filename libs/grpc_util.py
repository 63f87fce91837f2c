"""gRPC plumbing shared by the services: servers with health and reflection,
graceful drain, client channels."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from libs import telemetry

log = logging.getLogger(__name__)

# Large enough for a chunk of bars or a sweep's results.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
]


@dataclass
class GrpcServer:
    """A running gRPC server, its bound port and its health servicer."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: tuple[str, ...]

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING, then let in-flight calls finish within `grace`."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_server(
    register: Iterable[Callable[[grpc.aio.Server], str]],
    host: str = "127.0.0.1",
    port: int = 0,
    interceptors: Iterable[grpc.aio.ServerInterceptor] = (),
) -> GrpcServer:
    """Start a grpc.aio server; each `register(server)` adds a servicer and returns its full service name.

    Port 0 picks a free port (tests). Health starts NOT_SERVING until the
    caller calls `set_serving(True)` once its dependencies are ready. Telemetry's
    interceptors come first (a span per call, the call's job id in its logs).
    """
    server = grpc.aio.server(
        options=CHANNEL_OPTIONS, interceptors=[*telemetry.grpc_server_interceptors(), *interceptors]
    )
    names = tuple(r(server) for r in register)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC server to {host}:{port}")
    await server.start()
    gs = GrpcServer(server, bound, health_servicer, names)
    await gs.set_serving(False)
    return gs


def channel(addr: str) -> grpc.aio.Channel:
    """An insecure client channel with our message limits (and trace propagation when tracing is on)."""
    return grpc.aio.insecure_channel(addr, options=CHANNEL_OPTIONS, interceptors=telemetry.grpc_client_interceptors())


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set `stop` so the wiring can drain gracefully."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass


def service_name(add_fn_module, service: str) -> str:
    """Full name of a service from its generated _pb2 module, e.g. hindsight.results.v1.ResultsService."""
    return add_fn_module.DESCRIPTOR.services_by_name[service].full_name
