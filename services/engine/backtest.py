"""One backtest, in full: metrics, the trade list and the equity curve.

A single backtest follows exactly the contract of the sweep
(``services/engine/sweep.py``): signals at a bar's close, fills at the next
bar's open (``fill="next_open"``) or at the signal bar's close
(``fill="close"``), all-in entries, commission and slippage on both sides, a
position still open at the last bar closed at its close and counted, an account
that can no longer pay for an entry stops trading. It IS the sweep kernel, run
for one combination in its trade-recording mode (``sweep.run_one``), which also
returns every trade and the equity of every bar:

- crossover strategies (``sma_crossover``, ``ema_crossover``, ``macd_crossover``)
  run the kernel's own indicators and decisions, so a single backtest and a
  sweep agree bit for bit on the same combination;
- ``rsi_reversion`` and ``buy_and_hold`` (which the kernel has no indicator for)
  give it the position wanted at each bar's close (:func:`wanted_positions`);
  fills, costs, equity and metrics are the same kernel code.

Strategies
----------
- ``sma_crossover`` / ``ema_crossover``: long while MA(fast) > MA(slow).
- ``macd_crossover``: long while MACD line > signal line (TA-Lib's MACD).
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

from domain.backtest_spec import DIRECTIONS, FILLS
from domain.market import INTERVAL_MINUTES
from domain.metrics import finite
from domain.sessions import local_wall
from services.engine import indicators
from services.engine._core import ta_kernel
from services.engine.bars import Bars
from services.engine.sweep import check_bars, run_one

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


def rsi_positions(rsi: np.ndarray, oversold: float, overbought: float) -> np.ndarray:
    """rsi_reversion's wanted position at each bar's close from its RSI series: +1 from a
    close below `oversold`, -1 from one above `overbought` (the kernel keeps the side
    `direction` allows), unchanged in between, 0 before the first."""
    with np.errstate(invalid="ignore"):
        low, high = rsi < oversold, rsi > overbought
    events = np.full(rsi.shape[0], np.nan)
    events[low], events[high] = 1.0, -1.0
    # Between the thresholds the position stays what the last crossing made it.
    return pd.Series(events).ffill().fillna(0.0).to_numpy().astype(np.int8)


def wanted_positions(bars: Bars, strategy: str, params: dict[str, Any]) -> np.ndarray:
    """The position (-1, 0, +1) a non-crossover strategy wants at each bar's close, from
    bars <= t only, in both directions (the kernel keeps the side ``direction`` allows:
    long only turns a wanted short into flat, and the other way round)."""
    close = bars.close
    n = close.shape[0]
    if strategy == "rsi_reversion":
        rsi = ta_kernel.rsi(close, int(params["period"]))
        return rsi_positions(rsi, float(params["oversold"]), float(params["overbought"]))
    if strategy == "buy_and_hold":
        return np.ones(n, dtype=np.int8)
    raise ValueError(f"unknown strategy {strategy!r}")


def _trades(bars: Bars, rec: dict[str, np.ndarray]) -> list[Trade]:
    ts = bars.ts
    cols = {name: arr.tolist() for name, arr in rec.items()}
    return [
        Trade(
            side=side,
            entry_index=i,
            exit_index=j,
            entry_ts=int(ts[i]),
            exit_ts=int(ts[j]),
            units=units,
            entry_price=entry_price,
            exit_price=exit_price,
            entry_value=entry_value,
            exit_value=exit_value,
            pnl=pnl,
            commission=commission,
            exit_reason="end_of_data" if end else "signal",
        )
        for side, i, j, units, entry_price, exit_price, entry_value, exit_value, pnl, commission, end in zip(
            cols["side"], cols["entry_index"], cols["exit_index"], cols["units"], cols["entry_price"],
            cols["exit_price"], cols["entry_value"], cols["exit_value"], cols["pnl"], cols["commission"],
            cols["end_of_data"],
        )
    ]


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

    Raises :class:`TooLarge`, before building the trade list, when it makes more than
    ``max_trades`` trades.
    """
    check_bars(bars)
    for name, value in (("commission_pct", commission_pct), ("slippage_pct", slippage_pct)):
        if not (math.isfinite(value) and 0 <= value < 100):
            raise ValueError(f"{name} must be in [0, 100)")
    if not (math.isfinite(initial_cash) and initial_cash > 0):
        raise ValueError("initial_cash must be positive")
    if fill not in FILLS or direction not in DIRECTIONS:
        raise ValueError("bad fill or direction")
    costs = {"fill": fill, "commission_pct": commission_pct, "slippage_pct": slippage_pct, "initial_cash": initial_cash}
    if strategy in _KERNEL_STRATEGY:
        signal = int(params.get("signal_period", indicators.MACD_SIGNAL_PERIOD))
        rec = run_one(bars, _KERNEL_STRATEGY[strategy], (params["fast_period"], params["slow_period"]),
                      direction=direction, signal_period=signal, max_trades=max_trades, **costs)
    else:
        rec = run_one(bars, want=wanted_positions(bars, strategy, params), direction=direction,
                      max_trades=max_trades, **costs)
    count = rec.metrics["total_trades"]
    if max_trades is not None and count > max_trades:
        raise TooLarge(f"the backtest makes {count} trades, more than {max_trades} for a synchronous answer")
    trades = _trades(bars, rec.trades)
    if strategy == "buy_and_hold":
        benchmark = rec.equity
    else:
        benchmark = run_one(bars, want=np.ones(len(bars), dtype=np.int8), max_trades=0, **costs).equity
    metrics = dict(rec.metrics)
    final = float(rec.equity[-1])
    metrics.update(
        final_equity=final,
        pnl=final - initial_cash,
        winning_trades=sum(1 for t in trades if t.pnl > 0.0),
        losing_trades=sum(1 for t in trades if t.pnl < 0.0),
        buy_and_hold_return_pct=finite((float(benchmark[-1]) / initial_cash - 1.0) * 100.0),
    )
    return BacktestResult(bars, metrics, trades, rec.equity, benchmark)


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
    "downsample",
    "local_date",
    "resample",
    "run_backtest",
    "select_dates",
    "wanted_positions",
]
