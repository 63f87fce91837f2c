"""Indicators: TA-Lib conventions, no drift over a million bars, and the sweep
kernel's streamed (chunked) series identical to the whole-series functions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.engine import indicators
from services.engine._core import sweep_kernel

from . import reference as ref


@pytest.fixture(scope="module")
def walk_1m() -> np.ndarray:
    rng = np.random.default_rng(2024)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, 1_000_000)))


@pytest.mark.parametrize("period", [200, 7])
def test_sma_does_not_drift_over_a_million_bars(walk_1m, period):
    sma = indicators.sma(walk_1m, period)
    rng = np.random.default_rng(period)
    idx = np.sort(rng.integers(period - 1, walk_1m.shape[0], 5_000))
    idx[-1] = walk_1m.shape[0] - 1  # the very end, where a naive sum is worst
    values = walk_1m.tolist()
    worst = 0.0
    for i in idx.tolist():
        exact = math.fsum(values[i - period + 1 : i + 1]) / period
        worst = max(worst, abs(sma[i] - exact) / abs(exact))
    assert worst <= 1e-14
    assert np.isnan(sma[: period - 1]).all() and not np.isnan(sma[period - 1 :]).any()


def test_naive_running_sum_would_drift(walk_1m):
    # documents why the compensation exists: this is what we avoid
    c = np.cumsum(walk_1m)
    naive = (c[-1] - c[-201]) / 200
    exact = math.fsum(walk_1m[-200:].tolist()) / 200
    assert abs(naive - exact) / exact > 1e-14  # fails the bound the engine meets
    assert indicators.sma(walk_1m, 200)[-1] == pytest.approx(exact, rel=1e-15)


def test_streamed_sweep_indicators_are_identical_across_chunks(walk_1m):
    x = walk_1m[:300_000]
    periods = np.array([1, 2, 7, 26, 200], dtype=np.int32)
    for kind, fn in ((sweep_kernel.KIND_SMA, indicators.sma), (sweep_kernel.KIND_EMA, indicators.ema)):
        for chunk in (65_536, 997, 3):
            m = sweep_kernel.stream_indicators(x[: 20_000 if chunk < 100 else None], periods, kind, chunk)
            for j, p in enumerate(periods.tolist()):
                whole = fn(x[: m.shape[0]], p)
                np.testing.assert_array_equal(m[:, j], whole)


def test_ema_talib_convention():
    x = [2.0, 4.0, 6.0, 8.0, 12.0, 14.0]
    got = indicators.ema(x, 3)
    assert np.isnan(got[:2]).all()
    assert got[2] == 4.0  # seeded with SMA(3) of the first three values
    assert got[3] == 4.0 + 0.5 * (8.0 - 4.0)  # alpha = 2/(3+1)
    assert got[4] == 6.0 + 0.5 * (12.0 - 6.0)


def test_indicators_match_plain_python():
    rng = np.random.default_rng(5)
    x = (50 + np.cumsum(rng.normal(0, 1, 3_000))).tolist()
    for n in (1, 2, 9, 50):
        np.testing.assert_allclose(indicators.sma(x, n), ref.sma(x, n), rtol=1e-15, equal_nan=True)
        np.testing.assert_allclose(indicators.ema(x, n), ref.ema(x, n), rtol=1e-13, equal_nan=True)
    line, signal, hist = indicators.macd(x, 12, 26, 9)
    rline, rsig = ref.macd(x, 12, 26, 9)
    np.testing.assert_allclose(line, rline, rtol=1e-13, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(signal, rsig, rtol=1e-13, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(hist, line - signal)
    assert np.isnan(line[:33]).all() and not np.isnan(line[33:]).any()  # TA-Lib's lookback: 26 + 9 - 2
    assert np.isnan(signal[:33]).all() and not np.isnan(signal[33:]).any()


def test_bad_periods_are_rejected():
    with pytest.raises(ValueError):
        indicators.sma([1.0, 2.0], 0)
    with pytest.raises(ValueError):
        indicators.macd([1.0, 2.0], 12, 0)
