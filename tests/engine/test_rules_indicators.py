"""The rule engine's indicators agree with TA-Lib to 1e-9 (VWAP with pandas)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib  # a test dependency (requirements-dev.txt)

from services.engine import indicators as ma
from services.engine._core import ta_kernel

TOL = {"rtol": 1e-9, "atol": 1e-9}


@pytest.fixture(scope="module")
def ohlcv():
    rng = np.random.default_rng(42)
    n = 20_000
    c = 2000 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    o = np.r_[c[0], c[:-1]] * np.exp(rng.normal(0, 2e-4, n))
    h = np.maximum(o, c) * (1 + np.abs(rng.normal(0, 4e-4, n)))
    low = np.minimum(o, c) * (1 - np.abs(rng.normal(0, 4e-4, n)))
    v = rng.integers(100, 10_000, n).astype(float)
    # A flat stretch: RSI's 0/0 case and zero-width bands.
    c[5000:5040] = c[4999]
    return o, h, low, c, v


def same(ours, theirs):
    assert np.array_equal(np.isnan(ours), np.isnan(theirs)), "NaN warm-up differs"
    m = ~np.isnan(theirs)
    np.testing.assert_allclose(ours[m], theirs[m], **TOL)


@pytest.mark.parametrize("period", [2, 14, 50])
def test_rsi(ohlcv, period):
    c = ohlcv[3]
    same(ta_kernel.rsi(c, period), talib.RSI(c, period))


@pytest.mark.parametrize("period", [1, 14, 30])
def test_atr(ohlcv, period):
    _, h, low, c, _ = ohlcv
    same(ta_kernel.atr(h, low, c, period), talib.ATR(h, low, c, period))


@pytest.mark.parametrize("period,k", [(20, 2.0), (5, 1.5)])
def test_bollinger(ohlcv, period, k):
    c = ohlcv[3]
    ours = ta_kernel.bbands(c, period, k)
    theirs = talib.BBANDS(c, period, k, k, 0)
    for a, b in zip(ours, theirs):
        same(a, b)


@pytest.mark.parametrize("fast,slow,signal", [(12, 26, 9), (5, 35, 5), (3, 4, 2)])
def test_macd(ohlcv, fast, slow, signal):
    c = ohlcv[3]
    for a, b in zip(ma.macd(c, fast, slow, signal), talib.MACD(c, fast, slow, signal)):
        same(a, b)


@pytest.mark.parametrize("period", [1, 9, 50])
def test_sma_ema(ohlcv, period):
    c = ohlcv[3]
    same(ma.sma(c, period), talib.SMA(c, period))
    same(ma.ema(c, period), talib.EMA(c, period))


def test_short_series_are_all_nan():
    x = np.arange(5, dtype=float)
    assert np.isnan(ta_kernel.rsi(x, 14)).all()
    assert all(np.isnan(v).all() for v in ma.macd(x, 12, 26, 9))
    assert np.isnan(ta_kernel.atr(x, x, x, 14)).all()


def test_vwap_restarts_each_session(ohlcv):
    _, h, low, c, v = ohlcv
    day = np.repeat(np.arange(len(c) // 375 + 1), 375)[: len(c)].astype(np.int64)
    ours = ta_kernel.vwap(h, low, c, v, day)
    df = pd.DataFrame({"pv": (h + low + c) / 3 * v, "v": v, "day": day})
    g = df.groupby("day")
    expected = (g["pv"].cumsum() / g["v"].cumsum()).to_numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
