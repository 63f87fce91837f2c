"""One sweep through the distributed mode — four processes, real Postgres, RabbitMQ,
gRPC and HTTP — is one trace: every process writes its spans to a shared file
(HINDSIGHT_TRACE_FILE), and the test checks the parent→child edges from the
gateway's request to the webhook POST that a real receiver on loopback gets with
a `traceparent` of the same trace. The same run checks the job's trace id in its
API response and in every log line of the job, each service's /metrics over HTTP,
and that no API key or secret reaches a log line or a span."""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.stacks import DEV_KEY, free_port, start_distributed

# A tenant key given to the stack through HINDSIGHT_BOOTSTRAP_KEYS, beside the dev key.
OPS_KEY = "ops-key-" + secrets.token_hex(12)
# Every /metrics of the stack wants it (the gateway's public one does in this mode anyway).
SCRAPE = {"Authorization": "Bearer scrape-" + secrets.token_hex(12)}
RESULTS_RPC = "/hindsight.results.v1.ResultsService/"
NOTIFY_RPC = "/hindsight.notify.v1.NotificationsService/"
GRPC_SERVICES = ("results", "engine", "notifier")


class Receiver:
    """A webhook receiver on loopback recording each request's headers and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.got = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()
                outer.got.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook/sweep-callback"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Run:
    """What one sweep through the stack left behind."""

    job_id: str
    submitted: dict
    job: dict
    spans: list[dict]
    logs: dict[str, str]
    webhooks: list[tuple[dict[str, str], bytes]]
    metrics: dict[str, str]
    exit_codes: dict[str, int]
    secrets: list[str] = field(default_factory=list)

    @property
    def trace_id(self) -> str:
        return self.submitted["trace_id"]

    def trace(self) -> list[dict]:
        return [s for s in self.spans if s["trace_id"] == self.trace_id]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    tmp = tmp_path_factory.mktemp("trace")
    trace_file = tmp / "spans.jsonl"
    receiver = Receiver()
    metrics_ports = {name: free_port() for name in (*GRPC_SERVICES, "gateway")}
    db, db_url = create_database()
    vhost, amqp = create_vhost()
    env = {
        "HINDSIGHT_TRACE_FILE": str(trace_file),
        "OTEL_TRACES_EXPORTER": "none",  # the file only, whatever this machine's environment says
        "OTEL_SERVICE_NAME": "",  # each process names itself
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "HINDSIGHT_WEBHOOK_ALLOW": "127.0.0.0/8",
        "HINDSIGHT_BOOTSTRAP_KEYS": f"ops:{OPS_KEY},dev:{DEV_KEY}",
        "HINDSIGHT_METRICS_TOKEN": SCRAPE["Authorization"].removeprefix("Bearer "),
    }
    stack = start_distributed(
        db_url, amqp, tmp, extra_env=env,
        service_env={n: {"HINDSIGHT_METRICS_PORT": str(p)} for n, p in metrics_ports.items()},
    )
    try:
        with httpx.Client(base_url=stack.base_url, timeout=30) as http:
            # The dev key through a session login, the ops key as X-API-Key and as a Bearer token.
            login = http.post("/api/v1/auth/login", json={"api_key": DEV_KEY})
            assert login.status_code == 200, login.text
            http.headers["Cookie"] = login.headers["set-cookie"].split(";", 1)[0]  # Secure: sent as a browser does
            assert http.get("/api/v1/jobs").status_code == 200
            resp = http.post(
                "/api/v1/strategy/sweep",
                headers={"X-API-Key": OPS_KEY},
                data={"ticker": "DEMO-DAILY", "fast_range": "[10, 20]", "slow_range": "[20, 30]", "step": "5",
                      "min_trades": "10", "strategy_type": "SMA", "webhook_url": receiver.url},
            )
            assert resp.status_code == 202, resp.text
            submitted = resp.json()
            job_id = submitted["job_id"]
            bearer = {"Authorization": f"Bearer {OPS_KEY}"}

            def ended() -> bool:
                return http.get(f"/api/v1/jobs/{job_id}", headers=bearer).json()["status"] in ("completed", "failed")

            _wait(ended, 30, "the job to end")
            job = http.get(f"/api/v1/jobs/{job_id}", headers=bearer).json()
            assert receiver.got.wait(20), "no webhook arrived\n" + stack.log_text()
            public = http.get("/metrics", headers=SCRAPE)
            assert public.status_code == 200 and http.get("/metrics").status_code == 401
        metrics = {name: httpx.get(f"http://127.0.0.1:{port}/metrics", headers=SCRAPE, timeout=5).text
                   for name, port in metrics_ports.items()}
        assert metrics["gateway"].count("# TYPE pipeline_trading_api_latency_seconds ") == 1
        # The notifier reports the attempt after the POST; give it a moment, then drain (which flushes spans).
        _wait(lambda: "hindsight_notifier_deliveries_total{" in
              httpx.get(f"http://127.0.0.1:{metrics_ports['notifier']}/metrics", headers=SCRAPE, timeout=5).text, 10,
              "the delivery to be recorded")
    except BaseException:
        stack.stop()
        drop_database(db)
        delete_vhost(vhost)
        receiver.close()
        raise
    codes = stack.stop()
    drop_database(db)
    delete_vhost(vhost)
    receiver.close()
    spans = [json.loads(line) for line in trace_file.read_text().splitlines()]
    logs = {name: path.read_text(errors="replace") for name, path in stack.logs.items()}
    return Run(job_id, submitted, job, spans, logs, receiver.requests, metrics, codes,
               secrets=[OPS_KEY, DEV_KEY, stack.env["HINDSIGHT_SESSION_SECRET"], stack.env["HINDSIGHT_INTERNAL_TOKEN"],
                        stack.env["HINDSIGHT_METRICS_TOKEN"]])


# ---- the trace -------------------------------------------------------------------------


class Tree:
    """The spans of one trace, looked up by parent."""

    def __init__(self, spans: list[dict]) -> None:
        self.spans = spans
        self.by_id = {s["span_id"]: s for s in spans}

    def roots(self) -> list[dict]:
        return [s for s in self.spans if s["parent_span_id"] is None]

    def child(self, parent: dict, service: str, kind: str, name: str) -> dict:
        """The (first) child of `parent` made by `service` with this kind and name."""
        found = sorted(
            (s for s in self.spans if s["parent_span_id"] == parent["span_id"]
             and (s["service"], s["kind"], s["name"]) == (service, kind, name)),
            key=lambda s: s["start"],
        )
        assert found, (
            f"no {kind} span {name!r} of {service} under {parent['service']} {parent['name']!r}; children: "
            + repr([(s["service"], s["kind"], s["name"]) for s in self.spans if s["parent_span_id"] == parent["span_id"]])
        )
        return found[0]


def test_processes_drained_cleanly(run):
    assert run.exit_codes == {"gateway": 0, "notifier": 0, "engine": 0, "results": 0}, run.exit_codes


def test_job_api_responses_carry_the_trace_id(run):
    assert re.fullmatch(r"[0-9a-f]{32}", run.trace_id)
    assert run.job["trace_id"] == run.trace_id
    assert run.job["status"] == "completed"


def test_one_trace_from_the_request_to_the_webhook(run):
    tree = Tree(run.trace())
    assert {s["service"] for s in tree.spans} == {"gateway", "results", "engine", "notifier"}
    (root,) = tree.roots()
    assert (root["service"], root["kind"], root["name"]) == ("gateway", "server", "POST /api/v1/strategy/sweep")

    # gateway → results (gRPC) → outbox relay → RabbitMQ → engine
    submit = tree.child(tree.child(root, "gateway", "client", RESULTS_RPC + "SubmitJob"),
                        "results", "server", RESULTS_RPC + "SubmitJob")
    assert submit["attributes"]["hindsight.job_id"] == run.job_id
    consume = tree.child(tree.child(submit, "results", "producer", "publish hindsight.jobs"),
                         "engine", "consumer", "process hindsight.jobs")
    assert consume["attributes"]["hindsight.job_id"] == run.job_id
    # engine → results (gRPC)
    for rpc in ("StartJob", "ResolveDataset", "GetBars", "ReportProgress"):
        tree.child(tree.child(consume, "engine", "client", RESULTS_RPC + rpc), "results", "server", RESULTS_RPC + rpc)
    complete = tree.child(tree.child(consume, "engine", "client", RESULTS_RPC + "CompleteSweep"),
                          "results", "server", RESULTS_RPC + "CompleteSweep")
    # results → RabbitMQ → notifier → results (records the event, queues the delivery) → notifier → webhook
    event = tree.child(tree.child(complete, "results", "producer", "publish hindsight.job-events"),
                       "notifier", "consumer", "process hindsight.job-events")
    record = tree.child(tree.child(event, "notifier", "client", NOTIFY_RPC + "RecordEvent"),
                        "results", "server", NOTIFY_RPC + "RecordEvent")
    task = tree.child(tree.child(record, "results", "producer", "publish hindsight.notify.deliveries"),
                      "notifier", "consumer", "process hindsight.notify.deliveries")
    post = tree.child(task, "notifier", "client", "webhook POST")
    assert post["attributes"]["http.response.status_code"] == 200

    # Every edge between processes has a remote parent; inside a process only the relay's
    # publish does (it continues the context stored with the outbox row).
    for s in tree.spans:
        parent = tree.by_id.get(s["parent_span_id"])
        if parent is not None:
            crossing = parent["service"] != s["service"] or (s["kind"] == "producer" and s["service"] == "results")
            assert s["remote_parent"] == crossing, (parent["name"], s["name"])

    # The receiver got the POST's own context.
    (headers, body), *_ = run.webhooks
    assert json.loads(body)["job_id"] == run.job_id
    version, trace_id, parent_id, _flags = headers["traceparent"].split("-")
    assert (version, trace_id, parent_id) == ("00", run.trace_id, post["span_id"])


def test_the_jobs_work_is_all_in_its_trace(run):
    """Spans naming the job belong to its trace, or to a client's later reads of it (GET requests)."""
    tagged = [s for s in run.spans if s["attributes"].get("hindsight.job_id") == run.job_id]
    assert len([s for s in tagged if s["trace_id"] == run.trace_id]) >= 5
    roots = {s["trace_id"]: s for s in run.spans if s["parent_span_id"] is None}
    for s in tagged:
        if s["trace_id"] != run.trace_id:
            root = roots[s["trace_id"]]
            assert root["service"] == "gateway" and root["name"].startswith("GET "), (s["name"], root["name"])


# ---- logs ------------------------------------------------------------------------------


def _json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


def test_every_log_line_of_the_job_has_its_trace_id(run):
    lines = [(name, doc) for name, text in run.logs.items() for doc in _json_lines(text)]
    assert lines and all({"time", "level", "service", "message"} <= doc.keys() for _, doc in lines)
    of_job = [(name, doc) for name, doc in lines if doc.get("job_id") == run.job_id]
    assert {name for name, _ in of_job} >= {"results", "engine", "notifier"}, of_job
    for name, doc in of_job:
        assert doc.get("trace_id") == run.trace_id and re.fullmatch(r"[0-9a-f]{16}", doc.get("span_id", "")), (name, doc)
        assert doc["service"] == name


def test_no_key_or_secret_in_any_log_line_or_span(run):
    everything = "\n".join(run.logs.values()) + "\n" + json.dumps(run.spans)
    for secret in run.secrets:
        assert secret not in everything
    assert "[redacted]" not in everything  # nothing even tried to log one


# ---- metrics ---------------------------------------------------------------------------


def _value(text: str, name: str, labels: str = "") -> float:
    pattern = "^" + re.escape(name) + (re.escape("{" + labels + "}") if labels else r"(?:\{[^}]*\})?") + r" (\S+)$"
    values = [float(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE)]
    assert values, f"{name}{{{labels}}} not exposed"
    return sum(values)


def test_each_service_serves_its_metrics_over_http(run):
    m = run.metrics
    assert _value(m["gateway"], "pipeline_trading_sweep_jobs_queued_total", 'strategy_type="SMA"') == 1
    assert _value(m["gateway"], "pipeline_trading_api_latency_seconds_count",
                  'endpoint="/api/v1/strategy/sweep"') == 1
    assert _value(m["gateway"], "hindsight_sse_clients") == 0
    results = m["results"]
    assert _value(results, "pipeline_trading_sweep_jobs_completed_total", 'status="completed"') == 1
    assert _value(results, "pipeline_trading_sweep_duration_seconds_count", 'status="completed"') == 1
    _value(results, "hindsight_job_queue_depth")
    _value(results, "hindsight_jobs", 'kind="trading-sweep",state="queued"')
    _value(results, "hindsight_artifact_bytes")
    assert _value(m["engine"], "hindsight_engine_bar_pairs_per_second") > 0
    job_metrics = run.job["metrics"]
    assert _value(m["engine"], "hindsight_engine_bar_pairs_total") == job_metrics["combinations_tested"] * job_metrics["bars"]
    assert _value(m["notifier"], "hindsight_notifier_events_total") == 1
    for name in GRPC_SERVICES:
        assert _value(m[name], "process_resident_memory_bytes") > 0
        assert _value(m[name], "python_info") == 1
