"""A deliberately plain, independent reference backtest for one combination.

Pure Python (lists, floats, math.fsum, zoneinfo) — no NumPy, no pandas, nothing
shared with the engine — written straight from the contract in
services/engine/sweep.py, bar by bar. It returns the per-bar marked-to-market
equity and the list of trades, from which the tests compute the metrics (with
empyrical-reloaded for the return statistics) and compare them with the
engine's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

NAN = float("nan")


# --------------------------------------------------------------------- indicators
def sma(xs: list[float], n: int) -> list[float]:
    return [math.fsum(xs[t - n + 1 : t + 1]) / n if t >= n - 1 else NAN for t in range(len(xs))]


def ema(xs: list[float], n: int, start: int = 0) -> list[float]:
    """EMA of xs[start:], seeded at start+n-1 with the mean of its first n values."""
    out = [NAN] * len(xs)
    alpha = 2.0 / (n + 1.0)
    seed_at = start + n - 1
    if seed_at >= len(xs):
        return out
    e = math.fsum(xs[start : seed_at + 1]) / n
    out[seed_at] = e
    for t in range(seed_at + 1, len(xs)):
        e = e + alpha * (xs[t] - e)
        out[t] = e
    return out


def macd(xs: list[float], fast: int, slow: int, signal: int = 9) -> tuple[list[float], list[float]]:
    """TA-Lib's MACD (ta_func/ta_MACD.c), (line, signal):

    - the two periods are swapped if fast > slow;
    - the slow EMA starts at index slow-1, seeded with the mean of xs[0 .. slow-1];
    - the fast EMA starts at the same index, seeded with the mean of the `fast`
      values ending there, xs[slow-fast .. slow-1];
    - line = fast EMA - slow EMA, from index slow-1;
    - signal = EMA(signal) of the line, seeded with the mean of its first `signal`
      values (index slow-1 .. slow+signal-2);
    - TA-Lib outputs nothing before index slow+signal-2: line and signal are NaN there.
    """
    fast, slow = min(fast, slow), max(fast, slow)
    start = slow - 1
    first = slow + signal - 2
    n = len(xs)
    if first >= n:
        return [NAN] * n, [NAN] * n
    ef = ema(xs, fast, start=slow - fast)  # seeded at (slow - fast) + fast - 1 = slow - 1
    es = ema(xs, slow)
    line = [a - b for a, b in zip(ef, es, strict=True)]
    sig = ema(line, signal, start=start)
    return [v if t >= first else NAN for t, v in enumerate(line)], sig


def signal_lines(strategy: str, closes: list[float], fast: int, slow: int) -> tuple[list[float], list[float]]:
    """(a, b): the strategy is long while a > b, short while a < b."""
    if strategy == "SMA":
        return sma(closes, fast), sma(closes, slow)
    if strategy == "EMA":
        return ema(closes, fast), ema(closes, slow)
    if strategy == "MACD":
        return macd(closes, fast, slow)
    raise ValueError(strategy)


# ----------------------------------------------------------------------- backtest
@dataclass
class Trade:
    side: int
    entry_ts: int
    exit_ts: int
    pnl: float


@dataclass
class RefResult:
    equity: list[float]  # marked at every bar's close
    trades: list[Trade]


def target_position(a: float, b: float, direction: str) -> int:
    if math.isnan(a) or math.isnan(b):  # warm-up
        return 0
    if direction == "long":
        return 1 if a > b else 0
    if direction == "short":
        return -1 if a < b else 0
    return 1 if a > b else (-1 if a < b else 0)


def backtest(
    ts: list[int],
    opens: list[float],
    closes: list[float],
    a: list[float],
    b: list[float],
    *,
    direction: str,
    fill: str,
    commission_pct: float,
    slippage_pct: float,
    initial_cash: float,
) -> RefResult:
    n = len(closes)
    comm = commission_pct / 100.0
    slip = slippage_pct / 100.0

    cash = initial_cash
    side = 0
    units = 0.0  # absolute number of units held (long) or owed (short)
    entry_equity = 0.0
    entry_ts = 0
    bust = False
    trades: list[Trade] = []
    equity: list[float] = []

    def go_to(new_side: int, price: float, when: int) -> None:
        nonlocal cash, side, units, entry_equity, entry_ts, bust
        if side == 1:
            sell_price = price * (1.0 - slip)
            cash = cash + units * sell_price * (1.0 - comm)
        elif side == -1:
            buy_price = price * (1.0 + slip)
            cash = cash - units * buy_price * (1.0 + comm)
        if side != 0:
            trades.append(Trade(side, entry_ts, when, cash - entry_equity))
            side, units = 0, 0.0
        if new_side != 0:
            if cash <= 0.0:
                bust = True
                return
            entry_equity, entry_ts = cash, when
            if new_side == 1:
                buy_price = price * (1.0 + slip)
                units = cash / (buy_price * (1.0 + comm))
                cash = 0.0
            else:
                sell_price = price * (1.0 - slip)
                units = cash / (sell_price * (1.0 + comm))
                cash = cash + units * sell_price * (1.0 - comm)
            side = new_side

    wanted_at_prev_close = 0
    for t in range(n):
        last = t == n - 1
        if fill == "next_open" and t > 0 and wanted_at_prev_close != side:
            go_to(wanted_at_prev_close, opens[t], ts[t])
        # the decision at this bar's close, from values up to this bar only
        want = 0 if bust else target_position(a[t], b[t], direction)
        if last:
            if side != 0:
                go_to(0, closes[t], ts[t])
        elif fill == "close" and want != side:
            go_to(want, closes[t], ts[t])
        wanted_at_prev_close = want
        if side == 1:
            equity.append(cash + units * closes[t])
        elif side == -1:
            equity.append(cash - units * closes[t])
        else:
            equity.append(cash)
    return RefResult(equity, trades)


# ------------------------------------------------------------------ return series
def local_days(ts: list[int], tz: str) -> list[int]:
    zone = ZoneInfo(tz)
    out = []
    for t in ts:
        secs, _ns = divmod(t, 1_000_000_000)
        out.append(datetime.fromtimestamp(secs, tz=UTC).astimezone(zone).date().toordinal())
    return out


def daily_returns(equity: list[float], days: list[int], initial_cash: float) -> list[float]:
    closes_of_day = []
    for i, d in enumerate(days):
        if i == len(days) - 1 or days[i + 1] != d:
            closes_of_day.append(equity[i])
    prev = initial_cash
    out = []
    for e in closes_of_day:
        out.append(e / prev - 1.0)
        prev = e
    return out


def bar_returns(equity: list[float], initial_cash: float) -> list[float]:
    prev = initial_cash
    out = []
    for e in equity:
        out.append(e / prev - 1.0)
        prev = e
    return out
