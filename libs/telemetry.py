"""Telemetry of every service, set up in one function: `setup_telemetry(service)`.

- **Logs**: JSON lines on stderr with `time, level, service, logger, message`,
  the current `trace_id`/`span_id`, the fields bound to the work in hand
  (`job_id`, see `annotate`) and any `extra=` fields. Registered secrets
  (API keys, the session secret, passwords in URLs) are masked in every line.
- **Traces**: OpenTelemetry, driven by its own variables. Tracing is on when
  `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`), when
  `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set, or when
  `HINDSIGHT_TRACE_FILE` names a file (JSON lines, one per span; several
  processes may append to one file). Otherwise, or with `OTEL_SDK_DISABLED=true`,
  it is off: no provider, no exporter, no interceptor, and one log line says so.
  A misconfiguration (an unknown exporter) fails at start rather than leaving
  tracing silently off.
- **Propagation**: W3C `traceparent` (+ `tracestate`, `baggage`) through gRPC
  metadata (client and server interceptors, `grpc_client_interceptors` /
  `grpc_server_interceptors`, used by `libs.grpc_util`), broker message headers
  (`publishing` / `traced_handler`, used by `libs.bus`), incoming HTTP
  (`instrument_app` for the gateway) and outgoing webhooks (`inject_headers`).
- **Metrics**: Prometheus. Each service keeps a registry of its own (several
  services share one process in standalone mode and in tests); `serve_metrics`
  exposes registries plus the process collectors on a port of their own.

Services only add what means something in their domain: `annotate(job_id=...)`
on the work they pick up, and their own metrics.
"""

from __future__ import annotations

import atexit
import contextvars
import hmac
import inspect
import json
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from opentelemetry import propagate, trace

log = logging.getLogger(__name__)

# Record attributes that are not fields of the line (uvicorn adds `color_message`, the
# message again with terminal colour codes).
_STD_ATTRS = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "taskName", "color_message"}
# Fields bound to the current unit of work (a consumed message, an RPC about a job), shown in every log line.
_log_fields: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "hindsight_log_fields", default=MappingProxyType({})
)
# Secrets shorter than this are not masked (they would mask ordinary words).
_MIN_SECRET_LEN = 6
_REDACTED = "[redacted]"
# Messaging system named on broker spans.
_MESSAGING_SYSTEM = "rabbitmq"
# Headers that carry the trace context on messages and webhooks.
_TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


# ---------------------------------------------------------------------------- logs


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, service, logger, message, trace and work fields, `extra=` fields."""

    def __init__(self, service: str, secrets: Callable[[], Iterable[str]] | None = None) -> None:
        super().__init__()
        self.service = service
        self._secrets = secrets or (lambda: _state.secrets)

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            doc["trace_id"] = format(ctx.trace_id, "032x")
            doc["span_id"] = format(ctx.span_id, "016x")
        doc.update(_log_fields.get())
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                doc[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        line = json.dumps(doc)
        for secret in self._secrets():
            if secret in line:
                line = line.replace(secret, _REDACTED)
        return line


def setup_logging(service: str, level: str | None = None) -> None:
    """JSON lines on stderr, level from HINDSIGHT_LOG_LEVEL (default INFO)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("HINDSIGHT_LOG_LEVEL", "INFO")).upper())
    # aio-pika/aiormq and uvicorn access logs are noisy at INFO.
    for noisy in ("aiormq", "aio_pika", "uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def register_secrets(*values: str | None) -> None:
    """Values never to show in a log line (masked if some code ever logs them)."""
    with _state.lock:
        fresh = {v for v in values if v and len(v) >= _MIN_SECRET_LEN}
        # Longest first, so a secret containing another is masked whole.
        _state.secrets = tuple(sorted(set(_state.secrets) | fresh, key=len, reverse=True))


def annotate(**fields: str | float | bool) -> None:
    """Name the work in hand (e.g. `job_id=`): an attribute `hindsight.<name>` of the
    current span, and a field of every log line for the rest of the current task."""
    span = trace.get_current_span()
    if span.is_recording():
        for key, value in fields.items():
            span.set_attribute(f"hindsight.{key}", value)
    _log_fields.set({**_log_fields.get(), **fields})


# ---------------------------------------------------------------------------- tracing state


@dataclass
class _State:
    service: str = ""
    # The provider of this process when tracing is on (None: off).
    provider: Any = None
    tracer: Any = None
    secrets: tuple[str, ...] = ()
    configured: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


_state = _State()


def tracing_enabled() -> bool:
    return _state.provider is not None


def current_trace_id() -> str:
    """The current trace id as 32 hex digits ('' outside a span or with tracing off)."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


class FileSpanExporter:
    """Appends one JSON line per span to a file (O_APPEND, one write per batch, so
    several processes can share the file): trace_id, span_id, parent_span_id,
    name, kind, service, start/end (unix ns), status and attributes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    @staticmethod
    def span_doc(span: Any) -> dict[str, Any]:
        ctx = span.context
        parent = span.parent
        return {
            "trace_id": format(ctx.trace_id, "032x"),
            "span_id": format(ctx.span_id, "016x"),
            "parent_span_id": format(parent.span_id, "016x") if parent is not None else None,
            "remote_parent": bool(parent is not None and parent.is_remote),
            "name": span.name,
            "kind": span.kind.name.lower(),
            "service": span.resource.attributes.get("service.name", ""),
            "start": span.start_time,
            "end": span.end_time,
            "status": span.status.status_code.name.lower(),
            "attributes": {k: v if isinstance(v, (str, int, float, bool)) else list(v) for k, v in span.attributes.items()},
        }

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        data = "".join(json.dumps(self.span_doc(s)) + "\n" for s in spans).encode()
        with self._lock:
            if self._fd is None:
                return SpanExportResult.FAILURE
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def span_exporters(env: Mapping[str, str]) -> list[Any]:
    """The span exporters `env` asks for (empty: tracing off). Raises ValueError on a bad setting."""
    if _truthy(env.get("OTEL_SDK_DISABLED")):
        return []
    names_text = env.get("OTEL_TRACES_EXPORTER")
    if names_text is None or not names_text.strip():
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        names = ["otlp"] if endpoint else []
    else:
        names = [n.strip().lower() for n in names_text.split(",") if n.strip() and n.strip().lower() != "none"]
    exporters: list[Any] = []
    for name in names:
        if name == "otlp":
            protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc").lower()
            if protocol != "grpc":
                # Only the gRPC exporter is installed (requirements.txt): say so instead of exporting nothing.
                raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported here; use 'grpc' (port 4317)")
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())  # endpoint, headers, TLS, timeout from OTEL_EXPORTER_OTLP_*
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER={name!r} is not supported here (otlp, console or none)")
    path = env.get("HINDSIGHT_TRACE_FILE")
    if path:
        exporters.append(FileSpanExporter(path))
    return exporters


def build_tracer_provider(service: str, exporters: Iterable[Any], *, simple: bool = False) -> Any:
    """A TracerProvider for `service` (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win) that
    sends spans to `exporters` in batches (OTEL_BSP_*), or one by one with `simple` (tests)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    attributes = {"service.name": os.environ.get("OTEL_SERVICE_NAME") or service}
    if "service.namespace" not in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes["service.namespace"] = "hindsight"
    provider = TracerProvider(resource=Resource.create(attributes))  # sampler from OTEL_TRACES_SAMPLER
    for exporter in exporters:
        provider.add_span_processor(SimpleSpanProcessor(exporter) if simple else BatchSpanProcessor(exporter))
    return provider


def install_tracing(provider: Any, service: str = "") -> None:
    """Use `provider` for every span this module and the instrumentation make (None: tracing off)."""
    _state.provider = provider
    _state.tracer = provider.get_tracer("hindsight") if provider is not None else None
    if service:
        _state.service = service


def setup_telemetry(service: str, *, level: str | None = None, secrets: Iterable[str | None] = ()) -> bool:
    """JSON logs, and tracing as the OTEL_* variables say; returns whether tracing is on.

    Once per process: a second call only re-does the logging. Exporters flush
    when the process exits (and on `shutdown_telemetry`).
    """
    setup_logging(service, level)
    register_secrets(*secrets)
    with _state.lock:
        if _state.configured:
            return tracing_enabled()
        _state.configured = True
        exporters = span_exporters(os.environ)
        if not exporters:
            why = "OTEL_SDK_DISABLED" if _truthy(os.environ.get("OTEL_SDK_DISABLED")) else (
                "no OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT or HINDSIGHT_TRACE_FILE")
            log.info("tracing off (%s)", why)
            return False
        provider = build_tracer_provider(service, exporters)
        trace.set_tracer_provider(provider)
        install_tracing(provider, service)
    atexit.register(shutdown_telemetry)
    log.info(
        "tracing on",
        extra={"exporters": ",".join(type(e).__name__ for e in exporters),
               "otel_service_name": provider.resource.attributes.get("service.name", "")},
    )
    return True


def shutdown_telemetry() -> None:
    """Flush and close the exporters (idempotent)."""
    provider = _state.provider
    if provider is not None:
        try:
            provider.shutdown()
        except Exception:  # exiting anyway
            log.warning("flushing spans failed", exc_info=True)


@contextmanager
def span(name: str, kind: trace.SpanKind = trace.SpanKind.INTERNAL, **attributes: Any) -> Iterator[Any]:
    """A span of our own around a block (a no-op with tracing off)."""
    tracer = _state.tracer
    if tracer is None:
        yield trace.INVALID_SPAN
        return
    with tracer.start_as_current_span(name, kind=kind, attributes=attributes or None) as s:
        yield s


@contextmanager
def http_client_span(method: str, url: str, name: str = "", **attributes: Any) -> Iterator[Any]:
    """A CLIENT span (`name`, default the method) for an outgoing HTTP request; its context is what
    `inject_headers` puts in the request made inside it. Only scheme, host and port of
    the URL are recorded (a path or query may carry a receiver's token)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        target = {"url.scheme": parts.scheme, "server.address": parts.hostname or "",
                  "server.port": parts.port or (443 if parts.scheme == "https" else 80)}
    except ValueError:
        target = {}
    with span(name or method, trace.SpanKind.CLIENT, **{"http.request.method": method, **target, **attributes}) as s:
        yield s


def end_http_span(s: Any, status_code: int | None, error: str = "") -> None:
    """Record an HTTP answer (or its failure) on a span from `http_client_span`."""
    if not s.is_recording():
        return
    if status_code:
        s.set_attribute("http.response.status_code", int(status_code))
    if error or not status_code or status_code >= 400:
        from opentelemetry.trace import Status, StatusCode

        s.set_status(Status(StatusCode.ERROR, error or f"HTTP {status_code}"))


# ---------------------------------------------------------------------------- propagation


def _carrier(headers: Mapping[str, Any]) -> dict[str, str]:
    """The trace headers of a message (AMQP may hand them back as bytes)."""
    out = {}
    for key in _TRACE_HEADERS:
        value = headers.get(key)
        if isinstance(value, (bytes, bytearray)):
            value = value.decode("latin-1")
        if isinstance(value, str) and value:
            out[key] = value
    return out


def inject_headers(headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """`headers` plus the current trace context (`traceparent`...); unchanged with tracing off."""
    headers = {} if headers is None else headers
    if _state.tracer is not None:
        propagate.inject(headers)
    return headers


@contextmanager
def publishing(queue: str, headers: Mapping[str, Any] | None) -> Iterator[dict[str, Any]]:
    """The headers to publish a message with, inside a PRODUCER span `publish <queue>`.

    When `headers` already carry a trace context (the outbox keeps the one of
    the transaction that wrote the message) the span continues that trace, so
    a message relayed later still belongs to the request that caused it;
    otherwise it is a child of the current span.
    """
    out = dict(headers or {})
    tracer = _state.tracer
    if tracer is None:
        yield out
        return
    carried = _carrier(out)
    parent = propagate.extract(carried) if carried else None
    with tracer.start_as_current_span(
        f"publish {queue}",
        context=parent,
        kind=trace.SpanKind.PRODUCER,
        attributes={
            "messaging.system": _MESSAGING_SYSTEM,
            "messaging.destination.name": queue,
            "messaging.operation.type": "send",
        },
    ):
        for key in _TRACE_HEADERS:
            out.pop(key, None)
        propagate.inject(out)
        yield out


def traced_handler(queue: str, handler: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    """`handler` of a consumer, run in a CONSUMER span `process <queue>` that continues the
    trace in the delivery's headers, with log fields of its own (`annotate` inside it)."""

    async def run(delivery: Any) -> None:
        token = _log_fields.set({})
        try:
            tracer = _state.tracer
            if tracer is None:
                await handler(delivery)
                return
            parent = propagate.extract(_carrier(delivery.headers or {}))
            with tracer.start_as_current_span(
                f"process {queue}",
                context=parent,
                kind=trace.SpanKind.CONSUMER,
                attributes={
                    "messaging.system": _MESSAGING_SYSTEM,
                    "messaging.destination.name": queue,
                    "messaging.operation.type": "process",
                    "messaging.rabbitmq.delivery_count": int(getattr(delivery, "delivery_count", 1)),
                },
            ):
                await handler(delivery)
        finally:
            _log_fields.reset(token)

    return run


# ---------------------------------------------------------------------------- gRPC


def _job_id_of(message: Any) -> str:
    """`job_id` of a request or response, or of one of its message fields (`event.job_id`, `job.job_id`)."""
    fields = getattr(getattr(message, "DESCRIPTOR", None), "fields_by_name", None)
    if not fields:
        return ""
    if "job_id" in fields:
        return str(message.job_id)
    for name, fd in fields.items():
        if fd.message_type is not None and not _is_repeated(fd) and message.HasField(name):
            inner = getattr(message, name)
            inner_fields = inner.DESCRIPTOR.fields_by_name
            if "job_id" in inner_fields and inner.job_id:
                return str(inner.job_id)
    return ""


def _is_repeated(fd: Any) -> bool:
    repeated = getattr(fd, "is_repeated", None)
    if repeated is not None:
        return bool(repeated)
    return bool(fd.label == fd.LABEL_REPEATED)


def _job_context_interceptor() -> Any:
    import grpc

    class JobContextInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
        """Binds the request's `job_id` to the call's log lines and span (fresh log fields per call)."""

        async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
            handler = await continuation(handler_call_details)
            if handler is None or handler.request_streaming:
                return handler
            if handler.unary_unary is not None:
                behavior = handler.unary_unary

                async def unary(request: Any, context: Any) -> Any:
                    token = _log_fields.set({})
                    try:
                        job_id = _job_id_of(request)
                        if job_id:
                            annotate(job_id=job_id)
                        response = await behavior(request, context)
                        if not job_id and response is not None:
                            found = _job_id_of(response)
                            span_ = trace.get_current_span()
                            if found and span_.is_recording():
                                span_.set_attribute("hindsight.job_id", found)
                        return response
                    finally:
                        _log_fields.reset(token)

                return handler._replace(unary_unary=unary)
            behavior = handler.unary_stream
            if behavior is None or not inspect.isasyncgenfunction(behavior):
                return handler

            async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
                token = _log_fields.set({})
                try:
                    job_id = _job_id_of(request)
                    if job_id:
                        annotate(job_id=job_id)
                    async for item in behavior(request, context):
                        yield item
                finally:
                    try:
                        _log_fields.reset(token)
                    except ValueError:  # closed from another context (cancelled stream)
                        pass

            return handler._replace(unary_stream=stream)

    return JobContextInterceptor()


def _not_health_or_reflection() -> Any:
    from opentelemetry.instrumentation.grpc import filters

    return filters.negate(filters.any_of(filters.health_check(), filters.service_prefix("grpc.reflection")))


def grpc_server_interceptors() -> list[Any]:
    """Interceptors of every gRPC server: a SERVER span per call (health and reflection
    excepted) continuing the caller's trace, and the call's job id in its logs."""
    interceptors: list[Any] = []
    if _state.provider is not None:
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        interceptors.append(
            aio_server_interceptor(  # type: ignore[no-untyped-call]
                tracer_provider=_state.provider, filter_=_not_health_or_reflection()
            )
        )
    interceptors.append(_job_context_interceptor())
    return interceptors


def grpc_client_interceptors() -> list[Any]:
    """Interceptors of every client channel: a CLIENT span per call, the trace context in
    the call's metadata (none with tracing off)."""
    if _state.provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(
        aio_client_interceptors(  # type: ignore[no-untyped-call]
            tracer_provider=_state.provider, filter_=_not_health_or_reflection()
        )
    )


# ---------------------------------------------------------------------------- HTTP


def instrument_app(app: Any) -> None:
    """A SERVER span per HTTP request of a FastAPI app, continuing an incoming `traceparent`
    (health, liveness and metrics excepted). Nothing with tracing off."""
    if _state.provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.metrics import NoOpMeterProvider

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_state.provider,
        meter_provider=NoOpMeterProvider(),  # HTTP metrics are Prometheus' (the gateway's latency histogram)
        excluded_urls="/health$,/livez$,/metrics$",
        exclude_spans=["receive", "send"],  # one span per request, not one per SSE event
    )


# ---------------------------------------------------------------------------- metrics


class RegistryCollector:
    """Yields the metrics of a registry (to expose one registry through another)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        yield from self.registry.collect()


def add_process_collectors(registry: Any) -> None:
    """CPU, memory, file descriptors, GC and Python version of this process into `registry` (once per process)."""
    from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR

    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)


@dataclass
class MetricsServer:
    """A running /metrics endpoint."""

    port: int
    _server: Any
    _thread: Any

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def scrape_authorized(authorization: str | None, token: str) -> bool:
    """Whether an `Authorization` header value is `Bearer <token>` (scheme case-insensitive)."""
    scheme, _, given = (authorization or "").strip().partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


SCRAPE_REFUSED = b"/metrics needs Authorization: Bearer <HINDSIGHT_METRICS_TOKEN>\n"


def _guarded(app: Callable[..., Any], token: str) -> Callable[..., Any]:
    """A WSGI app that answers 401 unless the request carries the scrape token."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if scrape_authorized(environ.get("HTTP_AUTHORIZATION"), token):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                            ("WWW-Authenticate", 'Bearer realm="metrics"')])
        return [SCRAPE_REFUSED]

    return guarded


def serve_metrics(
    port: int, registries: Iterable[Any], host: str = "127.0.0.1", token: str = "", process: bool = True
) -> MetricsServer | None:
    """Serve `registries` (and, with `process`, the process collectors) as Prometheus text on
    `host:port/metrics` (port 0: not served); with a `token`, only to `Authorization: Bearer
    <token>`. A port that cannot be bound raises: a deployment that asked for metrics gets
    them or does not start."""
    if not port:
        return None
    import socket
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client import CollectorRegistry, make_wsgi_app
    from prometheus_client.exposition import ThreadingWSGIServer

    combined = CollectorRegistry(auto_describe=True)
    for registry in registries:
        combined.register(RegistryCollector(registry))  # ValueError on a metric name served twice
    if process:
        add_process_collectors(combined)

    class Server(ThreadingWSGIServer):
        address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    app = make_wsgi_app(combined)
    server = make_server(host, port, _guarded(app, token) if token else app, Server, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    bound = server.server_address[1]
    log.info("metrics on %s:%d/metrics", host, bound, extra={"scrape_token": bool(token)})
    return MetricsServer(bound, server, thread)
