# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Indicator kernels of the rule engine, TA-Lib's conventions (see ``services.engine.rules.evaluate``):
RSI, ATR, Bollinger bands, VWAP. SMA, EMA and MACD, which the strategies and sweeps use
too, are in ``indicators_kernel.pyx`` (one implementation each).

Whole-series, GIL-free loops. Window sums use the kernels' compensated (TwoSum)
accumulation (``twosum.acc``) so values over long series do not drift.
"""

import numpy as np

from libc.math cimport NAN, fabs, sqrt

from services.engine._core.twosum cimport acc


def rsi(const double[::1] x, Py_ssize_t n):
    """Wilder's RSI: the first value at index n from the mean gain/loss of the first n
    changes, then avg = (avg * (n - 1) + change) / n; 100 * gain / (gain + loss), 0 when flat."""
    if n < 1:
        raise ValueError("period must be >= 1")
    cdef Py_ssize_t N = x.shape[0], t
    out_arr = np.full(N, np.nan)
    cdef double[::1] out = out_arr
    cdef double gain = 0.0, loss = 0.0, d, tot, dn = <double>n
    if N <= n:
        return out_arr
    with nogil:
        for t in range(1, n + 1):
            d = x[t] - x[t - 1]
            if d > 0:
                gain += d
            else:
                loss -= d
        gain /= dn
        loss /= dn
        tot = gain + loss
        out[n] = 100.0 * (gain / tot) if tot != 0.0 else 0.0
        for t in range(n + 1, N):
            d = x[t] - x[t - 1]
            gain *= (dn - 1.0)
            loss *= (dn - 1.0)
            if d > 0:
                gain += d
            else:
                loss -= d
            gain /= dn
            loss /= dn
            tot = gain + loss
            out[t] = 100.0 * (gain / tot) if tot != 0.0 else 0.0
    return out_arr


def atr(const double[::1] high, const double[::1] low, const double[::1] close, Py_ssize_t n):
    """Wilder's average true range: TR from the second bar on; the first ATR at index n
    is the mean of TR[1..n], then atr = (atr * (n - 1) + TR) / n."""
    if n < 1:
        raise ValueError("period must be >= 1")
    cdef Py_ssize_t N = close.shape[0], t
    out_arr = np.full(N, np.nan)
    cdef double[::1] out = out_arr
    cdef double tr, a, b, v = 0.0, dn = <double>n
    if N <= n:
        return out_arr
    with nogil:
        for t in range(1, N):
            tr = high[t] - low[t]
            a = fabs(high[t] - close[t - 1])
            b = fabs(low[t] - close[t - 1])
            if a > tr:
                tr = a
            if b > tr:
                tr = b
            if t <= n:
                v += tr
                if t == n:
                    v /= dn
                    out[t] = v
            else:
                v = (v * (dn - 1.0) + tr) / dn
                out[t] = v
    return out_arr


def bbands(const double[::1] x, Py_ssize_t n, double k):
    """(upper, middle, lower): middle = SMA(n), bands at k population standard deviations
    of the same window (TA-Lib's BBANDS with an SMA)."""
    if n < 1:
        raise ValueError("period must be >= 1")
    cdef Py_ssize_t N = x.shape[0], t, j
    up_arr = np.full(N, np.nan)
    mid_arr = np.full(N, np.nan)
    lo_arr = np.full(N, np.nan)
    cdef double[::1] up = up_arr, mid = mid_arr, lo = lo_arr
    cdef double s = 0.0, c = 0.0, m, var, d, sd, dn = <double>n
    with nogil:
        for t in range(N):
            acc(&s, &c, x[t])
            if t >= n:
                acc(&s, &c, -x[t - n])
            if t >= n - 1:
                m = (s + c) / dn
                # Two-pass variance of the window: exact enough, no cancellation.
                var = 0.0
                for j in range(t - n + 1, t + 1):
                    d = x[j] - m
                    var += d * d
                sd = sqrt(var / dn)
                mid[t] = m
                up[t] = m + k * sd
                lo[t] = m - k * sd
    return up_arr, mid_arr, lo_arr


def vwap(const double[::1] high, const double[::1] low, const double[::1] close, const double[::1] volume,
         const long long[::1] day):
    """Session VWAP: cumulative typical price ((h + l + c) / 3) x volume over cumulative volume,
    restarting whenever ``day`` changes; NaN while the day's volume is still 0."""
    cdef Py_ssize_t N = close.shape[0], t
    out_arr = np.empty(N, dtype=np.float64)
    cdef double[::1] out = out_arr
    cdef double pv = 0.0, pc = 0.0, vv = 0.0, vc = 0.0, tp
    with nogil:
        for t in range(N):
            if t == 0 or day[t] != day[t - 1]:
                pv = 0.0
                pc = 0.0
                vv = 0.0
                vc = 0.0
            tp = (high[t] + low[t] + close[t]) / 3.0
            acc(&pv, &pc, tp * volume[t])
            acc(&vv, &vc, volume[t])
            if vv + vc > 0.0:
                out[t] = (pv + pc) / (vv + vc)
            else:
                out[t] = NAN
    return out_arr
