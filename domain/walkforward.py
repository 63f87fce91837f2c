"""Walk-forward optimization: the windows, the choice of each fold, the stitched out-of-sample curve.

One definition, used by the gateway (400 field by field), results (the folds of a
job at submission, against the dataset's bars; the stitched curve at the end) and
the engine (each fold's windows and choice).

Folds
-----
With n bars, fold k (k = 0, 1, ...) trains on [s_k, s_k + train) (anchored:
[0, s_k + train)), s_k = k x step, and tests on [s_k + train, s_k + train + test),
for every k whose test window ends within the data. Bounds are bar indices,
half-open. No fold (train + test > n) is a bad request, as is more than
``FOLDS_MAX`` folds.

Windows
-------
Every window, training or test, is simulated the same way: indicators use every
bar up to each decision, including those before the window; decisions start at
the window's first bar, flat; a position still open at the window's end closes at
its last close; the metrics (``domain.metrics``) are those of the window alone
(its own equity from the initial cash, its own daily returns and span).

Choice
------
The training sweep chooses the combination with the highest objective among
those with at least ``min_trades`` trades and a defined objective; ties go to the
smaller fast period, then the smaller slow one. A fold where no combination
qualifies has no parameters and stays out of the market in its test window.

Stitched out-of-sample curve and efficiency
-------------------------------------------
The folds' test windows are chained in fold order, compounded: each starts at the
equity the previous one ended with (the first at the initial cash), so the curve
is the product of the folds' growth. Its points are the test windows' day ends; its
metrics are ``domain.metrics``' over those points (daily returns between
consecutive points, max drawdown over them, as a day-by-day run's), its trades the
folds' out-of-sample trades (P&L scaled by the equity each fold started with).
Buy and hold over the same windows is chained the same way (close over the close
before the window). Overlapping test windows (step < test) each appear whole.

The walk-forward efficiency is mean(out-of-sample CAGR) / mean(in-sample CAGR)
over the folds that chose parameters and have both; null when there are none or
the in-sample mean is 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from domain.market import NS_PER_DAY
from domain.metrics import combo_metrics, finite
from domain.sweep import Problem

OBJECTIVES: Final = ("score", "sharpe_ratio", "sortino_ratio", "total_return_pct", "annualized_return",
                     "profit_factor", "win_rate_pct")
OBJECTIVE_DEFAULT: Final = "score"
# Bars a window needs: a signal bar and a bar to fill it on.
WINDOW_BARS_MIN: Final = 2
WINDOW_BARS_MAX: Final = 100_000_000
FOLDS_MAX: Final = 500
# The sweeps a walk-forward re-chooses: the crossovers, whose grid is (fast, slow).
STRATEGY_TYPES: Final = ("SMA", "EMA", "MACD")


def target_problem(tickers: object, universe: object) -> Problem | None:
    """A walk-forward runs one ticker's bars: a sweep of a universe cannot be walked forward."""
    if tickers or universe:
        return Problem("sweep.ticker", "a walk-forward runs one ticker: give `ticker`, not `tickers` or `universe`")
    return None


def strategy_problem(strategy_type: str) -> Problem | None:
    """Why a sweep of `strategy_type` cannot be walked forward, or None."""
    if strategy_type in STRATEGY_TYPES:
        return None
    return Problem("sweep.strategy_type", f"a walk-forward runs the crossover sweeps ({', '.join(STRATEGY_TYPES)}), "
                                          f"not {strategy_type}")


@dataclass(frozen=True)
class Windows:
    """How a walk-forward cuts the bars."""

    train_bars: int
    test_bars: int
    step_bars: int
    anchored: bool = False
    objective: str = OBJECTIVE_DEFAULT


@dataclass(frozen=True)
class Fold:
    """One fold's windows: bar indices, half-open."""

    index: int
    train_start: int
    train_end: int
    test_start: int
    test_end: int


def _size_problem(value: object, least: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be an integer"
    if not least <= value <= WINDOW_BARS_MAX:
        return f"must be an integer from {least} to {WINDOW_BARS_MAX}"
    return None


def windows_problems(w: Windows) -> list[Problem]:
    """Every rule the windows break on their own (empty: they may be cut on data)."""
    out: list[Problem] = []
    for name, least in (("train_bars", WINDOW_BARS_MIN), ("test_bars", WINDOW_BARS_MIN), ("step_bars", 1)):
        problem = _size_problem(getattr(w, name), least)
        if problem is not None:
            out.append(Problem(name, problem))
    if not isinstance(w.anchored, bool):
        out.append(Problem("anchored", "must be true or false"))
    if w.objective not in OBJECTIVES:
        out.append(Problem("objective", f"must be one of {', '.join(OBJECTIVES)}"))
    return out


def fold_count(n_bars: int, w: Windows) -> int:
    """Folds of `w` over `n_bars` bars (0: the windows are longer than the data)."""
    span = w.train_bars + w.test_bars
    if n_bars < span:
        return 0
    return (n_bars - span) // w.step_bars + 1


def folds_problems(n_bars: int, w: Windows) -> list[Problem]:
    """Why `w` cannot be cut over `n_bars` bars (empty: it can), with its own rules first."""
    out = windows_problems(w)
    if out:
        return out
    n = fold_count(n_bars, w)
    if n == 0:
        out.append(Problem("train_bars", f"the windows are longer than the data: train_bars + test_bars = "
                                         f"{w.train_bars + w.test_bars} > {n_bars} bars in the dataset"))
    elif n > FOLDS_MAX:
        out.append(Problem("step_bars", f"{n} folds; at most {FOLDS_MAX} (raise step_bars)"))
    return out


def folds(n_bars: int, w: Windows) -> list[Fold]:
    """Every fold of `w` over `n_bars` bars (the module docstring), in order."""
    out = []
    for k in range(fold_count(n_bars, w)):
        s = k * w.step_bars
        train_end = s + w.train_bars
        out.append(Fold(k, 0 if w.anchored else s, train_end, train_end, train_end + w.test_bars))
    return out


def choose(rows: Sequence[Mapping[str, Any]], objective: str, min_trades: int) -> int | None:
    """Index in `rows` of the combination a training sweep chooses (None: none qualifies).

    Rows carry ``fast_period``, ``slow_period``, ``total_trades`` and the objective."""
    best: int | None = None
    best_key: tuple[float, int, int] | None = None
    for i, row in enumerate(rows):
        value = finite(row.get(objective))
        if value is None or int(row["total_trades"]) < min_trades:
            continue
        # Highest objective; then smaller fast, then smaller slow.
        key = (-value, int(row["fast_period"]), int(row["slow_period"]))
        if best_key is None or key < best_key:
            best, best_key = i, key
    return best


@dataclass(frozen=True)
class OutOfSample:
    """What the stitched curve needs of one fold's test window (None parameters: flat)."""

    # Day ends of the window: ns timestamps, the window's equity there (from the initial
    # cash), and buy-and-hold's growth there (close over the close before the window).
    day_ts: Sequence[int]
    equity: Sequence[float]
    hold: Sequence[float]
    ntrades: int
    nwins: int
    gross_profit: float
    gross_loss: float
    duration_ns: float


def stitch(windows: Sequence[OutOfSample], initial_cash: float, periods_per_year: float) -> dict[str, Any]:
    """The stitched out-of-sample curve (the module docstring): ``equity`` points
    (``ts`` ns, ``equity``, ``buy_and_hold``) and ``metrics``."""
    cash = float(initial_cash)
    level, hold_level = cash, cash
    points: list[dict[str, Any]] = []
    n, mean, m2, dsq = 0, 0.0, 0.0, 0.0
    peak, worst, prev = cash, 0.0, cash
    ntrades = nwins = 0
    gp = gl = dur = 0.0
    for w in windows:
        scale, hold_scale = level / cash, hold_level
        for ts, eq, hold in zip(w.day_ts, w.equity, w.hold, strict=True):
            e = scale * float(eq)
            r = e / prev - 1.0 if prev > 0.0 else 0.0
            prev = e
            n += 1
            d = r - mean
            mean += d / n
            m2 += d * (r - mean)
            if r < 0.0:
                dsq += r * r
            peak = max(peak, e)
            if peak > 0.0:
                worst = min(worst, e / peak - 1.0)
            points.append({"ts": int(ts), "equity": e, "buy_and_hold": hold_scale * float(hold)})
        if w.equity:
            level = scale * float(w.equity[-1])
            hold_level = hold_scale * float(w.hold[-1])
        ntrades += int(w.ntrades)
        nwins += int(w.nwins)
        gp += scale * float(w.gross_profit)
        gl += scale * float(w.gross_loss)
        dur += float(w.duration_ns)
    span_days = (points[-1]["ts"] - points[0]["ts"]) / NS_PER_DAY if points else 0.0
    metrics = combo_metrics(
        periods_per_year=periods_per_year, span_days=span_days, growth=level / cash, ndays=n, mean=mean, m2=m2,
        dsq=dsq, max_drawdown_pct=worst * 100.0, ntrades=ntrades, nwins=nwins, gross_profit=gp, gross_loss=gl,
        duration_ns=dur,
    )
    return {"equity": points, "metrics": metrics}


def efficiency(pairs: Sequence[tuple[float | None, float | None]]) -> float | None:
    """Walk-forward efficiency of (in-sample CAGR, out-of-sample CAGR) per fold."""
    both = [(i, o) for i, o in pairs if i is not None and o is not None and math.isfinite(i) and math.isfinite(o)]
    if not both:
        return None
    mean_is = math.fsum(i for i, _ in both) / len(both)
    mean_oos = math.fsum(o for _, o in both) / len(both)
    return None if mean_is == 0.0 else finite(mean_oos / mean_is)
