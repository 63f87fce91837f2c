"""Rule-strategy sweep benchmark: a 100-combination sweep of a parameterised rule strategy
over a year of 1-minute session bars, against 100 separate day-by-day runs of the same
combinations (each strategy substituted and run on its own), in this process.

    .venv/bin/python -m bench.rule_sweep          (what `make bench` runs)

Data: bench.daybyday_year's year (250 weekdays, 09:15-15:29 Asia/Kolkata, 93,750 bars).
Strategy: buy 1 when RSI({rsi_len}) < {oversold} (stop-loss 0.5 %, target 1 %, up to 2
re-entries), exit when RSI({rsi_len}) > 70, square-off at 15:15; the grid is rsi_len
10, 12, ..., 28 x oversold 20, 22, ..., 38 (100 combinations, 10 distinct RSI series).

Figures printed:
- sweep: services.engine.rule_sweep.run_rule_sweep over the grid (one session plan, each
  RSI series once, the grid's overfitting statistics included);
- separate: 100 x services.engine.day_by_day.run_day_by_day of the substituted strategy and
  its metrics (each run computes its own indicators; no day files are built);
- the ratio separate / sweep, and whether the two agree metric for metric;
- the per-run cost of building a day-by-day run's day files (3 runs measured), which
  a separate day-by-day backtest also pays and the sweep does not.
"""

from __future__ import annotations

import math
import statistics
import time
from datetime import date

import numpy as np

from bench.daybyday_year import TZ, year_bars
from domain.metrics import day_by_day_metrics
from domain.rules.strategy import compile_strategy
from domain.rules.sweep import rule_grid
from services.engine.bars import Bars
from services.engine.day_by_day import day_summary, run_day_by_day
from services.engine.kinds.day_by_day import build_day
from services.engine.rule_sweep import run_rule_sweep

START, END = date(2023, 1, 2), date(2023, 12, 31)
CASH = 100_000.0
STRATEGY = {
    "name": "RSI entry/exit (rule sweep bench)",
    "dataset": {"ticker": "BENCH-YEAR", "interval": "1m"},
    "session": {"square_off": "15:15"},
    "parameters": {"rsi_len": 14, "oversold": 30},
    "entries": [{"id": "entry-1", "condition": "RSI({rsi_len}) < {oversold}", "side": "buy", "quantity": 1,
                 "stop_loss": {"type": "percent", "value": 0.5}, "target": {"type": "percent", "value": 1.0},
                 "max_reentries": 2}],
    "exits": [{"id": "exit-1", "condition": "RSI({rsi_len}) > 70"}],
}
RANGES = {"rsi_len": [10, 28, 2], "oversold": [20, 38, 2]}


def bars_of_year() -> Bars:
    df = year_bars()
    ts = (np.array(df["timestamp"].to_numpy(), dtype="datetime64[ns]") - np.timedelta64(5 * 60 + 30, "m")).astype(np.int64)
    return Bars(ts, df["open"].to_numpy(), df["high"].to_numpy(), df["low"].to_numpy(), df["close"].to_numpy(),
                df["volume"].to_numpy().astype(np.float64), timezone=TZ, calendar="sessions")


def separate_run(bars: Bars, definition: dict) -> dict:
    run = run_day_by_day(bars, compile_strategy(definition), START, END, interval="1m")
    rows = [day_summary(d) for d in run.days]
    first, last = run.days[0], run.days[-1]
    return day_by_day_metrics(
        initial_cash=CASH, day_pnls=[r.pnl for r in rows], periods_per_year=bars.periods_per_year,
        span_days=(int(run.ts[last.end - 1]) - int(run.ts[first.start])) / 86_400e9,
        ntrades=sum(r.positions for r in rows), nwins=sum(r.winning for r in rows),
        gross_profit=math.fsum(r.gross_profit for r in rows), gross_loss=math.fsum(r.gross_loss for r in rows),
        duration_ns=math.fsum(r.trade_ns / 1e9 for r in rows) * 1e9,
    )


def main() -> None:
    bars = bars_of_year()
    grid = rule_grid(STRATEGY, RANGES)
    normal = compile_strategy(STRATEGY).definition
    print(f"rule-strategy sweep: {len(grid)} combinations, {len(bars):,} minute bars, {START} .. {END}")

    t = time.perf_counter()
    outcome = run_rule_sweep(bars, normal, grid, START, END, interval="1m", initial_cash=CASH)
    sweep_s = time.perf_counter() - t
    print(f"  sweep:     {sweep_s:7.2f} s  ({outcome.days} days, {outcome.indicators} indicator series, "
          f"PBO {outcome.statistics.pbo:.3f})")

    t = time.perf_counter()
    separate = [separate_run(bars, grid.definition(normal, i)) for i in range(len(grid))]
    separate_s = time.perf_counter() - t
    print(f"  separate:  {separate_s:7.2f} s  (100 day-by-day runs, no day files)")
    agree = all(all(row[k] == m[k] for k in m) for row, m in zip(outcome.rows, separate, strict=True))
    print(f"  ratio:     {separate_s / sweep_s:7.2f} x  (separate / sweep); metrics identical: {agree}")

    files = []
    for i in (0, len(grid) // 2, len(grid) - 1):
        run = run_day_by_day(bars, compile_strategy(grid.definition(normal, i)), START, END, interval="1m")
        t = time.perf_counter()
        for d in run.days:
            build_day(run, d)
        files.append(time.perf_counter() - t)
    per_run = statistics.median(files)
    print(f"  day files: {per_run:7.2f} s per separate run (median of 3; 100 runs: ~{100 * per_run:.0f} s more), "
          f"which the sweep does not build")
    if not agree:
        raise SystemExit("the sweep and the separate runs disagree")


if __name__ == "__main__":
    main()
