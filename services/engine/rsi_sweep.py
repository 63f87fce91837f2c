"""Sweeps of ``rsi_reversion`` (strategy_type RSI): its period and both thresholds.

Each distinct RSI series (one per period) is computed once; every (period, oversold,
overbought) combination then turns it into the positions the strategy wants at each
close (``backtest.rsi_positions``) and runs them through the sweep kernel's
trade-recording mode (``sweep.run_one``), so an RSI sweep row equals a single
``rsi_reversion`` backtest of that combination bit for bit: same fills, costs, equity
and metrics (``domain/metrics.py``).

The grid's overfitting statistics use each combination's daily returns, the equity at
each local day's last bar over the previous one (the initial cash before the first),
which is the series its Sharpe ratio is computed on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from domain.overfitting import SweepStatistics, block_sums, returns_moments, sweep_statistics
from services.engine._core import ta_kernel
from services.engine.backtest import rsi_positions
from services.engine.bars import Bars
from services.engine.sweep import SweepCancelled, run_one

PROGRESS_INTERVAL_S = 0.25


def run_rsi_sweep(
    bars: Bars,
    combos: list[tuple[int, float, float]],
    *,
    direction: str = "long",
    fill: str = "next_open",
    commission_pct: float = 0.0,
    slippage_pct: float = 0.0,
    initial_cash: float = 10_000.0,
    pbo_blocks: int | None = None,
    progress: Callable[[float], bool] | None = None,
) -> tuple[list[dict[str, Any]], SweepStatistics | None]:
    """Rows (grid order: ``period``, ``oversold``, ``overbought`` and the metrics) and, with
    ``pbo_blocks``, the grid's statistics. ``progress(fraction)`` returning False stops it
    (SweepCancelled)."""
    rsi: dict[int, np.ndarray] = {}
    day_end = np.flatnonzero(bars.day_ends())
    returns = np.empty((day_end.size, len(combos)), dtype=np.float64)
    cash0 = float(initial_cash)
    rows: list[dict[str, Any]] = []
    last = time.monotonic()
    for k, (period, oversold, overbought) in enumerate(combos):
        series = rsi.get(period)
        if series is None:
            series = rsi[period] = ta_kernel.rsi(bars.close, int(period))
        rec = run_one(bars, want=rsi_positions(series, float(oversold), float(overbought)), direction=direction,
                      fill=fill, commission_pct=commission_pct, slippage_pct=slippage_pct, initial_cash=cash0,
                      max_trades=0)
        ends = rec.equity[day_end]
        returns[:, k] = ends / np.concatenate(([cash0], ends[:-1])) - 1.0
        rows.append({"period": int(period), "oversold": float(oversold), "overbought": float(overbought),
                     **rec.metrics})
        now = time.monotonic()
        if progress is not None and now - last >= PROGRESS_INTERVAL_S:
            last = now
            if not progress((k + 1) / len(combos)):
                raise SweepCancelled("sweep cancelled by its progress callback")
    stats = None
    if pbo_blocks is not None:
        days = day_end.size
        block = block_sums(returns, pbo_blocks) if len(combos) >= 2 and days >= 2 * pbo_blocks else None
        with np.errstate(invalid="ignore", divide="ignore"):
            stats = sweep_statistics(returns_moments(returns), block, pbo_blocks)
    return rows, stats
