"""Issue 14: a sweep of a rule strategy's parameters through the real distributed stack
(Postgres, RabbitMQ, the four services as processes, real HTTP): bad requests are 400s
that queue nothing, another tenant gets 404s, the job is followed with SSE, `best` ranks
the combinations with their parameters and the overfitting statistics, and combinations
equal separate day-by-day backtests of the substituted strategy, metric for metric."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest

from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.e2e.day_by_day_support import run_of_job, wait_completed
from tests.e2e.test_seed001_flow import read_sse
from tests.stacks import start_distributed

START, END = "2024-01-08", "2024-01-26"
KEY_A, KEY_B = "rsw-a-" + os.urandom(8).hex(), "rsw-b-" + os.urandom(8).hex()
METRICS = ("score", "sharpe_ratio", "sortino_ratio", "total_return_pct", "annualized_return", "max_drawdown_pct",
           "win_rate_pct", "profit_factor", "total_trades", "trades_per_month", "avg_trade_duration")


def strategy(rsi_len: object = "{rsi_len}", oversold: object = "{oversold}", sl: object = "{sl}",
             parameters: dict | None = None) -> dict:
    """The e2e strategy; with placeholders (and `parameters`) or with values written in."""
    out = {
        "name": "RSI dip (rule sweep e2e)",
        "dataset": {"ticker": "DEMO-MINUTE", "interval": "1m"},
        "session": {"square_off": "14:45"},
        "entries": [{"id": "dip", "condition": f"RSI({rsi_len}) < {oversold}", "side": "buy", "quantity": 10,
                     "stop_loss": {"type": "percent", "value": sl}, "target": {"type": "points", "value": 12},
                     "max_reentries": 2}],
        "exits": [{"id": "up", "condition": f"RSI({rsi_len}) > 60"}],
    }
    if parameters is not None:
        out["parameters"] = parameters
    return out


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tmp_path_factory.mktemp("rule-sweep-artifacts")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, artifacts):
    db, db_url = create_database()
    vhost, amqp = create_vhost()
    s = start_distributed(db_url, amqp, tmp_path_factory.mktemp("rule-sweep-logs"), {
        "HINDSIGHT_BOOTSTRAP_KEYS": f"rsw-a:{KEY_A},rsw-b:{KEY_B}",
        "HINDSIGHT_ARTIFACT_DIR": str(artifacts),
    })
    try:
        yield s
    finally:
        s.stop()
        drop_database(db)
        delete_vhost(vhost)


@pytest.fixture(scope="module")
def a(stack):
    with httpx.Client(base_url=stack.base_url, headers={"X-API-Key": KEY_A}, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def b(stack):
    with httpx.Client(base_url=stack.base_url, headers={"X-API-Key": KEY_B}, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def swept(a) -> str:
    r = a.post("/api/v1/strategies", json=strategy(parameters={"rsi_len": 14, "oversold": 30, "sl": 0.3}))
    assert r.status_code == 201, r.text
    return r.json()["strategy_id"]


def _jobs(c: httpx.Client) -> int:
    r = c.get("/api/v1/jobs", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return len(r.json()["jobs"])


def test_bad_definitions_are_refused_at_creation(a):
    cases = [
        (strategy(parameters={"rsi_len": 14, "oversold": 30}), "parameters", "{sl}"),  # used, not declared
        (strategy(parameters={"rsi_len": 14.5, "oversold": 30, "sl": 0.3}), "exits[0].condition", "whole number"),
        (strategy(parameters={"rsi_len": "14", "oversold": 30, "sl": 0.3}), "parameters.rsi_len", "must be a number"),
        (strategy(parameters={"rsi_len": 14, "oversold": 30, "sl": 150}), "entries[0].stop_loss.value", "below 100"),
    ]
    for definition, field, text in cases:
        r = a.post("/api/v1/strategies", json=definition)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert any(e["field"].startswith(field.split(".")[0]) and text in e["message"] + e["field"]
                   for e in err["details"]["errors"]) or text in err["message"], err


def test_bad_sweeps_are_400_and_queue_nothing(a, swept):
    before = _jobs(a)
    good = {"rsi_len": [10, 14, 2], "oversold": [25, 35, 5], "sl": [0.3, 0.3, 0.1]}
    cases = [
        ({"rsi_len": [10, 14, 2], "oversold": [25, 35, 5]}, "parameters.sl", "no range"),
        ({**good, "overbought": [60, 70, 5]}, "parameters.overbought", "declares no parameter"),
        ({**good, "rsi_len": [10.5, 14, 2]}, "parameters.rsi_len", "whole number"),
        ({**good, "rsi_len": [0, 4, 2]}, "exits[0].condition", "rsi_len=0"),
        ({**good, "rsi_len": [2, 102, 1], "oversold": [10, 20, 1]}, "parameters", "at most 1000"),
        ({**good, "oversold": [35, 25, 5]}, "parameters.oversold", "below start"),
    ]
    for ranges, field, text in cases:
        r = a.post(f"/api/v1/strategies/{swept}/sweep",
                   json={"parameters": ranges, "start_date": START, "end_date": END, "min_trades": 1})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] and any(e["field"] == field and text in e["message"] for e in err["details"]["errors"]), err
    for body in ({"parameters": good, "start_date": END, "end_date": START},
                 {"parameters": good, "start_date": START, "end_date": END, "pbo_blocks": 5},
                 {"parameters": {"rsi_len": [10, 14]}, "start_date": START, "end_date": END},
                 {"parameters": {"rsi_len": ["10", "x", 2]}, "start_date": START, "end_date": END},
                 {"parameters": "rsi_len", "start_date": START, "end_date": END},
                 {"parameters": {}, "start_date": START, "end_date": END},
                 {"parameters": good, "start_date": "2024-13-01", "end_date": END},
                 {"parameters": good, "end_date": END},
                 {"parameters": good, "start_date": START, "end_date": END, "min_trades": -1},
                 {"parameters": good, "start_date": START, "end_date": END, "surprise": 1}):
        r = a.post(f"/api/v1/strategies/{swept}/sweep", json=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["details"]
    assert a.post("/api/v1/strategies/not-a-uuid/sweep",
                  json={"parameters": good, "start_date": START, "end_date": END}).status_code in (400, 404)
    assert a.post(f"/api/v1/strategies/{swept}/sweep", content=b"{not json",
                  headers={"Content-Type": "application/json"}).status_code == 400
    assert _jobs(a) == before


def test_another_tenants_strategy_is_not_found(b, swept):
    r = b.post(f"/api/v1/strategies/{swept}/sweep",
               json={"parameters": {"rsi_len": [10, 14, 2], "oversold": [25, 35, 5], "sl": [0.3, 0.3, 0.1]},
                     "start_date": START, "end_date": END})
    assert r.status_code == 404, r.text
    assert _jobs(b) == 0


def test_sweep_follows_ranks_and_equals_day_by_day_runs(a, b, swept, artifacts):
    ranges = {"rsi_len": [10, 14, 4], "oversold": [25, 35, 5], "sl": [0.3, 0.6, 0.3]}
    r = a.post(f"/api/v1/strategies/{swept}/sweep",
               json={"parameters": ranges, "start_date": START, "end_date": END, "min_trades": 5, "pbo_blocks": 4})
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["combinations"] == 2 * 3 * 2 and accepted["status"] == "queued"
    job_id = accepted["job_id"]

    with a.stream("GET", accepted["stream_url"], timeout=120) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        events = read_sse(resp)
    final = events[-1]["data"]
    assert final.get("done") is True and final["status"] == "completed", events
    assert any("combinations" in (e["data"].get("message") or "") for e in events[:-1]) or len(events) >= 2

    job = a.get(f"/api/v1/jobs/{job_id}").json()
    assert job["kind"] == "rule-sweep"
    run_id = final["sweep_run_id"]
    assert b.get(f"/api/v1/sweeps/{run_id}/best").status_code == 404
    best = a.get(f"/api/v1/sweeps/{run_id}/best", params={"limit": 1000}).json()
    rows = best["results"]
    assert best["total_results"] + best["excluded_below_min_trades"] == 12
    assert best["total_results"] == len(rows) >= 2
    assert all(row["total_trades"] >= 5 for row in rows)
    scores = [row["score"] for row in rows if row["score"] is not None]
    assert scores == sorted(scores, reverse=True)
    assert {tuple(sorted(row["parameters"])) for row in rows} == {("oversold", "rsi_len", "sl")}
    assert {row["parameters"]["rsi_len"] for row in rows} <= {10, 14}
    stats = best["overfitting"]
    assert stats["trials"] == 12 and stats["pbo_blocks"] == 4 and stats["days"] == 15
    assert stats["pbo"] is not None and len(stats["logits"]) == 6  # C(4, 2)
    assert stats["deflated_sharpe_ratio"] is not None and 0 <= stats["deflated_sharpe_ratio"] <= 1

    # Summaries only: the sweep wrote no day files (the day-by-day runs below do).
    assert [p for p in artifacts.rglob("*") if p.is_file()] == []

    # The top row and the last one, each against its own day-by-day backtest through the stack.
    for row in (rows[0], rows[-1]):
        p = row["parameters"]
        one = a.post("/api/v1/strategies", json=strategy(p["rsi_len"], p["oversold"], p["sl"]))
        assert one.status_code == 201, one.text
        started = a.post("/api/v1/backtest/start", json={"strategy_id": one.json()["strategy_id"],
                                                         "start_date": START, "end_date": END})
        assert started.status_code in (200, 202), started.text
        dbd_job = started.json().get("job_id") or started.json()["backtest_id"]
        wait_completed(a, dbd_job)
        metrics = run_of_job(a, dbd_job)["metrics"]
        assert any(p.name == "trades_daily.json.gz" for p in artifacts.rglob("*"))
        for name in METRICS:
            assert row[name] == (pytest.approx(metrics[name], rel=1e-12) if isinstance(metrics[name], float)
                                 else metrics[name]), (name, p)


def test_unknown_strategy_is_404(a):
    r = a.post(f"/api/v1/strategies/{uuid.uuid4()}/sweep",
               json={"parameters": {"x": [1, 2, 1]}, "start_date": START, "end_date": END})
    assert r.status_code == 404, r.text


def test_rsi_reversion_sweep_through_the_stack(a):
    """strategy_type RSI: the period and both thresholds; each row equals a single
    rsi_reversion backtest of its combination (the same kernel, so to the bit)."""
    body = {"ticker": "DEMO-DAILY", "strategy_type": "rsi_reversion", "period_range": [10, 14], "step": 2,
            "oversold_range": [25, 35], "overbought_range": [65, 75], "threshold_step": 5, "min_trades": 10,
            "pbo_blocks": 8}
    r = a.post("/api/v1/strategy/sweep", json=body)
    assert r.status_code == 202, r.text
    assert r.json()["parameters"]["combinations"] == 3 * 3 * 3
    with a.stream("GET", r.json()["stream_url"], timeout=120) as resp:
        final = read_sse(resp)[-1]["data"]
    assert final["status"] == "completed", final
    best = a.get(f"/api/v1/sweeps/{final['sweep_run_id']}/best", params={"limit": 100}).json()
    assert best["total_results"] + best["excluded_below_min_trades"] == 27
    rows = best["results"]
    assert rows and all(row["strategy_type"] == "RSI" for row in rows)
    assert best["overfitting"]["trials"] == 27 and best["overfitting"]["pbo"] is not None
    for row in (rows[0], rows[-1]):
        p = row["parameters"]
        assert set(p) == {"period", "oversold", "overbought"} and row["fast_period"] == p["period"]
        bt = a.post("/backtest", json={"ticker": "DEMO-DAILY", "strategy": "rsi_reversion", "parameters": p})
        assert bt.status_code == 200, bt.text
        m = bt.json()["metrics"]
        for name in METRICS:
            assert row[name] == m[name], (name, p)
    # The sweep is also a saved run: its best combination, replayable as rsi_reversion.
    listed = a.get("/runs", params={"kind": "sweep", "strategy": "rsi_reversion"}).json()["runs"]
    assert len(listed) == 1, listed
    saved = a.get(f"/runs/{listed[0]['id']}").json()
    assert saved["parameters"] == rows[0]["parameters"]
    replayed = a.post(f"/runs/{listed[0]['id']}/replay", json={})
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["metrics"]["sharpe_ratio"] == rows[0]["sharpe_ratio"]
    bad = a.post("/api/v1/strategy/sweep", json={**body, "oversold_range": [60, 80], "overbought_range": [20, 40]})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["errors"][0]["field"] == "oversold_range"


def test_the_limit_is_documented(a):
    vocab = a.get("/api/v1/vocabulary").json()
    assert vocab["rule_sweep"]["max_combinations"] == 1000
    docs = a.get("/openapi.json").json()
    assert "a grid of more than **1000\ncombinations**" in docs["info"]["description"]
    assert "/api/v1/strategies/{strategy_id}/sweep" in docs["paths"]
