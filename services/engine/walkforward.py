"""One walk-forward fold (domain.walkforward): the training sweep over its training
window, the choice, and the chosen combination over its test window.

Both windows run through the sweep kernel with a decision start (``run_window_sweep``,
``run_one(window=...)``), so a fold's numbers are those of the sweep and the single
backtest, on the window alone. A fold needs nothing of another fold: any engine replica
may run any of them (they travel as shards of one job).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from domain.walkforward import Fold, choose
from services.engine.bars import Bars
from services.engine.sweep import run_one, run_window_sweep


@dataclass(frozen=True)
class FoldSettings:
    """What every fold of a walk-forward runs: the sweep's grid and simulation, the choice."""

    strategy_type: str
    combos: list[tuple[int, int]]
    objective: str
    min_trades: int
    direction: str = "long"
    fill: str = "next_open"
    commission_pct: float = 0.0
    slippage_pct: float = 0.0
    initial_cash: float = 10_000.0


def _window_args(s: FoldSettings) -> dict[str, Any]:
    return {"direction": s.direction, "fill": s.fill, "commission_pct": s.commission_pct,
            "slippage_pct": s.slippage_pct, "initial_cash": s.initial_cash}


def run_fold(bars: Bars, fold: Fold, s: FoldSettings, *, threads: int | None = None,
             progress: Callable[[float], bool] | None = None) -> dict[str, Any]:
    """The fold's result as results stores it: its bounds, the chosen ``parameters`` (None:
    no combination qualified), ``in_sample`` and ``out_of_sample`` metrics, and the test
    window's day ends (``oos``: ts, equity, buy and hold, trade totals) for the stitched curve."""
    rows = run_window_sweep(bars, s.strategy_type, s.combos, (fold.train_start, fold.train_end),
                            progress=progress, threads=threads, **_window_args(s))
    chosen = choose(rows, s.objective, s.min_trades)
    test = slice(fold.test_start, fold.test_end)
    day_end = bars.day_ends()[test].copy()
    day_end[-1] = True
    day_ts = bars.ts[test][day_end]
    # Buy and hold: the close over the close before the window.
    hold = bars.close[test][day_end] / bars.close[fold.test_start - 1]
    result: dict[str, Any] = {
        "fold": fold.index,
        "train_start": fold.train_start, "train_end": fold.train_end,
        "test_start": fold.test_start, "test_end": fold.test_end,
        "train_start_ts": int(bars.ts[fold.train_start]), "train_end_ts": int(bars.ts[fold.train_end - 1]),
        "test_start_ts": int(bars.ts[fold.test_start]), "test_end_ts": int(bars.ts[fold.test_end - 1]),
        "parameters": None, "in_sample": None, "out_of_sample": None,
        "combinations": len(rows),
        "periods_per_year": bars.periods_per_year,
    }
    if chosen is None:
        equity = np.full(day_ts.shape[0], s.initial_cash)
        totals = {"ntrades": 0, "nwins": 0, "gross_profit": 0.0, "gross_loss": 0.0, "duration_ns": 0.0}
    else:
        row = rows[chosen]
        pair = (int(row["fast_period"]), int(row["slow_period"]))
        rec = run_one(bars, s.strategy_type, pair, window=(fold.test_start, fold.test_end), **_window_args(s))
        equity = rec.equity[day_end]
        pnl = rec.trades["pnl"]
        totals = {
            "ntrades": int(rec.metrics["total_trades"]),
            "nwins": int(np.count_nonzero(pnl > 0.0)),
            "gross_profit": float(pnl[pnl > 0.0].sum()),
            "gross_loss": float(pnl[pnl < 0.0].sum()),
            "duration_ns": float((bars.ts[test][rec.trades["exit_index"]]
                                  - bars.ts[test][rec.trades["entry_index"]]).sum()),
        }
        result["parameters"] = {"fast_period": pair[0], "slow_period": pair[1]}
        result["in_sample"] = {k: v for k, v in row.items() if k not in ("fast_period", "slow_period")}
        result["out_of_sample"] = rec.metrics
    result["oos"] = {"day_ts": day_ts.tolist(), "equity": np.asarray(equity, dtype=float).tolist(),
                     "hold": hold.tolist(), **totals}
    return result
