"""Monte Carlo of a run: what `POST /runs/{id}/montecarlo` computes from a saved run.

A run is one path its trades or days happened to take. Resampling them gives other paths
the same trades or days could have taken, and the spread of their total return and
maximum drawdown. Computed on request from what the run keeps (its trades and its
day-end equity, as ``domain.report`` reads them) and returned; nothing is stored. The
draws come from ``numpy.random.default_rng(seed)`` in the order below, so the same run,
method, resamples, seed and block length give the same answer, to the last bit.

Definitions
-----------
- **trades**: the run's n trade returns r_i (each trade's ``return_pct`` / 100, oldest
  first: the report's ``trade_returns_pct``). Each path draws n of them with replacement:
  path after path, one call ``rng.integers(0, n, size=n)`` gives its indices i_1..i_n.
  The path's equity starts at the initial cash, E_0 = cash, and compounds the drawn
  returns in the drawn order: E_k = E_{k-1} x max(0, 1 + r_{i_k}) (a trade that lost more
  than everything leaves 0). Its maximum drawdown is taken over E_0..E_n, the equity
  from trade to trade: intra-trade dips (while a trade is open) are not seen. Compounding a
  trade's return treats it as made on the whole equity (a backtest's return is over the
  equity committed at its entry; a day-by-day position's over its entry price x quantity).
- **block_bootstrap**: the run's T daily returns r_d = E_d / E_{d-1} - 1 over its day-end
  equity, E_0 = the initial cash (``domain.report.daily_returns``: one per day with bars).
  Each path draws k = ceil(T / b) blocks of b = ``block_days`` consecutive days: path
  after path, one call ``rng.integers(0, T, size=k)`` gives the blocks' first days s_j,
  and a block is days s_j, s_j + 1, ..., s_j + b - 1, **circular** (modulo T: a block that
  runs past the last day continues at the first, so every day is drawn as often as any
  other). The blocks are concatenated in the drawn order and cut to the first T days;
  the path compounds those returns from the cash as above, E_k = E_{k-1} x max(0, 1 + r),
  and its maximum drawdown is over E_0..E_T, day end to day end.
- **total_return_pct** of a path = (E_last / cash - 1) x 100; **max_drawdown_pct** =
  min over its points of (E_k / peak_k - 1) x 100 <= 0, the peak starting at the initial
  cash (as ``domain.metrics``).
- **percentiles** 5, 25, 50, 75 and 95 of each over the paths: numpy's default
  (``numpy.percentile``, method "linear": for sorted values v_0..v_{m-1}, the value at
  position h = (m - 1) x p / 100, interpolated between v_floor(h) and v_ceil(h)). With
  them, the ``mean``, ``min`` and ``max``, and a histogram of 40 equal bins from the
  lowest to the highest value (one bin around the value when every path ends the same).
- **run**: the same two figures on the run's own sequence (its trades in their order;
  its day-end equity), the point the resampled paths spread around. With ``trades`` its
  drawdown is trade to trade and its total return that of compounding every trade's
  return, which can differ from the run's metrics (those are bar by bar, on the equity).

Limits: ``resamples`` 1 to 10,000; ``block_days`` 1 to the run's number of days;
``trades`` needs a run with at least one trade, ``block_bootstrap`` one with at least 2
days; at most 50,000,000 draws in all (resamples x trades, or resamples x days).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from domain.metrics import finite
from domain.report import daily_returns

FloatArray = npt.NDArray[np.float64]

METHODS: Final = ("trades", "block_bootstrap")
MIN_RESAMPLES: Final = 1
MAX_RESAMPLES: Final = 10_000
DEFAULT_RESAMPLES: Final = 1000
DEFAULT_BLOCK_DAYS: Final = 20
# A bound of block_days before the run is read (then: at most the run's days).
MAX_BLOCK_DAYS: Final = 100_000
# Seeds a browser's numbers hold exactly (2^53 - 1).
MAX_SEED: Final = 2**53 - 1
MIN_DAYS: Final = 2
MAX_DRAWS: Final = 50_000_000
PERCENTILES: Final = (5, 25, 50, 75, 95)
HISTOGRAM_BINS: Final = 40
# Paths compounded at once (bounded memory: about this many draws per chunk).
_CHUNK_DRAWS: Final = 1_000_000


class MonteCarloInvalid(Exception):
    """What the run or the request does not allow, each {field, message}."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def path_figures(growth: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(total return %, max drawdown %) of each row of growth factors (paths x steps),
    compounded from 1 (the cash: both figures are ratios, so the cash cancels)."""
    equity: FloatArray = np.cumprod(growth, axis=1, dtype=np.float64)
    peak: FloatArray = np.maximum.accumulate(np.maximum(equity, 1.0), axis=1)
    under: FloatArray = np.minimum((equity / peak - 1.0).min(axis=1), 0.0).astype(np.float64) * 100.0
    total: FloatArray = (equity[:, -1] - 1.0) * 100.0
    return total, under


def _factors(returns: FloatArray) -> FloatArray:
    out: FloatArray = np.maximum(1.0 + returns, 0.0)
    return out


def _trade_paths(rng: np.random.Generator, factors: FloatArray, resamples: int) -> tuple[FloatArray, FloatArray]:
    n = int(factors.shape[0])
    total = np.empty(resamples)
    under = np.empty(resamples)
    per = max(1, _CHUNK_DRAWS // n)
    for a in range(0, resamples, per):
        b = min(resamples, a + per)
        idx = np.stack([rng.integers(0, n, size=n) for _ in range(b - a)])
        total[a:b], under[a:b] = path_figures(factors[idx])
    return total, under


def _block_paths(
    rng: np.random.Generator, factors: FloatArray, resamples: int, block: int
) -> tuple[FloatArray, FloatArray]:
    t = int(factors.shape[0])
    k = math.ceil(t / block)
    offsets = np.arange(block, dtype=np.int64)
    total = np.empty(resamples)
    under = np.empty(resamples)
    per = max(1, _CHUNK_DRAWS // (k * block))
    for a in range(0, resamples, per):
        b = min(resamples, a + per)
        starts = np.stack([rng.integers(0, t, size=k) for _ in range(b - a)])
        idx = ((starts[:, :, None] + offsets) % t).reshape(b - a, k * block)[:, :t]
        total[a:b], under[a:b] = path_figures(factors[idx])
    return total, under


def summary(values: FloatArray, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """Percentiles (numpy's linear), mean, extremes and a histogram of the paths' values."""
    cuts = np.percentile(values, PERCENTILES)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:  # every path the same: one bin around the value
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    return {
        "percentiles": {f"p{p}": finite(float(c)) for p, c in zip(PERCENTILES, cuts.tolist())},
        "mean": finite(float(values.mean())),
        "min": finite(float(values.min())),
        "max": finite(float(values.max())),
        "histogram": {"edges": [float(e) for e in edges.tolist()], "counts": [int(c) for c in counts.tolist()]},
    }


def check(method: str, resamples: int, block_days: int | None, trades: int, days: int) -> list[dict[str, str]]:
    """The problems of a request on a run with `trades` trades and `days` days (none: [])."""
    problems: list[dict[str, str]] = []
    if method not in METHODS:
        return [{"field": "method", "message": f"must be one of {', '.join(METHODS)}"}]
    if not MIN_RESAMPLES <= resamples <= MAX_RESAMPLES:
        problems.append({"field": "resamples", "message": f"must be an integer from {MIN_RESAMPLES} to {MAX_RESAMPLES}"})
    if method == "trades":
        if trades < 1:
            problems.append({"field": "method", "message": "the run has no trades to resample: use block_bootstrap"})
        elif resamples * trades > MAX_DRAWS:
            problems.append({"field": "resamples", "message": f"resamples x trades ({trades:,}) must be at most "
                                                              f"{MAX_DRAWS:,}: ask for fewer resamples"})
        return problems
    if days < MIN_DAYS:
        problems.append({"field": "method", "message": f"the run has {days} day(s) with bars: block_bootstrap needs "
                                                       f"at least {MIN_DAYS}"})
        return problems
    if block_days is not None and not 1 <= block_days <= days:
        problems.append({"field": "block_days", "message": f"must be an integer from 1 to {days} (the run's days)"})
    if resamples * days > MAX_DRAWS:
        problems.append({"field": "resamples", "message": f"resamples x days ({days:,}) must be at most "
                                                          f"{MAX_DRAWS:,}: ask for fewer resamples"})
    return problems


def simulate(
    *,
    method: str,
    cash: float,
    trade_returns_pct: Sequence[float],
    day_equity: FloatArray,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    block_days: int | None = None,
) -> dict[str, Any]:
    """The Monte Carlo of a run (the module docstring), JSON-ready. `block_days` None: the
    default, 20, or the run's days when it has fewer. Raises MonteCarloInvalid."""
    trades = np.asarray(trade_returns_pct, dtype=np.float64) / 100.0
    days = int(day_equity.shape[0])
    if problems := check(method, resamples, block_days, int(trades.shape[0]), days):
        raise MonteCarloInvalid(problems)
    rng = np.random.default_rng(seed)
    if method == "trades":
        factors = _factors(trades)
        block = None
        total, under = _trade_paths(rng, factors, resamples)
        length = int(factors.shape[0])
    else:
        factors = _factors(daily_returns(day_equity, cash))
        block = min(DEFAULT_BLOCK_DAYS, days) if block_days is None else block_days
        total, under = _block_paths(rng, factors, resamples, block)
        length = days
    own_total, own_under = path_figures(factors[None, :])
    return {
        "method": method,
        "resamples": resamples,
        "seed": seed,
        "block_days": block,
        "path_length": length,
        "total_return_pct": summary(total),
        "max_drawdown_pct": summary(under),
        "run": {"total_return_pct": finite(float(own_total[0])), "max_drawdown_pct": finite(float(own_under[0]))},
    }
