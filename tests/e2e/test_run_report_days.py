"""Issue 13: the report of a day-by-day run, checked against an independent computation:
the reference trades of the e2e strategy (TA-Lib RSI and the plain-Python bar loop,
tests/e2e/day_by_day_support.py) on the demo bars, and the report's definitions
(domain/report.py's docstring) written again with pandas, to 1e-9 relative. In both modes
(standalone, and distributed with two engines sharing the range's shards)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pandas as pd

from tests.e2e.day_by_day_support import (  # noqa: F401  (fixtures)
    TZ,
    auth_headers,
    completed_run,
    dbd_stack_fixture,
    demo_bars,
    expected_trades,
    seed_strategy_fixture,
)

START, END = "2024-01-08", "2024-02-09"
QTY = 10
REL = 1e-9


def close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-9)


def test_day_by_day_report_equals_the_reference(dbd_stack, seed_strategy):
    with httpx.Client(base_url=dbd_stack.base_url, headers=auth_headers(dbd_stack), timeout=60) as c:
        _, run = completed_run(c, seed_strategy, "report-user", START, END)
        run_id = run["id"]
        report = c.get(f"/api/v1/runs/{run_id}/report", params={"window": 10}).json()
        trades_csv = c.get(f"/runs/{run_id}/trades.csv")
        assert trades_csv.status_code == 200

    trades = expected_trades(START, END)
    days = sorted(trades)
    cash = report["run"]["cash"]
    pnls = np.array([sum(QTY * (t[5] - t[4]) for t in trades[d]) for d in days])
    equity = cash + np.cumsum(pnls)
    assert report["days"] == len(days) and report["first_day"] == days[0] and report["last_day"] == days[-1]
    assert report["dataset"]["timezone"] == TZ and report["periods_per_year"] == 252

    # Under two months: each day's P&L, and the months all the same.
    assert report["calendar"] == "daily"
    assert [d["date"] for d in report["daily_pnl"]] == days
    assert all(close(d["pnl"], p) for d, p in zip(report["daily_pnl"], pnls))
    s = pd.Series(equity, index=pd.to_datetime(days))
    last = s.groupby([s.index.year, s.index.month]).last()
    want = (last / last.shift(1).fillna(cash) - 1) * 100
    assert [(m["year"], m["month"]) for m in report["monthly_returns"]] == list(want.index)
    assert all(close(m["return_pct"], w) for m, w in zip(report["monthly_returns"], want.tolist()))

    # Drawdowns between day ends.
    e = pd.Series(equity)
    peak = e.clip(lower=cash).cummax()
    under = e < peak
    groups = (under != under.shift(fill_value=False)).cumsum()[under]
    depths = sorted((part.min() / peak[part.index[0]] - 1) * 100 for _, part in e[under].groupby(groups))[:5]
    assert len(report["drawdowns"]) == len(depths) > 0
    assert all(close(d["depth_pct"], w) for d, w in zip(report["drawdowns"], depths))
    assert close(report["drawdowns"][0]["depth_pct"], report["run"]["metrics"]["max_drawdown_pct"])

    # Rolling Sharpe over 10 days.
    r_ = pd.Series(np.concatenate([[cash], equity])).pct_change().iloc[1:]
    rolling = (r_.rolling(10).mean() / r_.rolling(10).std() * math.sqrt(252)).iloc[9:].tolist()
    assert len(report["rolling_sharpe"]["points"]) == len(rolling)
    assert all(close(p[1], w) for p, w in zip(report["rolling_sharpe"]["points"], rolling))

    # Exposure: the days' bars with a reference position open (entry bar <= bar < exit bar).
    bars = demo_bars()
    zone = ZoneInfo(TZ)
    local = pd.Series([datetime.fromtimestamp(ns / 1e9, UTC).astimezone(zone) for ns in bars.ts.tolist()])
    in_days = local.map(lambda t: t.date().isoformat()).isin(days).to_numpy()
    t = bars.ts[in_days][:, None]
    flat = [x for d in days for x in trades[d]]
    entry = np.array([pd.Timestamp(x[2]).value for x in flat])[None, :]
    exit_ = np.array([pd.Timestamp(x[3]).value for x in flat])[None, :]
    held = ((entry <= t) & (t < exit_)).any(axis=1)
    assert report["exposure"]["bars"] == int(in_days.sum())
    assert close(report["exposure_pct"], float(held.mean() * 100))
    assert close(report["exposure"]["long_pct"], report["exposure_pct"]) and report["exposure"]["short_pct"] == 0.0

    # Every position's return, oldest first; and they are the run's trades.csv.
    assert report["trades_total"] == len(flat) == trades_csv.text.count("\n") - 1
    want_returns = [(x[5] / x[4] - 1) * 100 for x in flat]
    assert all(close(g, w) for g, w in zip(report["trade_returns_pct"], want_returns))
    assert report["trades"][0]["side"] == "long" and report["trades"][0]["entry_time"].endswith("Z")
    assert len(report["notes"]) == 1 and "day-by-day" in report["notes"][0]
