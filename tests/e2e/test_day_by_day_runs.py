"""Issue 16: a day-by-day backtest is a full run — the whole metric set on its day-end
equity, and an equity curve against buy-and-hold — checked against an independent
computation: the reference trades of the e2e strategy (TA-Lib RSI and the plain-Python bar
loop, tests/e2e/day_by_day_support.py), empyrical-reloaded's Sharpe, Sortino and CAGR, and the
other metrics from their definitions (domain/metrics.py's docstring) with NumPy."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import empyrical
import httpx
import numpy as np
import pytest

from tests.e2e.day_by_day_support import (  # noqa: F401  (fixtures)
    TZ,
    auth_headers,
    completed_run,
    dbd_stack_fixture,
    demo_bars,
    expected_trades,
    run_of_job,
    seed_strategy_fixture,
    wait_completed,
)

START, END = "2024-01-08", "2024-02-02"
QTY = 10
PERIODS = 252  # DEMO-MINUTE is on the sessions calendar


def test_day_by_day_run_has_full_metrics_and_equity(dbd_stack, seed_strategy):
    with httpx.Client(base_url=dbd_stack.base_url, headers=auth_headers(dbd_stack), timeout=60) as c:
        _, run = completed_run(c, seed_strategy, "metrics-user", START, END)
        curve = list(csv.DictReader(io.StringIO(c.get(f"/runs/{run['id']}/equity.csv").text)))

    # The independent expectation, day by day.
    trades = expected_trades(START, END)
    days = sorted(trades)
    cash = run["cash"]
    pnls = np.array([sum(QTY * (t[5] - t[4]) for t in trades[d]) for d in days])
    equity = cash + np.cumsum(pnls)
    returns = equity / np.concatenate([[cash], equity[:-1]]) - 1.0
    peak = np.maximum.accumulate(np.concatenate([[cash], equity]))[1:]
    all_pnls = [QTY * (t[5] - t[4]) for d in days for t in trades[d]]
    wins = [p for p in all_pnls if p > 0]
    losses = [p for p in all_pnls if p < 0]
    seconds = [(datetime.fromisoformat(t[3]) - datetime.fromisoformat(t[2])).total_seconds()
               for d in days for t in trades[d]]
    m = run["metrics"]
    rel = 1e-9
    assert m["total_trades"] == len(all_pnls) > 0
    assert m["sharpe_ratio"] == pytest.approx(empyrical.sharpe_ratio(returns, annualization=PERIODS), rel=rel)
    assert m["sortino_ratio"] == pytest.approx(empyrical.sortino_ratio(returns, annualization=PERIODS), rel=rel)
    assert m["annualized_return"] == pytest.approx(empyrical.cagr(returns, annualization=PERIODS) * 100, rel=rel)
    assert m["total_return_pct"] == pytest.approx((equity[-1] / cash - 1) * 100, rel=rel)
    assert m["max_drawdown_pct"] == pytest.approx(min(0.0, float(np.min(equity / peak - 1))) * 100, rel=rel, abs=1e-12)
    assert m["score"] == pytest.approx(m["sharpe_ratio"] * (1 + m["max_drawdown_pct"] / 100), rel=rel)
    assert m["win_rate_pct"] == pytest.approx(len(wins) / len(all_pnls) * 100, rel=rel)
    assert m["profit_factor"] == pytest.approx(sum(wins) / -sum(losses), rel=rel)
    mean_s = sum(seconds) / len(seconds)
    shown = f"{mean_s / 86400:.1f} days" if mean_s >= 86400 else f"{mean_s / 3600:.1f} hours"
    assert m["avg_trade_duration"] == shown
    assert run["pnl"] == pytest.approx(float(np.sum(pnls)), rel=rel)
    assert run["sharpe_ratio"] == m["sharpe_ratio"] and run["max_drawdown"] == m["max_drawdown_pct"]
    assert run["parameters"]["user_id"] == "metrics-user"

    # Equity: one point per trading day at its last bar; buy-and-hold from the first day's open.
    bars = demo_bars()
    zone = ZoneInfo(TZ)
    local = [datetime.fromtimestamp(ns / 1e9, UTC).astimezone(zone).date().isoformat() for ns in bars.ts.tolist()]
    last = {d: i for i, d in enumerate(local)}
    first = local.index(days[0])
    units = cash / bars.open[first]
    assert len(curve) == len(days)
    for point, d, e in zip(curve, days, equity):
        i = last[d]
        assert point["timestamp"] == datetime.fromtimestamp(bars.ts[i] / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert float(point["equity"]) == pytest.approx(e, rel=rel)
        assert float(point["buy_and_hold"]) == pytest.approx(units * bars.close[i], rel=rel)
    assert m["buy_and_hold_return_pct"] == pytest.approx((units * bars.close[last[days[-1]]] / cash - 1) * 100, rel=rel)


def test_day_by_day_run_replays_with_overrides(dbd_stack, seed_strategy):
    with httpx.Client(base_url=dbd_stack.base_url, headers=auth_headers(dbd_stack), timeout=60) as c:
        _, run = completed_run(c, seed_strategy, "replay-user", START, END)
        assert run["replayable"] is True

        # What a day-by-day run cannot change: 400, nothing queued.
        before = c.get("/api/v1/jobs").json()["total"]
        bad = c.post(f"/runs/{run['id']}/replay", json={"parameters": {"fast_period": 3}, "interval": "5m"})
        assert bad.status_code == 400, bad.text
        assert {e["field"] for e in bad.json()["error"]["details"]["errors"]} == {"parameters", "interval"}
        assert c.post(f"/runs/{run['id']}/replay", json={"end_date": "2023-01-01"}).status_code == 400
        assert c.get("/api/v1/jobs").json()["total"] == before

        r = c.post(f"/runs/{run['id']}/replay", json={"end_date": "2024-01-19", "cash": 50_000,
                                                      "commission_pct": 0.01, "user_id": "replay-user-2"})
        assert r.status_code == 202, r.text
        assert r.json()["replay_of"] == run["id"] and r.json()["status"] == "queued"
        job_id = r.json()["job_id"]
        wait_completed(c, job_id)
        again = run_of_job(c, job_id)
        assert (again["start_date"], again["end_date"], again["cash"]) == (START, "2024-01-19", 50_000)
        assert again["commission_pct"] == 0.01 and again["parameters"]["user_id"] == "replay-user-2"
        assert again["total_trades"] > 0 and again["metrics"]["sharpe_ratio"] is not None
        # The seed-004 files of the new user are there; the first user's are untouched.
        assert c.get(f"/api/v1/backtest/metadata/replay-user-2/{seed_strategy}").status_code == 200
        assert c.get(f"/api/v1/backtest/metadata/replay-user/{seed_strategy}").status_code == 200

        # A backtest's replay has no user.
        bt = c.post("/backtest", json={"ticker": "DEMO-DAILY", "strategy": "sma_crossover"}).json()
        refused = c.post(f"/runs/{bt['id']}/replay", json={"user_id": "x"})
        assert refused.status_code == 400 and refused.json()["error"]["details"]["errors"][0]["field"] == "user_id"
