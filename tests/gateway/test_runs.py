"""Seed 003 over HTTP: synchronous backtests, saved runs, replay, compare, CSV exports.

A results service of its own (SQLite, demo datasets for its tenants), a real
engine (gRPC, sharing the in-process bus so sweeps run too) and gateways on
real uvicorn servers; every request is real HTTP.
"""

from __future__ import annotations

import csv
import io
import math
import time
from typing import Any

import httpx
import numpy as np
import pytest

from domain.backtest_spec import normalize_parameters
from services.engine import backtest as bt
from services.engine import backtest_servicer
from services.engine.bars import Bars
from services.results.demo_datasets import demo_daily, demo_minute
from tests.gateway.conftest import Gateway, Harness, base_settings
from tests.gateway.helpers import assert_error

KEYS = {t: f"{t}-key-" + t[-1] * 24 for t in ("runs-a", "runs-b", "runs-c", "runs-d", "runs-e", "runs-w")}
SEED_FIELDS = {"id", "ticker", "strategy", "parameters", "start_date", "end_date", "interval", "cash", "pnl",
               "return_pct", "sharpe_ratio", "max_drawdown", "total_trades", "winning_trades", "losing_trades",
               "created_at"}
SUMMARY_FIELDS = {"id", "ticker", "strategy", "interval", "pnl", "return_pct", "created_at"}
METRICS = {"total_return_pct", "annualized_return", "sharpe_ratio", "sortino_ratio", "max_drawdown_pct",
           "win_rate_pct", "profit_factor", "total_trades", "trades_per_month", "avg_trade_duration", "score"}
SMA = {"ticker": "DEMO-DAILY", "strategy": "sma_crossover", "parameters": {"fast_period": 10, "slow_period": 30}}


class Stack:
    def __init__(self, gw: Gateway, dead: Gateway) -> None:
        self.gw = gw
        self.dead = dead

    def client(self, tenant: str | None = None, gw: Gateway | None = None) -> httpx.Client:
        headers = {"X-API-Key": KEYS[tenant]} if tenant else {}
        return (gw or self.gw).client(headers=headers, timeout=60)


@pytest.fixture(scope="module")
def stack(harness: Harness):
    from services.engine.service import start as start_engine

    results = harness.results(hindsight_bootstrap_keys=",".join(f"{t}:{k}" for t, k in KEYS.items()))
    engine = harness.loop.run(start_engine(base_settings(harness.tmp, results_addr=results.addr), results.bus, port=0))
    gw = harness.gateway(results.addr, engine_addr=f"127.0.0.1:{engine.port}")
    dead = harness.gateway(results.addr, engine_addr="127.0.0.1:9")  # no engine there
    yield Stack(gw, dead)
    harness.loop.run(engine.stop(grace=1.0))


def _bars(demo) -> Bars:
    b = demo.bars
    return Bars(b.ts, b.open, b.high, b.low, b.close, b.volume, timezone=demo.timezone, calendar=demo.calendar)


def _post(c: httpx.Client, body: Any, path: str = "/backtest") -> dict[str, Any]:
    r = c.post(path, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_backtest_answers_the_full_result_and_saves_it(stack: Stack) -> None:
    with stack.client("runs-a") as c:
        body = _post(c, dict(SMA, cash=25_000, commission_pct=0.1, slippage=0.0005, fill="close"))
        assert set(body) >= SEED_FIELDS and set(body["metrics"]) >= METRICS
        assert body["id"] == body["run_id"] and body["kind"] == "backtest" and body["replay_of"] is None
        assert (body["start_date"], body["end_date"], body["interval"], body["cash"]) == (
            "2019-01-01", "2024-06-22", "1d", 25_000.0)
        assert (body["commission_pct"], body["slippage_pct"], body["fill"]) == (0.1, 0.05, "close")
        assert body["bars"] == 2000 and body["dataset"]["interval"] == "1d"

        # exactly what the engine computes on the same bars
        exp = bt.run_backtest(_bars(demo_daily()), "sma_crossover", normalize_parameters("sma_crossover", SMA["parameters"]),
                              fill="close", commission_pct=0.1, slippage_pct=0.05, initial_cash=25_000)
        for key in METRICS | {"final_equity", "pnl", "winning_trades", "losing_trades", "buy_and_hold_return_pct"}:
            assert body["metrics"][key] == exp.metrics[key], key
        assert body["pnl"] == exp.metrics["pnl"] and body["max_drawdown"] == exp.metrics["max_drawdown_pct"]
        assert len(body["trades"]) == body["total_trades"] == len(exp.trades) > 0
        t0 = body["trades"][0]
        assert set(t0) >= {"side", "entry_time", "exit_time", "entry_price", "exit_price", "units", "pnl",
                           "return_pct", "commission", "exit_reason"}
        assert t0["pnl"] == exp.trades[0].pnl and t0["entry_time"].endswith("Z")
        curve = body["equity_curve"]
        assert len(curve) == 2000 and set(curve[0]) == {"timestamp", "equity", "buy_and_hold"}
        assert curve[0]["timestamp"] == "2019-01-01T00:00:00Z" and curve[-1]["equity"] == exp.metrics["final_equity"]
        assert curve[-1]["buy_and_hold"] == pytest.approx(25_000 * (1 + exp.metrics["buy_and_hold_return_pct"] / 100))

        saved = c.get(f"/runs/{body['id']}").json()
        assert {k: saved[k] for k in SEED_FIELDS} == {k: body[k] for k in SEED_FIELDS}
        assert saved["metrics"] == body["metrics"] and saved["replayable"] is True
        assert saved["links"]["trades_csv"] == f"/runs/{body['id']}/trades.csv"


def test_long_minute_data_is_downsampled_and_resampled(stack: Stack) -> None:
    with stack.client("runs-a") as c:
        minute = _post(c, {"ticker": "DEMO-MINUTE", "strategy": "ema", "parameters": {"fast": 20, "slow": 60}})
        assert minute["bars"] == 40 * 375 and minute["equity_curve_points_total"] == 15_000
        assert len(minute["equity_curve"]) <= 2000 and minute["interval"] == "1m"
        assert minute["parameters"] == {"fast_period": 20, "slow_period": 60}
        hourly = _post(c, {"ticker": "DEMO-MINUTE", "strategy": "rsi_reversion", "interval": "1h",
                           "parameters": {"period": 7}})
        # 09:15-15:29 local: buckets 09, 10, ..., 15 -> 7 per day
        assert hourly["bars"] == 40 * 7 and hourly["source_bars"] == 15_000 and hourly["interval"] == "1h"
        assert hourly["dataset"]["interval"] == "1m" and hourly["dataset"]["timezone"] == "Asia/Kolkata"
        exp = bt.run_backtest(bt.resample(_bars(demo_minute()), "1h"), "rsi_reversion",
                              normalize_parameters("rsi_reversion", {"period": 7}))
        assert hourly["metrics"]["sharpe_ratio"] == exp.metrics["sharpe_ratio"]
        daily = _post(c, {"ticker": "DEMO-MINUTE", "strategy": "buy_and_hold", "interval": "1d",
                          "start_date": "2024-01-08", "end_date": "2024-01-12"})
        assert daily["bars"] == 5 and (daily["start_date"], daily["end_date"]) == ("2024-01-08", "2024-01-12")
        err = assert_error(c.post("/backtest", json=dict(SMA, interval="1h")), 400)
        assert err["details"]["errors"][0]["field"] == "interval" and "finer" in err["message"]


BAD_BODIES = [
    ({}, "ticker"),
    ({"ticker": "DEMO-DAILY"}, "strategy"),
    (dict(SMA, ticker=""), "ticker"),
    (dict(SMA, ticker="BAD TICKER!"), "ticker"),
    (dict(SMA, ticker=42), "ticker"),
    (dict(SMA, strategy="martingale"), "strategy"),
    (dict(SMA, strategy=["sma"]), "strategy"),
    (dict(SMA, strategy_id="x"), "strategy_id"),
    ({"ticker": "DEMO-DAILY", "strategy_id": "../etc"}, "strategy_id"),
    (dict(SMA, parameters=[10, 30]), "parameters"),
    (dict(SMA, parameters="{not json"), "parameters"),
    (dict(SMA, parameters={"fast_period": 30, "slow_period": 10}), "parameters.fast_period"),
    (dict(SMA, parameters={"fast_period": "ten"}), "parameters.fast_period"),
    (dict(SMA, parameters={"fast_period": 2.5}), "parameters.fast_period"),
    (dict(SMA, parameters={"fast_period": 0}), "parameters.fast_period"),
    (dict(SMA, parameters={"slow_period": 100000}), "parameters.slow_period"),
    (dict(SMA, parameters={"lookback": 3}), "parameters.lookback"),
    ({"ticker": "DEMO-DAILY", "strategy": "rsi_reversion", "parameters": {"oversold": 90}}, "parameters.oversold"),
    (dict(SMA, start_date="2024-13-01"), "start_date"),
    (dict(SMA, start_date="01-06-2024"), "start_date"),
    (dict(SMA, end_date="2024-02-30"), "end_date"),
    (dict(SMA, end_date=20240101), "end_date"),
    (dict(SMA, start_date="2024-06-01", end_date="2024-01-01"), "start_date"),
    (dict(SMA, interval="2m"), "interval"),
    (dict(SMA, interval="1wk"), "interval"),
    (dict(SMA, cash=0), "cash"),
    (dict(SMA, cash=-100), "cash"),
    (dict(SMA, cash="lots"), "cash"),
    (dict(SMA, cash=1e16), "cash"),
    (dict(SMA, cash=True), "cash"),
    (dict(SMA, cash=100, initial_cash=200), "initial_cash"),
    (dict(SMA, commission_pct=-1), "commission_pct"),
    (dict(SMA, commission_pct=11), "commission_pct"),
    (dict(SMA, commission=0.5), "commission"),
    (dict(SMA, commission=0.001, commission_pct=0.1), "commission"),
    (dict(SMA, slippage_pct="x"), "slippage_pct"),
    (dict(SMA, direction="sideways"), "direction"),
    ({"ticker": "DEMO-DAILY", "strategy": "buy_and_hold", "direction": "short"}, "direction"),
    (dict(SMA, fill="tomorrow"), "fill"),
    (dict(SMA, save_run=False), "save_run"),
    (dict(SMA, ticker="NO-SUCH"), "ticker"),  # valid name, no data: the seed's message
    (dict(SMA, start_date="2030-01-01"), "start_date"),  # no bars in the range
]


def test_every_malformed_field_is_a_400_naming_it(stack: Stack) -> None:
    with stack.client("runs-e") as c:
        before = c.get("/runs", params={"limit": 0}).json()["total"]
        for body, field in BAD_BODIES:
            r = c.post("/backtest", json=body)
            assert r.status_code == 400, (body, r.status_code, r.text[:300])
            err = assert_error(r, 400)
            fields = [e["field"] for e in err["details"]["errors"]]
            assert field in fields, (body, err)
        for raw in (b"[1, 2]", b"not json", b'{"ticker": NaN}', b"\xff\xfe"):
            assert_error(c.post("/backtest", content=raw, headers={"Content-Type": "application/json"}), 400)
        err = assert_error(c.post("/api/v1/runs/backtest", json={"strategy": "nope", "cash": -1, "fill": 3}), 400)
        assert {e["field"] for e in err["details"]["errors"]} >= {"ticker", "strategy", "cash", "fill"}
        assert c.get("/runs", params={"limit": 0}).json()["total"] == before  # nothing saved
        # A client that labels JSON as a form still gets JSON semantics (seed clients are loose).
        r = c.post("/backtest", content=b'{"ticker": "DEMO-DAILY", "strategy": "buy_and_hold"}',
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200, r.text


def test_unknown_saved_strategy_is_404_and_too_large_is_413(stack: Stack, monkeypatch) -> None:
    with stack.client("runs-e") as c:
        assert_error(c.post("/backtest", json={"ticker": "DEMO-DAILY", "strategy_id": "9b2f-unknown"}), 404, "not_found")
        monkeypatch.setattr(backtest_servicer, "MAX_SYNC_BARS", 1999)
        err = assert_error(c.post("/backtest", json=SMA), 413, "too_large_for_sync")
        assert "2000 bars" in err["message"] and "/api/v1/strategy/sweep" in err["message"]
        assert _post(c, dict(SMA, start_date="2024-01-01"))["bars"] < 1999  # a narrower range fits
        monkeypatch.setattr(backtest_servicer, "MAX_SYNC_BARS", 1_000_000)
        monkeypatch.setattr(backtest_servicer, "MAX_SYNC_TRADES", 5)
        err = assert_error(c.post("/backtest", json=SMA), 413, "too_large_for_sync")
        assert "trades" in err["message"] and err["details"]["submit_job"] == "/api/v1/strategy/sweep"


def test_the_bar_limit_counts_the_bars_backtested_after_resampling(stack: Stack, monkeypatch) -> None:
    # DEMO-MINUTE: 15,000 one-minute bars. Over a cap of 1,999 at 1m, but 1,000 bars at 15m:
    # the 413 advises "choose a coarser interval", so a coarser interval must fit.
    monkeypatch.setattr(backtest_servicer, "MAX_SYNC_BARS", 1999)
    minute = {"ticker": "DEMO-MINUTE", "strategy": "sma_crossover"}
    with stack.client("runs-e") as c:
        err = assert_error(c.post("/backtest", json=dict(minute, interval="1m")), 413, "too_large_for_sync")
        assert "15000 bars" in err["message"] and "coarser interval" in err["message"]
        run = _post(c, dict(minute, interval="15m"))
        assert run["bars"] == 1000 and run["source_bars"] == 15000
        # Resampling itself is bounded too: source bars beyond MAX_SYNC_SOURCE_BARS are a 413.
        monkeypatch.setattr(backtest_servicer, "MAX_SYNC_SOURCE_BARS", 14_999)
        err = assert_error(c.post("/backtest", json=dict(minute, interval="1d")), 413, "too_large_for_sync")
        assert "15000 bars of DEMO-MINUTE" in err["message"] and "narrow the dates" in err["message"]


def _prices_csv(lo: float, hi: float, n: int = 300) -> bytes:
    rows = ["timestamp,open,high,low,close,volume"]
    for i in range(n):
        o, c = (lo, hi) if i % 2 else (hi, lo)
        rows.append(f"{np.datetime64('2020-01-01') + i},{o!r},{hi!r},{lo!r},{c!r},1")
    return ("\n".join(rows) + "\n").encode()


@pytest.mark.parametrize(
    "lo,hi,strategies,extra",
    [
        (5e-321, 1e-320, ("sma_crossover", "rsi_reversion", "buy_and_hold"), {}),  # units = cash / price = inf
        (1e-200, 1e200, ("sma_crossover", "ema_crossover"), {"direction": "both", "commission_pct": 0.1}),
    ],
    ids=["denormal-prices", "overflowing-swings"],
)
def test_prices_that_overflow_the_arithmetic_are_a_400_not_a_500(stack: Stack, lo, hi, strategies, extra) -> None:
    with stack.client("runs-d") as c:
        up = c.post("/api/v1/datasets", files={"file": ("bars.csv", _prices_csv(lo, hi), "text/csv")},
                    data={"ticker": "ODD-PRICES", "interval": "1d", "calendar": "continuous"})
        assert up.status_code == 201, up.text
        try:
            before = c.get("/runs", params={"limit": 0}).json()["total"]
            for strategy in strategies:
                r = c.post("/backtest", json={"ticker": "ODD-PRICES", "strategy": strategy, **extra})
                assert r.status_code == 400, (strategy, r.status_code, r.text[:300])
                err = assert_error(r, 400)
                assert err["details"]["errors"][0]["field"] == "ticker", err
                assert "not a finite number" in err["message"], err
            assert c.get("/runs", params={"limit": 0}).json()["total"] == before  # nothing saved
        finally:
            c.delete(f"/api/v1/datasets/{up.json()['dataset_id']}")


def test_listing_paging_boundaries_and_filters(stack: Stack) -> None:
    with stack.client("runs-b") as c:
        made = [
            _post(c, SMA),
            _post(c, {"ticker": "DEMO-DAILY", "strategy": "buy_and_hold"}),
            _post(c, {"ticker": "DEMO-MINUTE", "strategy": "sma_crossover", "interval": "15m"}),
            _post(c, {"ticker": "demo-minute", "strategy": "macd_crossover"}),
            _post(c, dict(SMA, parameters={"fast_period": 5, "slow_period": 50})),
        ]
        ids = [m["id"] for m in made]
        assert ids == [1, 2, 3, 4, 5]  # numbered within the tenant

        def page(**params):
            r = c.get("/runs", params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            assert set(body) == {"runs", "total", "limit", "offset"}
            return [x["id"] for x in body["runs"]], body["total"]

        assert page() == ([5, 4, 3, 2, 1], 5)  # newest first
        listed = c.get("/runs").json()["runs"][0]
        assert set(listed) >= SUMMARY_FIELDS and listed["pnl"] == made[4]["pnl"]
        assert page(limit=2) == ([5, 4], 5)
        assert page(limit=2, offset=4) == ([1], 5)
        assert page(offset=5) == ([], 5)  # offset past the end: empty page, total still there
        assert page(offset=10_000) == ([], 5)
        assert page(limit=0) == ([], 5)  # count only
        assert page(limit=1000) == ([5, 4, 3, 2, 1], 5)
        assert c.get("/runs", params={"limit": 1}).json()["limit"] == 1
        assert page(ticker="demo-minute") == ([4, 3], 2)
        assert page(strategy="sma_crossover") == ([5, 3, 1], 3)
        assert page(ticker="DEMO-DAILY", strategy="sma_crossover", limit=1) == ([5], 2)
        assert page(ticker="AAPL", limit=10) == ([], 0)
        assert page(kind="sweep") == ([], 0)
        for params, field in (({"limit": 1001}, "query.limit"), ({"limit": -1}, "query.limit"),
                              ({"limit": "ten"}, "query.limit"), ({"offset": -1}, "query.offset"),
                              ({"offset": "x"}, "query.offset"), ({"offset": 2**31}, "query.offset"),
                              ({"kind": "other"}, "query.kind"), ({"ticker": "x" * 33}, "query.ticker"),
                              ({"ticker": "A\x01B"}, "query.ticker"), ({"strategy": "s" * 65}, "query.strategy")):
            err = assert_error(c.get("/runs", params=params), 400)
            assert err["details"]["errors"][0]["field"] == field, (params, err)
        # the versioned mount is the same listing
        assert c.get("/api/v1/runs", params={"limit": 2}).json()["runs"] == c.get("/runs", params={"limit": 2}).json()["runs"]


def test_404s_and_tenant_isolation(stack: Stack) -> None:
    with stack.client("runs-c") as owner, stack.client("runs-d") as intruder:
        run = _post(owner, SMA)
        other = _post(owner, {"ticker": "DEMO-DAILY", "strategy": "buy_and_hold"})
        assert (run["id"], other["id"]) == (1, 2)
        # runs-d has no runs: the owner's numbers are nothing to it
        for c in (intruder,):
            assert c.get("/runs").json() == {"runs": [], "total": 0, "limit": 100, "offset": 0}
            for path in ("/runs/1", "/runs/2", "/api/v1/runs/1", "/runs/1/trades.csv", "/runs/2/equity.csv",
                         "/api/v1/runs/1/equity.csv", "/runs/compare?ids=1,2"):
                assert_error(c.get(path), 404, "not_found")
            assert_error(c.post("/runs/1/replay"), 404, "not_found")
            assert_error(c.post("/api/v1/runs/2/replay", json={"cash": 5}), 404, "not_found")
        assert owner.get("/runs/1").status_code == 200
        for path in ("/runs/3", "/runs/999999", "/runs/3/trades.csv", "/runs/3/equity.csv", "/runs/compare?ids=1,3"):
            assert_error(owner.get(path), 404, "not_found")
        assert_error(owner.post("/runs/3/replay"), 404, "not_found")
        for path in ("/runs/0", "/runs/-1", "/runs/abc", "/runs/1.5", "/runs/99999999999999999999", "/runs/0/trades.csv"):
            err = assert_error(owner.get(path), 400)
            assert err["details"]["errors"][0]["field"] == "run_id"
        assert_error(owner.post("/runs/abc/replay"), 400)
        # what runs-d creates is its own run 1, not the owner's
        mine = _post(intruder, {"ticker": "DEMO-MINUTE", "strategy": "buy_and_hold"})
        assert mine["id"] == 1 and intruder.get("/runs/1").json()["ticker"] == "DEMO-MINUTE"
        assert owner.get("/runs/1").json()["ticker"] == "DEMO-DAILY"
        # no credentials on a standalone loopback gateway: the dev tenant, which has no runs here
        with stack.client() as dev:
            assert dev.get("/runs").json()["total"] == 0
            assert_error(dev.get("/runs/1"), 404)


def test_replay_reproduces_exactly_and_shows_overrides(stack: Stack) -> None:
    with stack.client("runs-a") as c:
        orig = _post(c, dict(SMA, commission_pct=0.05, direction="both"))
        same = c.post(f"/runs/{orig['id']}/replay")
        assert same.status_code == 200, same.text
        same = same.json()
        assert same["replay_of"] == orig["id"] and same["id"] == orig["id"] + 1
        assert same["metrics"] == orig["metrics"]  # exactly
        assert same["trades"] == orig["trades"] and same["equity_curve"] == orig["equity_curve"]
        for key in SEED_FIELDS - {"id", "created_at"}:
            assert same[key] == orig[key], key

        # the seed's curl body, verbatim
        r = c.post(f"/runs/{orig['id']}/replay", content=b'{\n    "cash": 50000.0\n  }',
                   headers={"Content-Type": "application/json"})
        rich = r.json()
        assert rich["cash"] == 50_000.0 and rich["replay_of"] == orig["id"]
        assert math.isclose(rich["return_pct"], orig["return_pct"], rel_tol=1e-9)  # all-in: returns scale with cash

        over = _post(c, {"start_date": "2021-01-01", "end_date": "2022-12-31", "interval": "1d",
                         "parameters": {"fast_period": 5}, "fill": "close", "slippage_pct": 0.1},
                     f"/api/v1/runs/{orig['id']}/replay")
        assert over["parameters"] == {"fast_period": 5, "slow_period": 30}  # merged into the original's
        assert (over["start_date"], over["end_date"], over["fill"], over["slippage_pct"]) == (
            "2021-01-01", "2022-12-31", "close", 0.1)
        assert (over["direction"], over["commission_pct"]) == ("both", 0.05)  # kept
        assert over["links"]["self"] == f"/api/v1/runs/{over['id']}"
        shown = c.get(f"/runs/{over['id']}").json()
        assert shown["parameters"] == over["parameters"] and shown["replay_of"] == orig["id"]
        # a replay of a replay links to its parent
        again = _post(c, {}, f"/runs/{over['id']}/replay")
        assert again["replay_of"] == over["id"] and again["metrics"] == over["metrics"]

        for body, field in (({"cash": 0}, "cash"), ({"start_date": "tomorrow"}, "start_date"),
                            ({"parameters": {"fast_period": 40}}, "parameters.fast_period"),
                            ({"parameters": {"bogus": 1}}, "parameters.bogus"), ({"ticker": "X"}, "ticker"),
                            ({"strategy": "ema"}, "strategy"), ({"interval": "3m"}, "interval"),
                            ({"end_date": "2018-01-01"}, "end_date"), ({"parameters": 5}, "parameters"),
                            ({"direction": "up"}, "direction")):
            err = assert_error(c.post(f"/runs/{orig['id']}/replay", json=body), 400)
            assert field in [e["field"] for e in err["details"]["errors"]], (body, err)
        assert_error(c.post(f"/runs/{orig['id']}/replay", json={"interval": "1h"}), 400)  # finer than the data


def _wait_job(c: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.time() + 60
    while time.time() < deadline:
        job = c.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end")


def test_a_sweep_is_saved_as_a_run_and_replays_its_best_exactly(stack: Stack) -> None:
    with stack.client("runs-c") as c:
        r = c.post("/api/v1/strategy/sweep", json={"ticker": "DEMO-DAILY", "fast_range": [5, 20], "slow_range": [20, 60],
                                                   "step": 5, "min_trades": 10, "strategy_type": "MACD",
                                                   "commission_pct": 0.1, "initial_cash": 7000})
        assert r.status_code == 202, r.text
        job = _wait_job(c, r.json()["job_id"])
        assert job["status"] == "completed", job
        runs = c.get("/runs", params={"kind": "sweep"}).json()["runs"]
        assert len(runs) == 1
        run = c.get(f"/runs/{runs[0]['id']}").json()
        sweep = run["sweep"]
        assert sweep["sweep_run_id"] == job["sweep_run_id"] and sweep["job_id"] == job["job_id"]
        assert sweep["combinations"] == job["combinations"] and sweep["min_trades"] == 10
        assert (run["strategy"], run["cash"], run["commission_pct"]) == ("macd_crossover", 7000.0, 0.1)
        best = c.get(sweep["results_url"]).json()["results"][0]
        assert run["parameters"] == {"fast_period": best["fast_period"], "slow_period": best["slow_period"],
                                     "signal_period": 9}
        assert sweep["best"]["parameters"] == run["parameters"]
        for key in ("score", "sharpe_ratio", "total_return_pct", "max_drawdown_pct", "total_trades"):
            assert run["metrics"][key] == best[key], key
        assert "trades_csv" not in run["links"]
        assert_error(c.get(f"/runs/{run['id']}/trades.csv"), 404)

        replay = _post(c, {}, f"/runs/{run['id']}/replay")
        assert replay["kind"] == "backtest" and replay["replay_of"] == run["id"]
        for key, value in run["metrics"].items():
            if value is not None:  # what a sweep knows of its combination, reproduced exactly
                assert replay["metrics"][key] == value, key
        assert replay["parameters"] == run["parameters"] and len(replay["trades"]) == run["total_trades"]


def test_compare_and_csv_exports(stack: Stack) -> None:
    with stack.client("runs-d") as c:
        a = _post(c, dict(SMA, start_date="2020-01-01", end_date="2021-12-31"))
        b = _post(c, {"ticker": "DEMO-DAILY", "strategy": "rsi", "start_date": "2021-01-01", "cash": 5000})
        cmp = c.get("/runs/compare", params={"ids": f"{b['id']},{a['id']},{b['id']}"}).json()
        assert cmp["ids"] == [b["id"], a["id"]]  # repeats ignored, order kept
        assert cmp["metrics"]["sharpe_ratio"] == [b["sharpe_ratio"], a["sharpe_ratio"]]
        assert cmp["parameters"]["fast_period"] == [None, 10] and cmp["parameters"]["period"] == [14, None]
        axis, series = cmp["equity"]["timestamps"], cmp["equity"]["series"]
        assert axis == sorted(axis) and len(axis) <= 2000 and axis[0] == "2020-01-01T00:00:00Z"
        assert [s["id"] for s in series] == cmp["ids"] and all(len(s["equity"]) == len(axis) for s in series)
        sb, sa = series[0]["equity"], series[1]["equity"]
        assert sb[0] is None and sb[axis.index("2021-01-01T00:00:00Z")] == 5000.0  # null before its span
        assert sa[0] == 10_000.0 and sa[-1] is None and sa[axis.index("2021-12-31T00:00:00Z")] == a["metrics"]["final_equity"]
        v1 = c.get("/api/v1/runs/compare", params={"ids": f"{a['id']}"}).json()
        assert v1["ids"] == [a["id"]] and v1["runs"][0]["links"]["self"].startswith("/api/v1/runs/")
        for bad in ("", "1,,2", "a,b", "1;2", "0", "-1", ",".join(str(i) for i in range(1, 22))):
            err = assert_error(c.get("/runs/compare", params={"ids": bad}), 400)
            assert err["details"]["errors"][0]["field"] == "query.ids"
        assert_error(c.get("/runs/compare"), 400)

        r = c.get(f"/runs/{a['id']}/trades.csv")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert f'run_{a["id"]}_trades.csv' in r.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert len(rows) == len(a["trades"]) > 0
        for row, t in zip(rows, a["trades"]):
            assert float(row["pnl"]) == t["pnl"] and row["entry_time"] == t["entry_time"] and row["side"] == t["side"]
        r = c.get(f"/api/v1/runs/{a['id']}/equity.csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [float(x["equity"]) for x in rows] == [p["equity"] for p in a["equity_curve"]]
        assert [float(x["buy_and_hold"]) for x in rows] == [p["buy_and_hold"] for p in a["equity_curve"]]
        dd = min(float(x["drawdown_pct"]) for x in rows)
        assert dd == pytest.approx(a["max_drawdown"], rel=1e-12)  # 731 bars: the whole curve, nothing dropped


def test_engine_down_is_503_and_runs_still_read(stack: Stack) -> None:
    with stack.client("runs-a", gw=stack.dead) as c:
        err = assert_error(c.post("/backtest", json=SMA), 503, "service_unavailable")
        assert err["message"]
        r = c.post("/backtest", json=SMA)
        assert r.headers.get("retry-after") == "5"
        assert c.get("/runs", params={"limit": 1}).status_code == 200
        assert_error(c.post("/runs/1/replay"), 503)


def test_preview_runs_the_backtest_and_saves_nothing(stack: Stack) -> None:
    """Issue 16: the dashboard previews a sweep's combination without saving a run each click."""
    with stack.client("runs-w") as c:
        before = c.get("/runs", params={"limit": 0}).json()["total"]
        preview = _post(c, SMA, "/api/v1/runs/backtest/preview")
        assert preview["id"] is None and preview["run_id"] is None and preview["links"] == {}
        saved = _post(c, SMA, "/api/v1/runs/backtest")
        assert preview["metrics"] == saved["metrics"] and preview["trades"] == saved["trades"]
        assert preview["equity_curve"] == saved["equity_curve"]
        assert c.get("/runs", params={"limit": 0}).json()["total"] == before + 1  # the saved one only
        err = assert_error(c.post("/api/v1/runs/backtest/preview", json={"strategy": "nope"}), 400)
        assert any(e["field"] == "strategy" for e in err["details"]["errors"])
