"""Pair chunks (issue 11, domain.shards): a grid swept in chunks of its pairs, the chunks'
rows joined in grid order and their trials' moments and block sums joined
(domain.overfitting.join_trials), equals one sweep of the whole grid bit for bit, rows and
overfitting statistics alike."""

from __future__ import annotations

import numpy as np
import pytest

from domain.overfitting import join_trials, sweep_statistics
from domain.shards import chunk_bounds
from domain.sweep import sweep_combos
from services.engine.sweep import run_sweep_with_statistics

from .conftest import make_daily_bars

BLOCKS = 8


def _same(a, b) -> bool:
    """Equal bit for bit, NaN included."""
    return np.array_equal(np.asarray(a, dtype=np.float64).view(np.int64), np.asarray(b, dtype=np.float64).view(np.int64))


@pytest.mark.parametrize("strategy", ["SMA", "EMA", "MACD"])
@pytest.mark.parametrize("chunks", [2, 5, 13])
def test_chunks_joined_equal_the_whole_grid(strategy, chunks):
    bars = make_daily_bars(900, seed=3)
    combos = sweep_combos(3, 30, 10, 60, 3)
    whole = run_sweep_with_statistics(bars, strategy, combos, pbo_blocks=BLOCKS, threads=1)
    rows, parts = [], []
    for c in range(chunks):
        lo, hi = chunk_bounds(len(combos), c, chunks)
        part = run_sweep_with_statistics(bars, strategy, combos[lo:hi], pbo_blocks=BLOCKS, threads=2, cscv=False)
        assert part.block_sums is not None and part.statistics.pbo is None  # the CSCV is the joined grid's
        assert part.statistics.moments is not None
        rows.extend(part.rows)
        parts.append((part.statistics.moments, part.block_sums))
    assert rows == whole.rows
    moments, sums = join_trials(parts)
    joined = sweep_statistics(moments, sums, BLOCKS)
    expected = whole.statistics
    assert (joined.trials, joined.days, joined.reason) == (expected.trials, expected.days, expected.reason)
    assert expected.pbo is not None and joined.pbo == expected.pbo
    assert joined.sharpe_variance == expected.sharpe_variance
    assert joined.expected_max_sharpe == expected.expected_max_sharpe
    assert _same(joined.logits, expected.logits)
    assert expected.moments is not None and joined.moments is not None
    for name in ("sharpe", "skewness", "kurtosis"):
        assert _same(getattr(joined.moments, name), getattr(expected.moments, name)), name


def test_parts_that_do_not_fit_together_are_refused():
    bars = make_daily_bars(300, seed=4)
    combos = sweep_combos(3, 12, 15, 30, 3)
    a = run_sweep_with_statistics(bars, "SMA", combos[:5], pbo_blocks=BLOCKS, cscv=False)
    b = run_sweep_with_statistics(bars, "SMA", combos[5:], pbo_blocks=4, cscv=False)
    with pytest.raises(ValueError):
        join_trials([(a.statistics.moments, a.block_sums), (b.statistics.moments, b.block_sums)])

