"""One backtest, in full: metrics, the trade list and the equity curve.

A single backtest follows exactly the contract of the sweep
(``services/engine/sweep.py``): signals at a bar's close, fills at the next
bar's open (``fill="next_open"``) or at the signal bar's close
(``fill="close"``), all-in entries, commission and slippage on both sides, a
position still open at the last bar closed at its close and counted, an account
that can no longer pay for an entry stops trading. The metrics have the sweep's
definitions:

- crossover strategies (``sma_crossover``, ``ema_crossover``, ``macd_crossover``)
  take their metrics from the fused sweep kernel run for their one combination,
  so a single backtest and a sweep agree bit for bit on the same combination;
- ``rsi_reversion`` and ``buy_and_hold`` (which the kernel does not know) take
  them from :func:`curve_metrics`, the same definitions computed from the
  per-bar equity curve (tests check it reproduces the kernel on crossovers).

The trade list and the per-bar equity curve come from :func:`simulate`, a
per-fill pass: the positions a strategy wants are computed vectorised from its
indicators, each change of position is filled with the kernel's arithmetic
(same operations in the same order, so the same doubles), and the equity of
every bar is then cash + units x close of the state after that bar's fills.

Strategies
----------
- ``sma_crossover`` / ``ema_crossover``: long while MA(fast) > MA(slow).
- ``macd_crossover``: long while MACD line > signal line.
- ``rsi_reversion``: long once RSI(period) < oversold, flat once RSI > overbought,
  unchanged in between (short: short above overbought, covered below oversold;
  both: flips between the two).
- ``buy_and_hold``: long from the first fill to the end.

``direction`` ``short`` and ``both`` mirror the crossovers as in the sweep. The
buy-and-hold curve shown beside a strategy's curve is ``buy_and_hold`` run with
the same cash, fill and costs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from domain.market import INTERVAL_MINUTES
from services.engine import indicators
from services.engine._core import ta_kernel
from domain.market import NS_PER_DAY
from services.engine.bars import Bars
from domain.sessions import local_wall
from services.engine.sweep import check_bars, combo_metrics, finite, run_sweep

NS_PER_MINUTE = 60 * 1_000_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_KERNEL_STRATEGY = {"sma_crossover": "SMA", "ema_crossover": "EMA", "macd_crossover": "MACD"}
# The equity curve returned with a backtest: at most this many points.
MAX_EQUITY_POINTS = 2000


class TooLarge(Exception):
    """The backtest is too large to be answered synchronously."""


@dataclass(frozen=True)
class Trade:
    """One closed trade (prices are fill prices, slippage included)."""

    side: int
    entry_index: int
    exit_index: int
    entry_ts: int
    exit_ts: int
    units: float
    entry_price: float
    exit_price: float
    entry_value: float
    exit_value: float
    pnl: float
    commission: float
    exit_reason: str

    @property
    def return_pct(self) -> float:
        return self.pnl / self.entry_value * 100.0


@dataclass(frozen=True)
class BacktestResult:
    """Everything a backtest produces."""

    bars: Bars
    metrics: dict[str, Any]
    trades: list[Trade]
    # Marked-to-market equity at every bar (the last one after the close-out).
    equity: np.ndarray
    # Buy-and-hold equity at every bar, same cash, fill and costs.
    benchmark: np.ndarray


# ------------------------------------------------------------------ bar selection


def day_number(d: date) -> int:
    """A date as days since 1970-01-01 (the unit of ``Bars.day_index``)."""
    return d.toordinal() - _EPOCH_ORDINAL


def local_date(bars: Bars, i: int) -> date:
    """The local calendar day of bar ``i``."""
    return date.fromordinal(int(bars.day_index()[i]) + _EPOCH_ORDINAL)


def _take(bars: Bars, index: np.ndarray | slice) -> Bars:
    return Bars(
        ts=bars.ts[index],
        open=bars.open[index],
        high=bars.high[index],
        low=bars.low[index],
        close=bars.close[index],
        volume=bars.volume[index],
        timezone=bars.timezone,
        calendar=bars.calendar,
    )


def select_dates(bars: Bars, start: date | None, end: date | None) -> Bars:
    """The bars whose local day (in the dataset's timezone) is in [start, end]."""
    if start is None and end is None:
        return bars
    day = bars.day_index()
    lo = day_number(start) if start is not None else np.iinfo(np.int64).min
    hi = day_number(end) if end is not None else np.iinfo(np.int64).max
    # A mask, not a slice: where clocks fall back across midnight (Chile) local days can step back.
    return _take(bars, (day >= lo) & (day <= hi))


def resample(bars: Bars, interval: str) -> Bars:
    """Bars of a coarser ``interval``, bucketed on the local wall clock.

    A bucket is a run of consecutive bars with the same local day (``1d``) or the
    same floor(local wall-clock time / interval), or the same local week from Monday (``1w``): open of the first bar, max of
    highs, min of lows, close of the last, sum of volumes; its time is the first
    bar's (the moment its open price was traded).
    """
    if len(bars) == 0:
        return bars
    minutes = INTERVAL_MINUTES[interval]
    if minutes >= 10_080:
        keys = np.floor_divide(bars.day_index() + 3, 7)  # weeks from Monday (1970-01-01 was a Thursday)
    elif minutes >= 1440:
        keys = bars.day_index()
    else:
        keys = np.floor_divide(local_wall(bars.ts, bars.timezone), minutes * NS_PER_MINUTE)
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    if starts.shape[0] == len(bars):
        return bars
    ends = np.concatenate((starts[1:], [len(bars)])) - 1
    return Bars(
        ts=bars.ts[starts],
        open=bars.open[starts],
        high=np.maximum.reduceat(bars.high, starts),
        low=np.minimum.reduceat(bars.low, starts),
        close=bars.close[ends],
        volume=np.add.reduceat(bars.volume, starts),
        timezone=bars.timezone,
        calendar=bars.calendar,
    )


# ------------------------------------------------------------------ strategies


def _direction_of(long_cond: np.ndarray, short_cond: np.ndarray, direction: str) -> np.ndarray:
    if direction == "long":
        out = long_cond.astype(np.int8)
    elif direction == "short":
        out = -short_cond.astype(np.int8)
    else:
        out = long_cond.astype(np.int8) - short_cond.astype(np.int8)
    return out


def target_positions(bars: Bars, strategy: str, params: dict[str, Any], direction: str) -> np.ndarray:
    """The position (-1, 0, +1) the strategy wants at each bar's close, from bars <= t only."""
    close = bars.close
    n = close.shape[0]
    with np.errstate(invalid="ignore"):
        if strategy in ("sma_crossover", "ema_crossover"):
            ma = indicators.sma if strategy == "sma_crossover" else indicators.ema
            fast, slow = ma(close, params["fast_period"]), ma(close, params["slow_period"])
            return _direction_of(fast > slow, fast < slow, direction)
        if strategy == "macd_crossover":
            line, signal, _ = indicators.macd(close, params["fast_period"], params["slow_period"], params["signal_period"])
            return _direction_of(line > signal, line < signal, direction)
        if strategy == "rsi_reversion":
            rsi = ta_kernel.rsi(close, int(params["period"]))
            low, high = rsi < params["oversold"], rsi > params["overbought"]
            events = np.full(n, np.nan)
            if direction == "long":
                events[high], events[low] = 0.0, 1.0
            elif direction == "short":
                events[low], events[high] = 0.0, -1.0
            else:
                events[low], events[high] = 1.0, -1.0
            # Between the thresholds the position stays what the last crossing made it.
            return pd.Series(events).ffill().fillna(0.0).to_numpy().astype(np.int8)
        if strategy == "buy_and_hold":
            return np.ones(n, dtype=np.int8)
    raise ValueError(f"unknown strategy {strategy!r}")


# ------------------------------------------------------------------ simulation


def _fills(want: np.ndarray, fill: str) -> tuple[np.ndarray, np.ndarray]:
    """(bar index, target position) of every change of position before the last bar."""
    n = want.shape[0]
    if fill == "next_open":
        held = np.zeros(n, dtype=np.int8)
        held[1:] = want[:-1]  # decided at t-1's close, filled at t's open (t = n-1 included)
        at = np.flatnonzero(held[1:] != held[:-1]) + 1
        return at, held[at]
    decided = want[: n - 1]  # the last bar's signal is never acted upon
    prev = np.concatenate(([0], decided[:-1])).astype(np.int8)
    at = np.flatnonzero(decided != prev)
    return at, decided[at]


def trade_count(want: np.ndarray, fill: str) -> int:
    """The number of trades following ``want`` makes (fewer only if the account goes bust)."""
    if want.shape[0] == 0:
        return 0
    at, targets = _fills(want, fill)
    if at.shape[0] == 0:
        return 0
    exits = int(np.count_nonzero(targets[:-1])) + (1 if targets[-1] != 0 else 0)
    return exits


def simulate(
    bars: Bars,
    want: np.ndarray,
    *,
    fill: str,
    commission: float,
    slippage: float,
    cash0: float,
) -> tuple[np.ndarray, list[Trade]]:
    """Per-bar equity and the trades of following ``want`` (fractions, not percents).

    The arithmetic of every fill is the sweep kernel's ``_fill``, operation for
    operation, so equity and trades are the doubles the kernel computes.
    """
    n = len(bars)
    buy, sell = 1.0 + slippage, 1.0 - slippage
    cin, cout = 1.0 + commission, 1.0 - commission
    at, targets = _fills(want, fill)
    prices = bars.open if fill == "next_open" else bars.close
    ts = bars.ts

    cash, units, pos = cash0, 0.0, 0
    entry_eq, entry_i, entry_pf, entry_comm = 0.0, 0, 0.0, 0.0
    trades: list[Trade] = []
    state_at: list[int] = []
    state_cash: list[float] = [cash0]
    state_units: list[float] = [0.0]

    def move(w: int, price: float, i: int, reason: str) -> bool:
        """Go from pos to w at `price` on bar i; False once the account is bust."""
        nonlocal cash, units, pos, entry_eq, entry_i, entry_pf, entry_comm
        if pos != 0:
            if pos > 0:
                pf = price * sell
                cash = cash + units * pf * cout
            else:
                pf = price * buy
                cash = cash + units * pf * cin
            size = abs(units)
            trades.append(
                Trade(
                    side=pos,
                    entry_index=entry_i,
                    exit_index=i,
                    entry_ts=int(ts[entry_i]),
                    exit_ts=int(ts[i]),
                    units=size,
                    entry_price=entry_pf,
                    exit_price=pf,
                    entry_value=entry_eq,
                    exit_value=cash,
                    pnl=cash - entry_eq,
                    commission=entry_comm + size * pf * commission,
                    exit_reason=reason,
                )
            )
            units, pos = 0.0, 0
        alive = True
        if w != 0:
            e = cash
            if e > 0.0:
                entry_eq, entry_i = e, i
                if w > 0:
                    pf = price * buy
                    units = e / (pf * cin)
                    cash = 0.0
                    pos = 1
                    entry_comm = units * pf * commission
                else:
                    pf = price * sell
                    u = e / (pf * cin)
                    units = -u
                    cash = e + u * pf * cout
                    pos = -1
                    entry_comm = u * pf * commission
                entry_pf = pf
            else:
                alive = False  # nothing left to invest: flat from here on, as in the kernel
        state_at.append(i)
        state_cash.append(cash)
        state_units.append(units)
        return alive

    for i, w in zip(at.tolist(), targets.tolist()):
        if not move(int(w), float(prices[i]), i, "signal"):
            break
    if pos != 0:
        move(0, float(bars.close[n - 1]), n - 1, "end_of_data")

    # The equity of bar t is marked with the state after t's fills.
    which = np.searchsorted(np.asarray(state_at, dtype=np.int64), np.arange(n), side="right")
    equity = np.asarray(state_cash)[which] + np.asarray(state_units)[which] * bars.close
    return equity, trades


# ------------------------------------------------------------------ metrics


def curve_metrics(bars: Bars, equity: np.ndarray, trades: list[Trade], cash0: float) -> dict[str, Any]:
    """The sweep's metrics (see ``services/engine/sweep.py``) from a per-bar equity
    curve and its trades, accumulated in the kernel's order."""
    ndays, mean, m2, dsq, prev = 0, 0.0, 0.0, 0.0, cash0
    for e in equity[bars.day_ends()].tolist():
        r = e / prev - 1.0
        prev = e
        ndays += 1
        d = r - mean
        mean += d / ndays
        m2 += d * (r - mean)
        if r < 0.0:
            dsq += r * r
    peak = np.maximum.accumulate(np.maximum(equity, cash0))
    worst = float(np.min(equity / peak)) if equity.shape[0] else 1.0
    ntrades = len(trades)
    nwins, gp, gl, dur = 0, 0.0, 0.0, 0
    for t in trades:
        if t.pnl > 0.0:
            nwins += 1
            gp += t.pnl
        elif t.pnl < 0.0:
            gl += t.pnl
        dur += t.exit_ts - t.entry_ts
    return combo_metrics(
        periods_per_year=float(bars.periods_per_year),
        span_days=float(bars.ts[-1] - bars.ts[0]) / NS_PER_DAY,
        growth=float(equity[-1]) / cash0,
        ndays=ndays,
        mean=mean,
        m2=m2,
        dsq=dsq,
        max_drawdown_pct=finite((min(worst, 1.0) - 1.0) * 100.0),
        ntrades=ntrades,
        nwins=nwins,
        gross_profit=gp,
        gross_loss=gl,
        duration_ns=dur,
    )


def _kernel_metrics(bars: Bars, strategy: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
    signal = int(params.get("signal_period", indicators.MACD_SIGNAL_PERIOD))
    row = run_sweep(bars, _KERNEL_STRATEGY[strategy], [(params["fast_period"], params["slow_period"])],
                    signal_period=signal, **kw)[0]
    row.pop("fast_period")
    row.pop("slow_period")
    return row


def run_backtest(
    bars: Bars,
    strategy: str,
    params: dict[str, Any],
    *,
    direction: str = "long",
    fill: str = "next_open",
    commission_pct: float = 0.0,
    slippage_pct: float = 0.0,
    initial_cash: float = 10_000.0,
    max_trades: int | None = None,
) -> BacktestResult:
    """Backtest one built-in strategy (parameters already normalized, see domain.backtest_spec).

    Raises :class:`TooLarge` before simulating when it would make more than ``max_trades`` trades.
    """
    check_bars(bars)
    for name, value in (("commission_pct", commission_pct), ("slippage_pct", slippage_pct)):
        if not (math.isfinite(value) and 0 <= value < 100):
            raise ValueError(f"{name} must be in [0, 100)")
    if not (math.isfinite(initial_cash) and initial_cash > 0):
        raise ValueError("initial_cash must be positive")
    if fill not in ("next_open", "close") or direction not in ("long", "short", "both"):
        raise ValueError("bad fill or direction")
    commission, slippage = commission_pct / 100.0, slippage_pct / 100.0
    want = target_positions(bars, strategy, params, direction)
    if max_trades is not None:
        count = trade_count(want, fill)
        if count > max_trades:
            raise TooLarge(f"the backtest makes {count} trades, more than {max_trades} for a synchronous answer")
    equity, trades = simulate(bars, want, fill=fill, commission=commission, slippage=slippage, cash0=initial_cash)
    if strategy == "buy_and_hold":
        benchmark = equity
    else:
        benchmark, _ = simulate(
            bars, np.ones(len(bars), dtype=np.int8), fill=fill, commission=commission, slippage=slippage,
            cash0=initial_cash,
        )
    if strategy in _KERNEL_STRATEGY:
        metrics = _kernel_metrics(
            bars, strategy, params, direction=direction, fill=fill, commission_pct=commission_pct,
            slippage_pct=slippage_pct, initial_cash=initial_cash,
        )
    else:
        metrics = curve_metrics(bars, equity, trades, initial_cash)
    final = float(equity[-1])
    metrics.update(
        final_equity=final,
        pnl=final - initial_cash,
        winning_trades=sum(1 for t in trades if t.pnl > 0.0),
        losing_trades=sum(1 for t in trades if t.pnl < 0.0),
        buy_and_hold_return_pct=finite((float(benchmark[-1]) / initial_cash - 1.0) * 100.0),
    )
    return BacktestResult(bars, metrics, trades, equity, benchmark)


def downsample(equity: np.ndarray, max_points: int = MAX_EQUITY_POINTS) -> np.ndarray:
    """Indices of the bars to keep for a chart of at most ``max_points`` points.

    All of them when there are few enough; otherwise the lowest and highest point
    of each of (max_points - 4) / 2 equal buckets, the first and last bar, and the
    peak and trough of the deepest drawdown, so the chart shows every extreme.
    """
    n = equity.shape[0]
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, (max_points - 4) // 2)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep = [0, n - 1]
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
        if b > a:
            seg = equity[a:b]
            keep.append(a + int(np.argmin(seg)))
            keep.append(a + int(np.argmax(seg)))
    peak = np.maximum.accumulate(equity)
    trough = int(np.argmin(equity / peak))
    keep.extend([trough, int(np.argmax(equity[: trough + 1]))])
    return np.unique(np.asarray(keep, dtype=np.int64))


__all__ = [
    "BacktestResult",
    "TooLarge",
    "Trade",
    "curve_metrics",
    "downsample",
    "local_date",
    "resample",
    "run_backtest",
    "select_dates",
    "simulate",
    "target_positions",
]
