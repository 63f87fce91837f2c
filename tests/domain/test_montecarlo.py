"""domain.montecarlo on small cases worked by hand, and its answer independent of how the
paths are chunked in memory (the draws are path by path)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from domain import montecarlo as mc


def run(method: str, **kw):
    base = {"cash": 1000.0, "trade_returns_pct": [10.0, -5.0, 2.0], "day_equity": np.array([1010.0, 990.0, 1050.0, 1020.0]),
            "resamples": 200, "seed": 5}
    return mc.simulate(method=method, **{**base, **kw})


def test_one_trade_gives_one_path() -> None:
    out = run("trades", trade_returns_pct=[-20.0])
    for name, value in (("total_return_pct", -20.0), ("max_drawdown_pct", -20.0)):
        d = out[name]
        assert all(math.isclose(v, value) for v in d["percentiles"].values())
        assert d["histogram"]["counts"] == [0] * 20 + [200] + [0] * 19  # one bin around the value
        assert math.isclose(out["run"][name], value)


def test_a_trade_losing_more_than_everything_leaves_zero() -> None:
    out = run("trades", trade_returns_pct=[-150.0, 50.0], resamples=50)
    assert out["total_return_pct"]["min"] == -100.0 and out["max_drawdown_pct"]["min"] == -100.0
    assert out["run"] == {"total_return_pct": -100.0, "max_drawdown_pct": -100.0}


def test_the_runs_own_path() -> None:
    out = run("block_bootstrap", block_days=2)
    assert math.isclose(out["run"]["total_return_pct"], 2.0)
    assert math.isclose(out["run"]["max_drawdown_pct"], (1020 / 1050 - 1) * 100)  # deeper than 1010 -> 990
    trades = run("trades")
    assert math.isclose(trades["run"]["total_return_pct"], (1.1 * 0.95 * 1.02 - 1) * 100)
    assert math.isclose(trades["run"]["max_drawdown_pct"], -5.0)


def test_a_block_of_every_day_only_rotates_the_days() -> None:
    out = run("block_bootstrap", block_days=4)
    # Rotations of the same returns compound to the same total.
    assert math.isclose(out["total_return_pct"]["min"], out["total_return_pct"]["max"])
    assert math.isclose(out["total_return_pct"]["percentiles"]["p50"], 2.0)


@pytest.mark.parametrize("method", mc.METHODS)
def test_chunking_does_not_change_the_answer(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    eq = 1000 * np.cumprod(1 + np.random.default_rng(1).normal(0, 0.01, 97))
    trades = list(np.random.default_rng(2).normal(0.3, 2, 31))
    whole = run(method, day_equity=eq, trade_returns_pct=trades, resamples=301, block_days=9)
    monkeypatch.setattr(mc, "_CHUNK_DRAWS", 50)
    chunked = run(method, day_equity=eq, trade_returns_pct=trades, resamples=301, block_days=9)
    assert chunked == whole


def test_problems() -> None:
    assert mc.check("trades", 1000, None, 0, 10)[0]["field"] == "method"
    assert mc.check("block_bootstrap", 1000, None, 5, 1)[0]["field"] == "method"
    assert mc.check("block_bootstrap", 1000, 11, 5, 10)[0]["field"] == "block_days"
    assert mc.check("block_bootstrap", 1000, 10, 5, 10) == []
    assert mc.check("monte", 1000, None, 5, 10)[0]["field"] == "method"
    assert mc.check("trades", 0, None, 5, 10)[0]["field"] == "resamples"
    assert mc.check("trades", 10_000, None, 5_001, 10)[0]["field"] == "resamples"  # over 50,000,000 draws
    with pytest.raises(mc.MonteCarloInvalid):
        run("trades", trade_returns_pct=[])
