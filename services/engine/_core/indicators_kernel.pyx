# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Moving-average kernels over a whole series (see ``services.engine.indicators``).

Window sums are kept as an unevaluated pair (s, c): every addition goes through
Knuth's TwoSum, whose rounding error is exact and is accumulated in ``c``, so the
rolling sum of a million bars stays within an ulp or two of the exact window sum
instead of drifting by ~1e-9 like a naive running sum. Nothing here may be
compiled with -ffast-math (it would fold the error terms away).
"""

import numpy as np

from libc.math cimport NAN

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


cdef void _ema_into(const double[::1] x, Py_ssize_t start, Py_ssize_t n, double[::1] out) noexcept nogil:
    # EMA of x[start:], TA-Lib style: seeded at start+n-1 with the mean of the
    # first n values, then e += alpha * (x - e); NaN before the seed.
    cdef Py_ssize_t N = x.shape[0], t
    cdef double s = 0.0, c = 0.0, e = 0.0, alpha = 2.0 / (n + 1.0)
    for t in range(start):
        out[t] = NAN
    for t in range(start, N):
        if t - start < n - 1:
            acc(&s, &c, x[t])
            out[t] = NAN
        elif t - start == n - 1:
            acc(&s, &c, x[t])
            e = (s + c) / <double>n
            out[t] = e
        else:
            e = e + alpha * (x[t] - e)
            out[t] = e


def ema(const double[::1] x, Py_ssize_t n):
    """Exponential moving average, alpha = 2/(n+1), seeded with the SMA of the first
    n values at index n-1 (TA-Lib's convention); NaN before."""
    if n < 1:
        raise ValueError("period must be >= 1")
    out_arr = np.empty(x.shape[0], dtype=np.float64)
    cdef double[::1] out = out_arr
    with nogil:
        _ema_into(x, 0, n, out)
    return out_arr


def macd(const double[::1] x, Py_ssize_t fast, Py_ssize_t slow, Py_ssize_t signal):
    """(line, signal, hist): line = EMA(fast) - EMA(slow); signal = EMA(signal) of the
    line, seeded with the mean of the line's first ``signal`` defined values."""
    if fast < 1 or slow < 1 or signal < 1:
        raise ValueError("periods must be >= 1")
    cdef Py_ssize_t N = x.shape[0], t
    cdef Py_ssize_t start = (fast if fast > slow else slow) - 1
    ef_arr = ema(x, fast)
    es_arr = ema(x, slow)
    line_arr = ef_arr - es_arr
    sig_arr = np.empty(N, dtype=np.float64)
    cdef double[::1] line = line_arr, sig = sig_arr
    if start >= N:
        sig_arr[:] = np.nan
    else:
        with nogil:
            _ema_into(line, start, signal, sig)
    return line_arr, sig_arr, line_arr - sig_arr
