"""Health, docs, metrics and the error model of unknown routes."""

from __future__ import annotations

import re
import socket

import httpx
from fastapi import FastAPI

from tests.gateway.conftest import ALPHA_KEY, Gateway, Harness, Results
from tests.gateway.helpers import SEED_FORM, assert_error


def test_health_has_the_seed_shape(gw: Gateway) -> None:
    r = httpx.get(gw.url + "/health")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "healthy"
    assert body["version"] == "1.0.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["timestamp"]), body
    assert body["services"]["results"] == "serving"


def test_health_needs_no_credentials_even_when_auth_is_required(gw_distributed: Gateway) -> None:
    assert httpx.get(gw_distributed.url + "/health").status_code == 200
    # /metrics is not public: a scrape token, or the scrape port (tests/security/test_metrics_exposure.py).
    assert httpx.get(gw_distributed.url + "/metrics").status_code == 401
    assert httpx.get(gw_distributed.url + "/openapi.json").status_code == 200
    assert httpx.get(gw_distributed.url + "/docs").status_code == 200


def test_unknown_route_and_wrong_method_use_the_error_model(gw: Gateway) -> None:
    assert_error(httpx.get(gw.url + "/no/such/thing"), 404, "not_found")
    assert_error(httpx.put(gw.url + "/api/v1/strategy/sweep"), 405, "method_not_allowed")


def test_docs_state_the_score_formula_and_metrics(gw: Gateway) -> None:
    spec = httpx.get(gw.url + "/openapi.json").json()
    text = spec["info"]["description"]
    assert "sharpe_ratio × (1 + max_drawdown_pct / 100)" in text
    assert "min_trades" in text and "excluded_below_min_trades" in text
    assert "ddof = 1" in text and "√P" in text
    best = spec["paths"]["/api/v1/sweeps/{sweep_run_id}/best"]["get"]
    assert "sharpe_ratio × (1 + max_drawdown_pct / 100)" in best["description"]
    for definition in ("deflated_sharpe_ratio", "PSR(SR*) = Φ((SR − SR*)·√(T − 1)", "Φ⁻¹(1 − 1/(N·e))",
                       "dropping the first T mod S rows", "`pbo` = the share of splits with λ ≤ 0", "pbo_blocks"):
        assert definition in best["description"] and definition in text, definition
    sweep_body = spec["paths"]["/api/v1/strategy/sweep"]["post"]["requestBody"]["content"]
    assert {"application/x-www-form-urlencoded", "application/json"} <= set(sweep_body)


def test_metrics_count_queued_sweeps_and_latency_by_route(gw: Gateway) -> None:
    with httpx.Client(base_url=gw.url, headers={"X-API-Key": ALPHA_KEY}, timeout=20) as c:
        assert c.post("/api/v1/strategy/sweep", data=SEED_FORM).status_code == 202
        c.get("/api/v1/jobs/does-not-exist")
    text = httpx.get(gw.url + "/metrics").text
    m = re.search(r'pipeline_trading_sweep_jobs_queued_total\{strategy_type="SMA"\} (\S+)', text)
    assert m and float(m.group(1)) >= 1, text
    assert "BTC-USD" not in text  # a ticker is a tenant's data: never a label
    assert 'pipeline_trading_api_latency_seconds_bucket{endpoint="/api/v1/strategy/sweep",le="0.1"}' in text
    # The route template, never the raw path (one series per job id would explode).
    assert 'endpoint="/api/v1/jobs/{job_id}"' in text
    assert "does-not-exist" not in text
    assert "hindsight_sse_clients" in text


def test_a_bug_is_a_json_500_without_traceback(harness: Harness, results: Results) -> None:
    def setup(app: FastAPI) -> None:
        @app.get("/test-only/boom")
        async def boom() -> None:
            raise RuntimeError("secret internals")

    g = harness.gateway(results.addr, setup=setup)
    r = httpx.get(g.url + "/test-only/boom")
    err = assert_error(r, 500, "internal_error")
    assert "secret internals" not in r.text and "RuntimeError" not in r.text
    assert err["message"] == "internal error"


def test_upload_declared_over_512mb_is_413_at_once(gw: Gateway) -> None:
    # A raw request: the declared size alone is refused, before any body is read.
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(
            b"POST /api/v1/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 600000000\r\n\r\n"
        )
        raw = b""
        while b'"payload_too_large"' not in raw:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
    text = raw.decode()
    assert text.startswith("HTTP/1.1 413"), text
    assert '"payload_too_large"' in text
