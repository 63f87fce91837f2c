"""Issue 12, finding 5: the gateway's /metrics was open to anyone and labelled series with
tenants' tickers (`ticker="ALPHA-SECRET"`); 40 sweeps on made-up tickers added 819 series.

Now /metrics wants a scrape token (HINDSIGHT_METRICS_TOKEN, Bearer) except in standalone
on loopback without HINDSIGHT_REQUIRE_AUTH, deployments scrape a port of their own
(HINDSIGHT_METRICS_PORT, loopback unless configured), and no label of any service carries
tenant data: labels come from closed sets, so the number of series does not grow with what
tenants submit. Checked on real gateways, a real standalone stack and a real distributed
stack (processes, Postgres, RabbitMQ)."""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry

from services.engine.metrics import EngineMetrics
from services.gateway.metrics import GatewayMetrics
from services.notifier.metrics import NotifierMetrics
from services.results.metrics import ResultsMetrics
from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.security._trust2_support import ALPHA_KEY, Stack
from tests.stacks import free_port, start_distributed, start_standalone

# Label names whose values come from closed sets the code defines.
CLOSED_LABELS = {"endpoint", "strategy_type", "status", "kind", "state", "channel", "outcome", "result"}
SCRAPE_TOKEN = "scrape-" + os.urandom(12).hex()


def _label_names(registry: CollectorRegistry) -> dict[str, set[str]]:
    out = {}
    for collector in list(registry._collector_to_names):
        for family in collector.describe():
            out[family.name] = set(getattr(collector, "_labelnames", ()))
    return out


def test_no_metric_of_any_service_has_a_label_outside_closed_sets() -> None:
    for metrics in (GatewayMetrics(), ResultsMetrics(), EngineMetrics(), NotifierMetrics()):
        for name, labels in _label_names(metrics.registry).items():
            assert labels <= CLOSED_LABELS, f"{type(metrics).__name__} {name}: {sorted(labels - CLOSED_LABELS)}"


# ---- the scrape token on the gateway's public port --------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("metrics"))
    try:
        s.start_results()
        yield s
    finally:
        s.close()


BEARER = {"Authorization": f"Bearer {SCRAPE_TOKEN}"}


@pytest.mark.parametrize(
    "mode, over, anonymous",
    [
        ("distributed", {}, 401),
        ("distributed", {"hindsight_metrics_token": SCRAPE_TOKEN}, 401),
        ("standalone on loopback", {"hindsight_mode": "standalone"}, 200),  # `make run` stays usable
        ("standalone, auth required", {"hindsight_mode": "standalone", "hindsight_require_auth": True}, 401),
        ("standalone, public bind", {"hindsight_mode": "standalone", "hindsight_host": "0.0.0.0"}, 401),
        ("standalone with a token", {"hindsight_mode": "standalone", "hindsight_metrics_token": SCRAPE_TOKEN}, 401),
    ],
)
def test_public_metrics_need_the_scrape_token(stack: Stack, mode: str, over: dict, anonymous: int) -> None:
    g = stack.gateway(**over)
    with stack.client(g) as c:
        r = c.get("/metrics")
        assert r.status_code == anonymous, r.text
        if anonymous == 401:
            assert r.json()["error"]["code"] == "unauthenticated" and "Bearer" in r.headers["www-authenticate"]
            assert "pipeline_trading" not in r.text
        # Neither a tenant's API key nor a wrong token opens it.
        for headers in ({"X-API-Key": ALPHA_KEY}, {"Authorization": f"Bearer {ALPHA_KEY}"},
                        {"Authorization": f"Bearer {SCRAPE_TOKEN}x"}):
            assert c.get("/metrics", headers=headers).status_code == anonymous
        expected = 200 if over.get("hindsight_metrics_token") or anonymous == 200 else 401
        r = c.get("/metrics", headers=BEARER)
        assert r.status_code == expected
        if expected == 200:
            assert "pipeline_trading_api_latency_seconds" in r.text


# ---- made-up tickers through a real standalone stack --------------------------------------


def _series(text: str) -> set[str]:
    return {line.split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def _label_values(text: str) -> set[str]:
    return set(re.findall(r'="((?:[^"\\]|\\.)*)"', "\n".join(line for line in text.splitlines()
                                                             if not line.startswith("#"))))


def _sum(text: str, name: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def test_made_up_tickers_add_no_series_and_appear_in_no_label(tmp_path_factory: pytest.TempPathFactory) -> None:
    tenant = "tenant" + secrets.token_hex(3)
    key = "k-" + secrets.token_hex(16)
    s = start_standalone(tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("logs"),
                         {"HINDSIGHT_BOOTSTRAP_KEYS": f"{tenant}:{key}"})
    tickers: list[str] = []
    try:
        with s.client(headers={"X-API-Key": key}) as c, s.client() as scraper:

            def batch(n: int) -> str:
                """n sweeps on made-up tickers, all ended (no data: failed), then the metrics."""
                jobs = []
                for _ in range(n):
                    ticker = f"SECRET-{secrets.token_hex(4).upper()}"
                    tickers.append(ticker)
                    r = c.post("/api/v1/strategy/sweep", json={"ticker": ticker, "fast_range": [10, 20],
                                                               "slow_range": [20, 30], "step": 5, "min_trades": 10})
                    assert r.status_code == 202, r.text
                    jobs.append(r.json()["job_id"])
                deadline = time.time() + 60
                for job_id in jobs:
                    while c.get(f"/api/v1/jobs/{job_id}").json()["status"] not in ("completed", "failed"):
                        assert time.time() < deadline, s.log_text()
                        time.sleep(0.1)
                while _sum(scraper.get("/metrics").text, "pipeline_trading_sweep_jobs_completed_total") < len(tickers):
                    assert time.time() < deadline, s.log_text()
                    time.sleep(0.1)
                time.sleep(2.5)  # results re-reads its database gauges about a second after jobs end
                r = scraper.get("/metrics")  # standalone on loopback: no token needed
                assert r.status_code == 200
                return r.text

            first = batch(8)
            second = batch(8)
    finally:
        s.stop()
    assert _sum(second, "pipeline_trading_sweep_jobs_queued_total") == 16
    assert _series(second) == _series(first), sorted(_series(second) ^ _series(first))
    values = _label_values(first) | _label_values(second)
    for secret in (*tickers, tenant, key):
        assert not any(secret in v for v in values), secret
        assert secret not in second


# ---- the scrape ports of a distributed deployment ------------------------------------------


@pytest.fixture(scope="module")
def distributed(tmp_path_factory: pytest.TempPathFactory):
    db, db_url = create_database()
    vhost, amqp = create_vhost()
    ports = {name: free_port() for name in ("results", "engine", "notifier", "gateway")}
    stack = start_distributed(db_url, amqp, tmp_path_factory.mktemp("metrics-logs"),
                              extra_env={"HINDSIGHT_METRICS_TOKEN": SCRAPE_TOKEN},
                              service_env={n: {"HINDSIGHT_METRICS_PORT": str(p)} for n, p in ports.items()})
    stack.metrics_ports = ports
    try:
        yield stack
    finally:
        stack.stop()
        drop_database(db)
        delete_vhost(vhost)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("service", ["results", "engine", "notifier", "gateway"])
def test_every_scrape_port_wants_the_token_and_listens_on_loopback(distributed, service: str) -> None:
    port = distributed.metrics_ports[service]
    url = f"http://127.0.0.1:{port}/metrics"
    refused = httpx.get(url, timeout=5)
    assert refused.status_code == 401 and "Bearer" in refused.headers["www-authenticate"]
    assert "process_resident_memory_bytes" not in refused.text
    assert httpx.get(url, headers={"Authorization": f"Bearer {SCRAPE_TOKEN}x"}, timeout=5).status_code == 401
    ok = httpx.get(url, headers=BEARER, timeout=5)
    assert ok.status_code == 200 and "process_resident_memory_bytes" in ok.text
    assert not _reachable("127.0.0.2", port)  # HINDSIGHT_METRICS_HOST: loopback unless configured
    if service == "gateway":
        assert "pipeline_trading_api_latency_seconds" in ok.text
        # ...and its public port answers /metrics only with the token.
        assert httpx.get(distributed.base_url + "/metrics", timeout=5).status_code == 401
        assert httpx.get(distributed.base_url + "/metrics", headers=BEARER, timeout=5).status_code == 200
