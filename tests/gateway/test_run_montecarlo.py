"""`POST /runs/{id}/montecarlo` over HTTP, checked against an independent implementation:
plain Python written from the definitions (domain/montecarlo.py's docstring, shown in
/docs), drawing from numpy.random.default_rng(seed) in the documented order, on the same
run's trades (`trades.csv`) and day-end equity (`equity.csv` of a daily run, every bar a
day), to 1e-12. Also: the same seed gives the same answer and another seed another; bad
requests are 400s and another tenant's run a 404.

A results service of its own (SQLite), a real engine and a gateway on real uvicorn servers.
"""

from __future__ import annotations

import csv
import io
import math

import httpx
import pytest

from tests.gateway.conftest import Gateway, Harness, engine_stack
from tests.gateway.helpers import assert_error

KEYS = {t: f"{t}-key-" + t[-1] * 24 for t in ("mc-a", "mc-b")}
TOL = 1e-12
PERCENTILES = (5, 25, 50, 75, 95)


class Stack:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def client(self, tenant: str = "mc-a") -> httpx.Client:
        return self.gw.client(headers={"X-API-Key": KEYS[tenant]}, timeout=60)


@pytest.fixture(scope="module")
def stack(harness: Harness):
    with engine_stack(harness, KEYS) as (_, _, gw):
        yield Stack(gw)


@pytest.fixture(scope="module")
def run(stack: Stack) -> dict:
    """A daily backtest (DEMO-DAILY: one bar a day, UTC, every bar in its stored curve)."""
    with stack.client() as c:
        bt = c.post("/backtest", json={"ticker": "DEMO-DAILY", "strategy": "sma_crossover", "direction": "both",
                                       "parameters": {"fast_period": 10, "slow_period": 30}})
        assert bt.status_code == 200, bt.text
        return bt.json()


def _rows(c: httpx.Client, path: str) -> list[dict[str, str]]:
    r = c.get(path)
    assert r.status_code == 200, r.text
    return list(csv.DictReader(io.StringIO(r.text)))


# ------------------------------------------------------------------ the independent implementation


def ref_path(cash: float, returns: list[float]) -> tuple[float, float]:
    """(total return %, max drawdown %) of compounding `returns` from the cash, the peak starting at the cash."""
    equity, peak, worst = cash, cash, 0.0
    for r in returns:
        equity = equity * max(0.0, 1.0 + r)
        peak = max(peak, equity)
        worst = min(worst, equity / peak - 1.0)
    return (equity / cash - 1.0) * 100.0, worst * 100.0


def ref_trades(cash: float, returns: list[float], resamples: int, seed: int) -> list[tuple[float, float]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    n = len(returns)
    paths = []
    for _ in range(resamples):
        picks = [int(i) for i in rng.integers(0, n, size=n)]
        paths.append(ref_path(cash, [returns[i] for i in picks]))
    return paths


def ref_blocks(cash: float, returns: list[float], resamples: int, seed: int, block: int) -> list[tuple[float, float]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    t = len(returns)
    k = -(-t // block)
    paths = []
    for _ in range(resamples):
        days: list[int] = []
        for s in rng.integers(0, t, size=k):
            days += [(int(s) + j) % t for j in range(block)]  # circular blocks
        paths.append(ref_path(cash, [returns[d] for d in days[:t]]))
    return paths


def ref_percentile(values: list[float], p: float) -> float:
    """The linear method: position (m - 1) p / 100 in the sorted values, interpolated."""
    v = sorted(values)
    h = (len(v) - 1) * p / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (h - lo) * (v[hi] - v[lo])


def close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=TOL, abs_tol=TOL)


def check(answer: dict, paths: list[tuple[float, float]], own: tuple[float, float]) -> None:
    for k, name in enumerate(("total_return_pct", "max_drawdown_pct")):
        values = [p[k] for p in paths]
        got = answer[name]
        for p in PERCENTILES:
            assert close(got["percentiles"][f"p{p}"], ref_percentile(values, p)), (name, p, got["percentiles"])
        assert close(got["mean"], math.fsum(values) / len(values))
        assert got["min"] == min(values) or close(got["min"], min(values))
        assert close(got["max"], max(values))
        assert sum(got["histogram"]["counts"]) == len(values) and len(got["histogram"]["edges"]) == 41
        assert close(answer["run"][name], own[k]), (name, answer["run"], own)


# ------------------------------------------------------------------ tests


def test_trades_method_equals_an_independent_implementation(stack: Stack, run: dict) -> None:
    with stack.client() as c:
        trades = [float(t["return_pct"]) / 100.0 for t in _rows(c, f"/runs/{run['id']}/trades.csv")]
        assert len(trades) >= 10
        r = c.post(f"/runs/{run['id']}/montecarlo", json={"method": "trades", "resamples": 1000, "seed": 7})
        assert r.status_code == 200, r.text
        got = r.json()
    assert (got["method"], got["resamples"], got["seed"], got["block_days"]) == ("trades", 1000, 7, None)
    assert got["path_length"] == len(trades) and got["run_id"] == run["id"]
    check(got, ref_trades(run["cash"], trades, 1000, 7), ref_path(run["cash"], trades))
    assert got["links"] == {"run": f"/runs/{run['id']}", "report": f"/runs/{run['id']}/report"}


def test_block_bootstrap_equals_an_independent_implementation(stack: Stack, run: dict) -> None:
    with stack.client() as c:
        equity = [float(p["equity"]) for p in _rows(c, f"/runs/{run['id']}/equity.csv")]
        assert len(equity) == run["bars"] == 2000  # a daily run keeps every bar: its day ends
        r = c.post(f"/api/v1/runs/{run['id']}/montecarlo",
                   json={"method": "block_bootstrap", "resamples": 300, "seed": 3, "block_days": 30})
        assert r.status_code == 200, r.text
        got = r.json()
    cash = run["cash"]
    returns = [e / b - 1.0 for e, b in zip(equity, [cash, *equity[:-1]])]
    assert (got["method"], got["block_days"], got["path_length"]) == ("block_bootstrap", 30, 2000)
    check(got, ref_blocks(cash, returns, 300, 3, 30), ref_path(cash, returns))
    # The run's own path is its day-end equity: its total return is the run's.
    assert math.isclose(got["run"]["total_return_pct"], run["metrics"]["total_return_pct"], rel_tol=1e-9)
    assert got["links"]["report"] == f"/api/v1/runs/{run['id']}/report"


def test_a_block_as_long_as_the_run_and_one_day_blocks(stack: Stack, run: dict) -> None:
    with stack.client() as c:
        equity = [float(p["equity"]) for p in _rows(c, f"/runs/{run['id']}/equity.csv")]
        cash = run["cash"]
        returns = [e / b - 1.0 for e, b in zip(equity, [cash, *equity[:-1]])]
        for block in (1, 2000, 7):
            got = c.post(f"/runs/{run['id']}/montecarlo",
                         json={"method": "block_bootstrap", "resamples": 50, "seed": 11, "block_days": block}).json()
            check(got, ref_blocks(cash, returns, 50, 11, block), ref_path(cash, returns))
        # Default: 20-day blocks.
        got = c.post(f"/runs/{run['id']}/montecarlo", json={"method": "block_bootstrap", "resamples": 20}).json()
        assert got["block_days"] == 20 and got["seed"] == 0
        check(got, ref_blocks(cash, returns, 20, 0, 20), ref_path(cash, returns))


def test_the_same_seed_gives_the_same_answer_and_another_seed_another(stack: Stack, run: dict) -> None:
    with stack.client() as c:
        for body in ({"method": "trades", "resamples": 500}, {"method": "block_bootstrap", "resamples": 200}):
            one = c.post(f"/runs/{run['id']}/montecarlo", json={**body, "seed": 1})
            two = c.post(f"/api/v1/runs/{run['id']}/montecarlo", json={**body, "seed": 1})
            other = c.post(f"/runs/{run['id']}/montecarlo", json={**body, "seed": 2})
            assert one.status_code == two.status_code == other.status_code == 200
            a, b, o = one.json(), two.json(), other.json()
            for name in ("total_return_pct", "max_drawdown_pct"):
                assert a[name] == b[name]  # identical, to the last bit
                assert a[name]["percentiles"] != o[name]["percentiles"]
            assert a["run"] == o["run"]  # the run's own path does not depend on the draws
        # An empty body takes every default: 1,000 trade paths from seed 0.
        empty = c.post(f"/runs/{run['id']}/montecarlo")
        assert empty.status_code == 200, empty.text
        e = empty.json()
        assert (e["method"], e["resamples"], e["seed"]) == ("trades", 1000, 0)
        assert c.post(f"/runs/{run['id']}/montecarlo", json={"seed": 0}).json()["total_return_pct"] == e["total_return_pct"]


def test_bad_requests_are_400_and_change_nothing(stack: Stack, run: dict) -> None:
    url = f"/runs/{run['id']}/montecarlo"
    with stack.client() as c:
        before = c.get(f"/runs/{run['id']}").json()
        listed = c.get("/runs", params={"limit": 0}).json()["total"]
        cases = [
            ({"resamples": 0}, "resamples"), ({"resamples": 10_001}, "resamples"), ({"resamples": 1.5}, "resamples"),
            ({"resamples": "many"}, "resamples"), ({"resamples": True}, "resamples"),
            ({"seed": -1}, "seed"), ({"seed": 2**53}, "seed"),
            ({"method": "bootstrap"}, "method"), ({"method": 3}, "method"),
            ({"method": "block_bootstrap", "block_days": 0}, "block_days"),
            ({"method": "block_bootstrap", "block_days": 2001}, "block_days"),  # the run has 2,000 days
            ({"method": "block_bootstrap", "block_days": 100_001}, "block_days"),
            ({"colour": "red"}, "colour"),
        ]
        for body, field in cases:
            err = assert_error(c.post(url, json=body), 400)
            assert field in [e["field"] for e in err["details"]["errors"]], (body, err)
        assert_error(c.post(url, content=b"[1, 2]", headers={"Content-Type": "application/json"}), 400)
        assert_error(c.post("/runs/abc/montecarlo", json={}), 400)
        assert_error(c.post("/runs/999999/montecarlo", json={}), 404)
        assert_error(c.post("/api/v1/runs/999999/montecarlo", json={}), 404)

        # A run without trades (buy and hold is one trade: a run of days with no signal has none).
        flat = c.post("/backtest", json={"ticker": "DEMO-DAILY", "strategy": "sma_crossover",
                                         "start_date": "2020-03-01", "end_date": "2020-03-05",
                                         "parameters": {"fast_period": 10, "slow_period": 30}}).json()
        assert flat["metrics"]["total_trades"] == 0
        err = assert_error(c.post(f"/runs/{flat['id']}/montecarlo", json={"method": "trades"}), 400)
        assert "no trades" in err["details"]["errors"][0]["message"]
        ok = c.post(f"/runs/{flat['id']}/montecarlo", json={"method": "block_bootstrap", "resamples": 10})
        assert ok.status_code == 200 and ok.json()["block_days"] == 5  # fewer than 20 days: the run's days
        err = assert_error(c.post(f"/runs/{flat['id']}/montecarlo",
                                  json={"method": "block_bootstrap", "block_days": 6}), 400)
        assert "from 1 to 5" in err["details"]["errors"][0]["message"]
        # One day is not enough to resample.
        one = c.post("/backtest", json={"ticker": "DEMO-DAILY", "strategy": "buy_and_hold",
                                        "start_date": "2020-03-02", "end_date": "2020-03-02"}).json()
        err = assert_error(c.post(f"/runs/{one['id']}/montecarlo", json={"method": "block_bootstrap"}), 400)
        assert "at least 2" in err["details"]["errors"][0]["message"]

        assert c.get(f"/runs/{run['id']}").json() == before
        assert c.get("/runs", params={"limit": 0}).json()["total"] == listed + 2  # the two backtests above only


def test_another_tenants_run_is_404(stack: Stack, run: dict) -> None:
    with stack.client("mc-b") as other:
        for path in (f"/runs/{run['id']}/montecarlo", f"/api/v1/runs/{run['id']}/montecarlo"):
            assert_error(other.post(path, json={}), 404)
            assert_error(other.post(path, json={"method": "block_bootstrap", "resamples": 10}), 404)


def test_the_monte_carlo_is_documented(stack: Stack) -> None:
    with stack.client() as c:
        spec = c.get("/openapi.json").json()
    for path in ("/runs/{run_id}/montecarlo", "/api/v1/runs/{run_id}/montecarlo"):
        op = spec["paths"][path]["post"]
        assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/MonteCarlo")
        text = op["description"]
        for words in ("circular", "intra", "linear", "not stored", "10,000", "rng.integers(0, n, size=n)",
                      "rng.integers(0, T, size=k)"):
            assert words in text, words
    body = spec["components"]["schemas"]["MonteCarloRequest"]["properties"]
    assert (body["resamples"]["minimum"], body["resamples"]["maximum"]) == (1, 10_000)
    assert body["method"]["enum"] == ["trades", "block_bootstrap"] or "trades" in str(body["method"])
