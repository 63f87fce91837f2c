"""gRPC plumbing shared by the services: servers with health and reflection,
graceful drain, client channels, and the token every internal call carries.

Internal authentication: every client channel sends `authorization: Bearer <token>`
(HINDSIGHT_INTERNAL_TOKEN) with each call and every server refuses a call without
it (UNAUTHENTICATED), health checks excepted (probes). Services that share one
process (standalone, tests) and have no token configured use one random token of
the process, which nothing outside it knows.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

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

# Metadata key of the internal token (gRPC metadata keys are lower case).
TOKEN_METADATA_KEY = "authorization"
# Methods any caller may use: health checks (Kubernetes probes, the Docker HEALTHCHECK, `make up`).
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)
# The status message of a refused call: the gateway tells this apart from a tenant's wrong API key.
INTERNAL_AUTH_FAILED = "internal call refused: missing or wrong internal token (HINDSIGHT_INTERNAL_TOKEN)"
# Tokens shorter than this are refused at start of the distributed mode (HINDSIGHT_INTERNAL_TOKEN).
MIN_TOKEN_LENGTH = 16
# The token of services sharing this process when none is configured.
_PROCESS_TOKEN = secrets.token_urlsafe(32)
# At most one log line per this many seconds about refused calls (a scanner must not flood the logs).
_REFUSAL_LOG_INTERVAL = 10.0


def internal_token(configured: str = "") -> str:
    """The token internal calls carry: HINDSIGHT_INTERNAL_TOKEN when set, else this process's own."""
    return configured or _PROCESS_TOKEN


def require_internal_token(configured: str) -> None:
    """Fail at start of a distributed process without a usable HINDSIGHT_INTERNAL_TOKEN (every
    process of a deployment must share it, so a per-process random one would not do)."""
    if len(configured.strip()) < MIN_TOKEN_LENGTH:
        raise SystemExit(
            f"distributed mode needs HINDSIGHT_INTERNAL_TOKEN (at least {MIN_TOKEN_LENGTH} characters, "
            "the same in every service) in the environment"
        )


def _bearer(token: str) -> str:
    return f"Bearer {token}"


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses (UNAUTHENTICATED) every call that does not carry the internal token, health checks excepted."""

    def __init__(self, token: str) -> None:
        self._expected = _bearer(token).encode()
        self._last_log = 0.0
        self._refused = 0

    def _authorized(self, metadata: Any) -> bool:
        for key, value in metadata or ():
            if key == TOKEN_METADATA_KEY:
                given = value.encode() if isinstance(value, str) else bytes(value)
                return hmac.compare_digest(given, self._expected)
        return False

    def _note_refusal(self, method: str) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._last_log >= _REFUSAL_LOG_INTERVAL:
            log.warning("refused internal gRPC calls without a valid token",
                        extra={"method": method, "refused": self._refused})
            self._last_log, self._refused = now, 0

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        method = handler_call_details.method or ""
        if method.startswith(OPEN_METHOD_PREFIXES) or self._authorized(handler_call_details.invocation_metadata):
            return await continuation(handler_call_details)
        self._note_refusal(method)
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: UNIMPLEMENTED, as without the interceptor
            return None
        return _refusing(handler)


def _refusing(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that answers UNAUTHENTICATED."""

    async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, INTERNAL_AUTH_FAILED)

    kw = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse, **kw)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, **kw)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse, **kw)
    return grpc.unary_unary_rpc_method_handler(refuse, **kw)


def _with_token(details: grpc.aio.ClientCallDetails, header: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*[(k, v) for k, v in (details.metadata or ()) if k != TOKEN_METADATA_KEY])
    metadata.add(TOKEN_METADATA_KEY, header)
    return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials,
                                      details.wait_for_ready)


class _UnaryUnaryToken(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, header: str) -> None:
        self.header = header

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_token(client_call_details, self.header), request)


class _UnaryStreamToken(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, header: str) -> None:
        self.header = header

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_token(client_call_details, self.header), request)


class _StreamUnaryToken(grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, header: str) -> None:
        self.header = header

    async def intercept_stream_unary(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return await continuation(_with_token(client_call_details, self.header), request_iterator)


class _StreamStreamToken(grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, header: str) -> None:
        self.header = header

    async def intercept_stream_stream(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return await continuation(_with_token(client_call_details, self.header), request_iterator)


def token_interceptors(token: str = "") -> list[Any]:
    """Client interceptors that add the internal token to every call (one per call shape:
    grpc.aio files each interceptor under one shape only)."""
    header = _bearer(internal_token(token))
    return [_UnaryUnaryToken(header), _UnaryStreamToken(header), _StreamUnaryToken(header), _StreamStreamToken(header)]


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


class PortUnavailable(OSError):
    """A server's port is held by another process (or cannot be bound): the message names
    the setting that moves it."""


# No SO_REUSEPORT: a second server on a port another process holds must fail, not share it.
SERVER_OPTIONS = [*CHANNEL_OPTIONS, ("grpc.so_reuseport", 0)]


async def start_server(
    register: Iterable[Callable[[grpc.aio.Server], str]],
    host: str = "127.0.0.1",
    port: int = 0,
    interceptors: Iterable[grpc.aio.ServerInterceptor] = (),
    token: str = "",
    port_setting: str = "",
) -> GrpcServer:
    """Start a grpc.aio server; each `register(server)` adds a servicer and returns its full service name.

    Port 0 picks a free port (tests). A port another process holds raises PortUnavailable
    naming `port_setting` (SO_REUSEPORT is off, so it is never silently shared). Health starts NOT_SERVING until the
    caller calls `set_serving(True)` once its dependencies are ready. Every call
    but health checks must carry the internal `token` (empty: this process's
    own, see `internal_token`); that check comes first, then telemetry's
    interceptors (a span per call, the call's job id in its logs).
    """
    server = grpc.aio.server(
        options=SERVER_OPTIONS,
        interceptors=[TokenAuthInterceptor(internal_token(token)), *telemetry.grpc_server_interceptors(),
                      *interceptors],
    )
    names = tuple(r(server) for r in register)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpcio raises this when the address cannot be bound
        bound = 0
    if bound == 0:
        fix = f"; set {port_setting} to a free port" if port_setting else ""
        raise PortUnavailable(f"gRPC port {host}:{port} is in use by another process or cannot be bound{fix}")
    await server.start()
    gs = GrpcServer(server, bound, health_servicer, names)
    await gs.set_serving(False)
    return gs


def channel(addr: str, token: str = "", max_reconnect_backoff: float | None = None) -> grpc.aio.Channel:
    """A client channel with our message limits, the internal `token` on every call (empty:
    this process's own) and trace propagation when tracing is on.

    `max_reconnect_backoff` (seconds) caps the wait between the channel's attempts to reach
    a server that went away. gRPC's own cap is 120 s, and its backoff grows 1.6-fold from 1 s,
    so a client that must notice a restarted server soon (the gateway's SSE streams) sets it."""
    options = list(CHANNEL_OPTIONS)
    if max_reconnect_backoff is not None:
        options.append(("grpc.max_reconnect_backoff_ms", max(1, int(max_reconnect_backoff * 1000))))
    return grpc.aio.insecure_channel(
        addr, options=options, interceptors=[*token_interceptors(token), *telemetry.grpc_client_interceptors()]
    )


class _BlockingToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor, grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):  # type: ignore[misc]
    """The internal token on every call of a blocking channel."""

    def __init__(self, header: str) -> None:
        self.header = header

    def _details(self, details: Any) -> Any:
        metadata = [(k, v) for k, v in (details.metadata or ()) if k != TOKEN_METADATA_KEY]
        metadata.append((TOKEN_METADATA_KEY, self.header))
        return _BlockingCallDetails(details.method, details.timeout, metadata, details.credentials,
                                    details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(client_call_details), request_iterator)


@dataclass(frozen=True)
class _BlockingCallDetails(grpc.ClientCallDetails):  # type: ignore[misc]
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


def blocking_channel(addr: str, token: str = "") -> grpc.Channel:
    """A synchronous client channel carrying the internal `token` (empty: this process's own): admin tools, tests."""
    return grpc.intercept_channel(grpc.insecure_channel(addr, options=CHANNEL_OPTIONS),
                                  _BlockingToken(_bearer(internal_token(token))))


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set `stop` so the wiring can drain gracefully."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass


def service_name(add_fn_module: Any, service: str) -> str:
    """Full name of a service from its generated _pb2 module, e.g. hindsight.results.v1.ResultsService."""
    return str(add_fn_module.DESCRIPTOR.services_by_name[service].full_name)
