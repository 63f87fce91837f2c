"""The seed-001 client flow, end to end, against both modes of a real stack:
real processes, real HTTP, real gRPC between services, and in the distributed
mode the machine's real Postgres and RabbitMQ."""

from __future__ import annotations

import io
import json
import math
import signal
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from domain.sweep import sweep_combos
from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.stacks import start_distributed, start_standalone

TICKER = "E2E-USD"


def daily_csv(n: int = 900, seed: int = 7) -> bytes:
    """Deterministic daily OHLCV bars as the import format expects."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.02, n)))
    open_ = np.concatenate([[close[0]], close[:-1]]) * (1 + rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    dates = pd.date_range("2021-01-01", periods=n, freq="D")
    df = pd.DataFrame({"timestamp": dates.strftime("%Y-%m-%d"), "open": open_, "high": high, "low": low,
                       "close": close, "volume": rng.uniform(1e3, 1e4, n)})
    return df.to_csv(index=False, float_format="%.10g").encode()


def read_sse(resp: httpx.Response) -> list[dict]:
    """Parse an SSE body into [{id, data}] (comments and pings skipped)."""
    events, cur = [], {}
    for line in resp.iter_lines():
        if line == "":
            if "data" in cur:
                events.append(cur)
            cur = {}
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "data":
                cur["data"] = json.loads(value)
            elif key == "id":
                cur["id"] = int(value)
    if "data" in cur:
        events.append(cur)
    return events


@pytest.fixture(scope="module", params=["standalone", "distributed"])
def stack(request, tmp_path_factory):
    logs = tmp_path_factory.mktemp(f"logs-{request.param}")
    if request.param == "standalone":
        s = start_standalone(tmp_path_factory.mktemp("data"), logs)
        yield s
        codes = s.stop(signal.SIGINT)  # Ctrl-C
        assert codes["standalone"] == 0, s.log_text()
    else:
        db, db_url = create_database()
        vhost, amqp = create_vhost()
        s = start_distributed(db_url, amqp, logs)
        yield s
        s.stop()
        drop_database(db)
        delete_vhost(vhost)


@pytest.fixture(scope="module")
def client(stack):
    with stack.client(headers={"X-API-Key": stack.api_key}) as c:
        csv = daily_csv()
        r = c.post("/api/v1/datasets", files={"file": ("e2e.csv", csv, "text/csv")},
                   data={"ticker": TICKER, "interval": "1d", "calendar": "continuous"})
        assert r.status_code == 201, r.text
        yield c


def submit_form(c: httpx.Client, **over) -> httpx.Response:
    form = {
        "ticker": TICKER,
        "fast_range": "[10, 20]",
        "slow_range": "[20, 30]",
        "step": "5",
        "min_trades": "10",
        "strategy_type": "SMA",
        "config_path": "minimum",
        "webhook_url": "http://webhook-receiver:3000/webhook/sweep-callback",
    }
    form.update(over)
    return c.post("/api/v1/strategy/sweep", data=form)


def test_health_shape(stack):
    body = httpx.get(stack.base_url + "/health").json()
    assert body["status"] == "healthy" and body["version"] and body["timestamp"].endswith("Z")


def test_auth_required_and_session_cookie(stack):
    with stack.client() as c:
        assert c.get("/api/v1/jobs", headers={"X-API-Key": "wrong-key"}).status_code == 401
        if stack.mode == "distributed":
            assert c.get("/api/v1/jobs").status_code == 401
        r = c.post("/api/v1/auth/login", json={"api_key": stack.api_key})
        assert r.status_code == 200
        assert "httponly" in r.headers["set-cookie"].lower()
        # The session authenticates (a Secure cookie: sent as a browser sends it to loopback).
        session = {"Cookie": r.headers["set-cookie"].split(";", 1)[0]}
        assert c.get("/api/v1/jobs", headers=session).status_code == 200


def test_sweep_end_to_end(stack, client):
    r = submit_form(client)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued" and body["job_id"].startswith("sweep_")
    assert body["parameters"]["combinations"] == 8
    assert body["parameters"]["fast_range"] == [10, 20] and body["parameters"]["slow_range"] == [20, 30]
    assert body["webhook_url"] == "http://webhook-receiver:3000/webhook/sweep-callback"
    job_id = body["job_id"]

    with client.stream("GET", f"/sse-proxy/jobs/{job_id}/stream", timeout=120) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = read_sse(resp)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    final = events[-1]["data"]
    assert final.get("done") is True, events
    assert final["status"] == "completed" and final["sweep_run_id"]
    progress = [e["data"] for e in events[:-1]]
    assert progress and all({"percent", "message", "timestamp"} <= set(p) for p in progress)

    # Resume from the middle: only later events, same content, then close.
    mid = ids[len(ids) // 2]
    with client.stream("GET", f"/api/v1/jobs/{job_id}/stream", headers={"Last-Event-ID": str(mid)}) as resp:
        resumed = read_sse(resp)
    assert [e["id"] for e in resumed] == [i for i in ids if i > mid]
    assert resumed[-1]["data"] == final

    run_id = final["sweep_run_id"]
    best = client.get(f"/api/v1/sweeps/{run_id}/best", params={"ticker": TICKER, "limit": 5}).json()
    assert best["sweep_run_id"] == run_id and best["ticker"] == TICKER
    # The overfitting statistics of the grid (issue 14): every combination a trial, 900 daily returns.
    o = best["overfitting"]
    assert (o["trials"], o["days"], o["pbo_blocks"], o["reason"]) == (8, 900, 16, None), o
    assert len(o["logits"]) == 12_870 and o["pbo"] == sum(x <= 0 for x in o["logits"]) / 12_870
    assert 0 <= o["deflated_sharpe_ratio"] <= o["probabilistic_sharpe_ratio"] <= 1 and o["expected_max_sharpe"] > 0
    assert o["reading"]
    assert best["returned"] == len(best["results"]) <= 5
    assert best["total_results"] + best["excluded_below_min_trades"] == 8
    scores = [row["score"] for row in best["results"]]
    assert scores == sorted(scores, reverse=True)
    for row in best["results"]:
        assert row["total_trades"] >= 10
        assert all(row[k] is not None for k in row), row
        assert row["max_drawdown_pct"] <= 0

    # The service returns exactly what the engine computes on the same bars.
    from services.engine.bars import Bars
    from services.engine.sweep import run_sweep

    df = pd.read_csv(io.BytesIO(daily_csv()))
    ts = pd.to_datetime(df["timestamp"], utc=True).dt.as_unit("ns").astype("int64").to_numpy()
    bars = Bars(ts=ts, open=df["open"].to_numpy(), high=df["high"].to_numpy(), low=df["low"].to_numpy(),
                close=df["close"].to_numpy(), volume=df["volume"].to_numpy(), timezone="UTC", calendar="continuous")
    expected = {(r["fast_period"], r["slow_period"]): r
                for r in run_sweep(bars, "SMA", sweep_combos(10, 20, 20, 30, 5))}
    for row in best["results"]:
        exp = expected[(row["fast_period"], row["slow_period"])]
        for key in ("sharpe_ratio", "total_return_pct", "max_drawdown_pct", "score", "annualized_return"):
            assert math.isclose(row[key], exp[key], rel_tol=1e-12), key
        assert row["total_trades"] == exp["total_trades"]

    job = client.get(f"/api/v1/jobs/{job_id}").json()
    assert job["status"] == "completed" and job["sweep_run_id"] == run_id
    listing = client.get("/api/v1/jobs", params={"limit": 1}).json()
    assert listing["jobs"][0]["job_id"] == job_id and listing["total"] >= 1

    pipe = client.get(f"/api/pipelines/{job_id}").json()
    assert pipe["status"] == "COMPLETED"
    assert pipe["metrics"]["combinations_tested"] == 8 and pipe["metrics"]["duration_seconds"] >= 0
    assert pipe["results"]


def test_json_sweep_and_pipeline_trigger(client):
    r = client.post("/api/v1/strategy/sweep", json={
        "ticker": TICKER, "fast_range": [5, 15], "slow_range": [20, 40], "step": 5, "min_trades": 10,
        "strategy_type": "EMA"})
    assert r.status_code == 202, r.text
    assert r.json()["parameters"]["combinations"] == len(sweep_combos(5, 15, 20, 40, 5))
    r = client.post("/api/pipelines/trigger", json={
        "ticker": TICKER, "fast_range": [10, 20], "slow_range": [20, 30], "step": 5, "min_trades": 10,
        "strategy_type": "MACD"})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    with client.stream("GET", f"/api/v1/jobs/{job_id}/stream", timeout=120) as resp:
        events = read_sse(resp)
    assert events[-1]["data"].get("done") is True, events[-1]


def test_insufficient_data_fails_visibly(client):
    r = submit_form(client, ticker="BTC-USD")
    assert r.status_code == 202
    job_id = r.json()["job_id"]
    with client.stream("GET", f"/sse-proxy/jobs/{job_id}/stream", timeout=60) as resp:
        events = read_sse(resp)
    last = events[-1]["data"]
    assert last["error"] is True
    assert last["message"] == "Insufficient historical data for ticker BTC-USD"
    job = client.get(f"/api/v1/jobs/{job_id}").json()
    assert job["status"] == "failed" and job["error_message"] == "Insufficient historical data for ticker BTC-USD"


def test_bad_input_changes_nothing(client):
    before = client.get("/api/v1/jobs").json()["total"]
    bad = [
        {"ticker": "BTC USD"},  # "AB" is a ticker under the domain's one rule (1-32 symbol characters)
        {"fast_range": "[0, 20]"},
        {"slow_range": "[20, 501]"},
        {"step": "0"},
        {"min_trades": "5"},
        {"strategy_type": "WMA"},
        {"strategy_type": "RSI"},  # without its ranges
        {"config_path": "maximum"},
        {"fast_range": "[20, 20]", "slow_range": "[20, 30]"},
        {"fast_range": "[10, 30]", "slow_range": "[20, 30]"},
        {"webhook_url": "ftp://example.com/x"},
        {"fast_range": "not-a-list"},
        {"pbo_blocks": "15"},
        {"pbo_blocks": "2"},
        {"pbo_blocks": "32"},
    ]
    for over in bad:
        r = submit_form(client, **over)
        assert r.status_code == 400, (over, r.text)
        assert set(r.json()["error"]) >= {"code", "message", "details"}
    assert client.get("/api/v1/jobs").json()["total"] == before


def minute_csv(n: int, seed: int = 11) -> bytes:
    """n one-minute bars of a random walk, 24/7."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    ts = pd.date_range("2024-01-01", periods=n, freq="min")
    df = pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S"), "open": open_,
                       "high": np.maximum(open_, close), "low": np.minimum(open_, close), "close": close,
                       "volume": 1.0})
    return df.to_csv(index=False, float_format="%.10g").encode()


def test_cancel_running_and_queued(client):
    r = client.post("/api/v1/datasets", files={"file": ("big.csv", minute_csv(300_000), "text/csv")},
                    data={"ticker": "E2E-BIG", "interval": "1m", "calendar": "continuous"})
    assert r.status_code == 201, r.text
    # ~7,800 combos × 300,000 bars: seconds of work, so the first is running while the second waits.
    big = {"ticker": "E2E-BIG", "fast_range": "[5, 60]", "slow_range": "[61, 200]", "step": "1"}
    first = submit_form(client, **big).json()["job_id"]
    second = submit_form(client, **big).json()["job_id"]
    # One tenant runs one job at a time; which of the two starts first is the engine's race
    # (both messages are delivered at once), so the running one is the one that progresses.
    deadline = time.monotonic() + 60
    running = queued = ""
    while not running and time.monotonic() < deadline:
        for job_id, other in ((first, second), (second, first)):
            job = client.get(f"/api/v1/jobs/{job_id}").json()
            if job["status"] == "running" and (job["progress"]["percent"] or 0) >= 5:
                running, queued = job_id, other
        time.sleep(0.05)
    assert running, "neither sweep got to 5 %"
    assert client.get(f"/api/v1/jobs/{queued}").json()["status"] == "queued"
    for job_id in (queued, running):
        r = client.delete(f"/api/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "cancelled"
        with client.stream("GET", f"/api/v1/jobs/{job_id}/stream", timeout=60) as resp:
            events = read_sse(resp)
        assert events[-1]["data"]["error"] is True
        assert client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "cancelled"
        assert client.delete(f"/api/v1/jobs/{job_id}").status_code == 409
