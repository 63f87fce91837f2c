"""An rsi_reversion sweep against an independent reference written from the definition:
Wilder's RSI in plain NumPy, the strategy's positions (long from a close below oversold,
out from a close above overbought, unchanged between) in a plain loop, traded by the
plain-Python bar loop of tests/engine/reference.py, the metrics recomputed with
empyrical-reloaded and from the trade list. Nothing of the engine's code is used."""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pytest

from domain.overfitting import returns_moments
from domain.sweep import rsi_combos, rsi_problems
from libs.metric_fields import SWEEP_OPTIONAL_METRICS
from services.engine.rsi_sweep import run_rsi_sweep

from . import reference as ref
from .conftest import make_daily_bars, make_session_minute_bars

REL, ABS = 1e-9, 1e-12


def wilder_rsi(close: np.ndarray, n: int) -> np.ndarray:
    """RSI from its definition: changes d_t = c_t - c_{t-1}; the first average gain and loss
    are the means of the first n changes (value at index n), then avg = (avg (n-1) + x) / n;
    RSI = 100 gain / (gain + loss), 0 when both are 0."""
    d = np.diff(close)
    gains, losses = np.where(d > 0, d, 0.0), np.where(d < 0, -d, 0.0)
    out = np.full(close.shape[0], np.nan)
    if close.shape[0] <= n:
        return out
    g, lo = gains[:n].mean(), losses[:n].mean()
    for t in range(n, close.shape[0]):
        if t > n:
            g = (g * (n - 1) + gains[t - 1]) / n
            lo = (lo * (n - 1) + losses[t - 1]) / n
        out[t] = 100.0 * g / (g + lo) if g + lo != 0 else 0.0
    return out


def reversion_positions(rsi: np.ndarray, oversold: float, overbought: float, direction: str) -> list[int]:
    """rsi_reversion: +1 once RSI < oversold, -1 once RSI > overbought, unchanged between;
    long only keeps the longs (flat instead of short), short only the shorts."""
    pos, out = 0, []
    for x in rsi:
        if x < oversold:
            pos = 1
        elif x > overbought:
            pos = -1
        keep = pos if direction == "both" else (max(pos, 0) if direction == "long" else min(pos, 0))
        out.append(keep)
    return out


def expected(bars, combo, direction, fill, commission, slippage, cash0):
    period, oversold, overbought = combo
    ts, opens, closes = bars.ts.tolist(), bars.open.tolist(), bars.close.tolist()
    want = reversion_positions(wilder_rsi(bars.close, period), oversold, overbought, direction)
    # tests/engine/reference.py trades "a > b → long, a < b → short": a = the wanted side, b = 0.
    res = ref.backtest(ts, opens, closes, [float(w) for w in want], [0.0] * len(want), direction=direction,
                       fill=fill, commission_pct=commission, slippage_pct=slippage, initial_cash=cash0)
    P = bars.periods_per_year
    days = ref.local_days(ts, bars.timezone)
    daily = np.array(ref.daily_returns(res.equity, days, cash0))
    pnls = [t.pnl for t in res.trades]
    wins, losses = [p for p in pnls if p > 0], [p for p in pnls if p < 0]
    span_days = (ts[-1] - ts[0]) / 86_400e9
    sharpe = empyrical.sharpe_ratio(daily, annualization=P) if np.std(daily) > 0 else None
    mdd = empyrical.max_drawdown(np.array(ref.bar_returns(res.equity, cash0))) * 100.0
    out = {
        "sharpe_ratio": sharpe,
        "sortino_ratio": empyrical.sortino_ratio(daily, annualization=P) if any(r < 0 for r in daily) else None,
        "total_return_pct": math.fsum([cash0, *pnls]) / cash0 * 100.0 - 100.0,
        "annualized_return": empyrical.annual_return(daily, annualization=P) * 100.0,
        "max_drawdown_pct": mdd,
        "win_rate_pct": len(wins) / len(pnls) * 100.0 if pnls else None,
        "profit_factor": math.fsum(wins) / abs(math.fsum(losses)) if losses else None,
        "total_trades": len(pnls),
        "trades_per_month": len(pnls) / (span_days / 30.4375),
        "score": None if sharpe is None else sharpe * (1 + mdd / 100.0),
    }
    return out, daily


def _close(actual, want, what):
    if want is None:
        assert actual is None, what
        return
    assert actual == pytest.approx(want, rel=REL, abs=ABS), f"{what}: {actual!r} != {want!r}"


# (dataset, direction, fill, fees, grid): the plain-Python reference is slow on minute bars,
# so their grid is smaller.
DAILY_GRID = ((8, 16), 4, (20, 35), (60, 80), 7.5)  # 3 x 3 x 3
MINUTE_GRID = ((8, 16), 8, (20, 35), (60, 80), 15.0)  # 2 x 2 x 2
CASES = [("daily", make_daily_bars, "long", "next_open", (0.0, 0.0), DAILY_GRID),
         ("daily", make_daily_bars, "both", "close", (0.1, 0.05), DAILY_GRID),
         ("minute", make_session_minute_bars, "long", "next_open", (0.05, 0.02), MINUTE_GRID),
         ("minute", make_session_minute_bars, "short", "next_open", (0.0, 0.0), MINUTE_GRID)]


@pytest.mark.parametrize("name,make,direction,fill,fees,grid", CASES, ids=[f"{c[0]}-{c[2]}-{c[3]}" for c in CASES])
def test_rsi_sweep_matches_the_reference(name, make, direction, fill, fees, grid):
    bars = make()
    combos = rsi_combos(*grid)
    sizes = [len(range(grid[0][0], grid[0][1] + 1, grid[1])), *(len(np.arange(a, b + 1e-9, grid[4])) for a, b in grid[2:4])]
    assert combos[0] == (8, 20.0, 60.0) and all(lo < hi for _, lo, hi in combos)
    commission, slippage = fees
    rows, stats = run_rsi_sweep(bars, combos, direction=direction, fill=fill, commission_pct=commission,
                                slippage_pct=slippage, initial_cash=10_000.0, pbo_blocks=4)
    assert len(rows) == len(combos) == math.prod(sizes)
    traded, matrix = 0, []
    for combo, row in zip(combos, rows, strict=True):
        want, daily = expected(bars, combo, direction, fill, commission, slippage, 10_000.0)
        assert (row["period"], row["oversold"], row["overbought"]) == combo
        assert row["total_trades"] == want["total_trades"], combo
        for key in SWEEP_OPTIONAL_METRICS:
            _close(row[key], want[key], f"{combo} {key}")
        traded += row["total_trades"]
        matrix.append(daily)
    assert traded > 0
    r = np.array(matrix).T
    assert stats is not None and stats.trials == len(combos) and stats.days == r.shape[0]
    if r.shape[0] < 2 * 4:  # too few days for 4 blocks: the statistics say so
        assert stats.moments is None and "daily returns" in (stats.reason or "")
    else:
        assert stats.moments is not None and stats.pbo is not None
        np.testing.assert_allclose(stats.moments.sharpe, returns_moments(r).sharpe, rtol=1e-9, atol=1e-12)


def test_rsi_grid_rules():
    assert rsi_problems((10, 20), 2, (20, 35), (65, 80), 5) == []
    assert [p.field for p in rsi_problems((1, 20), 2, (20, 35), (65, 80), 5)] == ["period_range"]
    assert [p.field for p in rsi_problems((10, 20), 2, (60, 70), (20, 30), 5)] == ["oversold_range"]
    assert [p.field for p in rsi_problems((2, 500), 1, (0, 100), (0, 100), 0.1)] == ["threshold_step"]
