# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Recursive indicators of single backtests that NumPy cannot vectorise.

``wilder_rsi`` is TA-Lib's RSI arithmetic, step for step: the first average gain
and loss are the plain means of the first ``period`` changes, then Wilder's
smoothing ``avg = (avg * (period - 1) + x) / period``; RSI = 100 * gain / (gain +
loss), 0 when both are 0 (TA-Lib's choice); NaN for the first ``period`` bars.
"""

import numpy as np

from libc.math cimport NAN


def wilder_rsi(const double[::1] close, Py_ssize_t period):
    """Relative Strength Index (TA-Lib convention) of ``close``."""
    if period < 2:
        raise ValueError("period must be >= 2")
    cdef Py_ssize_t n = close.shape[0], t
    out_arr = np.empty(n, dtype=np.float64)
    cdef double[::1] out = out_arr
    cdef double gain = 0.0, loss = 0.0, d, s, dp = <double>period
    with nogil:
        for t in range(min(period, n)):
            out[t] = NAN
        if n > period:
            for t in range(1, period + 1):
                d = close[t] - close[t - 1]
                if d < 0.0:
                    loss -= d
                else:
                    gain += d
            gain /= dp
            loss /= dp
            s = gain + loss
            out[period] = 100.0 * (gain / s) if s != 0.0 else 0.0
            for t in range(period + 1, n):
                d = close[t] - close[t - 1]
                loss *= dp - 1.0
                gain *= dp - 1.0
                if d < 0.0:
                    loss -= d
                else:
                    gain += d
                loss /= dp
                gain /= dp
                s = gain + loss
                out[t] = 100.0 * (gain / s) if s != 0.0 else 0.0
    return out_arr
