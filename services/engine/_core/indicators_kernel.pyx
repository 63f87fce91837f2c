# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Moving-average kernels over a whole series (see ``services.engine.indicators``).

Window sums are kept as an unevaluated pair (s, c): every addition goes through
Knuth's TwoSum, whose rounding error is exact and is accumulated in ``c``, so the
rolling sum of a million bars stays within an ulp or two of the exact window sum
instead of drifting by ~1e-9 like a naive running sum. Nothing here may be
compiled with -ffast-math (it would fold the error terms away).

The EMA seed, the EMA step and the MACD signal line are the inline functions of
``ema.pxd``, which the sweep kernel streams too: the same doubles either way.
"""

import numpy as np

from libc.math cimport NAN

from services.engine._core.ema cimport SignalEMA, ema_alpha, ema_step, signal_push, window_mean
from services.engine._core.twosum cimport acc


def sma(const double[::1] x, Py_ssize_t n):
    """Simple moving average; NaN for the first n-1 values."""
    if n < 1:
        raise ValueError("period must be >= 1")
    cdef Py_ssize_t N = x.shape[0], t
    out_arr = np.empty(N, dtype=np.float64)
    cdef double[::1] out = out_arr
    cdef double s = 0.0, c = 0.0, dn = <double>n
    with nogil:
        for t in range(N):
            acc(&s, &c, x[t])
            if t >= n:
                acc(&s, &c, -x[t - n])
            if t >= n - 1:
                out[t] = (s + c) / dn
            else:
                out[t] = NAN
    return out_arr


def ema(const double[::1] x, Py_ssize_t n):
    """Exponential moving average, alpha = 2/(n+1), seeded with the SMA of the first
    n values at index n-1 (TA-Lib's convention); NaN before."""
    if n < 1:
        raise ValueError("period must be >= 1")
    cdef Py_ssize_t N = x.shape[0], t
    out_arr = np.full(N, np.nan)
    cdef double[::1] out = out_arr
    cdef double e, alpha = ema_alpha(n)
    if n > N:
        return out_arr
    with nogil:
        e = window_mean(&x[0], n - 1, n)
        out[n - 1] = e
        for t in range(n, N):
            e = ema_step(e, alpha, x[t])
            out[t] = e
    return out_arr


def macd(const double[::1] x, Py_ssize_t fast, Py_ssize_t slow, Py_ssize_t signal):
    """(line, signal, hist) exactly as TA-Lib's MACD.

    If fast > slow the two are swapped. Both EMAs start at index slow-1: the slow
    one seeded with the mean of the first ``slow`` values, the fast one with the
    mean of the ``fast`` values ending there; line = EMA(fast) - EMA(slow); the
    signal is EMA(signal) of the line seeded with the mean of its first ``signal``
    values; hist = line - signal. All three are NaN before index
    slow + signal - 2 (TA-Lib's lookback).
    """
    if fast < 1 or slow < 1 or signal < 1:
        raise ValueError("periods must be >= 1")
    if fast > slow:
        fast, slow = slow, fast
    cdef Py_ssize_t N = x.shape[0], t, start = slow - 1, first = slow + signal - 2
    line_arr = np.full(N, np.nan)
    sig_arr = np.full(N, np.nan)
    cdef double[::1] line = line_arr, sig = sig_arr
    cdef double ef, es, l, s
    cdef double af = ema_alpha(fast), aslow = ema_alpha(slow), sa = ema_alpha(signal)
    cdef SignalEMA g
    g.sig = 0.0
    g.s = 0.0
    g.c = 0.0
    g.n = 0
    if first >= N:
        return line_arr, sig_arr, np.full(N, np.nan)
    with nogil:
        ef = window_mean(&x[0], start, fast)
        es = window_mean(&x[0], start, slow)
        for t in range(start, N):
            if t > start:
                ef = ema_step(ef, af, x[t])
                es = ema_step(es, aslow, x[t])
            l = ef - es
            s = signal_push(&g, l, <int>signal, sa)
            if t >= first:
                line[t] = l
                sig[t] = s
    return line_arr, sig_arr, line_arr - sig_arr
