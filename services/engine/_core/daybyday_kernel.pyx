# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The per-bar position state machine of rule strategies, one trading day at a time.

Inputs are whole-range arrays: prices, each day's [start, end) bar range and its
square-off bar, and per entry node its entry signals and (combined) exit signals,
already evaluated on every bar's close. Days are independent: every day starts
flat and ends flat.

Order of events inside bar t of a day (see ``services.engine.daybyday``):
1. at the open: exits decided at the previous close fill at ``open[t]``; if t is
   the day's square-off bar every open position closes at ``open[t]`` and the day
   ends; entries decided at the previous close fill at ``open[t]``;
2. inside the bar: stop-loss and target against low/high. A bar that opens beyond
   the stop or the target exits at its open (the open came first); only when the
   open lies between them and the bar's range reaches both does the stop win;
3. at the close: exit signals of open positions and entry signals of flat, armed
   nodes are decided, if there is a bar left to fill them on.
A position still open after the day's last bar (no square-off bar) closes at
that bar's close. A node takes one position at a time; after a stop-out it may
enter again up to ``max_re`` times that day; any other exit ends it for the day.
Prices here are raw market prices: slippage and commission are applied by the caller.
"""

import numpy as np

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t

cdef enum:
    _STOP = 1
    _TARGET = 2
    _SIGNAL = 3
    _SQUARE_OFF = 4

REASON_STOP_LOSS = _STOP
REASON_TARGET = _TARGET
REASON_EXIT_SIGNAL = _SIGNAL
REASON_SQUARE_OFF = _SQUARE_OFF


def run_days(
    const double[::1] open_,
    const double[::1] high,
    const double[::1] low,
    const double[::1] close,
    const int64_t[::1] day_start,
    const int64_t[::1] day_end,
    const int64_t[::1] day_sq,
    const uint8_t[:, ::1] entry_sig,
    const uint8_t[:, ::1] exit_sig,
    const int8_t[::1] side,
    const int8_t[::1] sl_kind,
    const double[::1] sl_val,
    const int8_t[::1] tg_kind,
    const double[::1] tg_val,
    const int32_t[::1] max_re,
):
    """Trades as a dict of arrays (node, day, re_entry, signal_bar, entry_bar, entry_price,
    exit_bar, exit_price, reason, exit_signal_bar), in the order they closed."""
    cdef Py_ssize_t K = side.shape[0], D = day_start.shape[0], N = close.shape[0]
    cdef Py_ssize_t cap = 0, k, d
    for k in range(K):
        cap += (1 + max(0, max_re[k])) * D
    t_node_a = np.empty(cap, dtype=np.int32)
    t_day_a = np.empty(cap, dtype=np.int32)
    t_re_a = np.empty(cap, dtype=np.int32)
    t_sig_a = np.empty(cap, dtype=np.int64)
    t_ebar_a = np.empty(cap, dtype=np.int64)
    t_epx_a = np.empty(cap, dtype=np.float64)
    t_xbar_a = np.empty(cap, dtype=np.int64)
    t_xpx_a = np.empty(cap, dtype=np.float64)
    t_reason_a = np.empty(cap, dtype=np.int8)
    t_xsig_a = np.empty(cap, dtype=np.int64)
    cdef int32_t[::1] t_node = t_node_a, t_day = t_day_a, t_re = t_re_a
    cdef int64_t[::1] t_sig = t_sig_a, t_ebar = t_ebar_a, t_xbar = t_xbar_a, t_xsig = t_xsig_a
    cdef double[::1] t_epx = t_epx_a, t_xpx = t_xpx_a
    cdef int8_t[::1] t_reason = t_reason_a

    st_open_a = np.zeros(K, dtype=np.uint8)
    st_done_a = np.zeros(K, dtype=np.uint8)
    st_pend_in_a = np.zeros(K, dtype=np.uint8)
    st_pend_out_a = np.zeros(K, dtype=np.uint8)
    st_reused_a = np.zeros(K, dtype=np.int32)
    st_cur_re_a = np.zeros(K, dtype=np.int32)
    st_sig_a = np.zeros(K, dtype=np.int64)
    st_ebar_a = np.zeros(K, dtype=np.int64)
    st_epx_a = np.zeros(K, dtype=np.float64)
    st_stop_a = np.zeros(K, dtype=np.float64)
    st_tgt_a = np.zeros(K, dtype=np.float64)
    cdef uint8_t[::1] st_open = st_open_a, st_done = st_done_a, st_pend_in = st_pend_in_a, st_pend_out = st_pend_out_a
    cdef int32_t[::1] st_reused = st_reused_a, st_cur_re = st_cur_re_a
    cdef int64_t[::1] st_sig = st_sig_a, st_ebar = st_ebar_a
    cdef double[::1] st_epx = st_epx_a, st_stop = st_stop_a, st_tgt = st_tgt_a

    cdef Py_ssize_t n = 0, t, s, e, sq
    cdef bint squared, hit_sl, hit_tg
    cdef double px, o
    cdef int reason

    if entry_sig.shape[0] != K or exit_sig.shape[0] != K:
        raise ValueError("one row of entry and exit signals per node")
    if K and (entry_sig.shape[1] != N or exit_sig.shape[1] != N):
        raise ValueError("signals must cover every bar")
    for d in range(D):
        if not (0 <= day_start[d] <= day_sq[d] <= day_end[d] <= N):
            raise ValueError("day ranges must satisfy 0 <= start <= square_off <= end <= bars")

    with nogil:
        for d in range(D):
            s = day_start[d]
            e = day_end[d]
            sq = day_sq[d]
            for k in range(K):
                st_open[k] = 0
                st_done[k] = 0
                st_pend_in[k] = 0
                st_pend_out[k] = 0
                st_reused[k] = 0
            squared = False
            for t in range(s, e):
                o = open_[t]
                # 1. the open: decided exits, square-off, decided entries
                for k in range(K):
                    if st_pend_out[k] and st_open[k]:
                        t_node[n] = <int32_t>k; t_day[n] = <int32_t>d; t_re[n] = st_cur_re[k]
                        t_sig[n] = st_sig[k]; t_ebar[n] = st_ebar[k]; t_epx[n] = st_epx[k]
                        t_xbar[n] = t; t_xpx[n] = o; t_reason[n] = _SIGNAL; t_xsig[n] = t - 1
                        n += 1
                        st_open[k] = 0
                        st_done[k] = 1
                    st_pend_out[k] = 0
                if t == sq:
                    for k in range(K):
                        if st_open[k]:
                            t_node[n] = <int32_t>k; t_day[n] = <int32_t>d; t_re[n] = st_cur_re[k]
                            t_sig[n] = st_sig[k]; t_ebar[n] = st_ebar[k]; t_epx[n] = st_epx[k]
                            t_xbar[n] = t; t_xpx[n] = o; t_reason[n] = _SQUARE_OFF; t_xsig[n] = t
                            n += 1
                            st_open[k] = 0
                    squared = True
                    break
                for k in range(K):
                    if st_pend_in[k]:
                        st_pend_in[k] = 0
                        st_open[k] = 1
                        st_ebar[k] = t
                        st_epx[k] = o
                        st_cur_re[k] = st_reused[k]
                        if side[k] > 0:
                            st_stop[k] = o * (1.0 - sl_val[k] / 100.0) if sl_kind[k] == 1 else o - sl_val[k]
                            st_tgt[k] = o * (1.0 + tg_val[k] / 100.0) if tg_kind[k] == 1 else o + tg_val[k]
                        else:
                            st_stop[k] = o * (1.0 + sl_val[k] / 100.0) if sl_kind[k] == 1 else o + sl_val[k]
                            st_tgt[k] = o * (1.0 - tg_val[k] / 100.0) if tg_kind[k] == 1 else o - tg_val[k]
                # 2. inside the bar: stop-loss first, then target
                for k in range(K):
                    if not st_open[k]:
                        continue
                    if side[k] > 0:
                        hit_sl = sl_kind[k] != 0 and low[t] <= st_stop[k]
                        hit_tg = tg_kind[k] != 0 and high[t] >= st_tgt[k]
                    else:
                        hit_sl = sl_kind[k] != 0 and high[t] >= st_stop[k]
                        hit_tg = tg_kind[k] != 0 and low[t] <= st_tgt[k]
                    if not (hit_sl or hit_tg):
                        continue
                    # The open came first: a bar that opens beyond the target exits there,
                    # even if its range then falls through the stop.
                    if hit_tg and not (o <= st_stop[k] if side[k] > 0 else o >= st_stop[k]) and (
                            o >= st_tgt[k] if side[k] > 0 else o <= st_tgt[k]):
                        hit_sl = 0
                    if hit_sl:
                        reason = _STOP
                        if side[k] > 0:
                            px = o if o < st_stop[k] else st_stop[k]
                        else:
                            px = o if o > st_stop[k] else st_stop[k]
                    else:
                        reason = _TARGET
                        if side[k] > 0:
                            px = o if o > st_tgt[k] else st_tgt[k]
                        else:
                            px = o if o < st_tgt[k] else st_tgt[k]
                    t_node[n] = <int32_t>k; t_day[n] = <int32_t>d; t_re[n] = st_cur_re[k]
                    t_sig[n] = st_sig[k]; t_ebar[n] = st_ebar[k]; t_epx[n] = st_epx[k]
                    t_xbar[n] = t; t_xpx[n] = px; t_reason[n] = <int8_t>reason; t_xsig[n] = t
                    n += 1
                    st_open[k] = 0
                    if reason == _STOP and st_reused[k] < max_re[k]:
                        st_reused[k] += 1
                    else:
                        st_done[k] = 1
                # 3. the close: decisions for the next bar's open
                for k in range(K):
                    if st_open[k]:
                        if exit_sig[k, t] and t + 1 < e and t + 1 <= sq:
                            st_pend_out[k] = 1
                    elif not st_done[k]:
                        if entry_sig[k, t] and t + 1 < sq and t + 1 < e:
                            st_pend_in[k] = 1
                            st_sig[k] = t
            if not squared and e > s:
                for k in range(K):
                    if st_open[k]:
                        t_node[n] = <int32_t>k; t_day[n] = <int32_t>d; t_re[n] = st_cur_re[k]
                        t_sig[n] = st_sig[k]; t_ebar[n] = st_ebar[k]; t_epx[n] = st_epx[k]
                        t_xbar[n] = e - 1; t_xpx[n] = close[e - 1]; t_reason[n] = _SQUARE_OFF; t_xsig[n] = e - 1
                        n += 1
                        st_open[k] = 0
    return {
        "node": t_node_a[:n], "day": t_day_a[:n], "re_entry": t_re_a[:n], "signal_bar": t_sig_a[:n],
        "entry_bar": t_ebar_a[:n], "entry_price": t_epx_a[:n], "exit_bar": t_xbar_a[:n],
        "exit_price": t_xpx_a[:n], "reason": t_reason_a[:n], "exit_signal_bar": t_xsig_a[:n],
    }
