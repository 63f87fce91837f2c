"""The sweep kernel's overfitting inputs against the independent reference backtest.

For a few combinations, tests/engine/reference.py replays each one bar by bar and
its daily returns are taken from the reference equity (tests/engine/reference.py's
`daily_returns`). From that T x N matrix, NumPy and scipy recompute what the
kernel accumulates in its one fused pass: each combination's mean, 2nd/3rd/4th
central moments, and the sum and sum of squares of its returns in each CSCV
block. The statistics of `run_sweep_with_statistics` must then equal those of the
domain functions fed the reference matrix.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import stats

from domain import overfitting as of
from services.engine import sweep as sw
from services.engine._core import sweep_kernel as _k

from . import reference as ref
from .conftest import make_daily_bars, make_session_minute_bars

REL = 1e-9

DATASETS = {
    "daily-utc": lambda: make_daily_bars(700, seed=5),
    "minute-sydney": lambda: make_session_minute_bars(days=40, seed=3),
}
COMBOS = [(3, 8), (5, 20), (10, 30), (12, 26), (20, 60), (8, 9)]
CASES = [
    ("daily-utc", "SMA", "long", "next_open", (0.0, 0.0)),
    ("daily-utc", "EMA", "both", "close", (0.1, 0.05)),
    ("daily-utc", "MACD", "short", "next_open", (0.05, 0.0)),
    ("minute-sydney", "SMA", "both", "next_open", (0.1, 0.05)),
    ("minute-sydney", "EMA", "long", "close", (0.0, 0.0)),
]


@functools.cache
def _bars(name: str):
    return DATASETS[name]()


def _reference_returns(name, strategy, direction, fill, fees) -> np.ndarray:
    """T x N daily returns of COMBOS by the plain-Python reference backtest."""
    bars = _bars(name)
    ts, opens, closes = bars.ts.tolist(), bars.open.tolist(), bars.close.tolist()
    days = ref.local_days(ts, bars.timezone)
    cols = []
    for fast, slow in COMBOS:
        a, b = ref.signal_lines(strategy, closes, fast, slow)
        res = ref.backtest(ts, opens, closes, a, b, direction=direction, fill=fill, commission_pct=fees[0],
                           slippage_pct=fees[1], initial_cash=10_000.0)
        cols.append(ref.daily_returns(res.equity, days, 10_000.0))
    return np.array(cols).T


@pytest.mark.parametrize(("name", "strategy", "direction", "fill", "fees"), CASES)
def test_kernel_accumulates_the_reference_moments_and_block_sums(name, strategy, direction, fill, fees) -> None:
    bars = _bars(name)
    r = _reference_returns(name, strategy, direction, fill, fees)
    t, n = r.shape
    blocks = 16 if t >= 32 else 4
    periods, fi, si = sw._columns(COMBOS)
    day_end = bars.day_ends().astype(np.uint8)
    assert int(day_end.sum()) == t
    out = _k.sweep(bars.open, bars.close, bars.ts, day_end, periods, fi, si, sw.STRATEGY_TYPES[strategy],
                   sw.DIRECTIONS[direction], sw.FILLS[fill], fees[0] / 100, fees[1] / 100, 10_000.0,
                   day_block=of.day_blocks(t, blocks), blocks=blocks)
    assert out is not None
    mean = r.mean(axis=0)
    d = r - mean
    np.testing.assert_allclose(out["mean"], mean, rtol=REL, atol=1e-15)
    for key, power in (("m2", 2), ("m3", 3), ("m4", 4)):
        want = (d**power).sum(axis=0)
        np.testing.assert_allclose(out[key], want, rtol=1e-7, atol=1e-12 * np.abs(want).max(), err_msg=key)
    size = t // blocks
    kept = r[t - size * blocks:].reshape(blocks, size, n)
    np.testing.assert_allclose(out["block_sum"], kept.sum(axis=1), rtol=REL, atol=1e-14)
    np.testing.assert_allclose(out["block_sq"], (kept**2).sum(axis=1), rtol=REL, atol=1e-16)
    # the skewness and kurtosis the PSR uses, as scipy defines them (population, non-excess)
    m = of.trial_moments(t, out["mean"], out["m2"], out["m3"], out["m4"])
    moving = r.std(axis=0) > 0
    np.testing.assert_allclose(m.skewness[moving], stats.skew(r[:, moving], bias=True), rtol=1e-6)
    np.testing.assert_allclose(m.kurtosis[moving], stats.kurtosis(r[:, moving], fisher=False, bias=True), rtol=1e-6)


@pytest.mark.parametrize(("name", "strategy", "direction", "fill", "fees"), CASES[:2] + CASES[3:4])
def test_statistics_of_a_sweep_equal_those_of_the_reference_matrix(name, strategy, direction, fill, fees) -> None:
    bars = _bars(name)
    r = _reference_returns(name, strategy, direction, fill, fees)
    blocks = 4 if r.shape[0] < 32 else 16
    kw = {"direction": direction, "fill": fill, "commission_pct": fees[0], "slippage_pct": fees[1]}
    outcome = sw.run_sweep_with_statistics(bars, strategy, COMBOS, pbo_blocks=blocks, **kw)
    assert outcome.rows == sw.run_sweep(bars, strategy, COMBOS, **kw)  # the statistics change no metric
    want = of.sweep_statistics(of.returns_moments(r), of.block_sums(r, blocks), blocks)
    got = outcome.statistics
    assert (got.trials, got.days, got.pbo_blocks, got.reason) == (len(COMBOS), r.shape[0], blocks, None)
    assert got.sharpe_variance == pytest.approx(want.sharpe_variance, rel=1e-9)
    assert got.expected_max_sharpe == pytest.approx(want.expected_max_sharpe, rel=1e-9)
    assert got.pbo == want.pbo
    np.testing.assert_allclose(got.logits, want.logits, rtol=1e-12)


def test_too_few_days_for_the_blocks_gives_null_statistics_with_a_reason() -> None:
    bars = make_session_minute_bars(days=6)
    outcome = sw.run_sweep_with_statistics(bars, "SMA", COMBOS, pbo_blocks=4)
    st = outcome.statistics
    assert st.days == 6 and st.pbo is None and st.expected_max_sharpe is None and "8" in (st.reason or "")
    assert len(outcome.rows) == len(COMBOS)


def test_block_accumulation_does_not_change_the_sweep(daily_bars) -> None:
    combos = [(f, s) for f in range(2, 30, 3) for s in range(5, 80, 7) if f < s]
    plain = sw.run_sweep(daily_bars, "EMA", combos, direction="both")
    with_stats = sw.run_sweep_with_statistics(daily_bars, "EMA", combos, direction="both", pbo_blocks=16)
    assert with_stats.rows == plain
    assert with_stats.statistics.trials == len(combos) and len(with_stats.statistics.logits or []) == 12_870
