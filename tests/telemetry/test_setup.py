"""libs.telemetry on its own: which variables turn tracing on, that it is off cleanly
otherwise, the JSON log line, masking of secrets, and trace propagation through
the in-process bus (the outbox relay's case included)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from libs import telemetry
from libs.bus import InProcessBus
from tests.stacks import ROOT


def _env(**over: str) -> dict[str, str]:
    return {**over}


# ---- which variables turn tracing on --------------------------------------------------


def test_nothing_set_means_no_exporter():
    assert telemetry.span_exporters(_env()) == []
    assert telemetry.span_exporters(_env(OTEL_TRACES_EXPORTER="none")) == []


def test_an_otlp_endpoint_or_exporter_turns_it_on():
    (exp,) = telemetry.span_exporters(_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317"))
    assert type(exp).__name__ == "OTLPSpanExporter"
    (exp,) = telemetry.span_exporters(_env(OTEL_TRACES_EXPORTER="otlp"))
    assert type(exp).__name__ == "OTLPSpanExporter"
    exp.shutdown()


def test_sdk_disabled_wins():
    assert telemetry.span_exporters(_env(OTEL_SDK_DISABLED="true", OTEL_TRACES_EXPORTER="otlp")) == []


def test_trace_file(tmp_path):
    (exp,) = telemetry.span_exporters(_env(HINDSIGHT_TRACE_FILE=str(tmp_path / "t.jsonl")))
    assert isinstance(exp, telemetry.FileSpanExporter)
    exp.shutdown()


@pytest.mark.parametrize(
    "env",
    [{"OTEL_TRACES_EXPORTER": "zipkin"}, {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}],
)
def test_a_setting_we_cannot_honour_fails_loudly(env):
    with pytest.raises(ValueError):
        telemetry.span_exporters(env)


_PROBE = """
import asyncio, logging
from libs import telemetry, grpc_util
on = telemetry.setup_telemetry("probe")
print("ON" if on else "OFF", len(telemetry.grpc_client_interceptors()), flush=True)
"""


def _probe(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "HINDSIGHT_TRACE_FILE"}
    return subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env={**clean, **env}, check=False,
                          capture_output=True, text=True, timeout=60)


def test_off_cleanly_when_unset():
    p = _probe()
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["OFF", "0"]  # no provider, no interceptor
    lines = [json.loads(line) for line in p.stderr.splitlines()]
    assert [x["message"] for x in lines] == [
        "tracing off (no OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT or HINDSIGHT_TRACE_FILE)"]


def test_a_bad_exporter_stops_the_process():
    p = _probe(OTEL_TRACES_EXPORTER="jaeger")
    assert p.returncode != 0
    assert "OTEL_TRACES_EXPORTER='jaeger' is not supported" in p.stderr


def test_an_unreachable_collector_does_not_break_the_process():
    """Tracing on towards a closed port: the process runs and exits; export errors are logged, not raised."""
    p = _probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_EXPORTER_OTLP_TIMEOUT="1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["ON", "4"]


# ---- tracing in this process -----------------------------------------------------------


@pytest.fixture
def spans():
    """Tracing on in this process, spans kept in memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    provider = telemetry.build_tracer_provider("unit", [exporter], simple=True)
    telemetry.install_tracing(provider)
    yield exporter
    telemetry.install_tracing(None)
    provider.shutdown()


def _record(service: str = "unit") -> logging.LogRecord:
    return logging.LogRecord("t", logging.INFO, __file__, 1, "hello %s", ("world",), None)


def test_log_line_has_trace_and_job_fields(spans):
    fmt = telemetry.JsonFormatter("results", secrets=lambda: ())
    with telemetry.span("work"):
        telemetry.annotate(job_id="sweep_1")
        doc = json.loads(fmt.format(_record()))
        ctx = trace.get_current_span().get_span_context()
    assert doc["service"] == "results" and doc["level"] == "info" and doc["message"] == "hello world"
    assert doc["trace_id"] == format(ctx.trace_id, "032x") and doc["span_id"] == format(ctx.span_id, "016x")
    assert doc["job_id"] == "sweep_1"
    (finished,) = spans.get_finished_spans()
    assert finished.attributes["hindsight.job_id"] == "sweep_1"


def test_log_line_outside_a_span_has_no_trace_fields():
    doc = json.loads(telemetry.JsonFormatter("x", secrets=lambda: ()).format(_record()))
    assert "trace_id" not in doc and "span_id" not in doc


def test_terminal_colour_copies_stay_out_of_the_json_line():
    """uvicorn passes `color_message` (the message with ANSI colour codes) as an extra: not a field."""
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Started server process [%d]", (7,), None)
    record.color_message = "Started server process [\x1b[36m%d\x1b[0m]"
    line = telemetry.JsonFormatter("gateway", secrets=lambda: ()).format(record)
    doc = json.loads(line)
    assert doc["message"] == "Started server process [7]"
    assert "color_message" not in doc and "\\u001b" not in line


def test_secrets_are_masked_even_in_tracebacks():
    secret = "tenant-key-" + "z" * 20
    fmt = telemetry.JsonFormatter("x", secrets=lambda: (secret,))
    try:
        raise RuntimeError(f"bad key {secret}")
    except RuntimeError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "key=%s", (secret,), sys.exc_info())
    record.api_key = secret
    line = fmt.format(record)
    assert secret not in line and "[redacted]" in line


async def test_bus_carries_the_trace_from_publish_to_handler(spans):
    bus = InProcessBus()
    got: list[tuple[dict, object]] = []
    done = asyncio.Event()

    async def handler(delivery):
        got.append((dict(delivery.headers), trace.get_current_span().get_span_context()))
        done.set()

    await bus.consume("q", handler)
    with telemetry.span("request") as root:
        await bus.publish("q", b"x", {"x-other": 1})
    await asyncio.wait_for(done.wait(), 5)
    await bus.close()
    headers, consumer_ctx = got[0]
    assert headers["x-other"] == 1 and headers["traceparent"].split("-")[1] == format(root.get_span_context().trace_id, "032x")
    by_name = {s.name: s for s in spans.get_finished_spans()}
    publish, process = by_name["publish q"], by_name["process q"]
    assert publish.parent.span_id == root.get_span_context().span_id
    assert process.parent.span_id == publish.context.span_id
    assert process.context.span_id == consumer_ctx.span_id
    assert publish.kind == trace.SpanKind.PRODUCER and process.kind == trace.SpanKind.CONSUMER


async def test_a_relayed_message_continues_the_trace_stored_with_it(spans):
    """The outbox relay publishes later, outside any request: the context kept in the
    row's headers, not the relay's, is the parent of the publish."""
    with telemetry.span("submit") as submit:
        stored = telemetry.inject_headers({})
    bus = InProcessBus()
    seen = asyncio.Event()

    async def handler(delivery):
        seen.set()

    await bus.consume("jobs", handler)
    with telemetry.span("unrelated background work"):
        await bus.publish("jobs", b"x", stored)
    await asyncio.wait_for(seen.wait(), 5)
    await bus.close()
    by_name = {s.name: s for s in spans.get_finished_spans()}
    assert by_name["publish jobs"].parent.span_id == submit.get_span_context().span_id
    assert by_name["publish jobs"].context.trace_id == submit.get_span_context().trace_id


async def test_tracing_off_publishes_the_headers_unchanged():
    bus = InProcessBus()
    got = []
    done = asyncio.Event()

    async def handler(delivery):
        got.append(delivery.headers)
        done.set()

    await bus.consume("q", handler)
    await bus.publish("q", b"x", {"a": 1})
    await asyncio.wait_for(done.wait(), 5)
    await bus.close()
    assert got == [{"a": 1}]


def test_file_exporter_writes_one_json_line_per_span(tmp_path):
    path = tmp_path / "spans.jsonl"
    provider = telemetry.build_tracer_provider("filesvc", [telemetry.FileSpanExporter(str(path))], simple=True)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("parent") as parent, tracer.start_as_current_span("child", kind=trace.SpanKind.CLIENT):
        pass
    provider.shutdown()
    child, parent_doc = [json.loads(line) for line in path.read_text().splitlines()]
    assert child["name"] == "child" and child["kind"] == "client" and child["service"] == "filesvc"
    assert child["parent_span_id"] == parent_doc["span_id"] == format(parent.get_span_context().span_id, "016x")
    assert parent_doc["parent_span_id"] is None and child["trace_id"] == parent_doc["trace_id"]
