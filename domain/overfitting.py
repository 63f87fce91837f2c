"""Overfitting statistics of a sweep: how much of the best combination's Sharpe ratio is luck.

A sweep tries N combinations on one history and keeps the best. With hundreds of
trials, the best in-sample Sharpe ratio is mostly the maximum of noise; these
statistics (Bailey & López de Prado, "The Deflated Sharpe Ratio", 2014; Bailey,
Borwein, López de Prado & Zhu, "The Probability of Backtest Overfitting", 2015)
say how much. ``DEFINITIONS`` below defines them exactly; the API's /docs show
that text.

Why blocks of sums: the engine accumulates, per CSCV block and combination, the
sum and the sum of squares of the daily returns (2·S·N numbers) instead of keeping
the T × N matrix, so its memory follows the grid, not days × grid; the Sharpe
ratio of any union of blocks follows from them exactly (up to rounding, which is
why a variance within rounding of zero counts as zero, and why Sharpe ratios
are compared on their first 30 significant bits).

Cost: the CSCV ranks every trial in each of C(S, S/2) splits, O(C(S, S/2) x N)
whatever the number of bars: with S = 16, about 0.07 s for S2's 590 trials and 0.55 s
for 5,000 on one core of the development machine (2026-12), and in proportion beyond
(twice that past 8,473 trials, where the matrix is computed twice).

Pure Python and NumPy: Φ and Φ⁻¹ are ``statistics.NormalDist``'s.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import combinations
from statistics import NormalDist
from typing import Any, Final, TypeVar

import numpy as np
import numpy.typing as npt

EULER_GAMMA: Final = 0.57721566490153286061
PBO_BLOCKS_DEFAULT: Final = 16
# At least 4 blocks: with 2 there are only two splits and PBO can only be 0, 1/2 or 1.
PBO_BLOCKS_MIN: Final = 4
# At most 16: C(16, 8) = 12,870 splits, each ranking every combination (C(18, 9) would be 48,620).
PBO_BLOCKS_MAX: Final = 16

# Sharpe ratios of a CSCV half are compared on their first 30 significant bits (about 9
# significant digits; the 22 low bits of the 52-bit mantissa cleared): equal there, they tie.
TIE_BITS: Final = 30
_TIE_MASK: Final = np.int64(~((1 << (52 - TIE_BITS)) - 1))

# A variance computed from sums within this many ulps of the sum of squares is zero.
_VARIANCE_ULPS: Final = 64.0
# The CSCV's (halves x trials) matrix of Sharpe ratios is computed a chunk of trials at a
# time (the sums of its halves' first halves and of their second halves: at most
# _CSCV_CHUNK_VALUES values each, 64 MiB, so 8,473 trials with 16 blocks, 128 MiB held
# while the CSCV runs; larger grids compute the matrix twice) and a block of
# halves at a time within it (at most _CSCV_BLOCK_VALUES values, 512 KiB of float64 for
# each of its few temporaries: they stay in L2).
_CSCV_CHUNK_VALUES: Final = 1 << 23
_CSCV_BLOCK_VALUES: Final = 1 << 16

_NORMAL: Final = NormalDist()

FloatArray = npt.NDArray[np.float64]
T = TypeVar("T")
R = TypeVar("R")

DEFINITIONS: Final = f"""\
**Trials**: every combination of the grid, including those under `min_trades`. Each has
the daily-return series its Sharpe ratio uses. SRₙ = mean / std (ddof = 1) of those daily
returns, not annualised; a zero standard deviation gives 0. V = the variance (ddof = 1) of
the SRₙ. T = the number of daily returns (`days`), N the number of trials (`trials`).

**PSR and DSR of the top result** (the first row of `best`), with its SR, skewness γ₃ and
kurtosis γ₄ (population moments, non-excess: a normal distribution gives 3):

* PSR(SR*) = Φ((SR − SR*)·√(T − 1) / √(1 − γ₃·SR + (γ₄ − 1)/4·SR²));
* `expected_max_sharpe` SR₀ = √V·((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e))), γ the
  Euler–Mascheroni constant;
* `probabilistic_sharpe_ratio` = PSR(0); `deflated_sharpe_ratio` = PSR(SR₀).

**PBO by CSCV** (combinatorially symmetric cross-validation):

1. The T × N matrix of daily returns is split into S contiguous blocks of equal size
   (`pbo_blocks`: even, from {PBO_BLOCKS_MIN} to {PBO_BLOCKS_MAX}, default {PBO_BLOCKS_DEFAULT}),
   dropping the first T mod S rows.
2. For each of the C(S, S/2) choices of in-sample blocks (the rest out of sample), in the
   order of Python's `itertools.combinations`: n* = the in-sample best by per-period Sharpe
   ratio (ties: the first in grid order, which is fast ascending, then slow ascending);
   ω = the out-of-sample rank of n* (1 = worst … N = best, average ranks for ties) / (N + 1);
   λ = ln(ω / (1 − ω)), the split's entry in `logits`. Sharpe ratios are compared on their
   first 30 significant bits (about 9 digits): equal there, they are ties (combinations that
   held the same positions differ by rounding only).
3. `pbo` = the share of splits with λ ≤ 0.

Where N < 2 or T < 2S, every value is `null` and `reason` says why; so are PSR and DSR
when no combination reached `min_trades` (there is no top result)."""


def pbo_blocks_problem(blocks: int) -> str | None:
    """Why ``blocks`` cannot be the number of CSCV blocks, or None."""
    if not PBO_BLOCKS_MIN <= blocks <= PBO_BLOCKS_MAX or blocks % 2:
        return f"must be an even integer from {PBO_BLOCKS_MIN} to {PBO_BLOCKS_MAX}"
    return None


# ------------------------------------------------------------------ the trials' moments


@dataclass(frozen=True)
class TrialMoments:
    """Per trial (grid order): the per-period Sharpe ratio of its daily returns and their
    population skewness and (non-excess) kurtosis; ``days`` = T."""

    sharpe: FloatArray
    skewness: FloatArray
    kurtosis: FloatArray
    days: int


def trial_moments(
    days: int, mean: FloatArray, m2: FloatArray, m3: FloatArray, m4: FloatArray
) -> TrialMoments:
    """From each trial's mean and sums of 2nd, 3rd and 4th powers of the deviations from
    it (what the sweep kernel accumulates). A trial with no dispersion (m2 = 0) has SR 0,
    skewness 0 and kurtosis 3: PSR's denominator is then 1 whatever they are."""
    mean, m2, m3, m4 = (np.asarray(a, dtype=np.float64) for a in (mean, m2, m3, m4))
    n = float(days)
    spread = (m2 > 0.0) & (n >= 2)
    safe = np.where(spread, m2, 1.0)
    sharpe = np.where(spread, mean / np.sqrt(safe / max(n - 1.0, 1.0)), 0.0)
    var_pop = safe / max(n, 1.0)
    skewness = np.where(spread, (m3 / max(n, 1.0)) / var_pop**1.5, 0.0)
    kurtosis = np.where(spread, (m4 / max(n, 1.0)) / var_pop**2, 3.0)
    return TrialMoments(sharpe, skewness, kurtosis, int(days))


def returns_moments(returns: npt.ArrayLike) -> TrialMoments:
    """The moments of each column of a T x N matrix of daily returns (two passes)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError("returns must be a days x trials matrix")
    mean = r.mean(axis=0) if r.shape[0] else np.zeros(r.shape[1])
    d = r - mean
    return trial_moments(r.shape[0], mean, (d**2).sum(axis=0), (d**3).sum(axis=0), (d**4).sum(axis=0))


# ------------------------------------------------------------------ PSR, SR0, DSR


def probabilistic_sharpe_ratio(sr: float, skewness: float, kurtosis: float, days: int, benchmark: float) -> float | None:
    """PSR(benchmark) of a per-period Sharpe ratio over ``days`` returns; None when undefined
    (fewer than 2 returns, or a non-positive variance term, which only degenerate
    two-point distributions reach)."""
    if days < 2:
        return None
    spread = 1.0 - skewness * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not (math.isfinite(spread) and spread > 0.0):
        return None
    z = (sr - benchmark) * math.sqrt(days - 1) / math.sqrt(spread)
    return _NORMAL.cdf(z) if math.isfinite(z) else None


def expected_max_sharpe(variance: float, trials: int) -> float:
    """SR0: the expected maximum of ``trials`` Sharpe ratios of variance ``variance`` whose
    true value is 0 (the False Strategy theorem's approximation)."""
    if trials < 2:
        raise ValueError("the expected maximum needs at least 2 trials")
    n = float(trials)
    return math.sqrt(variance) * (
        (1.0 - EULER_GAMMA) * _NORMAL.inv_cdf(1.0 - 1.0 / n) + EULER_GAMMA * _NORMAL.inv_cdf(1.0 - 1.0 / (n * math.e))
    )


# ------------------------------------------------------------------ PBO by CSCV


def day_blocks(days: int, blocks: int) -> npt.NDArray[np.int32]:
    """The CSCV block of each daily return (0 .. blocks-1), -1 for the first T mod S dropped."""
    if blocks < 1:
        raise ValueError("blocks must be positive")
    out = np.full(days, -1, dtype=np.int32)
    size = days // blocks
    if size:
        out[days - size * blocks :] = np.repeat(np.arange(blocks, dtype=np.int32), size)
    return out


@dataclass(frozen=True)
class BlockSums:
    """Per CSCV block and trial: the sum and the sum of squares of the daily returns
    (arrays blocks x trials) and the number of returns in each block."""

    sums: FloatArray
    squares: FloatArray
    rows: int

    @property
    def blocks(self) -> int:
        return int(self.sums.shape[0])

    @property
    def trials(self) -> int:
        return int(self.sums.shape[1])


def block_sums(returns: npt.ArrayLike, blocks: int) -> BlockSums:
    """The block sums of a T x N matrix of daily returns (``day_blocks``' split)."""
    r = np.asarray(returns, dtype=np.float64)
    size = r.shape[0] // blocks
    kept = r[r.shape[0] - size * blocks :].reshape(blocks, size, r.shape[1])
    return BlockSums(kept.sum(axis=1), (kept * kept).sum(axis=1), size)


def cscv_splits(blocks: int) -> npt.NDArray[np.intp]:
    """The in-sample blocks of every split, one row each, in ``itertools.combinations`` order."""
    return np.array(list(combinations(range(blocks), blocks // 2)), dtype=np.intp).reshape(-1, blocks // 2)


@dataclass(frozen=True)
class _SumPlan:
    """How to sum rows of a (blocks x trials) array over each of a list of subsets of
    blocks of one size: a leaf picks rows (``pick``); otherwise each subset is the union
    of its first and second half, whose sums are computed once per distinct half (by
    ``left`` and ``right``) and spread back with ``left_of`` / ``right_of``."""

    pick: npt.NDArray[np.intp] | None
    left: _SumPlan | None = None
    left_of: npt.NDArray[np.intp] | None = None
    right: _SumPlan | None = None
    right_of: npt.NDArray[np.intp] | None = None


def _sum_plan(subsets: npt.NDArray[np.intp]) -> _SumPlan:
    if subsets.shape[1] == 1:
        return _SumPlan(subsets[:, 0].copy())
    k = subsets.shape[1] // 2
    left, left_of = np.unique(subsets[:, :k], axis=0, return_inverse=True)
    right, right_of = np.unique(subsets[:, k:], axis=0, return_inverse=True)
    return _SumPlan(None, _sum_plan(left), left_of.reshape(-1), _sum_plan(right), right_of.reshape(-1))


def _subset_sums(values: FloatArray, plan: _SumPlan) -> FloatArray:
    """Row k: the sum of ``values``' rows in the plan's k-th subset. A subset costs about one
    addition per trial instead of one per block; every trial goes through the same additions
    in the same order, so trials with equal returns get bit-equal sums (ties stay ties)."""
    if plan.pick is not None:
        return np.take(values, plan.pick, axis=0)
    assert plan.left is not None and plan.left_of is not None
    assert plan.right is not None and plan.right_of is not None
    out = np.take(_subset_sums(values, plan.left), plan.left_of, axis=0)
    out += np.take(_subset_sums(values, plan.right), plan.right_of, axis=0)
    return out


@functools.lru_cache(maxsize=8)
def _halves(blocks: int) -> tuple[npt.NDArray[np.intp], _SumPlan]:
    """For the CSCV's halves (``cscv_splits``, one row each): each one's complement (the row
    of the other half) and the plan to sum them."""
    halves = cscv_splits(blocks)
    masks = (np.int64(1) << halves.astype(np.int64)).sum(axis=1)  # each half as a bit set
    order = np.argsort(masks)
    complement = order[np.searchsorted(masks, ((1 << blocks) - 1) ^ masks, sorter=order)]
    return complement.astype(np.intp), _sum_plan(halves)


@dataclass(frozen=True)
class _Levels:
    """The sums of a chunk of trials over the halves' first and second halves (``_SumPlan``'s
    ``left`` and ``right``, each distinct one once; a leaf plan: the blocks themselves), and
    which of them each half is made of: a half's sums are one addition per trial away."""

    left: FloatArray
    left_of: npt.NDArray[np.intp]
    right: FloatArray | None
    right_of: npt.NDArray[np.intp] | None


def _levels(block: BlockSums, plan: _SumPlan, cols: slice | npt.NDArray[np.intp]) -> _Levels:
    n = block.blocks // 2 * block.rows
    # sums and n x squares side by side: one pass of the plan for both
    values = np.concatenate([block.sums[:, cols], n * block.squares[:, cols]], axis=1)
    if plan.pick is not None:
        return _Levels(values, plan.pick, None, None)
    assert plan.left is not None and plan.left_of is not None
    assert plan.right is not None and plan.right_of is not None
    return _Levels(_subset_sums(values, plan.left), plan.left_of, _subset_sums(values, plan.right), plan.right_of)


class _Workspace:
    """The buffers of ``_half_sharpe`` for blocks of up to ``rows`` halves of ``width``
    trials, allocated once per thread: a fresh array for every block costs more (page
    faults) than the arithmetic in it."""

    def __init__(self, rows: int, width: int) -> None:
        self.both = np.empty((rows, 2 * width))
        self.scratch = np.empty((rows, 2 * width))
        self.m2 = np.empty((rows, width))
        self.flat = np.empty((rows, width), dtype=bool)
        self.sharpe = np.empty((rows, width))


def _half_sharpe(levels: _Levels, rows: slice | npt.NDArray[np.intp], ws: _Workspace) -> FloatArray:
    """The Sharpe ratio of the union of the blocks of each half in ``rows``, for the trials of
    ``levels``, up to a positive factor common to all (rankings only): sum / √(n·squares −
    sum²), 0 where the variance is zero or within rounding of it; on its first ``TIE_BITS``
    significant bits (a monotone map: the order stays, and values equal but for rounding
    become equal). The result is a buffer of ``ws``, valid until the next call. Each value
    depends on its half and trial only: the same bits whichever others are computed with it."""
    r = rows.stop - rows.start if isinstance(rows, slice) else rows.shape[0]
    width = levels.left.shape[1] // 2
    both = ws.both[:r, : 2 * width]
    np.take(levels.left, levels.left_of[rows], axis=0, out=both, mode="clip")
    if levels.right is not None and levels.right_of is not None:
        scratch = ws.scratch[:r, : 2 * width]
        np.take(levels.right, levels.right_of[rows], axis=0, out=scratch, mode="clip")
        both += scratch
    m2, flat, out = ws.m2[:r, :width], ws.flat[:r, :width], ws.sharpe[:r, :width]
    sums, squares = both[:, :width], both[:, width:]
    np.multiply(sums, sums, out=m2)
    np.subtract(squares, m2, out=m2)  # n x the sum of squared deviations
    squares *= _VARIANCE_ULPS * np.finfo(np.float64).eps
    np.less_equal(m2, squares, out=flat)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.sqrt(m2, out=m2)
        np.divide(sums, m2, out=out)
    np.copyto(out, 0.0, where=flat)
    bits = out.view(np.int64)
    bits &= _TIE_MASK
    return out


@dataclass(frozen=True)
class Cscv:
    """The outcome of CSCV: the share of splits with logit <= 0, and every split's logit."""

    pbo: float
    logits: FloatArray


def _workers() -> int:
    """Threads for the CSCV: the CPUs this process may use, at most 4 (NumPy releases the
    GIL in its loops, so blocks of halves run side by side)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def _in_groups(items: list[T], groups: int, work: Callable[[list[T]], list[R]]) -> list[R]:
    """``work`` over ``items`` in at most ``groups`` contiguous groups, one thread each; the
    results in the order of ``items`` (so whatever is merged from them does not depend on
    the number of threads)."""
    size = -(-len(items) // max(1, groups))
    parts = [items[i : i + size] for i in range(0, len(items), size)]
    if len(parts) == 1:
        return work(parts[0])
    with ThreadPoolExecutor(len(parts)) as pool:
        return [r for done in pool.map(work, parts) for r in done]


def cscv(block: BlockSums, workers: int | None = None) -> Cscv:
    """PBO by combinatorially symmetric cross-validation over the block sums (module docstring).

    Sharpe ratios are compared on their first ``TIE_BITS`` significant bits: combinations
    that held the same positions over a half have the same Sharpe ratio there in exact
    arithmetic, and only rounding (their equities differ) would otherwise order them.

    The out-of-sample half of a split is the in-sample half of another (its complement),
    so the Sharpe ratio of every half is computed once per pass, as a (halves x trials)
    matrix that is never held whole: a chunk of trials at a time (``_CSCV_CHUNK_VALUES``:
    the sums of its halves' halves), a block of halves at a time within it
    (``_CSCV_BLOCK_VALUES``: the block's temporaries stay in cache), the blocks on
    ``workers`` threads (the result is the same for any number). The first maximum of a
    half's row is its split's in-sample best (grid order breaks ties). When every trial
    fits one chunk (up to 8,473 with 16 blocks), one pass does it all (`_paired_ranks`);
    beyond, `_chunked_ranks` makes two."""
    s, n_trials = block.blocks, block.trials
    if s < 2 or s % 2 or n_trials < 2 or block.rows < 1:
        raise ValueError("CSCV needs an even number of blocks, at least 2 trials and non-empty blocks")
    if s // 2 * block.rows < 2:
        raise ValueError("each half needs at least 2 returns")
    threads = _workers() if workers is None else max(1, workers)
    # complement[i]: the row of halves that is split i's out-of-sample half
    complement, plan = _halves(s)
    k = complement.shape[0]
    level_rows = s  # the rows of a chunk's level sums (_levels): the blocks themselves for a leaf plan
    if plan.left is not None and plan.right is not None:
        level_rows = max(_plan_rows(plan.left), _plan_rows(plan.right))
    width = max(1, min(n_trials, _CSCV_CHUNK_VALUES // (2 * level_rows)))
    step = max(1, min(k, _CSCV_BLOCK_VALUES // width))
    if width == n_trials:
        below, upto = _paired_ranks(block, plan, complement, width, max(2, step // 2 * 2), threads)
    else:
        below, upto = _chunked_ranks(block, plan, complement, width, step, threads)
    return _cscv_outcome(below, upto, n_trials)


def _chunked_ranks(block: BlockSums, plan: _SumPlan, complement: npt.NDArray[np.intp], width: int, step: int,
                   threads: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``cscv``'s counts over several chunks of trials, in two passes: each split's in-sample
    best (the first maximum over the chunks in order: a later trial replaces it only when
    strictly better), then each one's rank out of sample. (below, upto) by split."""
    k, n_trials = complement.shape[0], block.trials
    chunks = [slice(lo, min(lo + width, n_trials)) for lo in range(0, n_trials, width)]
    blocks = [slice(lo, min(lo + step, k)) for lo in range(0, k, step)]

    def maxima(levels: _Levels, cols: slice) -> Callable[[list[slice]], list[tuple[npt.NDArray[np.intp], FloatArray]]]:
        def work(part: list[slice]) -> list[tuple[npt.NDArray[np.intp], FloatArray]]:
            ws, out = _Workspace(step, width), []
            for rows in part:
                sr = _half_sharpe(levels, rows, ws)
                first = np.argmax(sr, axis=1)
                out.append((first + cols.start, sr[np.arange(sr.shape[0]), first]))
            return out
        return work

    best_value = np.full(k, -np.inf)
    best = np.zeros(k, dtype=np.intp)
    for cols in chunks:
        found = _in_groups(blocks, threads, maxima(_levels(block, plan, cols), cols))
        first = np.concatenate([f for f, _ in found])
        value = np.concatenate([v for _, v in found])
        better = value > best_value
        best_value[better] = value[better]
        best[better] = first[better]

    # Row j is the out-of-sample half of split complement[j]: its threshold is its value at
    # that split's best. The few trials that are some split's best, alone: the same
    # arithmetic, so the same bits as in the matrix.
    threshold = np.empty(k)
    winners, column = np.unique(best, return_inverse=True)
    for lo in range(0, winners.shape[0], width):
        part = winners[lo : lo + width]
        levels = _levels(block, plan, part)
        ws = _Workspace(step, part.shape[0])
        for rows in blocks:
            sr = _half_sharpe(levels, rows, ws)
            want = column[complement[rows]]
            mine = np.flatnonzero((want >= lo) & (want < lo + part.shape[0]))
            threshold[rows.start + mine] = sr[mine, want[mine] - lo]

    def counts(levels: _Levels) -> Callable[[list[slice]], list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]]:
        def work(part: list[slice]) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
            ws, out = _Workspace(step, width), []
            for rows in part:
                out.append(_ranks(_half_sharpe(levels, rows, ws), threshold[rows]))
            return out
        return work

    below_rows = np.zeros(k, dtype=np.int64)
    upto_rows = np.zeros(k, dtype=np.int64)
    for cols in chunks:
        counted = _in_groups(blocks, threads, counts(_levels(block, plan, cols)))
        below_rows += np.concatenate([c[0] for c in counted])
        upto_rows += np.concatenate([c[1] for c in counted])
    # by split: split i's out-of-sample half is row complement[i]
    return below_rows[complement], upto_rows[complement]


def _ranks(sharpe: FloatArray, threshold: FloatArray) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For each row (an out-of-sample half): how many trials are below its split's in-sample
    best (``threshold``, one per row), and how many at most as good."""
    column = threshold[:, None]
    return np.count_nonzero(sharpe < column, axis=1), np.count_nonzero(sharpe <= column, axis=1)


def _cscv_outcome(below: npt.NDArray[np.int64], upto: npt.NDArray[np.int64], n_trials: int) -> Cscv:
    """PBO and the logits from each split's out-of-sample count of trials below its in-sample
    best and of trials at most as good."""
    # average rank of the ties: below + (tied + 1) / 2, the best itself among the tied
    omega = (below + (upto - below + 1) / 2.0) / (n_trials + 1)
    logits = np.log(omega / (1.0 - omega))
    return Cscv(float(np.count_nonzero(logits <= 0.0)) / below.shape[0], logits)


def _paired_ranks(block: BlockSums, plan: _SumPlan, complement: npt.NDArray[np.intp], width: int, step: int,
                  threads: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``cscv``'s counts when every trial is in one chunk: the halves are taken in pairs, a
    half next to its complement, so a block of halves holds both halves of its splits. Each
    split's in-sample best and its rank out of sample then come from the block alone: no
    (halves x trials) matrix is kept or computed twice. (below, upto) by split."""
    k = complement.shape[0]
    firsts = np.flatnonzero(np.arange(k) < complement)
    paired = np.stack([firsts, complement[firsts]], axis=1).reshape(-1)  # half, its complement, ...
    levels = _levels(block, plan, slice(0, block.trials))
    positions = [slice(lo, min(lo + step, k)) for lo in range(0, k, step)]

    def work(part: list[slice]) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
        ws, out = _Workspace(step, width), []
        for pos in part:
            sr = _half_sharpe(levels, paired[pos], ws)
            first = np.argmax(sr, axis=1)  # each half's best (as the in-sample half of its split)
            each = np.arange(sr.shape[0])
            # a half as the out-of-sample half of its complement's split: its value at that best
            out.append(_ranks(sr, sr[each, first[each ^ 1]]))
        return out

    counted = _in_groups(positions, threads, work)
    # by out-of-sample half (paired order), then by split: split i's is its complement's
    below_rows, upto_rows = np.empty(k, dtype=np.int64), np.empty(k, dtype=np.int64)
    below_rows[paired] = np.concatenate([c[0] for c in counted])
    upto_rows[paired] = np.concatenate([c[1] for c in counted])
    return below_rows[complement], upto_rows[complement]


def _plan_rows(plan: _SumPlan) -> int:
    """How many distinct subsets a plan sums (the rows of its sums)."""
    if plan.pick is not None:
        return int(plan.pick.shape[0])
    assert plan.left_of is not None
    return int(plan.left_of.shape[0])


# ------------------------------------------------------------------ a sweep's statistics


@dataclass(frozen=True)
class SweepStatistics:
    """What the whole grid tells, before its top result is known (the engine computes
    it); ``reason`` says why the values are None, if they are."""

    trials: int
    days: int
    pbo_blocks: int
    sharpe_variance: float | None = None
    expected_max_sharpe: float | None = None
    pbo: float | None = None
    logits: list[float] | None = None
    reason: str | None = None
    # Per trial, grid order: the moments the top result's PSR and DSR need.
    moments: TrialMoments | None = field(default=None, repr=False)


def join_trials(parts: list[tuple[TrialMoments, BlockSums]]) -> tuple[TrialMoments, BlockSums]:
    """The moments and block sums of a grid from those of its parts (pair chunks of one
    ticker's grid, in grid order, over the same days): every trial's numbers are its own,
    so the joined grid's statistics are those of one sweep of it."""
    if not parts:
        raise ValueError("no parts to join")
    days, rows, blocks = parts[0][0].days, parts[0][1].rows, parts[0][1].blocks
    if any((m.days, b.rows, b.blocks) != (days, rows, blocks) for m, b in parts):
        raise ValueError("the parts of a grid disagree on its days or blocks")
    moments = TrialMoments(np.concatenate([m.sharpe for m, _ in parts]), np.concatenate([m.skewness for m, _ in parts]),
                           np.concatenate([m.kurtosis for m, _ in parts]), days)
    return moments, BlockSums(np.concatenate([b.sums for _, b in parts], axis=1),
                              np.concatenate([b.squares for _, b in parts], axis=1), rows)


def sweep_statistics(moments: TrialMoments, block: BlockSums | None, pbo_blocks: int,
                     workers: int | None = None) -> SweepStatistics:
    """V, SR0 and PBO of a grid from its trials' moments and block sums; ``workers``: the
    CSCV's threads (``cscv``; None: the CPUs this process may use, at most 4)."""
    trials, days = int(moments.sharpe.shape[0]), moments.days
    base: dict[str, Any] = {"trials": trials, "days": days, "pbo_blocks": pbo_blocks}
    if trials < 2:
        return SweepStatistics(**base, reason=f"{trials} trial: the statistics need at least 2 combinations")
    if days < 2 * pbo_blocks:
        return SweepStatistics(
            **base, reason=f"{days} daily returns: {pbo_blocks} blocks need at least {2 * pbo_blocks} ({pbo_blocks} x 2)"
        )
    finite = bool(np.all(np.isfinite(moments.sharpe)))
    if block is not None:
        finite = finite and bool(np.all(np.isfinite(block.sums)) and np.all(np.isfinite(block.squares)))
    if not finite:
        return SweepStatistics(**base, reason="a combination's daily returns are not all finite (its equity reached 0)")
    if block is None or block.blocks != pbo_blocks or block.trials != trials:
        raise ValueError("the block sums do not match the trials and pbo_blocks")
    variance = float(np.var(moments.sharpe, ddof=1))
    outcome = cscv(block, workers)
    return SweepStatistics(
        **base,
        sharpe_variance=variance,
        expected_max_sharpe=expected_max_sharpe(variance, trials),
        pbo=outcome.pbo,
        logits=outcome.logits.tolist(),
        moments=moments,
    )


# The thresholds of the plain-language reading: skill needs both a DSR of at least 0.95 (the
# usual 5 % test) and a PBO under 0.1; a DSR under 0.5 or a PBO of 0.5 or more reads as overfit.
READING_DSR_SKILL: Final = 0.95
READING_PBO_SKILL: Final = 0.1
READING_DSR_LUCK: Final = 0.5
READING_PBO_LUCK: Final = 0.5


def overfitting_reading(dsr: float | None, pbo: float | None) -> str:
    """One plain-language sentence on the DSR and the PBO (the dashboard and the email show it)."""
    if dsr is None and pbo is None:
        return "Not enough data for the overfitting statistics."
    facts = []
    if dsr is not None:
        facts.append(f"the deflated Sharpe ratio puts the chance that the best combination beats luck over this "
                     f"many trials at {dsr:.0%}")
    if pbo is not None:
        facts.append(f"the in-sample best fell to the bottom half out of sample in {pbo:.0%} of the splits (PBO)")
    if (dsr is not None and dsr < READING_DSR_LUCK) or (pbo is not None and pbo >= READING_PBO_LUCK):
        verdict = "Probably overfit"
    elif dsr is not None and dsr >= READING_DSR_SKILL and pbo is not None and pbo < READING_PBO_SKILL:
        verdict = "Probably a real edge"
    else:
        verdict = "Inconclusive"
    return f"{verdict}: {' and '.join(facts)}."


def overfitting_view(stats: SweepStatistics, top: int | None) -> dict[str, Any]:
    """The ``overfitting`` object of ``best``, ``top`` being the grid index of its first row
    (None when no combination qualifies)."""
    psr = dsr = None
    reason = stats.reason
    if reason is None and stats.moments is None:
        reason = "the trials' moments are missing: PSR and DSR cannot be computed"
    if reason is None and stats.moments is not None and stats.expected_max_sharpe is not None:
        if top is None:
            reason = "no combination reached min_trades: there is no top result for PSR and DSR"
        else:
            m = stats.moments
            sr, skew, kurt = float(m.sharpe[top]), float(m.skewness[top]), float(m.kurtosis[top])
            psr = probabilistic_sharpe_ratio(sr, skew, kurt, m.days, 0.0)
            dsr = probabilistic_sharpe_ratio(sr, skew, kurt, m.days, stats.expected_max_sharpe)
            if psr is None or dsr is None:
                reason = "the top result's returns make PSR undefined (a non-positive variance term)"
    return {
        "trials": stats.trials,
        "probabilistic_sharpe_ratio": psr,
        "deflated_sharpe_ratio": dsr,
        "expected_max_sharpe": stats.expected_max_sharpe,
        "pbo": stats.pbo,
        "pbo_blocks": stats.pbo_blocks,
        "logits": stats.logits,
        "days": stats.days,
        "sharpe_variance": stats.sharpe_variance,
        "reason": reason,
        "reading": overfitting_reading(dsr, stats.pbo),
    }
