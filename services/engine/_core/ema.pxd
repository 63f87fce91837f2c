# EMA and MACD-signal arithmetic shared by the kernels (cimported; inline, so nothing is linked).
#
# One implementation of these steps: the whole-series indicators (indicators_kernel.pyx) and
# the sweep kernel's streamed indicators and in-loop MACD signal (sweep_kernel.pyx) all call
# them, so the same inputs give the same doubles whichever kernel computes them.

from libc.math cimport NAN
from libc.stdint cimport int32_t

from services.engine._core.twosum cimport acc


cdef inline double window_mean(const double* x, Py_ssize_t end, Py_ssize_t n) noexcept nogil:
    # Mean of x[end-n+1 .. end] (compensated sum, in index order): an EMA's seed.
    cdef double s = 0.0, c = 0.0
    cdef Py_ssize_t i
    for i in range(end - n + 1, end + 1):
        acc(&s, &c, x[i])
    return (s + c) / <double>n


cdef inline double ema_alpha(Py_ssize_t n) noexcept nogil:
    return 2.0 / (n + 1.0)


cdef inline double ema_step(double e, double alpha, double x) noexcept nogil:
    return e + alpha * (x - e)


ctypedef struct SignalEMA:
    # The MACD signal line: EMA(sp) of the line, seeded with the mean of its first sp values.
    double sig
    double s
    double c
    int32_t n


cdef inline double signal_push(SignalEMA* g, double line, int sp, double sa) noexcept nogil:
    # Feed the MACD line of the next bar (NaN lines, the warm-up, are skipped); returns the
    # signal line at that bar, NaN until sp lines have been seen. sa = ema_alpha(sp).
    if g.n < sp:
        if line != line:
            return NAN
        acc(&g.s, &g.c, line)
        g.n += 1
        if g.n < sp:
            return NAN
        g.sig = (g.s + g.c) / <double>sp
    else:
        g.sig = ema_step(g.sig, sa, line)
    return g.sig
