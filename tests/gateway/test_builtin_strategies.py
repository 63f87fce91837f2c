"""Issue 16: one name space for the built-in strategies. GET /api/v1/strategies/builtin lists
each with its parameters, defaults, ranges and aliases, and a sweep accepts the backtests'
names as its strategy_type (any case), storing the sweep's own name."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.conftest import Gateway
from tests.gateway.helpers import SEED_JSON


def test_builtin_strategies_listed_with_parameters(gw: Gateway) -> None:
    with gw.client() as c:
        r = c.get("/api/v1/strategies/builtin")
    assert r.status_code == 200, r.text
    by_name = {s["name"]: s for s in r.json()["strategies"]}
    assert set(by_name) == {"sma_crossover", "ema_crossover", "macd_crossover", "rsi_reversion", "buy_and_hold"}
    sma = by_name["sma_crossover"]
    assert sma["sweep_strategy_type"] == "SMA" and {"SMA", "sma"} <= set(sma["aliases"])
    assert [(p["name"], p["type"], p["default"]) for p in sma["parameters"]] == [
        ("fast_period", "integer", 10), ("slow_period", "integer", 30)]
    assert "fast" in sma["parameters"][0]["aliases"]
    rsi = by_name["rsi_reversion"]
    assert rsi["sweep_strategy_type"] == "RSI"  # rsi_reversion sweeps its period and thresholds (issue 14)
    assert [(p["name"], p["min"], p["max"]) for p in rsi["parameters"]] == [
        ("period", 2, 1000), ("oversold", 0, 100), ("overbought", 0, 100)]
    assert by_name["buy_and_hold"]["parameters"] == []
    assert all(s["description"] for s in by_name.values())
    # Documented in the OpenAPI, and not mistaken for a rule strategy's id.
    with gw.client() as c:
        assert "/api/v1/strategies/builtin" in c.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(("given", "stored"), [
    ("sma_crossover", "SMA"), ("sma", "SMA"), ("Ema_Crossover", "EMA"), ("macd", "MACD"), ("MACD", "MACD")])
def test_sweep_takes_every_name_of_a_crossover(alpha: httpx.Client, given: str, stored: str) -> None:
    r = alpha.post("/api/v1/strategy/sweep", json=dict(SEED_JSON, strategy_type=given))
    assert r.status_code == 202, r.text
    assert alpha.get(f"/api/v1/jobs/{r.json()['job_id']}").json()["parameters"]["strategy_type"] == stored


@pytest.mark.parametrize("given", ["rsi", "rsi_reversion", "RSI"])
def test_sweep_takes_rsi_reversion_with_its_ranges(alpha: httpx.Client, given: str) -> None:
    base = {k: v for k, v in SEED_JSON.items() if k not in ("fast_range", "slow_range")}
    r = alpha.post("/api/v1/strategy/sweep", json=dict(base, strategy_type=given))
    assert r.status_code == 400, r.text
    assert {e["field"] for e in r.json()["error"]["details"]["errors"]} == {
        "period_range", "oversold_range", "overbought_range"}
    ranges = {"period_range": [10, 20], "oversold_range": [20, 35], "overbought_range": [30, 80], "threshold_step": 5}
    r = alpha.post("/api/v1/strategy/sweep", json=dict(base, strategy_type=given, step=2, **ranges))
    assert r.status_code == 202, r.text
    # 6 periods x the (oversold, overbought) pairs with oversold < overbought: 4 x 11 minus (30, 30), (35, 30), (35, 35)
    assert r.json()["parameters"]["combinations"] == 6 * (4 * 11 - 3)
    job = alpha.get(f"/api/v1/jobs/{r.json()['job_id']}").json()
    assert job["parameters"]["strategy_type"] == "RSI" and job["parameters"]["period_range"] == [10, 20]


@pytest.mark.parametrize("given", ["buy_and_hold", "nope"])
def test_sweep_refuses_what_it_cannot_sweep(alpha: httpx.Client, given: str) -> None:
    r = alpha.post("/api/v1/strategy/sweep", json=dict(SEED_JSON, strategy_type=given))
    assert r.status_code == 400, r.text
    assert any(e["field"] == "strategy_type" for e in r.json()["error"]["details"]["errors"])
