"""A sweep of a rule strategy's parameters equals one day-by-day run per combination,
metric for metric, and computes each distinct indicator series once."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest

from domain.metrics import day_by_day_metrics
from domain.overfitting import returns_moments
from domain.rules.strategy import compile_strategy
from domain.rules.sweep import rule_grid
from services.engine.day_by_day import day_summary, run_day_by_day
from services.engine.rule_sweep import run_rule_sweep
from services.engine.rules import evaluate as evaluate_module

from .test_day_by_day import session_bars

START, END = date(2024, 3, 11), date(2024, 4, 19)
CASH = 50_000.0

DEFINITION = {
    "name": "RSI dip with a trend filter",
    "dataset": {"ticker": "NIFTY", "interval": "1m"},
    "session": {"timezone": "Asia/Kolkata", "start": "09:15", "end": "15:30", "square_off": "15:15"},
    "parameters": {"rsi_len": 14, "oversold": 30, "trend": 50, "sl": 0.4},
    "entries": [
        {"id": "dip", "condition": "RSI({rsi_len}) < {oversold} and close > SMA(close, {trend})", "side": "buy",
         "quantity": 3, "stop_loss": {"type": "percent", "value": "{sl}"}, "target": {"type": "points", "value": 12},
         "max_reentries": 1},
        {"id": "pop", "condition": "RSI({rsi_len}) > 100 - {oversold}", "side": "sell", "quantity": 2,
         "stop_loss": {"percent": "{sl}"}},
    ],
    "exits": [
        {"id": "back", "condition": "RSI({rsi_len}) > 55", "entries": ["dip"]},
        {"id": "down", "condition": "RSI({rsi_len}) < 45", "entries": ["pop"]},
    ],
}
RANGES = {"rsi_len": [10, 16, 3], "oversold": [25, 35, 5], "trend": [30, 60, 30], "sl": [0.3, 0.5, 0.2]}


def substituted_by_hand(rsi_len: int, oversold: int, trend: int, sl: float) -> dict:
    """The definition of one combination, written out here (not with the domain's substitution)."""
    return {
        **{k: v for k, v in DEFINITION.items() if k != "parameters"},
        "entries": [
            {**DEFINITION["entries"][0], "condition": f"RSI({rsi_len}) < {oversold} and close > SMA(close, {trend})",
             "stop_loss": {"type": "percent", "value": sl}},
            {**DEFINITION["entries"][1], "condition": f"RSI({rsi_len}) > 100 - {oversold}", "stop_loss": {"percent": sl}},
        ],
        "exits": [
            {**DEFINITION["exits"][0], "condition": f"RSI({rsi_len}) > 55"},
            {**DEFINITION["exits"][1], "condition": f"RSI({rsi_len}) < 45"},
        ],
    }


def day_by_day_run_metrics(bars, definition: dict, slippage: float, commission: float) -> tuple[dict, list[float]]:
    """A separate day-by-day run of one definition, its metrics computed the way results
    computes a finished run's (services.results.day_by_day.run_figures: the stored day rows)."""
    run = run_day_by_day(bars, compile_strategy(definition), START, END, interval="1m",
                         slippage_pct=slippage, commission_pct=commission)
    rows = [day_summary(d) for d in run.days]
    pnls = [r.pnl for r in rows]
    first, last = run.days[0], run.days[-1]
    metrics = day_by_day_metrics(
        initial_cash=CASH,
        day_pnls=pnls,
        periods_per_year=252,
        span_days=(int(run.ts[last.end - 1]) - int(run.ts[first.start])) / 86_400e9,
        ntrades=sum(r.positions for r in rows),
        nwins=sum(r.winning for r in rows),
        gross_profit=math.fsum(r.gross_profit for r in rows),
        gross_loss=math.fsum(r.gross_loss for r in rows),
        duration_ns=math.fsum(r.trade_ns / 1e9 for r in rows) * 1e9,
    )
    equity, returns = CASH, []
    for p in pnls:
        returns.append((equity + p) / equity - 1.0)
        equity += p
    return metrics, returns


@pytest.fixture(scope="module")
def bars():
    return session_bars(days=35, seed=11)


@pytest.mark.parametrize("slippage,commission", [(0.0, 0.0), (0.02, 0.03)])
def test_each_combination_equals_its_own_day_by_day_run(bars, slippage, commission):
    grid = rule_grid(DEFINITION, RANGES)
    assert grid.names == ("rsi_len", "oversold", "trend", "sl")
    assert len(grid) == 3 * 3 * 2 * 2
    outcome = run_rule_sweep(bars, DEFINITION, grid, START, END, interval="1m", slippage_pct=slippage,
                             commission_pct=commission, initial_cash=CASH, pbo_blocks=4)
    assert len(outcome.rows) == len(grid)
    matrix = []
    seen = set()
    for row in outcome.rows:
        values = row["parameters"]
        seen.add(tuple(values.values()))
        expected, returns = day_by_day_run_metrics(bars, substituted_by_hand(**values), slippage, commission)
        got = {k: row[k] for k in expected}
        assert got == expected, values
        matrix.append(returns)
    assert len(seen) == len(grid)
    # The grid's order: the last declared parameter fastest.
    assert [tuple(r["parameters"].values()) for r in outcome.rows][:3] == [(10, 25, 30, 0.3), (10, 25, 30, 0.5),
                                                                           (10, 25, 60, 0.3)]
    # Not a degenerate grid: the combinations trade, and differently.
    trades = [r["total_trades"] for r in outcome.rows]
    assert min(trades) > 0 and len(set(trades)) > 3
    # The statistics' trials are the combinations' day-end returns.
    r = np.array(matrix).T
    stats = outcome.statistics
    assert stats.trials == len(grid) and stats.days == r.shape[0] == outcome.days
    assert stats.moments is not None
    np.testing.assert_allclose(stats.moments.sharpe, r.mean(axis=0) / r.std(axis=0, ddof=1), rtol=1e-12)
    assert stats.pbo is not None and 0.0 <= stats.pbo <= 1.0
    np.testing.assert_allclose(stats.moments.kurtosis, returns_moments(r).kurtosis, rtol=1e-12)


def test_each_distinct_indicator_is_computed_once_per_sweep(bars, monkeypatch):
    calls: dict[tuple, int] = {}
    real_rsi, real_sma = evaluate_module.ta_kernel.rsi, evaluate_module.ma.sma

    def count(name, real):
        def wrapped(src, period, *a):
            calls[(name, int(period))] = calls.get((name, int(period)), 0) + 1
            return real(src, period, *a)
        return wrapped

    monkeypatch.setattr(evaluate_module.ta_kernel, "rsi", count("RSI", real_rsi))
    monkeypatch.setattr(evaluate_module.ma, "sma", count("SMA", real_sma))
    grid = rule_grid(DEFINITION, RANGES)
    outcome = run_rule_sweep(bars, DEFINITION, grid, START, END, initial_cash=CASH, pbo_blocks=4)
    assert calls == {("RSI", 10): 1, ("RSI", 13): 1, ("RSI", 16): 1, ("SMA", 30): 1, ("SMA", 60): 1}
    assert outcome.indicators == 5
