"""Sweeps of a rule strategy's parameters (``domain.rules.sweep``), day by day.

Every combination is the strategy with its values substituted, run exactly as a
day-by-day backtest of that definition runs (``services.engine.day_by_day``: the
same session days, signals, Cython position loop and trade pricing), but without
its per-day files: each combination keeps only its day P&L, counts and the
metrics a day-by-day run reports (``domain.metrics.day_by_day_metrics``).

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
from domain.rules.strategy import compile_strategy
from domain.rules.sweep import RuleGrid
from services.engine.bars import Bars
from services.engine.day_by_day import DayPlan, day_summary, plan_days, run_planned

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


def combination_metrics(plan: DayPlan, pnls: list[float], summaries: list[Any], initial_cash: float) -> dict[str, Any]:
    """A combination's metrics, from what a day-by-day run stores per day (results'
    ``run_figures`` computes a run's from the same numbers)."""
    return day_by_day_metrics(
        initial_cash=initial_cash,
        day_pnls=pnls,
        periods_per_year=plan.periods_per_year,
        span_days=plan.span_days,
        ntrades=sum(s.positions for s in summaries),
        nwins=sum(s.winning for s in summaries),
        gross_profit=math.fsum(s.gross_profit for s in summaries),
        gross_loss=math.fsum(s.gross_loss for s in summaries),
        duration_ns=math.fsum(s.trade_ns / 1e9 for s in summaries) * 1e9,
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
        run = run_planned(plan, strategy, slippage_pct=slippage_pct, commission_pct=commission_pct)
        summaries = [day_summary(d) for d in run.days]
        pnls = [s.pnl for s in summaries]
        returns[:, i] = day_end_returns(initial_cash, pnls)
        metrics = combination_metrics(plan, pnls, summaries, initial_cash)
        rows.append({"parameters": grid.values(i), **metrics,
                     "winning_trades": sum(s.winning for s in summaries),
                     "pnl": math.fsum(pnls)})
        now = time.monotonic()
        if progress is not None and now - last >= PROGRESS_INTERVAL_S:
            last = now
            if not progress(i + 1, len(strategies)):
                raise RuleSweepCancelled()
    moments = returns_moments(returns)
    block = block_sums(returns, pbo_blocks) if len(strategies) >= 2 and ndays >= 2 * pbo_blocks else None
    statistics = sweep_statistics(moments, block, pbo_blocks)
    return RuleSweepOutcome(rows, statistics, ndays, plan.n, plan.ctx.computed)
