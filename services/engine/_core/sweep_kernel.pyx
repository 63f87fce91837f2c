# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Fused parameter-sweep kernel for crossover strategies, and its trade-recording mode.

``sweep`` evaluates every (fast, slow) combination of one strategy over one bar
series:

1. Indicators are streamed a block of bars at a time: each distinct period's
   SMA/EMA is computed once (per thread), into a t-major buffer
   ``buf[rows, n_periods]`` (at most ``_BLOCK_VALUES`` values, so it stays in L2),
   carrying its running state (compensated window sum or EMA value) from one
   block to the next. Memory is O(rows * n_periods + n_combos), independent of
   bars x combos.
2. For every bar of the chunk (outer loop) every combination is advanced (inner
   loop) using only scalar per-combination state: position, units, cash,
   running peak and worst drawdown, trade counters, Welford accumulators of the
   daily returns (with their 3rd and 4th central moments, for the overfitting
   statistics), and for MACD the fast EMA and the signal-EMA state. No
   per-combination array over bars is ever allocated; with ``day_block`` the day
   ends also add each return to its CSCV block's sum and sum of squares
   (blocks x combinations, ``Days``).
3. At the boundaries of chunks of ``chunk`` bars the GIL is taken back to call
   ``progress(fraction)`` (throttled by time; the fraction is bar-pairs done over
   the total); a False answer stops the sweep and the kernel returns None.
4. With ``threads`` > 1 the combinations are split into contiguous pair chunks,
   one per thread (OpenMP ``prange``, static schedule, no GIL), which run free from
   the first bar to the last, without a barrier between them. Each thread works
   in pages of its own: a copy of its combinations' state and the indicator
   columns its combinations use (a period used by two chunks is computed by both),
   streamed a block of bars at a time (``_BLOCK_VALUES``). Every period and
   combination still does the same operations in the same order, whatever the
   thread count, so the results are bit-identical for any ``threads``.

``backtest`` runs the same code for ONE combination in trade-recording mode: the
bar loops and ``_fill`` are specialised at compile time (fused type ``Rec``) for a
``Book`` that also keeps every closed trade and the equity of every bar, so a
single backtest and a sweep share one implementation of the fills, costs,
equity and metrics, and the sweep's specialisation contains none of the
recording. Besides the crossover kinds it takes ``KIND_WANT``: a precomputed
per-bar wanted position (-1/0/+1, e.g. from RSI thresholds), streamed into the
buffer as the column pair (want, 0) so the crossover rule "fast > slow" reads it.

Bar semantics (see ``services/engine/sweep.py`` for the full contract):
signal at bar t's close from the indicators at t; with ``fill`` 0 (next open) the
order fills at bar t+1's open, with ``fill`` 1 at bar t's close. Equity is
marked at every close. A signal on the last bar is not acted upon; a position
still open there is closed at the last close (with costs) and counted.

MACD is TA-Lib's, as ``indicators.macd`` (same inline arithmetic, ``ema.pxd``): a
pair with fast > slow is swapped; the slow EMA is the buffer's column; the fast
EMA is per-combination state, seeded at the slow EMA's first bar with the mean of
the ``fast`` closes ending there; the signal line is ``signal_push`` of the line.
"""

import numpy as np

from libc.math cimport NAN, fabs
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memcpy, memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from cython.parallel cimport prange

from services.engine._core.ema cimport SignalEMA, ema_alpha, ema_step, signal_push, window_mean
from services.engine._core.twosum cimport acc


cdef extern from "stdlib.h":
    int posix_memalign(void** ptr, size_t alignment, size_t size) nogil

cdef extern from *:
    """
    /* The SMA step of every period whose window is full (twosum.pxd's `acc`, twice, in
       the same order): with restrict pointers the compiler may run it on vectors, which
       changes no result (IEEE operations, no contraction). */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    /* compiled for AVX2 and for any x86-64, chosen when the module loads (ifunc) */
    #define HS_CLONES __attribute__((target_clones("avx2", "default")))
    #else
    #define HS_CLONES
    #endif
    HS_CLONES
    static void hs_sma_full(const double *restrict close, Py_ssize_t t,
                                   const int32_t *restrict periods, Py_ssize_t n,
                                   double *restrict S, double *restrict C, double *restrict row) {
        const double x = close[t];
        for (Py_ssize_t j = 0; j < n; j++) {
            double s = S[j], c = C[j], u, bp, y = -close[t - periods[j]];
            u = s + x; bp = u - s; c += (s - (u - bp)) + (x - bp); s = u;
            u = s + y; bp = u - s; c += (s - (u - bp)) + (y - bp); s = u;
            S[j] = s; C[j] = c;
            row[j] = (s + c) / (double)periods[j];
        }
    }
    """
    void _sma_full "hs_sma_full"(const double* close, Py_ssize_t t, const int32_t* periods, Py_ssize_t n,
                                 double* S, double* C, double* row) noexcept nogil


cdef extern from *:
    """
    /* What the threads of one sweep share while they run (see _chunks): atomics */
    static inline Py_ssize_t hs_load(const Py_ssize_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void hs_store(Py_ssize_t *p, Py_ssize_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline int hs_load_int(const int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void hs_store_int(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline int hs_claim(int *p) {
        int free_ = 0;
        return __atomic_compare_exchange_n(p, &free_, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
    }
    static inline void hs_release(int *p) { __atomic_store_n(p, 0, __ATOMIC_RELEASE); }
    """
    Py_ssize_t _load "hs_load"(const Py_ssize_t* p) noexcept nogil
    void _store "hs_store"(Py_ssize_t* p, Py_ssize_t v) noexcept nogil
    int _load_int "hs_load_int"(const int* p) noexcept nogil
    void _store_int "hs_store_int"(int* p, int v) noexcept nogil
    int _claim "hs_claim"(int* p) noexcept nogil
    void _release "hs_release"(int* p) noexcept nogil


cdef enum:
    # Pair chunks (one per thread) hold a multiple of _GROUP combinations, and a row of
    # indicator columns is padded to a multiple of _GROUP values (a 64-byte line)
    _GROUP = 8
    _LINE = 64
    # Pairs dealt to the pair chunks in blocks of this many (see sweep)
    _DEAL = 64
    # A thread's indicator block holds at most this many values (512 KiB)
    _BLOCK_VALUES = 65536
    _PAGE = 4096

cdef enum:
    _SMA = 0
    _EMA = 1
    _MACD = 2
    _WANT = 3
    _NEXT_OPEN = 0
    _CLOSE = 1
    _LONG = 0
    _SHORT = 1
    _BOTH = 2

KIND_SMA = _SMA
KIND_EMA = _EMA
KIND_MACD = _MACD
KIND_WANT = _WANT
FILL_NEXT_OPEN = _NEXT_OPEN
FILL_CLOSE = _CLOSE
DIR_LONG = _LONG
DIR_SHORT = _SHORT
DIR_BOTH = _BOTH


ctypedef struct Hot:
    # touched on every bar by every combination: kept to 40 bytes so the state of
    # a ~800-combination sweep fits in a 32 KiB L1 data cache.
    double cash       # cash (0 while long; proceeds incl. short sale while short)
    double units      # signed position size (0 when flat, < 0 when short)
    double peak       # running peak of the marked equity (starts at initial cash)
    double ddk        # min over bars of equity / peak  (max drawdown = ddk - 1)
    int16_t fi        # column of the fast series in the indicator buffer
    int16_t si        # column of the slow series
    int8_t pos        # current position: -1, 0, +1
    int8_t pending    # next-open mode: the position decided at the previous close
    int8_t ml         # 1 if long positions are allowed (0 once the account is bust)
    int8_t ms         # 1 if short positions are allowed


ctypedef struct Cold:
    # touched on fills and at day ends only
    double eq_day     # equity at the previous day end (initial cash at start)
    double mean       # Welford mean of daily returns
    double m2         # Welford sum of squared deviations
    double m3         # sums of cubed and 4th powers of the deviations (online, Terriberry):
    double m4         # the skewness and kurtosis of the overfitting statistics
    double dsq        # sum of min(r, 0)^2
    int64_t ndays
    int64_t nneg
    double entry_eq   # equity committed at the open trade's entry
    int64_t entry_ts  # ts of the open trade's entry fill bar
    int64_t ntrades
    int64_t nwins
    double gp         # gross profit (sum of pnl > 0)
    double gl         # gross loss (sum of pnl < 0, <= 0)
    int64_t dur       # sum of trade durations, ns


ctypedef struct Days:
    # per-day accumulators beside the Welford moments: the sum and sum of squares of the
    # daily returns of each CSCV block (domain.overfitting), blocks x combinations
    const int32_t* block  # [n]: the block of the d-th daily return, -1 for none
    Py_ssize_t n          # days with a block entry (0: nothing is accumulated)
    double* bsum          # [blocks * m]
    double* bsq           # [blocks * m]


ctypedef struct MacdState:
    # per combination: TA-Lib's fast EMA starts at the slow one's first bar, so it
    # depends on the pair; and the signal line
    SignalEMA g
    double ef         # fast EMA
    double af         # its alpha
    int32_t fast      # its period
    int32_t seeded    # 1 once ef holds a value


ctypedef struct Costs:
    double buy        # 1 + slippage: price multiplier when buying
    double sell       # 1 - slippage: price multiplier when selling
    double cin        # 1 + commission: cash per unit of traded value paid
    double cout       # 1 - commission: cash per unit of traded value received


ctypedef struct Deal:
    # one closed trade, as the recording mode keeps it
    int64_t entry_i   # bar index of the entry fill
    int64_t exit_i    # bar index of the exit fill
    double units      # size (> 0)
    double entry_price  # fill prices, slippage included
    double exit_price
    double entry_value  # equity committed at the entry
    double exit_value   # cash after the exit
    double pnl
    double commission   # paid on entry and exit
    int8_t side
    int8_t end_of_data  # 1: closed by the close-out of the last bar


ctypedef struct Book:
    # the recording mode's extra state (one combination)
    double* equity    # [bars]: cash + units x close after the bar's fills
    Deal* deals
    Py_ssize_t ndeals
    Py_ssize_t cap
    Py_ssize_t limit  # keep at most this many trades (Cold.ntrades counts them all)
    double commission
    int64_t entry_i
    double entry_price
    double entry_comm
    int8_t closing    # set during the last bar's close-out
    int8_t oom


ctypedef struct NoBook:
    int8_t unused

ctypedef NoBook* NoBookP
ctypedef Book* BookP

# Sweep (nothing recorded) or single backtest (trades and equity recorded): every
# function below that takes a Rec is compiled twice, the NoBookP version without
# any trace of the recording.
ctypedef fused Rec:
    NoBookP
    BookP


# Direction tags: the bar loops are specialised per direction at compile time
# (fused types), so the inner loop of a long-only sweep computes just `f > s`.
ctypedef fused Dir:
    int8_t    # long
    int16_t   # short
    int32_t   # both


cdef inline void _mark_dd(Hot* h, double eq) noexcept nogil:
    # running peak and worst equity/peak ratio; the division only happens when the
    # equity falls below the current worst level.
    cdef double r, pk = h.peak
    pk = eq if eq > pk else pk
    h.peak = pk
    if eq < pk * h.ddk:
        r = eq / pk
        if r < h.ddk:
            h.ddk = r


cdef void _book_trade(Book* b, int side, double units, double pf, double entry_eq, double cash,
                      Py_ssize_t t) noexcept nogil:
    cdef Deal* d
    cdef Py_ssize_t cap
    cdef double size = fabs(units)
    if b.oom or b.ndeals >= b.limit:
        return
    if b.ndeals == b.cap:
        cap = b.cap * 2 if b.cap else 64
        if cap > b.limit:
            cap = b.limit
        d = <Deal*>realloc(b.deals, cap * sizeof(Deal))
        if d == NULL:
            b.oom = 1
            return
        b.deals = d
        b.cap = cap
    d = &b.deals[b.ndeals]
    b.ndeals += 1
    d.side = <int8_t>side
    d.entry_i = b.entry_i
    d.exit_i = t
    d.units = size
    d.entry_price = b.entry_price
    d.exit_price = pf
    d.entry_value = entry_eq
    d.exit_value = cash
    d.pnl = cash - entry_eq
    d.commission = b.entry_comm + size * pf * b.commission
    d.end_of_data = b.closing


cdef inline void _fill(Rec r, Hot* h, Cold* c, int w, double price, Py_ssize_t t, int64_t tt,
                       const Costs* k) noexcept nogil:
    """Move from h.pos to w at ``price`` (before slippage) on bar t (ts ``tt``)."""
    cdef double pf, u, e, pnl
    if h.pos != 0:
        if h.pos > 0:
            pf = price * k.sell
            h.cash = h.cash + h.units * pf * k.cout
        else:
            pf = price * k.buy
            h.cash = h.cash + h.units * pf * k.cin
        if Rec is BookP:
            _book_trade(r, h.pos, h.units, pf, c.entry_eq, h.cash, t)
        h.units = 0.0
        h.pos = 0
        pnl = h.cash - c.entry_eq
        c.ntrades += 1
        if pnl > 0.0:
            c.nwins += 1
            c.gp += pnl
        elif pnl < 0.0:
            c.gl += pnl
        c.dur += tt - c.entry_ts
    if w != 0:
        e = h.cash
        if e > 0.0:
            c.entry_eq = e
            c.entry_ts = tt
            if w > 0:
                pf = price * k.buy
                h.units = e / (pf * k.cin)
                h.cash = 0.0
                h.pos = 1
            else:
                pf = price * k.sell
                u = e / (pf * k.cin)
                h.units = -u
                h.cash = e + u * pf * k.cout
                h.pos = -1
            if Rec is BookP:
                r.entry_i = t
                r.entry_price = pf
                r.entry_comm = fabs(h.units) * pf * r.commission
        else:
            # bust: nothing left to invest; stay flat from now on (fast column =
            # slow column makes every crossover comparison false)
            h.ml = 0
            h.ms = 0
            h.fi = h.si
    if h.pos == 0:
        _mark_dd(h, h.cash)


cdef inline void _day_end(Hot* hot, Cold* cold, Py_ssize_t k0, Py_ssize_t k1, Py_ssize_t m, double pc,
                          const Days* dy) noexcept nogil:
    # combinations [k0, k1) of m (a thread's pair chunk; m is the block sums' row length)
    cdef Py_ssize_t k, b = -1
    cdef double eq, r, d, n, dn, dn2, t1
    cdef Cold* c
    cdef double* bs = NULL
    cdef double* bq = NULL
    # every combination has seen the same days: the first one's count is the day's index
    if k1 > k0 and cold[k0].ndays < dy.n:
        b = dy.block[cold[k0].ndays]
        if b >= 0:
            bs = dy.bsum + b * m
            bq = dy.bsq + b * m
    for k in range(k0, k1):
        c = &cold[k]
        eq = hot[k].cash + hot[k].units * pc
        r = eq / c.eq_day - 1.0
        c.eq_day = eq
        c.ndays += 1
        n = <double>c.ndays
        d = r - c.mean
        dn = d / n
        dn2 = dn * dn
        t1 = d * dn * (n - 1.0)
        c.m4 += t1 * dn2 * (n * n - 3.0 * n + 3.0) + 6.0 * dn2 * c.m2 - 4.0 * dn * c.m3
        c.m3 += t1 * dn * (n - 2.0) - 3.0 * dn * c.m2
        c.mean += d / <double>c.ndays
        c.m2 += d * (r - c.mean)
        if r < 0.0:
            c.dsq += r * r
            c.nneg += 1
        if bs != NULL:
            bs[k] += r
            bq[k] += r * r


cdef void _indicators(const double[::1] close, Py_ssize_t t0, Py_ssize_t t1,
                      const int32_t* periods, Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t stride, int ema_kind,
                      double* S, double* C, double* E, const double* A, double* buf) noexcept nogil:
    """Fill buf[(t - t0) * stride + j] with SMA/EMA(periods[j]) at t, for t in [t0, t1)
    and j in [j0, j1) (a thread's columns), continuing the per-period running
    state in S, C (compensated sums) and E; A[j] is the EMA's alpha, 2 / (periods[j] + 1)."""
    cdef Py_ssize_t t, j, n, longest = 0
    cdef double x
    cdef double* row
    if ema_kind:
        for t in range(t0, t1):
            row = buf + (t - t0) * stride
            x = close[t]
            for j in range(j0, j1):
                n = periods[j]
                if t >= n:
                    E[j] = ema_step(E[j], A[j], x)
                    row[j] = E[j]
                elif t == n - 1:
                    E[j] = window_mean(&close[0], t, n)
                    row[j] = E[j]
                else:
                    row[j] = NAN
    else:
        for j in range(j0, j1):
            longest = max(longest, periods[j])
        for t in range(t0, t1):
            row = buf + (t - t0) * stride
            x = close[t]
            if t >= longest:  # every window is full: the same steps, without the branches
                _sma_full(&close[0], t, periods + j0, j1 - j0, S + j0, C + j0, row + j0)
                continue
            for j in range(j0, j1):
                n = periods[j]
                acc(&S[j], &C[j], x)
                if t >= n:
                    acc(&S[j], &C[j], -close[t - n])
                if t >= n - 1:
                    row[j] = (S[j] + C[j]) / <double>n
                else:
                    row[j] = NAN


cdef void _sma_sums_before(const double[::1] close, const int32_t* periods, Py_ssize_t j0, Py_ssize_t j1,
                           Py_ssize_t start, double* S, double* C) noexcept nogil:
    # The running window sum of each period j in [j0, j1) as _indicators leaves it after
    # bar start - 1: the closes of bars max(0, start - n) .. start - 1.
    cdef Py_ssize_t j, i, n
    for j in range(j0, j1):
        n = periods[j]
        i = start - n if start > n else 0
        while i < start:
            acc(&S[j], &C[j], close[i])
            i += 1


cdef void _want_rows(const int8_t[::1] want, Py_ssize_t t0, Py_ssize_t t1, double* buf) noexcept nogil:
    # KIND_WANT: the columns (want, 0), so "fast > slow" is "want > 0"
    cdef Py_ssize_t t
    for t in range(t0, t1):
        buf[(t - t0) * 2] = <double>want[t]
        buf[(t - t0) * 2 + 1] = 0.0


cdef inline double _macd_line(MacdState* g, double slow, const double* close, Py_ssize_t t) noexcept nogil:
    # The MACD line at bar t given the slow EMA there (NaN before its first bar).
    if g.seeded:
        g.ef = ema_step(g.ef, g.af, close[t])
    elif slow == slow:  # the slow EMA's first bar: seed the fast one here (TA-Lib)
        g.ef = window_mean(close, t, g.fast)
        g.seeded = 1
    else:
        return NAN
    return g.ef - slow


cdef inline int _macd_want(Hot* h, MacdState* g, const double* row, const double* close, Py_ssize_t t,
                           int sp, double sa) noexcept nogil:
    cdef double line = _macd_line(g, row[h.si], close, t)
    cdef double sig = signal_push(&g.g, line, sp, sa)  # NaN until defined: both comparisons false
    return h.ml * (line > sig) - h.ms * (line < sig)


cdef inline int _cross_want(Dir tag, Hot* h, const double* row) noexcept nogil:
    cdef double f = row[h.fi]
    cdef double s = row[h.si]
    if Dir is int8_t:
        return f > s
    elif Dir is int16_t:
        return -(f < s)
    else:
        return (f > s) - (f < s)


cdef void _macd_warm(Hot* hot, MacdState* sig, Py_ssize_t k0, Py_ssize_t k1, int sp, double sa,
                     const double[::1] close, Py_ssize_t t0, Py_ssize_t t1, Py_ssize_t npd,
                     const double* buf) noexcept nogil:
    # Bars [t0, t1) before a window's start: advance the MACD state, decide nothing.
    cdef Py_ssize_t t, k
    for t in range(t0, t1):
        for k in range(k0, k1):
            _macd_want(&hot[k], &sig[k], buf + (t - t0) * npd, &close[0], t, sp, sa)


cdef void _bars_next_open(Dir tag, Rec r, Hot* hot, Cold* cold, MacdState* sig, Py_ssize_t k0, Py_ssize_t k1,
                          Py_ssize_t m, int macd, int sp,
                          double sa, const double[::1] open_, const double[::1] close, const int64_t[::1] ts,
                          const uint8_t[::1] day_end, Py_ssize_t t0, Py_ssize_t t1, Py_ssize_t npd,
                          const double* buf, const Costs* costs, const Days* dy) noexcept nogil:
    cdef Py_ssize_t t, k
    cdef double po, pc
    cdef int64_t tt
    cdef const double* row
    cdef Hot* h
    for t in range(t0, t1):
        row = buf + (t - t0) * npd
        po = open_[t]
        pc = close[t]
        tt = ts[t]
        if macd:
            for k in range(k0, k1):
                h = &hot[k]
                if h.pending != h.pos:
                    _fill(r, h, &cold[k], h.pending, po, t, tt, costs)
                if h.pos != 0:
                    _mark_dd(h, h.cash + h.units * pc)
                if Rec is BookP:
                    r.equity[t] = h.cash + h.units * pc
                h.pending = <int8_t>_macd_want(h, &sig[k], row, &close[0], t, sp, sa)
        else:
            for k in range(k0, k1):
                h = &hot[k]
                if h.pending != h.pos:
                    _fill(r, h, &cold[k], h.pending, po, t, tt, costs)
                if h.pos != 0:
                    _mark_dd(h, h.cash + h.units * pc)
                if Rec is BookP:
                    r.equity[t] = h.cash + h.units * pc
                h.pending = <int8_t>_cross_want(tag, h, row)
        if day_end[t]:
            _day_end(hot, cold, k0, k1, m, pc, dy)


cdef void _bars_close(Dir tag, Rec r, Hot* hot, Cold* cold, MacdState* sig, Py_ssize_t k0, Py_ssize_t k1,
                      Py_ssize_t m, int macd, int sp,
                      double sa, const double[::1] close, const int64_t[::1] ts,
                      const uint8_t[::1] day_end, Py_ssize_t t0, Py_ssize_t t1, Py_ssize_t npd,
                      const double* buf, const Costs* costs, const Days* dy) noexcept nogil:
    cdef Py_ssize_t t, k
    cdef double pc
    cdef int64_t tt
    cdef int w
    cdef const double* row
    cdef Hot* h
    for t in range(t0, t1):
        row = buf + (t - t0) * npd
        pc = close[t]
        tt = ts[t]
        for k in range(k0, k1):
            h = &hot[k]
            if macd:
                w = _macd_want(h, &sig[k], row, &close[0], t, sp, sa)
            else:
                w = _cross_want(tag, h, row)
            if w != h.pos:
                _fill(r, h, &cold[k], w, pc, t, tt, costs)
            if h.pos != 0:
                _mark_dd(h, h.cash + h.units * pc)
            if Rec is BookP:
                r.equity[t] = h.cash + h.units * pc
        if day_end[t]:
            _day_end(hot, cold, k0, k1, m, pc, dy)


cdef void _last_bar(Rec r, Hot* hot, Cold* cold, Py_ssize_t n, Py_ssize_t m, int next_open,
                    double po, double pc, Py_ssize_t t, int64_t tt, const Costs* costs,
                    const Days* dy) noexcept nogil:
    # The last bar (t): the order decided at the previous close fills at this open
    # (next-open mode); the signal of this bar is ignored; whatever is open is
    # closed at this close; the equity is marked (it is the final equity).
    cdef Py_ssize_t k
    cdef Hot* h
    for k in range(n):
        h = &hot[k]
        if next_open and h.pending != h.pos:
            _fill(r, h, &cold[k], h.pending, po, t, tt, costs)
        if h.pos != 0:
            if Rec is BookP:
                r.closing = 1
            _fill(r, h, &cold[k], 0, pc, t, tt, costs)
        if Rec is BookP:
            r.equity[t] = h.cash + h.units * pc
    _day_end(hot, cold, 0, n, m, pc, dy)


cdef void _advance(Rec r, Hot* hot, Cold* cold, MacdState* sig, Py_ssize_t k0, Py_ssize_t k1, Py_ssize_t m,
                   int direction, int next_open, int macd, int sp, double sa, const double[::1] open_,
                   const double[::1] close, const int64_t[::1] ts, const uint8_t[::1] day_end, Py_ssize_t t0,
                   Py_ssize_t t1, Py_ssize_t npd, const double* buf, const Costs* costs,
                   const Days* dy) noexcept nogil:
    # Bars [t0, t1) for combinations [k0, k1): the bar loop specialised for the fill and
    # the direction.
    if next_open:
        if direction == _LONG:
            _bars_next_open(<int8_t>0, r, hot, cold, sig, k0, k1, m, macd, sp, sa, open_, close, ts,
                            day_end, t0, t1, npd, buf, costs, dy)
        elif direction == _SHORT:
            _bars_next_open(<int16_t>0, r, hot, cold, sig, k0, k1, m, macd, sp, sa, open_, close, ts,
                            day_end, t0, t1, npd, buf, costs, dy)
        else:
            _bars_next_open(<int32_t>0, r, hot, cold, sig, k0, k1, m, macd, sp, sa, open_, close, ts,
                            day_end, t0, t1, npd, buf, costs, dy)
    else:
        if direction == _LONG:
            _bars_close(<int8_t>0, r, hot, cold, sig, k0, k1, m, macd, sp, sa, close, ts, day_end,
                        t0, t1, npd, buf, costs, dy)
        elif direction == _SHORT:
            _bars_close(<int16_t>0, r, hot, cold, sig, k0, k1, m, macd, sp, sa, close, ts, day_end,
                        t0, t1, npd, buf, costs, dy)
        else:
            _bars_close(<int32_t>0, r, hot, cold, sig, k0, k1, m, macd, sp, sa, close, ts, day_end,
                        t0, t1, npd, buf, costs, dy)


cdef Py_ssize_t _chunk_size(Py_ssize_t n, int threads) noexcept:
    # n items over `threads` chunks of a multiple of _GROUP items (n: one chunk)
    cdef Py_ssize_t per
    if threads <= 1 or n <= _GROUP:
        return max(n, 1)
    per = (n + threads - 1) // threads
    return (per + _GROUP - 1) // _GROUP * _GROUP


ctypedef struct Part:
    # One pair chunk (one thread's work), in memory of its own: its combinations' state
    # (`n` of them, the sweep's [k0, k0 + n), copied in and out), its days (the block sums
    # from column k0), and the indicator columns its combinations use: `periods[0 .. ncol)`,
    # their buffer (`rows` rows of `stride` values) and running state (S, C, E, A).
    void* mem         # its pages (freed by _run)
    Py_ssize_t k0
    Py_ssize_t n
    Hot* hot
    Cold* cold
    MacdState* sig
    Days days
    Py_ssize_t ncol
    Py_ssize_t stride
    const int32_t* periods
    double* buf
    double* S
    double* C
    double* E
    double* A
    Py_ssize_t at     # the bars it has done, [0, at) (read by the thread reporting progress)


cdef size_t _pages(size_t size) noexcept nogil:
    return (size + _PAGE - 1) // _PAGE * _PAGE


cdef int _run(Rec r, Hot* hot, Cold* cold, MacdState* sig, Py_ssize_t m, int kind, int direction, int next_open,
              int sp, double sa, const double[::1] open_, const double[::1] close, const int64_t[::1] ts,
              const uint8_t[::1] day_end, const int32_t[::1] periods, const int8_t[::1] want,
              const Costs* costs, const Days* dy, progress, Py_ssize_t chunk,
              double progress_interval, int threads, Py_ssize_t start=0) except -1:
    """The bar loop of ``sweep`` and ``backtest``: 1 when ``progress`` cancelled it, else 0.

    Bars before ``start`` only warm the indicators up (a walk-forward window: every
    earlier bar feeds the indicators, the decisions start flat at ``start``).

    ``threads`` > 1 splits the combinations into that many pair chunks (multiples of
    ``_GROUP``), run in parallel. Each pair chunk (``Part``) works in memory of its own,
    pages no other thread writes: a copy of its combinations' state, and the indicator
    columns its own combinations use, with their buffer and running state. A period
    used by two chunks is computed by both (the same operations in the same order, so
    the same values). Measured on S2 (2 threads), sharing cost more than that: one
    indicator buffer for both threads made them use a third more CPU than one thread,
    and one array of combination state a fifth more.

    Each thread streams its columns and runs its combinations a block of bars at a time
    (at most ``_BLOCK_VALUES`` indicator values, so the block stays in the core's L2)."""
    cdef Py_ssize_t N = close.shape[0]
    cdef Py_ssize_t per = _chunk_size(m, threads), nch = (m + per - 1) // per if m else 1
    cdef Py_ssize_t c, k, j, k0, n, ncol, stride, widest = 1, rows, total = 0, pat = 0
    cdef int is_want = kind == _WANT
    cdef int own = nch > 1  # with one chunk, it works on the sweep's own state
    cdef size_t size, at
    cdef char* mem
    cdef Py_ssize_t[::1] idx
    # each chunk's columns: the sorted periods (indices into `periods`) its combinations use
    used = []
    for c in range(nch):
        k0, n = c * per, min(per, m - c * per)
        if is_want:
            cols = np.arange(2, dtype=np.intp)  # the columns (want, 0)
        else:
            idx_arr = np.empty(2 * n, dtype=np.intp)
            idx = idx_arr
            for k in range(n):
                idx[k] = hot[k0 + k].fi
                idx[n + k] = hot[k0 + k].si
            cols, column = np.unique(idx_arr, return_inverse=True)
            idx_arr[:] = column  # a period's index -> its column in the chunk
            for k in range(n):
                hot[k0 + k].fi = <int16_t>idx[k]
                hot[k0 + k].si = <int16_t>idx[n + k]
        used.append(cols)
        widest = max(widest, len(cols))
        total += len(cols)
    # (at least 64 rows when the chunk has them: thousands of periods make a larger block
    # rather than a call per bar or two)
    rows = max(1, min(chunk, N, max(_GROUP * _GROUP, _BLOCK_VALUES // widest)))
    pers_arr = np.zeros(max(1, total), dtype=np.int32)
    cdef int32_t[::1] pers_v = pers_arr
    cdef int32_t* pers = &pers_v[0]
    cdef Part* parts = <Part*>calloc(nch, sizeof(Part))
    if parts == NULL:
        raise MemoryError()
    try:
        for c in range(nch):
            k0, n = c * per, max(0, min(per, m - c * per))
            ncol = len(used[c])
            stride = 2 if is_want else max(1, (ncol + _GROUP - 1) // _GROUP * _GROUP)
            # its own pages: [Hot x n | Cold x n | MacdState x n (own only)] buffer | state
            at = _pages(n * (sizeof(Hot) + sizeof(Cold) + sizeof(MacdState))) if own else 0
            size = _pages(at + (rows * stride + 4 * stride) * sizeof(double))
            mem = <char*>_zeroed_pages(size)
            if mem == NULL:
                raise MemoryError()
            parts[c].mem = mem
            parts[c].buf = <double*>(mem + at)
            parts[c].k0 = k0
            parts[c].n = n
            parts[c].days = dy[0]
            if dy.bsum != NULL:
                parts[c].days.bsum = dy.bsum + k0
                parts[c].days.bsq = dy.bsq + k0
            if own:
                parts[c].hot = <Hot*>mem
                parts[c].cold = <Cold*>(mem + n * sizeof(Hot))
                parts[c].sig = <MacdState*>(mem + n * (sizeof(Hot) + sizeof(Cold)))
                memcpy(parts[c].hot, hot + k0, n * sizeof(Hot))
                memcpy(parts[c].cold, cold + k0, n * sizeof(Cold))
                memcpy(parts[c].sig, sig + k0, n * sizeof(MacdState))
            else:
                parts[c].hot, parts[c].cold, parts[c].sig = hot, cold, sig
            parts[c].ncol = 0 if is_want else ncol
            parts[c].stride = stride
            parts[c].periods = pers + pat
            parts[c].S = parts[c].buf + rows * stride
            parts[c].C = parts[c].S + stride
            parts[c].E = parts[c].S + 2 * stride
            parts[c].A = parts[c].S + 3 * stride
            if not is_want:
                for j in range(ncol):
                    pers[pat + j] = periods[used[c][j]]
                    parts[c].A[j] = 2.0 / (pers[pat + j] + 1.0)
                pat += ncol
        cancelled = _chunks(r, m, kind, direction, next_open, sp, sa, open_, close, ts, day_end, want, costs,
                            progress, chunk, progress_interval, parts, <int>nch, rows, start)
        if own:
            for c in range(nch):
                memcpy(hot + parts[c].k0, parts[c].hot, parts[c].n * sizeof(Hot))
                memcpy(cold + parts[c].k0, parts[c].cold, parts[c].n * sizeof(Cold))
                memcpy(sig + parts[c].k0, parts[c].sig, parts[c].n * sizeof(MacdState))
        return cancelled
    finally:
        for c in range(nch):
            free(parts[c].mem)
        free(parts)


cdef void _part(Rec r, Py_ssize_t m, int direction, int next_open, int macd, int ema_kind, int is_want, int sp,
                double sa, const double[::1] open_, const double[::1] close, const int64_t[::1] ts,
                const uint8_t[::1] day_end, const int8_t[::1] want, const Costs* costs, Part* p, Py_ssize_t rows,
                Py_ssize_t t0, Py_ssize_t t1, int warm) noexcept nogil:
    # One part over bars [t0, t1), a block of `rows` bars at a time: its columns, then its
    # combinations (or, before a window's start, MACD's per-combination state only).
    cdef Py_ssize_t b0 = t0, b1
    while b0 < t1:
        b1 = min(b0 + rows, t1)
        if is_want:
            _want_rows(want, b0, b1, p.buf)
        elif p.ncol:
            _indicators(close, b0, b1, p.periods, 0, p.ncol, p.stride, ema_kind, p.S, p.C, p.E, p.A, p.buf)
        if warm:
            if macd:
                _macd_warm(p.hot, p.sig, 0, p.n, sp, sa, close, b0, b1, p.stride, p.buf)
        else:
            _advance(r, p.hot, p.cold, p.sig, 0, p.n, m, direction, next_open, macd, sp, sa, open_, close, ts,
                     day_end, b0, b1, p.stride, p.buf, costs, &p.days)
        b0 = b1


ctypedef struct Pace:
    # What the threads of one sweep share while they run free: who reports progress
    # (`busy`, claimed by compare-and-swap), when it last did, and whether to stop.
    int busy
    int stop
    double last
    double interval
    Py_ssize_t N
    Py_ssize_t pairs    # of all parts (0: none, and then each part counts as one)
    void* progress      # the callback (borrowed; NULL for none)
    void* box           # a list: the exception the callback raised, if any


cdef double _monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef int _report(void* progress, void* box, double fraction) noexcept with gil:
    # 1 when the sweep is to stop: the callback answered False or raised (kept in box)
    try:
        answer = (<object>progress)(fraction)
    except BaseException as e:
        (<list>box).append(e)
        return 1
    return 1 if answer is not None and not answer else 0


cdef void _pace(Part* parts, int nth, Pace* pace) noexcept nogil:
    # At a thread's chunk boundary: report progress when it is time and no other thread
    # is reporting. The fraction is bar-pairs done over the total (each part's bars done,
    # weighted by its pairs), so it only moves forward.
    cdef double now, done = 0.0
    cdef int c
    cdef Py_ssize_t total = pace.pairs if pace.pairs else nth
    if not _claim(&pace.busy):
        return
    now = _monotonic()
    if not _load_int(&pace.stop) and now - pace.last >= pace.interval:
        pace.last = now
        for c in range(nth):
            done += <double>_load(&parts[c].at) * (parts[c].n if pace.pairs else 1)
        if _report(pace.progress, pace.box, done / (<double>total * pace.N)):
            _store_int(&pace.stop, 1)
    _release(&pace.busy)


cdef void _free_run(Rec r, Py_ssize_t m, int direction, int next_open, int macd, int ema_kind, int is_want, int sp,
                    double sa, const double[::1] open_, const double[::1] close, const int64_t[::1] ts,
                    const uint8_t[::1] day_end, const int8_t[::1] want, const Costs* costs, Part* parts, int nth,
                    int c, Py_ssize_t rows, Py_ssize_t t0, Py_ssize_t tend, Py_ssize_t start, Py_ssize_t chunk,
                    Pace* pace) noexcept nogil:
    # One thread's whole run over the bars, chunk by chunk, with no barrier between the
    # threads: a thread reports progress (or stops) at its own chunk boundaries.
    cdef Py_ssize_t t1
    while t0 < tend:
        if _load_int(&pace.stop):
            return
        t1 = min(t0 + chunk, tend)
        if t0 < start:
            t1 = min(t1, start)  # a chunk is all warm-up or all decisions
        _part(r, m, direction, next_open, macd, ema_kind, is_want, sp, sa, open_, close, ts, day_end,
              want, costs, &parts[c], rows, t0, t1, t0 < start)
        t0 = t1
        _store(&parts[c].at, t0)
        if pace.progress != NULL and t0 < tend:
            _pace(parts, nth, pace)


cdef int _chunks(Rec r, Py_ssize_t m, int kind, int direction, int next_open, int sp, double sa,
                 const double[::1] open_, const double[::1] close, const int64_t[::1] ts,
                 const uint8_t[::1] day_end, const int8_t[::1] want, const Costs* costs, progress,
                 Py_ssize_t chunk, double progress_interval, Part* parts, int nth, Py_ssize_t rows,
                 Py_ssize_t start) except -1:
    # _run's loop over the bars. The threads run free from the first bar to the last but
    # one: no barrier between them until the end (one team per chunk of bars, joined at
    # each chunk, cost S2 5 % on 2 threads: a thread waited for the other 61 times). The
    # progress callback is called with the GIL taken by whichever thread reaches a chunk
    # boundary when it is time (the first boundary, then every `progress_interval` s).
    cdef Py_ssize_t N = close.shape[0], t0, tend, c
    cdef int macd = kind == _MACD
    cdef int ema_kind = kind == _EMA or kind == _MACD
    cdef int is_want = kind == _WANT
    cdef Pace pace
    box = []

    t0 = 0
    if start > 0 and not ema_kind and not is_want:
        # A window's SMAs need only the closes of their own windows: each period's running
        # sum starts just before `start`, not at bar 0 (the same averages, without
        # streaming every earlier bar; EMAs and MACD do depend on all of them).
        with nogil:
            for c in range(nth):
                _sma_sums_before(close, parts[c].periods, 0, parts[c].ncol, start, parts[c].S, parts[c].C)
        t0 = start
    memset(&pace, 0, sizeof(Pace))
    for c in range(nth):
        parts[c].at = t0
        pace.pairs += parts[c].n
    pace.last = -1e300
    pace.interval = progress_interval
    pace.N = N
    pace.progress = <void*>progress if progress is not None else NULL
    pace.box = <void*>box
    tend = N - 1  # the last bar is handled by _last_bar
    with nogil:
        if nth == 1:
            _free_run(r, m, direction, next_open, macd, ema_kind, is_want, sp, sa, open_, close, ts, day_end, want,
                      costs, parts, nth, 0, rows, t0, tend, start, chunk, &pace)
        else:
            for c in prange(nth, schedule="static", num_threads=nth):
                _free_run(r, m, direction, next_open, macd, ema_kind, is_want, sp, sa, open_, close, ts, day_end,
                          want, costs, parts, nth, c, rows, t0, tend, start, chunk, &pace)
    if box:
        raise box[0]
    if pace.stop:
        return 1
    with nogil:
        for c in range(nth):
            _last_bar(r, parts[c].hot, parts[c].cold, parts[c].n, m, next_open, open_[N - 1], close[N - 1], N - 1,
                      ts[N - 1], costs, &parts[c].days)
    return 0


cdef void* _zeroed_pages(size_t size) noexcept:
    # calloc, but starting on a page; NULL when out of memory
    cdef void* p = NULL
    if posix_memalign(&p, _PAGE, size if size else 1) != 0:
        return NULL
    memset(p, 0, size)
    return p


cdef void* _zeroed_lines(size_t size) noexcept:
    # calloc, but starting on a cache line (see _GROUP); NULL when out of memory
    cdef void* p = NULL
    if posix_memalign(&p, _LINE, size) != 0:
        return NULL
    memset(p, 0, size)
    return p


def _indicator_state(const int32_t[::1] periods):
    # rows: compensated sum, its error term, EMA value, EMA alpha
    state = np.zeros((4, max(periods.shape[0], 1)), dtype=np.float64)
    for j in range(periods.shape[0]):
        state[3, j] = 2.0 / (periods[j] + 1.0)
    return state


def _check(const double[::1] open_, const double[::1] close, const int64_t[::1] ts, const uint8_t[::1] day_end,
           const int32_t[::1] periods, int kind, int direction, int fill, int signal_period):
    cdef Py_ssize_t N = close.shape[0], k
    if N < 1:
        raise ValueError("no bars")
    if open_.shape[0] != N or ts.shape[0] != N or day_end.shape[0] != N:
        raise ValueError("bar arrays differ in length")
    if kind not in (KIND_SMA, KIND_EMA, KIND_MACD, KIND_WANT) or fill not in (FILL_NEXT_OPEN, FILL_CLOSE) \
            or direction not in (DIR_LONG, DIR_SHORT, DIR_BOTH):
        raise ValueError("bad kind, fill or direction")
    if periods.shape[0] > 32767:
        raise ValueError("at most 32767 distinct periods per sweep")
    for k in range(periods.shape[0]):
        if periods[k] < 1:
            raise ValueError("periods must be >= 1")
    if signal_period < 1:
        raise ValueError("signal period must be >= 1")


cdef void _init(Hot* hot, Cold* cold, MacdState* sig, Py_ssize_t m, const int32_t[::1] periods,
                const int32_t[::1] fast_idx, const int32_t[::1] slow_idx, int kind, int direction,
                double initial_cash):
    cdef Py_ssize_t k
    cdef int32_t fi, si
    cdef int8_t ml = 1 if direction in (DIR_LONG, DIR_BOTH) else 0
    cdef int8_t ms = 1 if direction in (DIR_SHORT, DIR_BOTH) else 0
    for k in range(m):
        fi = fast_idx[k]
        si = slow_idx[k]
        if kind == _MACD:
            if periods[fi] > periods[si]:  # TA-Lib swaps them
                fi, si = si, fi
            sig[k].fast = periods[fi]
            sig[k].af = ema_alpha(periods[fi])
        hot[k].cash = initial_cash
        hot[k].peak = initial_cash
        hot[k].ddk = 1.0
        hot[k].fi = fi
        hot[k].si = si
        hot[k].ml = ml
        hot[k].ms = ms
        cold[k].eq_day = initial_cash


cdef dict _results(Hot* hot, Cold* cold, Py_ssize_t m):
    cdef Py_ssize_t k
    final_equity = np.empty(m, dtype=np.float64)
    max_dd = np.empty(m, dtype=np.float64)
    mean = np.empty(m, dtype=np.float64)
    m2 = np.empty(m, dtype=np.float64)
    m3 = np.empty(m, dtype=np.float64)
    m4 = np.empty(m, dtype=np.float64)
    dsq = np.empty(m, dtype=np.float64)
    gp = np.empty(m, dtype=np.float64)
    gl = np.empty(m, dtype=np.float64)
    ndays = np.empty(m, dtype=np.int64)
    nneg = np.empty(m, dtype=np.int64)
    ntrades = np.empty(m, dtype=np.int64)
    nwins = np.empty(m, dtype=np.int64)
    dur = np.empty(m, dtype=np.int64)
    for k in range(m):
        final_equity[k] = hot[k].cash
        max_dd[k] = hot[k].ddk - 1.0
        mean[k] = cold[k].mean
        m2[k] = cold[k].m2
        m3[k] = cold[k].m3
        m4[k] = cold[k].m4
        dsq[k] = cold[k].dsq
        gp[k] = cold[k].gp
        gl[k] = cold[k].gl
        ndays[k] = cold[k].ndays
        nneg[k] = cold[k].nneg
        ntrades[k] = cold[k].ntrades
        nwins[k] = cold[k].nwins
        dur[k] = cold[k].dur
    return {
        "final_equity": final_equity, "max_dd": max_dd, "mean": mean, "m2": m2, "m3": m3, "m4": m4,
        "dsq": dsq, "ndays": ndays, "nneg": nneg, "ntrades": ntrades, "nwins": nwins,
        "gross_profit": gp, "gross_loss": gl, "duration_ns": dur,
    }


def stream_indicators(const double[::1] close, const int32_t[::1] periods, int kind, Py_ssize_t chunk=65536):
    """The indicator matrix [bars, n_periods] exactly as the sweep streams it (for tests)."""
    cdef Py_ssize_t N = close.shape[0], npd = periods.shape[0], t0, t1
    out_arr = np.empty((N, npd), dtype=np.float64)
    state = _indicator_state(periods)
    cdef double[:, ::1] out = out_arr
    cdef double[:, ::1] st = state
    cdef int ema_kind = kind != KIND_SMA
    if N == 0 or npd == 0:
        return out_arr
    t0 = 0
    while t0 < N:
        t1 = min(t0 + chunk, N)
        with nogil:
            _indicators(close, t0, t1, &periods[0], 0, npd, npd, ema_kind, &st[0, 0], &st[1, 0], &st[2, 0],
                        &st[3, 0], &out[t0, 0])
        t0 = t1
    return out_arr


def stream_macd(const double[::1] close, int fast, int slow, int signal_period, Py_ssize_t chunk=65536):
    """(line, signal) of MACD(fast, slow, signal_period) exactly as the sweep's bar loop
    computes them (streamed EMA columns, per-combination fast EMA and signal line);
    both NaN until the signal line is defined, as in TA-Lib (for tests)."""
    cdef Py_ssize_t N = close.shape[0], t
    periods_arr = np.array(sorted({fast, slow}), dtype=np.int32)
    cdef const int32_t[::1] periods = periods_arr
    fi = np.array([list(periods_arr).index(fast)], dtype=np.int32)
    si = np.array([list(periods_arr).index(slow)], dtype=np.int32)
    cols = stream_indicators(close, periods_arr, KIND_MACD, chunk)
    line_arr = np.full(N, np.nan)
    sig_arr = np.full(N, np.nan)
    cdef double[:, ::1] m = cols
    cdef double[::1] line = line_arr, sig = sig_arr
    cdef double l, s, sa = 2.0 / (signal_period + 1.0)
    cdef Hot h
    cdef Cold c
    cdef MacdState g
    memset(&g, 0, sizeof(MacdState))
    _init(&h, &c, &g, 1, periods, fi, si, KIND_MACD, DIR_BOTH, 1.0)
    for t in range(N):
        l = _macd_line(&g, m[t, h.si], &close[0], t)
        s = signal_push(&g.g, l, signal_period, sa)
        if s == s:
            line[t] = l
            sig[t] = s
    return line_arr, sig_arr


def sweep(const double[::1] open_, const double[::1] close, const int64_t[::1] ts,
          const uint8_t[::1] day_end, const int32_t[::1] periods,
          const int32_t[::1] fast_idx, const int32_t[::1] slow_idx,
          int kind, int direction, int fill,
          double commission, double slippage, double initial_cash,
          int signal_period=9, progress=None, Py_ssize_t chunk=65536,
          double progress_interval=0.25, day_block=None, Py_ssize_t blocks=0, int threads=1,
          Py_ssize_t start=0):
    """Run every combination; returns a dict of per-combination NumPy arrays, or
    None when ``progress`` answered False (cancelled).

    ``threads``: OpenMP threads sharing the combinations (at most one per pair chunk of
    ``_GROUP`` combinations); the results do not depend on it, bit for bit.

    With ``day_block`` (int32, the CSCV block of each daily return in order, -1 for
    none; ``domain.overfitting.day_blocks``) and ``blocks`` > 0, the dict also has
    ``block_sum`` and ``block_sq``: float64 [blocks, combinations], the sum and the sum
    of squares of each combination's daily returns in each block.

    ``start``: the first bar of decisions (a walk-forward window); the bars before it
    only warm the indicators up, the account starts flat there."""
    cdef Py_ssize_t m = fast_idx.shape[0], npd = periods.shape[0], k
    _check(open_, close, ts, day_end, periods, kind, direction, fill, signal_period)
    if kind == KIND_WANT:
        raise ValueError("a sweep needs an indicator kind")
    if slow_idx.shape[0] != m:
        raise ValueError("fast_idx and slow_idx differ in length")
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    if threads < 1:
        raise ValueError("threads must be >= 1")
    if not 0 <= start < close.shape[0]:
        raise ValueError("start must be a bar index")
    for k in range(m):
        if not (0 <= fast_idx[k] < npd and 0 <= slow_idx[k] < npd):
            raise ValueError("period index out of range")
    # With threads, each thread takes a contiguous pair chunk; the pairs' costs follow
    # the grid (short periods trade more often), so the chunks are dealt the pairs in
    # blocks of _DEAL in turn (block b to chunk b mod chunks), and the results put back in
    # the given order. Blocks, not single pairs: neighbours in the grid share a column and
    # trade alike, and dealing single pairs cost 8 % even on one thread (S2, measured).
    cdef Py_ssize_t per = _chunk_size(m, threads), nch = (m + per - 1) // per if m else 1
    order = None
    if nch > 1:
        order = np.argsort(np.arange(m) // _DEAL % nch, kind="stable")
        fast_idx = np.ascontiguousarray(np.asarray(fast_idx)[order])
        slow_idx = np.ascontiguousarray(np.asarray(slow_idx)[order])
    cdef Days days
    memset(&days, 0, sizeof(Days))
    cdef const int32_t[::1] blk
    cdef double[:, ::1] bsum_v, bsq_v
    block_sum = block_sq = None
    if day_block is not None and blocks > 0:
        blk_arr = np.ascontiguousarray(day_block, dtype=np.int32)
        if blk_arr.ndim != 1 or np.any((blk_arr < -1) | (blk_arr >= blocks)):
            raise ValueError("day_block holds block numbers from -1 to blocks - 1")
        blk = blk_arr
        block_sum = np.zeros((blocks, max(m, 1)), dtype=np.float64)
        block_sq = np.zeros((blocks, max(m, 1)), dtype=np.float64)
        bsum_v = block_sum
        bsq_v = block_sq
        days.n = blk.shape[0]
        if days.n:
            days.block = &blk[0]
        days.bsum = &bsum_v[0, 0]
        days.bsq = &bsq_v[0, 0]

    cdef Costs costs
    costs.buy = 1.0 + slippage
    costs.sell = 1.0 - slippage
    costs.cin = 1.0 + commission
    costs.cout = 1.0 - commission

    cdef Hot* hot = <Hot*>_zeroed_lines(max(m, 1) * sizeof(Hot))
    cdef Cold* cold = <Cold*>_zeroed_lines(max(m, 1) * sizeof(Cold))
    cdef MacdState* sig = <MacdState*>_zeroed_lines(max(m, 1) * sizeof(MacdState))
    if hot == NULL or cold == NULL or sig == NULL:
        free(hot)
        free(cold)
        free(sig)
        raise MemoryError()
    try:
        _init(hot, cold, sig, m, periods, fast_idx, slow_idx, kind, direction, initial_cash)
        if _run[NoBookP](NULL, hot, cold, sig, m, kind, direction, fill == FILL_NEXT_OPEN, signal_period,
                2.0 / (signal_period + 1.0), open_, close, ts, day_end, periods, None, &costs, &days,
                progress, chunk, progress_interval, threads, start):
            return None
        out = _results(hot, cold, m)
        if block_sum is not None:
            out["block_sum"] = block_sum[:, :m]
            out["block_sq"] = block_sq[:, :m]
        if order is not None:
            for key, dealt in out.items():
                given = np.empty_like(dealt)
                given[..., order] = dealt
                out[key] = given
        return out
    finally:
        free(hot)
        free(cold)
        free(sig)


def backtest(const double[::1] open_, const double[::1] close, const int64_t[::1] ts,
             const uint8_t[::1] day_end, int kind, int direction, int fill,
             double commission, double slippage, double initial_cash,
             periods=None, int fast_col=0, int slow_col=0, int signal_period=9,
             want=None, Py_ssize_t max_trades=-1, Py_ssize_t chunk=65536, Py_ssize_t start=0):
    """ONE combination in trade-recording mode: the sweep's bar loop and fills, plus
    every closed trade and the equity of every bar.

    ``kind`` SMA/EMA/MACD: the combination (``fast_col``, ``slow_col``) over the
    indicator columns ``periods`` (as in ``sweep``). ``KIND_WANT``: ``want``
    (int8 per bar, -1/0/+1) is the position wanted at each bar's close; ``direction``
    keeps only its long (``DIR_LONG``) or short (``DIR_SHORT``) side.

    Returns the per-combination arrays of ``sweep`` (length 1), ``equity`` (float64
    per bar, cash + units x close after the bar's fills; the last after the
    close-out) and ``trades``: a dict of arrays (side, entry_index, exit_index, units,
    entry_price, exit_price, entry_value, exit_value, pnl, commission, end_of_data),
    at most ``max_trades`` + 1 of them when ``max_trades`` >= 0 (``ntrades`` counts
    them all).
    """
    cdef Py_ssize_t N = close.shape[0], npd
    empty = np.zeros(0, dtype=np.int32)
    periods_arr = empty if periods is None or kind == KIND_WANT else np.ascontiguousarray(periods, dtype=np.int32)
    _check(open_, close, ts, day_end, periods_arr, kind, direction, fill, signal_period)
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    if not 0 <= start < N:
        raise ValueError("start must be a bar index")
    want_arr = None
    if kind == KIND_WANT:
        if want is None:
            raise ValueError("KIND_WANT needs the wanted positions")
        want_arr = np.ascontiguousarray(want, dtype=np.int8)
        if want_arr.shape != (N,):
            raise ValueError("want must have one value per bar")
        if np.any((want_arr < -1) | (want_arr > 1)):
            raise ValueError("wanted positions are -1, 0 or +1")
        fast_col, slow_col = 0, 1
    else:
        npd = periods_arr.shape[0]
        if not (0 <= fast_col < npd and 0 <= slow_col < npd):
            raise ValueError("period index out of range")
    fi = np.array([fast_col], dtype=np.int32)
    si = np.array([slow_col], dtype=np.int32)

    cdef Costs costs
    costs.buy = 1.0 + slippage
    costs.sell = 1.0 - slippage
    costs.cin = 1.0 + commission
    costs.cout = 1.0 - commission
    equity = np.full(N, initial_cash, dtype=np.float64)  # before `start`: flat
    cdef double[::1] eq = equity
    cdef Hot hot
    cdef Cold cold
    cdef MacdState sig
    cdef Book book
    cdef Days days
    cdef Deal* d
    cdef Py_ssize_t i
    memset(&hot, 0, sizeof(Hot))
    memset(&cold, 0, sizeof(Cold))
    memset(&sig, 0, sizeof(MacdState))
    memset(&book, 0, sizeof(Book))
    memset(&days, 0, sizeof(Days))
    book.equity = &eq[0]
    book.commission = commission
    # at most one exit per bar, plus the close-out of the last one
    book.limit = max_trades + 1 if 0 <= max_trades <= N else N + 1
    try:
        _init(&hot, &cold, &sig, 1, periods_arr, fi, si, kind, direction, initial_cash)
        _run[BookP](&book, &hot, &cold, &sig, 1, kind, direction, fill == FILL_NEXT_OPEN, signal_period,
             2.0 / (signal_period + 1.0), open_, close, ts, day_end, periods_arr, want_arr, &costs,
             &days, None, chunk, 0.0, 1, start)
        if book.oom:
            raise MemoryError()
        n = book.ndeals
        trades = {
            "side": np.empty(n, dtype=np.int8), "entry_index": np.empty(n, dtype=np.int64),
            "exit_index": np.empty(n, dtype=np.int64), "units": np.empty(n), "entry_price": np.empty(n),
            "exit_price": np.empty(n), "entry_value": np.empty(n), "exit_value": np.empty(n),
            "pnl": np.empty(n), "commission": np.empty(n), "end_of_data": np.empty(n, dtype=np.bool_),
        }
        for i in range(n):
            d = &book.deals[i]
            trades["side"][i] = d.side
            trades["entry_index"][i] = d.entry_i
            trades["exit_index"][i] = d.exit_i
            trades["units"][i] = d.units
            trades["entry_price"][i] = d.entry_price
            trades["exit_price"][i] = d.exit_price
            trades["entry_value"][i] = d.entry_value
            trades["exit_value"][i] = d.exit_value
            trades["pnl"][i] = d.pnl
            trades["commission"][i] = d.commission
            trades["end_of_data"][i] = d.end_of_data
        out = _results(&hot, &cold, 1)
        out["equity"] = equity
        out["trades"] = trades
        return out
    finally:
        free(book.deals)
