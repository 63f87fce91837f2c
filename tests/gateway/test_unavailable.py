"""When results is down or goes away, the gateway answers 503 + Retry-After in
bounded time; SSE streams wait for it first, for HINDSIGHT_SSE_RESULTS_WAIT_SECONDS
(an open stream with keep-alive comments, then it ends; a new one before answering).
It never hangs."""

from __future__ import annotations

import socket
import time

import httpx

from tests.gateway.conftest import ALPHA_KEY, Harness
from tests.gateway.helpers import SEED_FORM, SEED_JSON, assert_error, sse_events


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_503(resp: httpx.Response) -> None:
    assert_error(resp, 503, "service_unavailable")
    assert resp.headers["retry-after"] == "5"


def test_results_never_reachable(harness: Harness) -> None:
    g = harness.gateway(f"127.0.0.1:{_closed_port()}", hindsight_rpc_timeout=2.0)
    with httpx.Client(base_url=g.url, timeout=15) as c:
        t0 = time.monotonic()
        r = c.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "unhealthy" and r.json()["version"] == "1.0.0"
        _assert_503(c.post("/api/v1/strategy/sweep", data=SEED_FORM))  # dev tenant: straight to SubmitJob
        _assert_503(c.get("/api/v1/jobs", headers={"X-API-Key": ALPHA_KEY}))  # Authenticate fails
        _assert_503(c.post("/api/v1/auth/login", json={"api_key": ALPHA_KEY}))
        # Validation still answers 400 without results.
        assert_error(c.post("/api/v1/strategy/sweep", json={"ticker": "X"}), 400)
        assert time.monotonic() - t0 < 10


def test_results_stopped_mid_flight(harness: Harness) -> None:
    results = harness.results()
    wait = 2.0
    g = harness.gateway(results.addr, hindsight_rpc_timeout=2.0, hindsight_sse_results_wait_seconds=wait)
    with httpx.Client(base_url=g.url, timeout=15, headers={"X-API-Key": ALPHA_KEY}) as c:
        job_id = c.post("/api/v1/strategy/sweep", json=SEED_JSON).json()["job_id"]
        with c.stream("GET", f"/api/v1/jobs/{job_id}/stream") as resp:
            lines = resp.iter_lines()
            assert next(sse_events(lines))["id"] >= 1
            t0 = time.monotonic()
            harness.stop_results(results)
            # Kept open while the gateway waits for results, then ended with no event made
            # up (the client would reconnect with Last-Event-ID).
            rest = list(lines)
        ended = time.monotonic() - t0
        assert ": waiting for results" in rest and not any(line.startswith("data:") for line in rest), rest
        assert wait <= ended < wait + 10

        t0 = time.monotonic()
        _assert_503(c.get(f"/api/v1/jobs/{job_id}"))
        _assert_503(c.post("/api/v1/strategy/sweep", json=SEED_JSON))
        _assert_503(c.get("/api/v1/jobs"))
        r = c.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "unhealthy"
        assert time.monotonic() - t0 < 10

        # A new stream request waits for results as long, then answers 503 as the rest.
        t0 = time.monotonic()
        _assert_503(c.get(f"/api/v1/jobs/{job_id}/stream"))
        assert wait <= time.monotonic() - t0 < wait + 10
