"""Walk-forward folds against an independent reference written from the definition
(issue 14, DESIGN "Walk-forward windows"), in plain Python and NumPy: no engine code.

The reference simulates every window bar by bar: moving averages over every close up
to the decision (including the bars before the window), decisions from the window's
first bar, flat; orders fill at the next open (or at the signal close) with slippage
and commission; a position open at the window's last bar closes at its close; the
window's own daily returns (local day ends, the last bar always one), CAGR, Sharpe,
Sortino, max drawdown, trades. The training sweep chooses the highest objective among
combinations with at least min_trades trades, ties to the smaller fast then slow.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import talib  # a test dependency (requirements-dev.txt): MACD as TA-Lib defines it

from domain.sweep import sweep_combos
from domain.walkforward import Windows, folds
from services.engine.bars import Bars
from services.engine.walkforward import FoldSettings, run_fold

from .conftest import random_walk_bars

NS_HOUR = 3_600 * 10**9


def _sma(close: np.ndarray, n: int) -> np.ndarray:
    out = np.full(close.shape[0], np.nan)
    for t in range(n - 1, close.shape[0]):
        out[t] = math.fsum(close[t - n + 1 : t + 1]) / n
    return out


def _ema(close: np.ndarray, n: int) -> np.ndarray:
    # seeded with the mean of the first n closes, then alpha = 2 / (n + 1)
    out = np.full(close.shape[0], np.nan)
    a = 2.0 / (n + 1.0)
    for t in range(n - 1, close.shape[0]):
        out[t] = math.fsum(close[:n]) / n if t == n - 1 else out[t - 1] + a * (close[t] - out[t - 1])
    return out


def reference_window(bars: Bars, fast: np.ndarray, slow: np.ndarray, a: int, b: int, *, fill: str,
                     commission: float, slippage: float, cash0: float) -> dict:
    """One window [a, b) simulated from the definition; the metrics of domain/metrics.py's docstring."""
    o, c, ts = bars.open, bars.close, bars.ts
    day = (ts // (24 * NS_HOUR))  # UTC bars: the local day is the UTC day
    cash, units, pos, pending = cash0, 0.0, 0, 0
    entry_eq, entry_ts = 0.0, 0
    pnls, durations = [], []
    equity = []

    def trade(to: int, price: float, t: int) -> None:
        nonlocal cash, units, pos, entry_eq, entry_ts
        if pos == 1:
            cash = units * price * (1 - slippage) * (1 - commission)
            units, pos = 0.0, 0
            pnls.append(cash - entry_eq)
            durations.append(ts[t] - entry_ts)
        if to == 1:
            entry_eq, entry_ts = cash, ts[t]
            units = cash / (price * (1 + slippage) * (1 + commission))
            cash, pos = 0.0, 1

    for t in range(a, b):
        want = 1 if fast[t] > slow[t] else 0  # NaN compares False: flat in the warm-up
        last = t == b - 1
        if fill == "next_open":
            if pending != pos:
                trade(pending, o[t], t)
            pending = want
        elif not last and want != pos:
            trade(want, c[t], t)
        if last and pos != 0:
            trade(0, c[t], t)
        equity.append(cash + units * c[t])
    equity = np.array(equity)
    ends = [i for i in range(b - a) if i == b - a - 1 or day[a + i] != day[a + i + 1]]
    day_eq = np.concatenate([[cash0], equity[ends]])
    r = day_eq[1:] / day_eq[:-1] - 1
    P = bars.periods_per_year
    growth = equity[-1] / cash0
    sharpe = r.mean() / r.std(ddof=1) * math.sqrt(P) if r.size >= 2 and r.std(ddof=1) > 0 else None
    down = np.minimum(r, 0.0)
    sortino = r.mean() / math.sqrt(np.mean(down**2)) * math.sqrt(P) if r.size >= 2 and np.any(r < 0) else None
    peak = np.maximum.accumulate(np.concatenate([[cash0], equity]))[1:]
    mdd = float(np.min(np.minimum(equity / peak - 1.0, 0.0)) * 100)
    pnls = np.array(pnls)
    gl = pnls[pnls < 0].sum()
    span_days = (ts[b - 1] - ts[a]) / (24 * NS_HOUR)
    return {
        "total_return_pct": (growth - 1) * 100,
        "annualized_return": (growth ** (P / r.size) - 1) * 100,
        "sharpe_ratio": sharpe,
        "sortino_ratio": sortino,
        "max_drawdown_pct": mdd,
        "score": None if sharpe is None else sharpe * (1 + mdd / 100),
        "total_trades": int(pnls.size),
        "win_rate_pct": (pnls > 0).mean() * 100 if pnls.size else None,
        "profit_factor": pnls[pnls > 0].sum() / -gl if gl < 0 else None,
        "trades_per_month": pnls.size / (span_days / 30.4375),
        "equity": equity,
        "durations": durations,
    }


def _signals(bars, kind, combos) -> dict:
    """Per combination, the two series whose strict crossover is the position: the moving
    averages over every close, or TA-Lib's MACD line and its 9-bar signal line."""
    if kind == "MACD":
        return {(f, s): talib.MACD(bars.close, min(f, s), max(f, s), 9)[:2] for f, s in combos}
    ma = _sma if kind == "SMA" else _ema
    lines = {p: ma(bars.close, p) for p in sorted({p for pair in combos for p in pair})}
    return {(f, s): (lines[f], lines[s]) for f, s in combos}


def reference_fold(bars, kind, combos, train, test, objective, min_trades, **sim):
    signals = _signals(bars, kind, combos)
    best, best_key = None, None
    for f, s in combos:
        m = reference_window(bars, *signals[(f, s)], *train, **sim)
        if m["total_trades"] < min_trades or m[objective] is None:
            continue
        key = (-m[objective], f, s)
        if best_key is None or key < best_key:
            best, best_key = (f, s, m), key
    if best is None:
        return None, None, None
    f, s, in_sample = best
    return (f, s), in_sample, reference_window(bars, *signals[(f, s)], *test, **sim)


def _hourly_bars(n: int, seed: int) -> Bars:
    ts = pd.Timestamp("2022-01-03", tz="UTC").value + np.arange(n, dtype=np.int64) * NS_HOUR
    return random_walk_bars(n, ts, seed=seed, sigma=0.006, gap_sigma=0.001)


METRICS = ("total_return_pct", "annualized_return", "sharpe_ratio", "sortino_ratio", "max_drawdown_pct", "score",
           "win_rate_pct", "profit_factor", "trades_per_month")


def _close(a, b, rel=1e-9) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


@pytest.mark.parametrize(
    "kind, fill, anchored, objective, costs, seed",
    [
        ("SMA", "next_open", False, "score", (0.0, 0.0), 1),
        ("SMA", "next_open", True, "sharpe_ratio", (0.1, 0.05), 2),
        ("EMA", "close", False, "total_return_pct", (0.05, 0.0), 3),
        ("SMA", "close", True, "annualized_return", (0.0, 0.02), 4),
        # MACD's fast EMA and signal line are per-combination state: they too see every bar before the window.
        ("MACD", "next_open", False, "score", (0.02, 0.01), 5),
        ("MACD", "close", True, "sharpe_ratio", (0.0, 0.0), 6),
    ],
)
def test_folds_equal_the_independent_reference(kind, fill, anchored, objective, costs, seed):
    bars = _hourly_bars(1600, seed)
    combos = sweep_combos(2, 14, 6, 40, 4)
    windows = Windows(train_bars=500, test_bars=240, step_bars=200, anchored=anchored, objective=objective)
    settings = FoldSettings(kind, combos, objective, min_trades=10, fill=fill, commission_pct=costs[0],
                            slippage_pct=costs[1], initial_cash=10_000.0)
    sim = {"fill": fill, "commission": costs[0] / 100, "slippage": costs[1] / 100, "cash0": 10_000.0}
    cut = folds(len(bars), windows)
    assert len(cut) == 5
    chosen_any = 0
    for fold in cut:
        got = run_fold(bars, fold, settings, threads=1)
        pair, in_sample, oos = reference_fold(bars, kind, combos, (fold.train_start, fold.train_end),
                                              (fold.test_start, fold.test_end), objective, 10, **sim)
        if pair is None:
            assert got["parameters"] is None
            continue
        chosen_any += 1
        assert got["parameters"] == {"fast_period": pair[0], "slow_period": pair[1]}
        for name in METRICS:
            assert _close(got["out_of_sample"][name], oos[name]), (fold, name, got["out_of_sample"][name], oos[name])
            assert _close(got["in_sample"][name], in_sample[name]), (fold, name)
        assert got["out_of_sample"]["total_trades"] == oos["total_trades"]
        assert got["in_sample"]["total_trades"] == in_sample["total_trades"]
        # The stitched curve's points: the test window's equity at its day ends.
        np.testing.assert_allclose(got["oos"]["equity"][-1], oos["equity"][-1], rtol=1e-9)
        assert got["oos"]["ntrades"] == oos["total_trades"]
        assert got["oos"]["duration_ns"] == sum(oos["durations"])
    assert chosen_any >= 3  # the comparison is not vacuous


def test_min_trades_filter_and_tie_break_by_smaller_periods():
    from domain.walkforward import choose

    rows = [
        {"fast_period": 5, "slow_period": 20, "total_trades": 9, "score": 3.0},  # too few trades
        {"fast_period": 10, "slow_period": 30, "total_trades": 12, "score": 1.5},
        {"fast_period": 5, "slow_period": 40, "total_trades": 12, "score": 1.5},
        {"fast_period": 5, "slow_period": 30, "total_trades": 50, "score": 1.5},
        {"fast_period": 2, "slow_period": 30, "total_trades": 50, "score": None},  # undefined objective
    ]
    assert choose(rows, "score", 10) == 3
    assert choose(rows, "score", 100) is None


def test_indicators_warm_up_on_bars_before_the_window():
    """A window's decisions depend on the bars before it (the MA sees them), and on nothing
    after its end; it starts flat even when the MA says long at its first bar."""
    bars = _hourly_bars(900, 9)
    settings = FoldSettings("SMA", [(3, 50)], "total_return_pct", min_trades=0)
    fold = folds(len(bars), Windows(400, 300, 300))[0]
    base = run_fold(bars, fold, settings, threads=1)
    # Changing a close before the window changes the MA inside it, hence the window's result
    changed = Bars(bars.ts, bars.open, bars.high, bars.low, bars.close * np.where(np.arange(900) == 399 - 10, 1.5, 1.0),
                   bars.volume)
    assert run_fold(changed, fold, settings, threads=1)["out_of_sample"] != base["out_of_sample"]
    # ...but a change after the test window changes nothing of the fold
    later = Bars(bars.ts, bars.open, bars.high, bars.low, bars.close * np.where(np.arange(900) >= 800, 2.0, 1.0),
                 bars.volume)
    assert run_fold(later, fold, settings, threads=1) == base


@pytest.mark.parametrize("kind, pair", [("MACD", (8, 21)), ("EMA", (5, 30)), ("SMA", (4, 25))])
@pytest.mark.parametrize("direction", ["long", "short", "both"])
@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_a_window_trades_as_the_whole_run_does_once_inside_it(kind, pair, direction, fill):
    """Every direction and fill: inside a window, the window's trades are the whole run's
    (same bars, same sides), from the first one after the window's flat start to the last
    one that exits before its end."""
    from services.engine.sweep import run_one

    bars = _hourly_bars(1200, 21)
    a, b = 500, 900
    full = run_one(bars, kind, pair, direction=direction, fill=fill).trades
    win = run_one(bars, kind, pair, direction=direction, fill=fill, window=(a, b)).trades
    trades_full = {(int(e), int(x), int(s)) for e, x, s in zip(full["entry_index"], full["exit_index"], full["side"])}
    trades_win = [(int(e) + a, int(x) + a, int(s)) for e, x, s in zip(win["entry_index"], win["exit_index"], win["side"])]
    assert trades_win and all(a <= e < b for e, _, _ in trades_win)
    # Starting flat, the window's first entry may come where the whole run already held a
    # position; every later trade that ends inside the window is one of the whole run's.
    inner = [t for t in trades_win[1:] if t[1] < b - 1]
    assert len(inner) >= 3
    assert set(inner) <= trades_full
    # And the first is either the whole run's too, or the window's flat start catching up.
    e0, _, s0 = trades_win[0]
    assert (trades_win[0] in trades_full) or any(fe < e0 <= fx for fe, fx, fs in trades_full if fs == s0)
