"""Parameter sweeps of crossover strategies: every (fast, slow) pair in one pass.

``run_sweep`` evaluates a list of (fast, slow) period pairs of one strategy over
one bar series with the fused Cython kernel (``_core/sweep_kernel.pyx``): each
distinct indicator series is computed once, streamed in chunks of bars, and all
pairs are advanced together bar by bar with scalar state only, so memory grows
with the number of bars (one chunk of indicator values), never with
bars x pairs. The kernel runs without the GIL, its pairs spread over ``threads``
OpenMP threads (default: every CPU the process may use, ``available_cpus``); the
results are bit-identical for any thread count.

``run_one`` runs the same kernel for ONE combination in its trade-recording
mode (every trade and the equity of every bar), or for a precomputed series of
wanted positions (strategies the kernel has no indicator for): the single
backtest (``services/engine/backtest.py``) is this, so it and the sweep share
one implementation of the fills, costs, equity and metrics.

Strategies
----------
- ``SMA`` / ``EMA``: long while MA(fast) > MA(slow) (strictly), flat otherwise;
  during the indicator warm-up (NaN) the strategy is flat.
- ``MACD``: long while the MACD line > its signal line, MACD as TA-Lib defines
  it (``services.engine.indicators.macd``, the rule language's ``MACD``): both
  EMAs start at the slow one's first bar (slow - 1), the fast one seeded with the
  mean of the ``fast`` closes ending there; the signal line is EMA(9) of the line
  seeded with the mean of its first 9 values; a fast period above the slow one is
  swapped with it.
- ``direction``: ``long``; ``short`` (short while the opposite strict condition
  holds, e.g. MA(fast) < MA(slow)); ``both`` (long on >, short on <, flat on an
  exact tie or during warm-up; a change of side is an exit plus an entry).

Execution
---------
Signals are taken at a bar's close. ``fill="next_open"`` (default) fills at the
next bar's open — nothing of bar t+1 influences the decision at t;
``fill="close"`` fills at the signal bar's own close. Slippage moves each fill
price against the trade by ``slippage_pct`` percent; commission is
``commission_pct`` percent of the traded value on entry and on exit. Entries are
all-in: units = equity / (fill price x (1 + commission)). A signal on the last
bar is not acted upon (there is no later bar to fill it); a position still open
on the last bar is closed at its close (with slippage and commission) and
counted as a trade. An account whose equity is no longer positive stops trading.

Metrics and the score are defined in ``domain/metrics.py``; this module feeds them what
the kernel accumulates.

``run_sweep_with_statistics`` also returns the grid's overfitting statistics
(``domain/overfitting.py``): the kernel accumulates, besides each combination's
Welford moments of its daily returns, their 3rd and 4th central moments and the
sum and sum of squares of the returns in each CSCV block — O(blocks x
combinations) memory, never days x combinations.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from domain.market import NS_PER_DAY
from domain.metrics import combo_metrics, finite
from domain.overfitting import BlockSums, SweepStatistics, TrialMoments, day_blocks, sweep_statistics, trial_moments
from services.engine._core import sweep_kernel as _k
from services.engine.bars import Bars
from services.engine.indicators import MACD_SIGNAL_PERIOD

# Bars per kernel chunk: between two chunks the kernel takes the GIL back to report
# progress (a cancel stops it there). Its indicator values are held in smaller blocks
# of bars (the kernel's _BLOCK_VALUES), so the chunk decides no memory.
CHUNK_BARS = 16_384
# Minimum seconds between two progress callbacks.
PROGRESS_INTERVAL_S = 0.25

STRATEGY_TYPES = {"SMA": _k.KIND_SMA, "EMA": _k.KIND_EMA, "MACD": _k.KIND_MACD}
DIRECTIONS = {"long": _k.DIR_LONG, "short": _k.DIR_SHORT, "both": _k.DIR_BOTH}
FILLS = {"next_open": _k.FILL_NEXT_OPEN, "close": _k.FILL_CLOSE}

METRIC_KEYS = (
    "fast_period",
    "slow_period",
    "score",
    "sharpe_ratio",
    "sortino_ratio",
    "total_return_pct",
    "annualized_return",
    "max_drawdown_pct",
    "win_rate_pct",
    "profit_factor",
    "total_trades",
    "trades_per_month",
    "avg_trade_duration",
)


def available_cpus() -> int:
    """CPUs this process may use: its CPU affinity, capped by its cgroup's CPU quota
    (v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us``), so a container limited to 2 CPUs on a
    larger node counts 2."""
    n = len(os.sched_getaffinity(0))
    for path in ("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"):
        try:
            with open(path) as f:
                quota = f.read().split()
            if len(quota) == 1:  # v1: the period is in its own file
                with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
                    quota.append(f.read().strip())
            if quota[0] not in ("max", "-1"):
                n = min(n, max(1, math.ceil(int(quota[0]) / int(quota[1]))))
            break
        except (OSError, ValueError, IndexError):
            continue  # no such controller here: the next one, or the affinity alone
    return max(1, n)


class SweepCancelled(Exception):
    """The progress callback asked the sweep to stop (returned False)."""


def _pct_arg(name: str, value: float, upper: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0 or v >= upper:
        raise ValueError(f"{name} must be in [0, {upper})")
    return v / 100.0


def _prepare(bars: Bars, strategy_type: str, combos, direction: str, fill: str):
    kind = STRATEGY_TYPES.get(str(strategy_type).upper())
    if kind is None:
        raise ValueError(f"strategy_type must be one of {sorted(STRATEGY_TYPES)}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}")
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {sorted(FILLS)}")
    pairs = []
    for c in combos:
        f, s = c
        if int(f) != f or int(s) != s or int(f) < 1 or int(s) < 1:
            raise ValueError(f"periods must be positive integers, got {c!r}")
        pairs.append((int(f), int(s)))
    check_bars(bars)
    return kind, pairs


def _columns(pairs: list[tuple[int, int]]):
    """The kernel's indicator columns (each distinct period once) and each pair's fast
    and slow column."""
    periods = sorted({p for pair in pairs for p in pair})
    col = {p: i for i, p in enumerate(periods)}
    fast_idx = np.array([col[f] for f, _ in pairs], dtype=np.int32)
    slow_idx = np.array([col[s] for _, s in pairs], dtype=np.int32)
    return np.array(periods, dtype=np.int32), fast_idx, slow_idx


def check_bars(bars: Bars) -> None:
    """Bars a strategy can trade on: at least one, with finite, positive opens and closes."""
    if len(bars) < 1:
        raise ValueError("no bars")
    if not (np.all(np.isfinite(bars.open)) and np.all(np.isfinite(bars.close))):
        raise ValueError("open and close must be finite")
    if not (np.all(bars.open > 0) and np.all(bars.close > 0)):
        raise ValueError("open and close must be positive")


def run_sweep(
    bars: Bars,
    strategy_type: str,
    combos: list[tuple[int, int]],
    *,
    direction: str = "long",
    fill: str = "next_open",
    commission_pct: float = 0.0,
    slippage_pct: float = 0.0,
    initial_cash: float = 10_000.0,
    progress: Callable[[float], bool] | None = None,
    signal_period: int = MACD_SIGNAL_PERIOD,
    threads: int | None = None,
) -> list[dict]:
    """Backtest every (fast, slow) pair of ``combos``; one metrics dict per pair, in
    the order given (keys: ``METRIC_KEYS``; see the module docstring).

    ``progress(fraction)`` is called between chunks of bars (at most every
    ``PROGRESS_INTERVAL_S`` seconds) and once with 1.0 at the end; returning
    False from a call before the end raises :class:`SweepCancelled`.
    ``signal_period`` is MACD's signal EMA (sweeps use 9; single backtests may set it).
    ``threads``: the kernel's threads (None: ``available_cpus()``); the rows do not
    depend on it.
    """
    rows, _, _ = _sweep(bars, strategy_type, combos, direction, fill, commission_pct, slippage_pct, initial_cash,
                        progress, signal_period, None, threads)
    return rows


@dataclass(frozen=True)
class SweepOutcome:
    """A sweep's rows (as ``run_sweep``'s) and its grid's overfitting statistics."""

    rows: list[dict]
    statistics: SweepStatistics
    # Seconds spent on the statistics after the kernel (the CSCV, mostly).
    statistics_seconds: float = 0.0
    # The trials' CSCV block sums, kept when the CSCV was left to whoever joins this grid's
    # part with the others (a pair chunk of a sharded sweep: ``cscv=False``).
    block_sums: BlockSums | None = None


def run_sweep_with_statistics(
    bars: Bars,
    strategy_type: str,
    combos: list[tuple[int, int]],
    *,
    pbo_blocks: int,
    direction: str = "long",
    fill: str = "next_open",
    commission_pct: float = 0.0,
    slippage_pct: float = 0.0,
    initial_cash: float = 10_000.0,
    progress: Callable[[float], bool] | None = None,
    signal_period: int = MACD_SIGNAL_PERIOD,
    threads: int | None = None,
    cscv: bool = True,
) -> SweepOutcome:
    """``run_sweep`` plus the overfitting statistics of the grid, every combination being a
    trial (``domain.overfitting``; the CSCV over ``pbo_blocks`` blocks).

    ``cscv=False``: ``combos`` are one part of a larger grid (a pair chunk): the statistics
    hold the trials' moments only, and ``block_sums`` their block sums, for the statistics
    of the whole grid once every part is in (``domain.overfitting.sweep_statistics`` over
    the parts joined in grid order gives what one sweep of the whole grid gives)."""
    if pbo_blocks < 2 or pbo_blocks % 2:
        raise ValueError("pbo_blocks must be an even number of at least 2")
    rows, stats, seconds = _sweep(bars, strategy_type, combos, direction, fill, commission_pct, slippage_pct,
                                  initial_cash, progress, signal_period, pbo_blocks, threads, cscv=cscv)
    assert stats is not None
    if isinstance(stats, tuple):
        moments, sums = stats
        return SweepOutcome(rows, SweepStatistics(moments.sharpe.shape[0], moments.days, pbo_blocks, moments=moments),
                            seconds, sums)
    return SweepOutcome(rows, stats, seconds)


def run_window_sweep(
    bars: Bars,
    strategy_type: str,
    combos: list[tuple[int, int]],
    window: tuple[int, int],
    *,
    direction: str = "long",
    fill: str = "next_open",
    commission_pct: float = 0.0,
    slippage_pct: float = 0.0,
    initial_cash: float = 10_000.0,
    progress: Callable[[float], bool] | None = None,
    threads: int | None = None,
) -> list[dict]:
    """``run_sweep`` over the walk-forward window [start, end) of ``bars``
    (``domain.walkforward``): the indicators see every bar before ``end``, the decisions
    start flat at ``start``, what is open at ``end - 1`` closes at its close, the metrics
    are the window's own."""
    rows, _, _ = _sweep(bars, strategy_type, combos, direction, fill, commission_pct, slippage_pct, initial_cash,
                        progress, MACD_SIGNAL_PERIOD, None, threads, window)
    return rows


def _window(bars: Bars, window: tuple[int, int] | None) -> tuple[int, int]:
    if window is None:
        return 0, len(bars)
    start, end = int(window[0]), int(window[1])
    if not 0 <= start < end - 1 < len(bars):
        raise ValueError(f"a window is at least two bars of the data, not [{start}, {end})")
    return start, end


def _sweep(bars, strategy_type, combos, direction, fill, commission_pct, slippage_pct, initial_cash, progress,
           signal_period, pbo_blocks: int | None,
           threads: int | None = None,
           window: tuple[int, int] | None = None,
           cscv: bool = True) -> tuple[list[dict], SweepStatistics | tuple[TrialMoments, BlockSums] | None, float]:
    kind, pairs = _prepare(bars, strategy_type, combos, direction, fill)
    start, end = _window(bars, window)
    commission = _pct_arg("commission_pct", commission_pct, 100.0)
    slippage = _pct_arg("slippage_pct", slippage_pct, 100.0)
    cash0 = float(initial_cash)
    if not math.isfinite(cash0) or cash0 <= 0:
        raise ValueError("initial_cash must be positive")
    if not pairs:
        return [], None, 0.0

    periods, fast_idx, slow_idx = _columns(pairs)
    day_end = bars.day_ends()[:end].astype(np.uint8)
    # The kernel takes one daily return at each day end of the window (its last bar is always one).
    day_end[end - 1] = 1
    n_days = int(np.count_nonzero(day_end[start:]))
    blocks = {} if pbo_blocks is None else {"day_block": day_blocks(n_days, pbo_blocks), "blocks": pbo_blocks}

    # the kernel's threads, and the CSCV's after it: a replica given one CPU uses one
    workers = available_cpus() if threads is None else max(1, int(threads))
    out = _k.sweep(
        bars.open[:end],
        bars.close[:end],
        bars.ts[:end],
        day_end,
        periods,
        fast_idx,
        slow_idx,
        kind,
        DIRECTIONS[direction],
        FILLS[fill],
        commission,
        slippage,
        cash0,
        signal_period=int(signal_period),
        progress=progress,
        chunk=CHUNK_BARS,
        progress_interval=PROGRESS_INTERVAL_S,
        threads=workers,
        start=start,
        **blocks,
    )
    if out is None:
        raise SweepCancelled("sweep cancelled by its progress callback")
    if progress is not None:
        progress(1.0)  # informational: the results are complete either way
    stats: SweepStatistics | tuple[TrialMoments, BlockSums] | None = None
    started = time.perf_counter()
    if pbo_blocks is not None:
        moments = trial_moments(n_days, out["mean"], out["m2"], out.pop("m3"), out.pop("m4"))
        # T // S days per block; with fewer days than 2 x blocks there is no CSCV (the statistics say why)
        sums = BlockSums(out.pop("block_sum"), out.pop("block_sq"), n_days // pbo_blocks)
        stats = sweep_statistics(moments, sums, pbo_blocks, workers) if cscv else (moments, sums)
    return _metrics(bars, pairs, out, cash0, start, end), stats, time.perf_counter() - started


@dataclass(frozen=True)
class Recorded:
    """One combination run in the kernel's trade-recording mode."""

    metrics: dict  # METRIC_KEYS from ``score`` on
    equity: np.ndarray  # per bar, after the bar's fills (the last after the close-out)
    trades: dict[str, np.ndarray]  # per closed trade: see ``sweep_kernel.backtest``


def run_one(
    bars: Bars,
    strategy_type: str | None = None,
    pair: tuple[int, int] | None = None,
    *,
    want: np.ndarray | None = None,
    direction: str = "long",
    fill: str = "next_open",
    commission_pct: float = 0.0,
    slippage_pct: float = 0.0,
    initial_cash: float = 10_000.0,
    signal_period: int = MACD_SIGNAL_PERIOD,
    max_trades: int | None = None,
    window: tuple[int, int] | None = None,
) -> Recorded:
    """One combination with its trades and per-bar equity, through the sweep kernel.

    Either ``strategy_type`` and its (fast, slow) ``pair`` — the metrics then equal
    ``run_sweep``'s for that pair bit for bit — or ``want``: the position (-1, 0,
    +1) wanted at each bar's close, traded with the same fills and costs;
    ``direction`` keeps its long side (``long``), its short side (``short``) or both.
    With ``max_trades`` at most that many trades + 1 are kept (``total_trades``
    still counts them all). With ``window`` (start, end): the walk-forward window
    [start, end) as ``run_window_sweep`` runs it; ``equity`` is then the window's bars'
    and the trades' bar indices count from ``start``.
    """
    if (want is None) == (strategy_type is None):
        raise ValueError("give either a strategy type and its pair, or the wanted positions")
    if want is None:
        kind, pairs = _prepare(bars, strategy_type, [pair], direction, fill)
        periods, fast_idx, slow_idx = _columns(pairs)
        cols = {"periods": periods, "fast_col": int(fast_idx[0]), "slow_col": int(slow_idx[0])}
    else:
        kind, pairs, cols = _k.KIND_WANT, [(0, 0)], {"want": want}
        if direction not in DIRECTIONS or fill not in FILLS:
            raise ValueError("bad fill or direction")
        check_bars(bars)
    cash0 = float(initial_cash)
    if not math.isfinite(cash0) or cash0 <= 0:
        raise ValueError("initial_cash must be positive")
    start, end = _window(bars, window)
    day_end = bars.day_ends()[:end].astype(np.uint8)
    day_end[end - 1] = 1
    if want is not None:
        want = np.asarray(want)[:end]
    out = _k.backtest(
        bars.open[:end],
        bars.close[:end],
        bars.ts[:end],
        day_end,
        kind,
        DIRECTIONS[direction],
        FILLS[fill],
        _pct_arg("commission_pct", commission_pct, 100.0),
        _pct_arg("slippage_pct", slippage_pct, 100.0),
        cash0,
        signal_period=int(signal_period),
        max_trades=-1 if max_trades is None else int(max_trades),
        start=start,
        **cols,
    )
    equity, trades = out.pop("equity")[start:], out.pop("trades")
    if start:
        trades["entry_index"] -= start
        trades["exit_index"] -= start
    row = _metrics(bars, pairs, out, cash0, start, end)[0]
    del row["fast_period"], row["slow_period"]
    return Recorded(row, equity, trades)


def _metrics(bars: Bars, pairs: list[tuple[int, int]], out: dict, cash0: float, start: int, end: int) -> list[dict]:
    P = float(bars.periods_per_year)
    span_days = float(bars.ts[end - 1] - bars.ts[start]) / NS_PER_DAY
    cols = {name: arr.tolist() for name, arr in out.items()}
    return [
        {
            "fast_period": fast,
            "slow_period": slow,
            **combo_metrics(
                periods_per_year=P,
                span_days=span_days,
                growth=cols["final_equity"][k] / cash0,
                ndays=cols["ndays"][k],
                mean=cols["mean"][k],
                m2=cols["m2"][k],
                dsq=cols["dsq"][k],
                max_drawdown_pct=finite(cols["max_dd"][k] * 100.0),
                ntrades=cols["ntrades"][k],
                nwins=cols["nwins"][k],
                gross_profit=cols["gross_profit"][k],
                gross_loss=cols["gross_loss"][k],
                duration_ns=cols["duration_ns"][k],
            ),
        }
        for k, (fast, slow) in enumerate(pairs)
    ]


__all__ = [
    "METRIC_KEYS",
    "STRATEGY_TYPES",
    "Recorded",
    "SweepCancelled",
    "SweepOutcome",
    "check_bars",
    "run_one",
    "available_cpus",
    "run_sweep",
    "run_sweep_with_statistics",
    "run_window_sweep",
]
