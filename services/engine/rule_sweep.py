"""Sweeps of a rule strategy's parameters (``domain.rules.sweep``), day by day.

Every combination is the strategy with its values substituted, run exactly as a
day-by-day backtest of that definition runs (``services.engine.day_by_day``: the
same session days, signals and Cython position loop), but without its per-day
files or per-trade objects: each combination keeps only its day P&L and counts
(priced in columns, ``day_totals``) and the metrics a day-by-day run reports
(``domain.metrics.day_by_day_metrics``).

All combinations share one ``DayPlan``: the days, the bars and the indicator cache,
so each distinct indicator series (``RSI(10)``, ``RSI(12)``, ``SMA(close, 50)``...)
is computed once per sweep however many combinations use it.

The grid's overfitting statistics (``domain.overfitting``) are computed on the T x N
matrix of the combinations' day-end returns (the series their Sharpe ratios use);
the grid is at most ``MAX_SWEEP_COMBINATIONS`` wide, so the matrix is small.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from domain.metrics import day_by_day_metrics, day_end_returns
from domain.overfitting import SweepStatistics, block_sums, returns_moments, sweep_statistics
from domain.rules.strategy import Strategy, compile_strategy
from domain.rules.sweep import RuleGrid
from services.engine._core import daybyday_kernel as _k
from services.engine.bars import Bars
from services.engine.day_by_day import DayPlan, plan_days, run_positions

PROGRESS_INTERVAL_S = 0.25


class RuleSweepCancelled(Exception):
    """The progress callback asked to stop."""


@dataclass
class RuleSweepOutcome:
    """Per combination (grid order): its values and metrics; the grid's statistics."""

    rows: list[dict[str, Any]]
    statistics: SweepStatistics
    days: int
    bars: int
    indicators: int


@dataclass
class DayTotals:
    """Per trading day of one combination: what a day-by-day run stores of it
    (``services.engine.day_by_day.day_summary``), in columns."""

    pnl: list[float]
    positions: list[int]
    winning: list[int]
    gross_profit: list[float]
    gross_loss: list[float]
    trade_ns: list[int]


def day_totals(plan: DayPlan, strategy: Strategy, raw: dict[str, np.ndarray], slippage_pct: float,
               commission_pct: float) -> DayTotals:
    """Each day's P&L and counts straight from the position loop's raw trades, without the
    per-trade objects and documents a day-by-day run builds: the same prices, commission and
    P&L per trade (``day_by_day._price_trade``'s arithmetic, elementwise), summed per day with
    math.fsum (exactly rounded, so in any order)."""
    ndays = len(plan.dates)
    out = DayTotals([0.0] * ndays, [0] * ndays, [0] * ndays, [0.0] * ndays, [0.0] * ndays, [0] * ndays)
    node = raw["node"]
    if node.size == 0:
        return out
    entries = strategy.entries
    sign = np.array([1.0 if e.side == "buy" else -1.0 for e in entries])[node]
    qty = np.array([e.quantity for e in entries])[node]
    slip, comm = slippage_pct / 100.0, commission_pct / 100.0
    entry = raw["entry_price"] * (1.0 + sign * slip)
    exit_ = raw["exit_price"] * (1.0 - sign * slip)
    pnl = sign * (exit_ - entry) * qty - (entry + exit_) * qty * comm
    day = raw["day"].astype(np.int64)
    entry_ns = plan.ts[raw["entry_bar"]]
    # A square-off at the session's end exits at the day's last close: the end of its bar.
    at_end = (raw["reason"] == _k.REASON_SQUARE_OFF) & (plan.square_offs[day] >= plan.ends[day])
    exit_ns = plan.ts[raw["exit_bar"]] + np.where(at_end, plan.bar_ns, 0)
    held = np.maximum(exit_ns - entry_ns, 0)
    order = np.argsort(day, kind="stable")
    bounds = np.flatnonzero(np.diff(day[order])) + 1
    for group in np.split(order, bounds):
        d = int(day[group[0]])
        p = pnl[group].tolist()
        wins = [x for x in p if x > 0]
        out.pnl[d] = math.fsum(p)
        out.positions[d] = len(p)
        out.winning[d] = len(wins)
        out.gross_profit[d] = math.fsum(wins)
        out.gross_loss[d] = math.fsum(x for x in p if x < 0)
        out.trade_ns[d] = int(held[group].sum())
    return out


def combination_metrics(plan: DayPlan, days: DayTotals, initial_cash: float) -> dict[str, Any]:
    """A combination's metrics, from what a day-by-day run stores per day (results'
    ``run_figures`` computes a run's from the same numbers)."""
    return day_by_day_metrics(
        initial_cash=initial_cash,
        day_pnls=days.pnl,
        periods_per_year=plan.periods_per_year,
        span_days=plan.span_days,
        ntrades=sum(days.positions),
        nwins=sum(days.winning),
        gross_profit=math.fsum(days.gross_profit),
        gross_loss=math.fsum(days.gross_loss),
        duration_ns=math.fsum(ns / 1e9 for ns in days.trade_ns) * 1e9,
    )


def run_rule_sweep(
    bars: Bars,
    definition: dict[str, Any],
    grid: RuleGrid,
    start: date,
    end: date,
    *,
    interval: str = "1m",
    slippage_pct: float = 0.0,
    commission_pct: float = 0.0,
    initial_cash: float = 100_000.0,
    pbo_blocks: int = 16,
    progress: Callable[[int, int], bool] | None = None,
) -> RuleSweepOutcome:
    """Every combination of ``grid`` over the days of [start, end]; ``definition`` is the
    strategy's normal form. ``progress(done, total)`` is called at most every 0.25 s and
    stops the sweep (RuleSweepCancelled) when it returns False. Raises
    services.engine.day_by_day.NoData when the range has no day."""
    strategies = [compile_strategy(grid.definition(definition, i)) for i in range(len(grid))]
    plan = plan_days(bars, strategies[0], start, end, interval=interval)
    ndays = len(plan.dates)
    returns = np.empty((ndays, len(strategies)), dtype=np.float64)
    rows: list[dict[str, Any]] = []
    last = time.monotonic()
    for i, strategy in enumerate(strategies):
        raw, _, _ = run_positions(plan, strategy)
        days = day_totals(plan, strategy, raw, slippage_pct, commission_pct)
        returns[:, i] = day_end_returns(initial_cash, days.pnl)
        metrics = combination_metrics(plan, days, initial_cash)
        rows.append({"parameters": grid.values(i), **metrics, "winning_trades": sum(days.winning),
                     "pnl": math.fsum(days.pnl)})
        now = time.monotonic()
        if progress is not None and now - last >= PROGRESS_INTERVAL_S:
            last = now
            if not progress(i + 1, len(strategies)):
                raise RuleSweepCancelled()
    moments = returns_moments(returns)
    block = block_sums(returns, pbo_blocks) if len(strategies) >= 2 and ndays >= 2 * pbo_blocks else None
    statistics = sweep_statistics(moments, block, pbo_blocks)
    return RuleSweepOutcome(rows, statistics, ndays, plan.n, plan.ctx.computed)
