"""`GET /runs/{id}/report` over HTTP, checked against an independent calculation: plain
pandas written from the definitions (domain/report.py's docstring, shown in /docs) on the
same equity curve as `equity.csv` exports it, the same trades (`trades.csv`) and the same
bars (`/api/v1/datasets/{id}/bars`), to 1e-9 relative.

A results service of its own (SQLite), a real engine and a gateway on real uvicorn servers.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from hindsight.runs.v1 import runs_pb2, runs_pb2_grpc

from libs.grpc_util import blocking_channel
from tests.gateway.conftest import Gateway, Harness, engine_stack
from tests.gateway.helpers import assert_error

KEYS = {t: f"{t}-key-" + t[-1] * 24 for t in ("report-a", "report-b")}
REL = 1e-9
NS_DAY = 86_400 * 10**9


class Stack:
    def __init__(self, gw: Gateway, results_addr: str) -> None:
        self.gw = gw
        self.results_addr = results_addr

    def client(self, tenant: str = "report-a") -> httpx.Client:
        return self.gw.client(headers={"X-API-Key": KEYS[tenant]}, timeout=60)


@pytest.fixture(scope="module")
def stack(harness: Harness):
    with engine_stack(harness, KEYS) as (results, _, gw):
        yield Stack(gw, results.addr)


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


def _csv(c: httpx.Client, path: str) -> pd.DataFrame:
    r = c.get(path)
    assert r.status_code == 200, r.text
    return pd.DataFrame(list(csv.DictReader(io.StringIO(r.text))))


def _curve(c: httpx.Client, run_id: int) -> pd.DataFrame:
    df = _csv(c, f"/runs/{run_id}/equity.csv")
    df["t"] = pd.to_datetime(df["timestamp"], utc=True).dt.as_unit("ns")
    df["equity"] = df["equity"].astype(float)
    return df


# ------------------------------------------------------------------ the independent calculation


def ref_day_ends(curve: pd.DataFrame, tz: str) -> pd.Series:
    """Equity at the last bar of each local day (every bar is in the curve for these runs)."""
    local_day = curve["t"].dt.tz_convert(tz).dt.date
    return curve.groupby(local_day)["equity"].last()


def ref_monthly(day_ends: pd.Series, cash: float) -> list[tuple[int, int, float]]:
    idx = pd.to_datetime(pd.Series(day_ends.index))
    last = day_ends.groupby([idx.dt.year.to_numpy(), idx.dt.month.to_numpy()]).last()
    prev = last.shift(1).fillna(cash)
    return [(int(y), int(m), float(v)) for (y, m), v in ((last / prev - 1) * 100).items()]


def ref_drawdowns(curve: pd.DataFrame, cash: float) -> list[dict[str, Any]]:
    e = curve["equity"]
    peak = e.clip(lower=cash).cummax()
    under = e < peak
    runs = (under != under.shift(fill_value=False)).cumsum()[under]
    t = curve["t"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    ns = curve["t"].astype("int64")
    out = []
    for _, part in e[under].groupby(runs):
        a, b = part.index[0], part.index[-1]
        start = a - 1 if a > 0 else 0
        rec = b + 1 if b + 1 < len(e) else None
        out.append({"start": t[start], "trough": t[part.idxmin()], "recovery": t[rec] if rec is not None else None,
                    "depth_pct": (part.min() / peak[a] - 1) * 100,
                    "length_days": (ns[rec if rec is not None else len(e) - 1] - ns[start]) / NS_DAY})
    return sorted(out, key=lambda d: (d["depth_pct"], d["start"]))[:5]


def ref_rolling(day_ends: pd.Series, cash: float, window: int, periods: int) -> list[float]:
    r = pd.concat([pd.Series([cash]), day_ends.reset_index(drop=True)]).pct_change().iloc[1:]
    return (r.rolling(window).mean() / r.rolling(window).std() * math.sqrt(periods)).iloc[window - 1:].tolist()


def ref_exposure(c: httpx.Client, dataset_id: str, trades: pd.DataFrame, side: str | None) -> float:
    bars = c.get(f"/api/v1/datasets/{dataset_id}/bars", params={"limit": 5000}).json()
    assert not bars["downsampled"]
    t = pd.to_datetime(pd.Series([b["timestamp"] for b in bars["bars"]]), utc=True).to_numpy()[:, None]
    picked = trades if side is None else trades[trades["side"] == side]
    entry = pd.to_datetime(picked["entry_time"], utc=True).to_numpy()[None, :]
    exit_ = pd.to_datetime(picked["exit_time"], utc=True).to_numpy()[None, :]
    return float(((entry <= t) & (t < exit_)).any(axis=1).mean() * 100)


def check_against_reference(c: httpx.Client, report: dict, tz: str, periods: int) -> None:
    run = report["run"]
    cash = run["cash"]
    curve = _curve(c, run["id"])
    assert len(curve) == run["bars"]  # every bar kept: the reference sees the run's own curve
    days = ref_day_ends(curve, tz)
    assert report["days"] == len(days)
    want = ref_monthly(days, cash)
    got = [(m["year"], m["month"], m["return_pct"]) for m in report["monthly_returns"]]
    assert [g[:2] for g in got] == [w[:2] for w in want]
    assert all(close(g[2], w[2]) for g, w in zip(got, want)), (got, want)

    dd = ref_drawdowns(curve, cash)
    assert len(report["drawdowns"]) == len(dd) == 5
    for g, w in zip(report["drawdowns"], dd):
        assert (g["start"], g["trough"], g["recovery"]) == (w["start"], w["trough"], w["recovery"])
        assert close(g["depth_pct"], w["depth_pct"]) and close(g["length_days"], w["length_days"])
    assert close(report["drawdowns"][0]["depth_pct"], run["metrics"]["max_drawdown_pct"])

    window = report["rolling_sharpe"]["window"]
    rolling = ref_rolling(days, cash, window, periods)
    points = report["rolling_sharpe"]["points"]
    assert len(points) == len(rolling) == report["rolling_sharpe"]["points_total"]
    assert all(close(p[1], w) for p, w in zip(points, rolling))

    trades = _csv(c, f"/runs/{run['id']}/trades.csv")
    dataset_id = report["dataset"]["dataset_id"]
    assert close(report["exposure_pct"], ref_exposure(c, dataset_id, trades, None))
    assert close(report["exposure"]["long_pct"], ref_exposure(c, dataset_id, trades, "long"))
    assert close(report["exposure"]["short_pct"], ref_exposure(c, dataset_id, trades, "short"))
    assert report["trade_returns_pct"] == [float(x) for x in trades["return_pct"]]


# ------------------------------------------------------------------ tests


def test_report_of_a_daily_backtest_equals_pandas(stack: Stack) -> None:
    with stack.client() as c:
        bt = c.post("/backtest", json={"ticker": "DEMO-DAILY", "strategy": "sma_crossover",
                                       "parameters": {"fast_period": 10, "slow_period": 30}}).json()
        report = c.get(f"/runs/{bt['id']}/report").json()
        assert report["rolling_sharpe"]["window"] == 182  # DEMO-DAILY is 24/7: P = 365
        assert report["periods_per_year"] == 365 and report["calendar"] == "monthly"
        assert report["dataset"] == {**bt["dataset"], "timezone": "UTC"} | {"calendar": "continuous"}
        check_against_reference(c, report, "UTC", 365)
        # The months compound to the total return; the default window's last point is the
        # Sharpe ratio of those days.
        total = np.prod([1 + m["return_pct"] / 100 for m in report["monthly_returns"]]) - 1
        assert math.isclose(total * 100, bt["metrics"]["total_return_pct"], rel_tol=REL)
        assert report["daily_returns"]["count"] == report["days"] == 2000
        assert report["notes"] == [] and report["day_ends_source"] == "stored"
        assert report["links"]["html"] == f"/runs/{bt['id']}/report.html"
        v1 = c.get(f"/api/v1/runs/{bt['id']}/report", params={"window": 30}).json()
        assert v1["links"]["html"] == f"/api/v1/runs/{bt['id']}/report.html"
        assert v1["rolling_sharpe"]["window"] == 30 and v1["monthly_returns"] == report["monthly_returns"]


def test_report_of_a_long_short_intraday_backtest_in_new_york_equals_pandas(stack: Stack) -> None:
    # 4-hour bars around the clock, dated in New York: local days are not UTC days.
    ts = pd.date_range("2023-01-02", periods=1900, freq="4h", tz="America/New_York")
    rng = np.random.default_rng(11)
    price = 100 * np.exp(np.cumsum(rng.normal(0.0001, 0.01, len(ts))))
    frame = pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S%z"), "open": price, "high": price * 1.004,
                          "low": price * 0.996, "close": price, "volume": 1000})
    with stack.client() as c:
        up = c.post("/api/v1/datasets", files={"file": ("ny.csv", frame.to_csv(index=False).encode())},
                    data={"ticker": "NY-4H", "interval": "4h", "timezone": "America/New_York"})
        assert up.status_code == 201, up.text
        bt = c.post("/backtest", json={"ticker": "NY-4H", "strategy": "ema_crossover", "direction": "both",
                                       "parameters": {"fast_period": 5, "slow_period": 20}})
        assert bt.status_code == 200, bt.text
        report = c.get(f"/runs/{bt.json()['id']}/report", params={"window": 20}).json()
        assert report["exposure"]["long_pct"] > 0 and report["exposure"]["short_pct"] > 0
        check_against_reference(c, report, "America/New_York", 365)


def test_report_of_a_downsampled_minute_backtest_keeps_its_exact_figures(stack: Stack) -> None:
    with stack.client() as c:
        bt = c.post("/backtest", json={"ticker": "DEMO-MINUTE", "strategy": "ema_crossover",
                                       "parameters": {"fast_period": 20, "slow_period": 60}}).json()
        assert bt["bars"] == 15_000 and len(bt["equity_curve"]) <= 2000
        report = c.get(f"/runs/{bt['id']}/report", params={"window": 40}).json()
        m = bt["metrics"]
        # Day ends are stored apart from the downsampled curve: the one window over all 40 days
        # is the run's Sharpe ratio, and the months compound to its total return.
        assert report["days"] == 40 and report["rolling_sharpe"]["window"] == 40
        assert close(report["rolling_sharpe"]["points"][0][1], m["sharpe_ratio"])
        total = np.prod([1 + x["return_pct"] / 100 for x in report["monthly_returns"]]) - 1
        assert math.isclose(total * 100, m["total_return_pct"], rel_tol=REL)
        # The stored curve keeps the deepest drawdown's peak and trough.
        assert close(report["drawdowns"][0]["depth_pct"], m["max_drawdown_pct"])
        assert report["calendar"] == "daily" and len(report["daily_pnl"]) == 40  # Jan 1 .. Feb 23
        assert report["dataset"]["timezone"] == "Asia/Kolkata" and report["periods_per_year"] == 252
        assert report["exposure"]["bars"] == 15_000 and report["trades_total"] == len(bt["trades"])
        assert len(report["equity"]["timestamps"]) <= 2000


def test_a_short_run_reports_daily_pnl(stack: Stack) -> None:
    with stack.client() as c:
        bt = c.post("/backtest", json={"ticker": "DEMO-DAILY", "strategy": "buy_and_hold",
                                       "start_date": "2020-03-01", "end_date": "2020-04-15"}).json()
        report = c.get(f"/runs/{bt['id']}/report").json()
    assert report["calendar"] == "daily" and len(report["daily_pnl"]) == 46
    assert math.isclose(sum(d["pnl"] for d in report["daily_pnl"]), bt["metrics"]["pnl"], rel_tol=REL)
    assert report["rolling_sharpe"]["window"] == 23  # a short run: half its days
    assert len(report["rolling_sharpe"]["points"]) == 46 - 23 + 1


def test_a_run_saved_before_the_report_existed_says_what_is_approximate(stack: Stack) -> None:
    """A run as results kept them before: curve and trades only (day ends derived from it)."""
    with stack.client() as c:
        bt = c.post("/backtest", json={"ticker": "DEMO-MINUTE", "strategy": "sma_crossover"}).json()
        old = runs_pb2.Run(kind="backtest", ticker="DEMO-MINUTE", strategy="sma_crossover", cash=bt["cash"],
                           bars=bt["bars"], dataset_id=bt["dataset"]["dataset_id"], dataset_version=bt["dataset"]["version"])
        from hindsight.engine.v1 import engine_pb2

        points = [engine_pb2.EquityPoint(ts=int(pd.Timestamp(p["timestamp"]).value), equity=p["equity"],
                                         buy_and_hold=p["buy_and_hold"]) for p in bt["equity_curve"]]
        with blocking_channel(stack.results_addr) as channel:
            saved = runs_pb2_grpc.RunsServiceStub(channel).SaveRun(
                runs_pb2.SaveRunRequest(tenant_id="report-a", run=old, equity=points), timeout=10).run
        report = c.get(f"/runs/{saved.run_id}/report").json()
    assert report["day_ends_source"] == "curve" and report["exposure_pct"] is None
    assert any("Replay the run for exact figures" in n for n in report["notes"])
    assert any("exposure" in n for n in report["notes"])
    assert report["days"] == 40 and report["drawdowns"]


def test_bad_requests_are_json_4xx(stack: Stack) -> None:
    with stack.client() as c:
        bt = c.post("/backtest", json={"ticker": "DEMO-DAILY", "strategy": "sma_crossover"}).json()
        assert_error(c.get("/runs/999999/report"), 404)
        assert_error(c.get("/api/v1/runs/999999/report"), 404)
        assert_error(c.get("/runs/abc/report"), 400)
        for window in ("1", "0", "-5", "2521", "abc", "12.5", ""):
            err = assert_error(c.get(f"/runs/{bt['id']}/report", params={"window": window}), 400)
            assert err["details"]["errors"][0]["field"] == "query.window", (window, err)
    with stack.client("report-b") as other:
        assert_error(other.get(f"/runs/{bt['id']}/report"), 404)
        assert_error(other.get(f"/api/v1/runs/{bt['id']}/report"), 404)


def test_a_sweeps_run_has_no_report_but_says_how_to_get_one(stack: Stack) -> None:
    import time

    with stack.client() as c:
        job = c.post("/api/v1/strategy/sweep", json={"ticker": "DEMO-DAILY", "fast_range": [10, 12],
                                                     "slow_range": [20, 22], "step": 2, "min_trades": 10}).json()
        deadline = time.time() + 60
        while c.get(f"/api/v1/jobs/{job['job_id']}").json()["status"] != "completed":
            assert time.time() < deadline
            time.sleep(0.1)
        runs = c.get("/runs", params={"kind": "sweep"}).json()["runs"]
        err = assert_error(c.get(f"/runs/{runs[0]['id']}/report"), 404)
        assert "replay" in err["message"]


def test_the_report_is_documented(stack: Stack) -> None:
    with stack.client() as c:
        spec = c.get("/openapi.json").json()
    for path in ("/runs/{run_id}/report", "/api/v1/runs/{run_id}/report"):
        op = spec["paths"][path]["get"]
        assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/RunReport")
        assert "length_days" in op["description"] and "monthly_returns" in op["description"]
    schema = spec["components"]["schemas"]["RunReport"]
    assert {"monthly_returns", "drawdowns", "rolling_sharpe", "exposure_pct", "trade_returns_pct"} <= set(
        schema["properties"])


def test_report_html_is_one_self_contained_file(stack: Stack) -> None:
    import re
    import tomllib
    from pathlib import Path

    version = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]["version"]
    with stack.client() as c:
        bt = c.post("/backtest", json={"ticker": "DEMO-MINUTE", "strategy": "sma_crossover", "direction": "both"}).json()
        r = c.get(f"/api/v1/runs/{bt['id']}/report.html")
        assert r.status_code == 200, r.text[:500]
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert r.headers["content-disposition"] == f'attachment; filename="run_{bt["id"]}_report.html"'
        page = r.text
        assert len(r.content) < 5_000_000
        assert f"Run #{bt['id']}: sma_crossover on DEMO-MINUTE" in page and f"Hindsight {version}" in page
        assert bt["dataset"]["dataset_id"] in page and "fast_period" in page and 'data-metric="sharpe_ratio"' in page
        # Nothing is loaded from anywhere: no external element, and a policy that forbids connections.
        markup = page.split('<script type="application/json"', 1)[0]
        assert not re.search(r"<(link|img|iframe|object|embed)\b", markup)
        assert not re.search(r"""\b(src|href)\s*=\s*["']""", markup)
        assert "connect-src 'none'" in markup and "default-src 'none'" in markup
        data = page.split('<script type="application/json" id="report-data">', 1)[1].split("</script>", 1)[0]
        embedded = __import__("json").loads(data)
        assert embedded["report"]["run_id"] == bt["id"] and 0 < len(embedded["bars"]) <= 2000
        report = c.get(f"/api/v1/runs/{bt['id']}/report").json()
        assert embedded["report"]["monthly_returns"] == report["monthly_returns"]
        assert embedded["report"]["drawdowns"] == report["drawdowns"]
        assert_error(c.get("/runs/999999/report.html"), 404)
        assert_error(c.get(f"/runs/{bt['id']}/report.html", params={"window": "1"}), 400)
    with stack.client("report-b") as other:
        assert_error(other.get(f"/runs/{bt['id']}/report.html"), 404)


def test_html_cannot_be_broken_out_of_by_a_runs_text() -> None:
    from services.gateway import report_html

    evil = "</script><script>alert(1)</script>"
    report = {
        "run_id": 1, "hindsight_version": "0.1.0", "generated_at": "2024-01-01T00:00:00Z", "notes": [evil],
        "run": {"id": 1, "strategy": evil, "ticker": "X", "kind": "backtest", "parameters": {"name": evil, "d": {"x": evil}},
                "cash": 1.0, "direction": "long", "fill": "close", "commission_pct": 0, "slippage_pct": 0, "bars": 1,
                "metrics": {}},
        "dataset": None, "exposure": {"long_pct": None, "short_pct": None, "bars": None, "bars_in_market": None},
        "exposure_pct": None, "calendar": "monthly", "rolling_sharpe": {"window": 2}, "trades_total": 0,
        "daily_returns": {"count": 0},
    }
    page = report_html.render(report, None)
    assert page.count("<script") == 3 and evil not in page
