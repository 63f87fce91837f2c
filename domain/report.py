"""The run report (the tearsheet): what `GET /runs/{id}/report` computes from a saved run.

Every figure is computed from what a run keeps: its day-end equity (the equity at the last
bar of each local day, the series the daily returns of ``domain.metrics`` are taken from),
its stored equity curve (every bar, or at most 2,000 points keeping each stretch's lowest
and highest bar and the deepest drawdown), and its trades. P is the dataset's periods per
year (``domain.market.PERIODS_PER_YEAR``: 252 sessions, 365 continuous).

Definitions
-----------
- **daily returns**: r_d = E_d / E_{d-1} - 1 over the day-end equity, E_0 = the initial
  cash (as ``domain.metrics``: one return per day with bars; 0 after the equity reached 0).
- **monthly_returns**: a month's return is its last day-end equity over the previous
  month's last day-end equity (the first month's: over the initial cash), minus 1, in
  percent. Months without bars are left out (the next month is over the last one with
  bars). ``yearly_returns`` is the same by calendar year. Months and years are local
  (the dataset's timezone, or a day-by-day strategy's session timezone).
- **daily_pnl**: when the run's days span less than two calendar months (the last day is
  before the first day plus two months), each day's P&L (E_d - E_{d-1}) and return; the
  report shows these instead of the monthly heatmap.
- **drawdowns**: on the stored equity curve, the running peak starting at the initial
  cash. A drawdown is a stretch of points below the running peak: ``start`` is the time
  of the peak it falls from (the curve's first point when the peak is the initial cash),
  ``trough`` the time of its lowest point, ``recovery`` the first point back at or above
  the peak (null: not recovered by the end), ``depth_pct`` = (trough / peak - 1) x 100 <= 0,
  ``length_days`` = (recovery, or the last point when not recovered, - start) in days of
  24 h. The 5 deepest, deepest first. The deepest equals ``max_drawdown_pct`` (the stored
  curve keeps its peak and trough); on a downsampled curve a recovery time is the first
  kept point at or above the peak (at most one stretch, 1/998 of the run, late), and
  drawdowns shorter than a stretch are not seen.
- **rolling_sharpe**: over a window of w daily returns (w days with bars: by default half
  a year, P / 2: 126 on session calendars, 182 on continuous ones; half the run's days for
  a run shorter than P days), the Sharpe ratio of
  ``domain.metrics`` on those returns: mean / std (ddof = 1) x sqrt(P), dated at the
  window's last day; null when the window's returns do not vary.
- **exposure_pct**: the share of the run's bars with a position open at their close, in
  percent: a bar is in the market when some trade has entry fill bar <= the bar < exit fill
  bar (by bar time; overlapping positions count once). ``long_pct`` and ``short_pct`` count
  the bars with a long, a short position open. Counted by the engine on a backtest's bars,
  and on a day-by-day run's session bars of its trading days when the run is saved.
- **trade_returns_pct**: each trade's return in percent, oldest first (a backtest's: pnl
  over the equity committed at the entry; a day-by-day position's: pnl over entry price x
  quantity).
- **daily_returns**: the daily returns' distribution in percent: a histogram of
  40 equal bins from the lowest to the highest, with count, mean, standard
  deviation (ddof = 1), lowest, highest and the share of positive days.

Differences from quantstats' tearsheet: a drawdown starts at its peak (quantstats: the first
day below it) and its length is in days of 24 h from the peak (quantstats: whole days from the
first day below it, both ends counted); drawdowns are taken on the equity curve of every bar
(quantstats: on daily returns); exposure is the share of bars holding a position (quantstats:
the share of days with a non-zero return, rounded up to a whole percent). Monthly returns and
the rolling Sharpe ratio are the same (months compound the daily returns; quantstats' rolling
Sharpe is the same formula, 126 periods by default).

Charts get at most 2,000 points a series (the rolling Sharpe ratio, the equity curve); longer series keep, in equal
stretches, each stretch's lowest and highest value (and the first and last point), so
every extreme stays visible. Undefined values are ``None``, never NaN or infinity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from domain.market import NS_PER_DAY
from domain.metrics import finite

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MAX_CHART_POINTS: Final = 2000
WORST_DRAWDOWNS: Final = 5
HISTOGRAM_BINS: Final = 40
MIN_WINDOW: Final = 2
MAX_WINDOW: Final = 2520
# Trades drawn on the price chart: beyond this many, an even selection of them.
MAX_TRADE_MARKERS: Final = 5000


def default_window(periods_per_year: float, days: int | None = None) -> int:
    """Half a year of days with bars: 126 on session calendars (P = 252), 182 on continuous
    ones; for a run of fewer than P days, half its days (so a short run still has a curve)."""
    half_year = max(MIN_WINDOW, int(periods_per_year // 2))
    if days is None or days >= periods_per_year:
        return half_year
    return min(half_year, max(MIN_WINDOW, days // 2))


def iso(ts_ns: int) -> str:
    """ns since the epoch (UTC) -> 2024-01-02T09:30:00Z."""
    seconds = int(ts_ns) // 1_000_000_000
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pct(x: float) -> float | None:
    return finite(x * 100.0)


# ------------------------------------------------------------------ day-end series


@dataclass(frozen=True)
class DayEnds:
    """Equity at the end of each local day with bars, oldest first."""

    dates: list[date]
    ts: IntArray
    equity: FloatArray

    @classmethod
    def of(cls, dates: Sequence[str | date], ts: Sequence[int], equity: Sequence[float]) -> DayEnds:
        days = [d if isinstance(d, date) else date.fromisoformat(d) for d in dates]
        return cls(days, np.asarray(ts, dtype=np.int64), np.asarray(equity, dtype=np.float64))

    def __len__(self) -> int:
        return len(self.dates)


def daily_returns(equity: FloatArray, cash: float) -> FloatArray:
    """r_d = E_d / E_{d-1} - 1 with E_0 = cash; 0 where the previous equity is not positive."""
    before = np.concatenate(([float(cash)], equity[:-1])) if equity.size else np.empty(0)
    out = np.zeros(equity.shape[0], dtype=np.float64)
    ok = before > 0.0
    out[ok] = equity[ok] / before[ok] - 1.0
    return out


def _period_returns(
    keys: Sequence[tuple[int, ...]], equity: FloatArray, cash: float
) -> list[tuple[tuple[int, ...], float | None]]:
    """(key, return %) of each run of equal keys: its last equity over the previous run's last (the first: cash)."""
    out: list[tuple[tuple[int, ...], float | None]] = []
    prev = float(cash)
    n = len(keys)
    for i in range(n):
        if i + 1 < n and keys[i + 1] == keys[i]:
            continue
        last = float(equity[i])
        out.append((keys[i], _pct(last / prev - 1.0) if prev > 0.0 else None))
        prev = last
    return out


def monthly_returns(days: DayEnds, cash: float) -> list[dict[str, Any]]:
    """`[{year, month, return_pct}]`, oldest first (the module docstring)."""
    keys = [(d.year, d.month) for d in days.dates]
    return [{"year": k[0], "month": k[1], "return_pct": r} for k, r in _period_returns(keys, days.equity, cash)]


def yearly_returns(days: DayEnds, cash: float) -> list[dict[str, Any]]:
    """`[{year, return_pct}]`, oldest first."""
    keys = [(d.year,) for d in days.dates]
    return [{"year": k[0], "return_pct": r} for k, r in _period_returns(keys, days.equity, cash)]


def _plus_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    # Clamp to the month's last day (Jan 31 + 1 month = Feb 29 or 28).
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, min(d.day, day))
        except ValueError:
            continue
    return date(year, month, 28)


def shorter_than_two_months(days: DayEnds) -> bool:
    """Whether the run's days span less than two calendar months (daily P&L instead of monthly returns)."""
    return bool(days.dates) and days.dates[-1] < _plus_months(days.dates[0], 2)


def daily_pnl(days: DayEnds, cash: float) -> list[dict[str, Any]]:
    """`[{date, pnl, return_pct}]`: each day's equity change and return."""
    before = np.concatenate(([float(cash)], days.equity[:-1])) if len(days) else np.empty(0)
    returns = daily_returns(days.equity, cash)
    return [
        {"date": d.isoformat(), "pnl": finite(float(e - b)), "return_pct": _pct(float(r))}
        for d, e, b, r in zip(days.dates, days.equity.tolist(), before.tolist(), returns.tolist())
    ]


# ------------------------------------------------------------------ drawdowns


def running_peak(equity: FloatArray, cash: float) -> FloatArray:
    """The running maximum of the equity, starting at the initial cash."""
    if not equity.size:
        return np.empty(0)
    peak: FloatArray = np.maximum.accumulate(np.maximum(equity, float(cash)))
    return peak


def underwater_pct(equity: FloatArray, cash: float) -> FloatArray:
    """(E_t / peak_t - 1) x 100 at every point (<= 0); NaN where the peak is not positive."""
    peak = running_peak(equity, cash)
    out = np.full(equity.shape[0], np.nan)
    ok = peak > 0.0
    out[ok] = (equity[ok] / peak[ok] - 1.0) * 100.0
    return out


def drawdowns(ts: IntArray, equity: FloatArray, cash: float, top: int = WORST_DRAWDOWNS) -> list[dict[str, Any]]:
    """The `top` deepest drawdowns of the curve, deepest first (ties: the earlier first)."""
    n = equity.shape[0]
    if n == 0:
        return []
    peak = running_peak(equity, cash)
    under = equity < peak
    if not under.any():
        return []
    edges = np.diff(np.concatenate(([0], under.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1  # inclusive
    found = []
    for a, b in zip(starts.tolist(), ends.tolist()):
        level = float(peak[a])
        if level <= 0.0:
            continue
        trough = a + int(np.argmin(equity[a : b + 1]))
        start_ts = int(ts[a - 1]) if a > 0 else int(ts[0])
        recovered = b + 1 < n
        end_ts = int(ts[b + 1]) if recovered else int(ts[n - 1])
        depth = (float(equity[trough]) / level - 1.0) * 100.0
        found.append((depth, start_ts, int(ts[trough]), int(ts[b + 1]) if recovered else None, end_ts))
    found.sort(key=lambda f: (f[0], f[1]))
    return [
        {
            "start": iso(start),
            "trough": iso(trough),
            "recovery": iso(recovery) if recovery is not None else None,
            "depth_pct": finite(depth),
            "length_days": (end - start) / NS_PER_DAY,
        }
        for depth, start, trough, recovery, end in found[:top]
    ]


# ------------------------------------------------------------------ rolling Sharpe


def rolling_sharpe(returns: FloatArray, window: int, periods_per_year: float) -> FloatArray:
    """Sharpe ratio of each window of `window` returns, ending at returns[window - 1:]; NaN
    where the window's returns do not vary."""
    n = returns.shape[0]
    if window < MIN_WINDOW or n < window:
        return np.empty(0)
    view = np.lib.stride_tricks.sliding_window_view(returns, window)
    mean = view.mean(axis=1)
    std = view.std(axis=1, ddof=1)
    out = np.full(mean.shape[0], np.nan)
    ok = std > 0.0
    out[ok] = mean[ok] / std[ok] * math.sqrt(periods_per_year)
    out[~np.isfinite(out)] = np.nan
    return out


# ------------------------------------------------------------------ distributions


def return_distribution(returns: FloatArray, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """The daily returns in percent: summary figures and a histogram of equal bins."""
    pct = returns * 100.0
    n = int(pct.shape[0])
    if n == 0:
        return {"count": 0, "mean_pct": None, "std_pct": None, "min_pct": None, "max_pct": None,
                "positive_pct": None, "histogram": {"edges_pct": [], "counts": []}}
    lo, hi = float(pct.min()), float(pct.max())
    if hi <= lo:  # every day the same: one bin around the value
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(pct, bins=bins, range=(lo, hi))
    return {
        "count": n,
        "mean_pct": finite(float(pct.mean())),
        "std_pct": finite(float(pct.std(ddof=1))) if n >= 2 else None,
        "min_pct": finite(float(pct.min())),
        "max_pct": finite(float(pct.max())),
        "positive_pct": finite(float((pct > 0.0).sum()) / n * 100.0),
        "histogram": {"edges_pct": [float(e) for e in edges.tolist()], "counts": [int(c) for c in counts.tolist()]},
    }


# ------------------------------------------------------------------ exposure


@dataclass(frozen=True)
class TradeSpan:
    """What the report uses of a trade: its side, fill bar times, prices and return."""

    side: str  # long or short
    entry_ts: int
    exit_ts: int
    entry_price: float
    exit_price: float
    return_pct: float


@dataclass(frozen=True)
class MarketBars:
    """How many of a run's bars had a position open (the exposure's counts)."""

    bars: int
    in_market: int
    long_bars: int
    short_bars: int


def bars_in_market(bar_ts: IntArray, trades: Sequence[TradeSpan]) -> MarketBars:
    """Count the bars with a position open: a bar is in the market when some trade has
    entry_ts <= its time < exit_ts (the trade's fill bars: held from its entry bar to the bar
    before its exit, i.e. open at those bars' closes); overlapping trades count once."""
    n = int(bar_ts.shape[0])

    def count(side: str | None) -> int:
        picked = [t for t in trades if side is None or t.side == side]
        if not picked or n == 0:
            return 0
        a = np.searchsorted(bar_ts, np.asarray([t.entry_ts for t in picked], dtype=np.int64), side="left")
        b = np.searchsorted(bar_ts, np.asarray([t.exit_ts for t in picked], dtype=np.int64), side="left")
        ok = b > a
        diff = np.zeros(n + 1, dtype=np.int64)
        np.add.at(diff, a[ok], 1)
        np.add.at(diff, b[ok], -1)
        return int((np.cumsum(diff[:n]) > 0).sum())

    return MarketBars(bars=n, in_market=count(None), long_bars=count("long"), short_bars=count("short"))


def exposure(counts: MarketBars | None) -> dict[str, float | None]:
    """`{exposure_pct, long_pct, short_pct}`: bars in the market over the run's bars, in percent."""
    if counts is None or counts.bars <= 0:
        return {"exposure_pct": None, "long_pct": None, "short_pct": None}
    return {
        "exposure_pct": finite(counts.in_market / counts.bars * 100.0),
        "long_pct": finite(counts.long_bars / counts.bars * 100.0),
        "short_pct": finite(counts.short_bars / counts.bars * 100.0),
    }


# ------------------------------------------------------------------ downsampling


def keep_extremes(series: Sequence[FloatArray], max_points: int = MAX_CHART_POINTS) -> IntArray:
    """Indices to keep so that at most `max_points` points remain: all of them when there are
    few enough, else the first and last point and, in equal stretches, the lowest and highest
    value of each series (NaN ignored), so a chart of the result shows every extreme."""
    n = int(series[0].shape[0]) if series else 0
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    per = 2 * len(series)
    buckets = max(1, (max_points - 2) // per)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep = [0, n - 1]
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
        if b <= a:
            continue
        for values in series:
            seg = values[a:b]
            finite_seg = np.isfinite(seg)
            if not finite_seg.any():
                keep.append(a)
                continue
            masked_lo = np.where(finite_seg, seg, np.inf)
            masked_hi = np.where(finite_seg, seg, -np.inf)
            keep.append(a + int(np.argmin(masked_lo)))
            keep.append(a + int(np.argmax(masked_hi)))
    return np.unique(np.asarray(keep, dtype=np.int64))


def _value(x: float) -> float | None:
    return finite(x)


# ------------------------------------------------------------------ the report


@dataclass(frozen=True)
class Curve:
    """The stored equity curve: time, equity and buy-and-hold at each kept point."""

    ts: IntArray
    equity: FloatArray
    buy_and_hold: FloatArray

    @classmethod
    def of(cls, ts: Sequence[int], equity: Sequence[float], buy_and_hold: Sequence[float]) -> Curve:
        return cls(np.asarray(ts, dtype=np.int64), np.asarray(equity, dtype=np.float64),
                   np.asarray(buy_and_hold, dtype=np.float64))


def trade_markers(trades: Sequence[TradeSpan], limit: int = MAX_TRADE_MARKERS) -> list[dict[str, Any]]:
    """The trades to draw on the price chart: all of them, or an even selection of `limit`."""
    picked: Sequence[TradeSpan] = trades
    if len(trades) > limit:
        idx = np.unique(np.linspace(0, len(trades) - 1, limit).round().astype(np.int64))
        picked = [trades[i] for i in idx.tolist()]
    return [
        {"side": t.side, "entry_time": iso(t.entry_ts), "entry_price": _value(t.entry_price),
         "exit_time": iso(t.exit_ts), "exit_price": _value(t.exit_price), "return_pct": _value(t.return_pct)}
        for t in picked
    ]


def build_report(
    *,
    cash: float,
    periods_per_year: float,
    curve: Curve,
    days: DayEnds,
    trades: Sequence[TradeSpan],
    market_bars: MarketBars | None,
    window: int | None = None,
    max_points: int = MAX_CHART_POINTS,
) -> dict[str, Any]:
    """Every section of the report (the module docstring), JSON-ready."""
    w = default_window(periods_per_year, len(days)) if window is None else int(window)
    if not MIN_WINDOW <= w <= MAX_WINDOW:
        raise ValueError(f"window must be between {MIN_WINDOW} and {MAX_WINDOW} days")
    returns = daily_returns(days.equity, cash)

    dd = underwater_pct(curve.equity, cash)
    keep = keep_extremes([curve.equity, curve.buy_and_hold, dd], max_points)
    equity_section = {
        "points_total": int(curve.ts.shape[0]),
        "timestamps": [iso(t) for t in curve.ts[keep].tolist()],
        "equity": [_value(x) for x in curve.equity[keep].tolist()],
        "buy_and_hold": [_value(x) for x in curve.buy_and_hold[keep].tolist()],
        "drawdown_pct": [_value(x) for x in dd[keep].tolist()],
    }

    sharpe = rolling_sharpe(returns, w, periods_per_year)
    sharpe_ts = days.ts[w - 1 :] if sharpe.size else np.empty(0, dtype=np.int64)
    pick = keep_extremes([sharpe], max_points)
    rolling = {
        "window": w,
        "points_total": int(sharpe.shape[0]),
        "points": [[iso(t), _value(v)] for t, v in zip(sharpe_ts[pick].tolist(), sharpe[pick].tolist())],
    }

    short = shorter_than_two_months(days)
    exp = exposure(market_bars)
    return {
        "periods_per_year": periods_per_year,
        "days": len(days),
        "first_day": days.dates[0].isoformat() if len(days) else None,
        "last_day": days.dates[-1].isoformat() if len(days) else None,
        "equity": equity_section,
        "drawdowns": drawdowns(curve.ts, curve.equity, cash),
        "monthly_returns": monthly_returns(days, cash),
        "yearly_returns": yearly_returns(days, cash),
        "calendar": "daily" if short else "monthly",
        "daily_pnl": daily_pnl(days, cash) if short else None,
        "rolling_sharpe": rolling,
        "daily_returns": return_distribution(returns),
        "trade_returns_pct": [_value(t.return_pct) for t in trades],
        "exposure_pct": exp["exposure_pct"],
        "exposure": {
            "long_pct": exp["long_pct"],
            "short_pct": exp["short_pct"],
            "bars": market_bars.bars if market_bars else None,
            "bars_in_market": market_bars.in_market if market_bars else None,
        },
        "trades_total": len(trades),
        "trades": trade_markers(trades),
    }


def day_ends_of_curve(ts: IntArray, equity: FloatArray, local_days: IntArray) -> tuple[IntArray, IntArray]:
    """(index of each day's last point, its local day) from a curve and each point's local
    day number (days since 1970-01-01): for runs that kept no day-end series."""
    n = ts.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    last = np.ones(n, dtype=bool)
    last[:-1] = local_days[1:] != local_days[:-1]
    idx = np.flatnonzero(last).astype(np.int64)
    return idx, local_days[idx]
