"""SSE job streams: live delivery, replay, Last-Event-ID resume, 404s."""

from __future__ import annotations

import re
import time

import httpx
from hindsight.results.v1 import results_pb2

from tests.gateway.conftest import ALPHA_KEY, Gateway, Results
from tests.gateway.helpers import SEED_JSON, assert_error, run_job, sse_events, sweep_row


def _submit(c: httpx.Client) -> str:
    r = c.post("/api/v1/strategy/sweep", json=SEED_JSON)
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def test_live_stream_then_replay_and_resume(alpha: httpx.Client, results: Results) -> None:
    stub = results.stub()
    job_id = _submit(alpha)
    with alpha.stream("GET", f"/sse-proxy/jobs/{job_id}/stream") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(resp.iter_lines())
        first = next(events)  # the queued event, replayed
        assert "event" not in first  # default "message" type: EventSource.onmessage fires
        live = [first]
        # Now play the engine while the client listens.
        assert stub.StartJob(results_pb2.StartJobRequest(job_id=job_id), timeout=10).proceed
        live.append(next(events))
        stub.ReportProgress(
            results_pb2.ReportProgressRequest(job_id=job_id, percent=50, message="Processing 4/8"), timeout=10
        )
        live.append(next(events))
        assert live[-1]["data"]["percent"] == 50 and live[-1]["data"]["message"] == "Processing 4/8"
        assert re.fullmatch(r".+Z", live[-1]["data"]["timestamp"])
        done = stub.CompleteSweep(
            results_pb2.CompleteSweepRequest(job_id=job_id, results=[sweep_row(10, 20, 60, 1.0)],
                                             execution_time_seconds=1.0, bars=100),
            timeout=10,
        )
        live.extend(events)  # the stream closes after the terminal event
    ids = [e["id"] for e in live]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    final = live[-1]["data"]
    assert final["done"] is True and final["status"] == "completed" and final["sweep_run_id"] == done.sweep_run_id

    # A stream opened after the end replays everything, then closes (other path, same events).
    with alpha.stream("GET", f"/api/v1/jobs/{job_id}/stream") as resp:
        replay = list(sse_events(resp.iter_lines()))
    assert replay == live

    # Resume after an id (header as EventSource sends it, or the query parameter).
    mid = ids[1]
    with alpha.stream("GET", f"/api/v1/jobs/{job_id}/stream", headers={"Last-Event-ID": str(mid)}) as resp:
        resumed = list(sse_events(resp.iter_lines()))
    assert [e["id"] for e in resumed] == [i for i in ids if i > mid]
    assert resumed[-1]["data"] == final
    with alpha.stream("GET", f"/sse-proxy/jobs/{job_id}/stream", params={"last_event_id": ids[-2]}) as resp:
        assert [e["id"] for e in sse_events(resp.iter_lines())] == [ids[-1]]
    # Resumed past the last event of an ended job: 204, so an EventSource stops reconnecting.
    for path in (f"/sse-proxy/jobs/{job_id}/stream", f"/api/v1/jobs/{job_id}/stream"):
        r = alpha.get(path, headers={"Last-Event-ID": str(ids[-1])})
        assert r.status_code == 204 and r.content == b""


def test_failed_job_stream_ends_with_the_error_event(alpha: httpx.Client, results: Results) -> None:
    stub = results.stub()
    job_id = _submit(alpha)
    stub.StartJob(results_pb2.StartJobRequest(job_id=job_id), timeout=10)
    stub.FailJob(
        results_pb2.FailJobRequest(job_id=job_id, error_message="Insufficient historical data for ticker BTC-USD"),
        timeout=10,
    )
    with alpha.stream("GET", f"/sse-proxy/jobs/{job_id}/stream") as resp:
        events = list(sse_events(resp.iter_lines()))
    last = events[-1]["data"]
    assert last["error"] is True and last["message"] == "Insufficient historical data for ticker BTC-USD"
    j = alpha.get(f"/api/v1/jobs/{job_id}").json()
    assert j["status"] == "failed" and j["error_message"] == "Insufficient historical data for ticker BTC-USD"
    p = alpha.get(f"/api/pipelines/{job_id}").json()
    assert p["status"] == "FAILED" and p["error_message"] == j["error_message"]


def test_stream_with_session_cookie_like_the_seed_browser_client(gw_distributed: Gateway, results: Results) -> None:
    with httpx.Client(base_url=gw_distributed.url, timeout=20) as c:
        login = c.post("/api/v1/auth/login", json={"api_key": ALPHA_KEY})
        assert login.status_code == 200
        c.headers["Cookie"] = login.headers["set-cookie"].split(";", 1)[0]  # a Secure cookie, sent as a browser does
        job_id = _submit(c)
        run_job(results.stub(), job_id)
        with c.stream("GET", f"/sse-proxy/jobs/{job_id}/stream") as resp:
            assert resp.status_code == 200
            events = list(sse_events(resp.iter_lines()))
        assert events[-1]["data"]["done"] is True


def test_stream_errors_are_json_before_streaming(alpha: httpx.Client, gw_distributed: Gateway) -> None:
    assert_error(alpha.get("/api/v1/jobs/sweep_missing/stream"), 404, "not_found")
    assert_error(alpha.get("/sse-proxy/jobs/sweep_missing/stream"), 404, "not_found")
    job_id = _submit(alpha)
    assert_error(alpha.get(f"/api/v1/jobs/{job_id}/stream", headers={"Last-Event-ID": "abc"}), 400)
    assert_error(alpha.get(f"/api/v1/jobs/{job_id}/stream", params={"last_event_id": "-1"}), 400)
    assert_error(httpx.get(f"{gw_distributed.url}/sse-proxy/jobs/{job_id}/stream"), 401)


def test_client_disconnect_releases_the_stream(gw: Gateway, alpha: httpx.Client) -> None:
    job_id = _submit(alpha)

    def open_streams() -> float:
        text = httpx.get(gw.url + "/metrics").text
        return float(re.search(r"^hindsight_sse_clients (\S+)$", text, re.M).group(1))

    base = open_streams()
    with alpha.stream("GET", f"/api/v1/jobs/{job_id}/stream") as resp:
        events = sse_events(resp.iter_lines())  # keep a reference: closing it would close the response
        next(events)
        assert open_streams() == base + 1
    deadline = time.monotonic() + 5
    while open_streams() != base and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_streams() == base
