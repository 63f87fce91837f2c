"""Moving-average indicators (compiled kernels in ``_core/indicators_kernel.pyx``).

Conventions (TA-Lib's; the tests check them against ``talib``):

- ``sma(x, n)[t]`` = mean of ``x[t-n+1 .. t]``; NaN for t < n-1.
- ``ema(x, n)``: alpha = 2/(n+1); the first value, at index n-1, is the SMA of
  the first n values; then ``e[t] = e[t-1] + alpha * (x[t] - e[t-1])``; NaN before.
- ``macd(x, fast, slow, signal)``: TA-Lib's MACD. A fast period above the slow
  one is swapped with it. Both EMAs start at index slow-1: the slow one seeded
  with the mean of the first ``slow`` values, the fast one with the mean of the
  ``fast`` values ending at slow-1; line = EMA(fast) - EMA(slow); signal =
  EMA(signal) of the line, seeded with the mean of its first ``signal`` values;
  hist = line - signal; all three NaN before index slow + signal - 2.

This is the one MACD: the rule language's ``MACD(fast, slow, signal)``
(``rules/evaluate.py``) is this function, and the sweep kernel's
``macd_crossover`` streams the same arithmetic (the inline functions of
``_core/ema.pxd``), so its line and signal are bit-identical to these.

Window sums never drift: they are carried as a compensated pair (TwoSum), so
SMA values over millions of bars stay within ~1e-16 relative of
``math.fsum(window) / n`` — a naive running sum is off by ~1e-9 after 1e6 bars,
enough to flip fast > slow on near-ties.

The sweep kernel (``_core/sweep_kernel.pyx``) streams the same arithmetic chunk
by chunk, so its values are bit-identical to these functions.
"""

from __future__ import annotations

import numpy as np

from services.engine._core import indicators_kernel as _k

MACD_SIGNAL_PERIOD = 9


def _series(x) -> np.ndarray:
    arr = np.ascontiguousarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError("expected a one-dimensional series")
    return arr


def _period(n) -> int:
    n = int(n)
    if n < 1:
        raise ValueError("period must be >= 1")
    return n


def sma(x, period: int) -> np.ndarray:
    """Simple moving average of ``x`` over ``period`` values (NaN during warm-up)."""
    return _k.sma(_series(x), _period(period))


def ema(x, period: int) -> np.ndarray:
    """Exponential moving average, TA-Lib seeding (NaN during warm-up)."""
    return _k.ema(_series(x), _period(period))


def macd(
    x, fast: int = 12, slow: int = 26, signal: int = MACD_SIGNAL_PERIOD
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD ``(line, signal, hist)``, TA-Lib's; see the module docstring for the seeding."""
    return _k.macd(_series(x), _period(fast), _period(slow), _period(signal))


__all__ = ["MACD_SIGNAL_PERIOD", "ema", "macd", "sma"]
