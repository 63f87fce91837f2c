"""Day-by-day backtests of rule strategies (seeds 002 and 004).

`run_day_by_day` evaluates a strategy over a date range:

1. Days: the bars' local calendar days (strategy session timezone, else the
   dataset's) inside [start, end] that have bars within the session hours.
2. Signals: every condition is evaluated vectorised over all bars up to the end
   of the range (indicators therefore warm up on the bars before the range);
   an entry node's exit signal is the OR of the exit nodes that apply to it.
3. Positions: the Cython state machine (``_core/daybyday_kernel.pyx``) walks the
   days' bars: signals at a bar's close fill at the next bar's open; stop-loss
   and target are checked inside each bar (a bar that opens beyond either exits
   at its open, the open having come first; only when the open lies between them
   and the bar reaches both does the stop win); positions still open at the
   square-off bar close at its open (without a square-off time: at the day's
   last close). Days are independent: each starts and ends flat.
   Entry nodes with an option `instrument` (domain.option_legs) are not the kernel's: their
   positions are the contracts picked at their signal bars, walked on the contracts' own bars
   of each day's chain (`chain_for`; services.engine.option_legs) with the same rules.
4. Costs: each fill moves `slippage_pct` percent against the trade; commission
   is `commission_pct` percent of each fill's traded value. pnl = (exit - entry)
   x quantity (x -1 for sells) - commissions; pnl_percent = pnl / (entry x quantity).

`day_documents` turns one day into the seeds' files: seed 002's
``trades_daily.json`` and ``diagnostics_export.json`` (events_history) and
seed 004's day file (positions with diagnostic data). Diagnostics exist only
for bars where something happened (an entry, an exit, a stop, the square-off).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from domain.market import NS_PER_DAY, interval_name, interval_ns
from domain.market import NS_PER_MINUTE as NS_MIN
from domain.metrics import finite
from domain.option_legs import Selection
from domain.rules.expr import TimeLit, TimeOfDay, source_text
from domain.rules.strategy import EntryNode, Strategy, level_price
from domain.sessions import session_days
from services.engine._core import daybyday_kernel as _k
from services.engine.bars import Bars
from services.engine.option_legs import ChainWindow, DayChain, DayChains, LegPosition, LegSkip, walk_leg
from services.engine.rules.evaluate import Evaluated, SeriesContext, evaluate, value_at

REASONS = {
    _k.REASON_STOP_LOSS: "stop_loss",
    _k.REASON_TARGET: "target",
    _k.REASON_EXIT_SIGNAL: "exit_signal",
    _k.REASON_SQUARE_OFF: "square_off",
}
# Seed 004 spells exit reasons for people.
REASON_LABELS = {"stop_loss": "Stop Loss", "target": "Target", "exit_signal": "Exit Signal", "square_off": "EOD Square-off"}
_LEVEL_KIND = {None: 0, "percent": 1, "points": 2}


class NoData(ValueError):
    """The range has no bars to trade (the seed's "Failed to fetch market data")."""


class NoChain(NoData):
    """The strategy trades option legs and the run was given no option chain of the underlying."""


# Days of option chain a run asks its ChainDays to read ahead: results reads (Parquet, which
# releases the GIL) while the engine walks the days before.
CHAIN_DAYS_AHEAD = 2
# A day's option chain of the underlying (domain.option_chain's shared frame), or None; or a
# source that builds (and keeps) the days' DayChains itself.
ChainSource = Callable[[date], "pd.DataFrame | None"] | DayChains


@dataclass
class Trade:
    """One closed position of a day."""

    node: EntryNode
    node_index: int
    day_index: int
    re_entry_num: int
    signal_bar: int
    entry_bar: int
    entry_raw: float
    exit_bar: int
    exit_raw: float
    reason: str
    exit_signal_bar: int
    entry_price: float = 0.0
    exit_price: float = 0.0
    commission: float = 0.0
    pnl: float = 0.0
    pnl_percent: float = 0.0
    entry_ns: int = 0
    exit_ns: int = 0
    position_num: int = 0
    stop_price: float | None = None
    target_price: float | None = None
    leg: LegPosition | None = None  # an option leg: its contract, bars and selection
    spot_at_entry: float | None = None  # a leg's underlying close when it filled / closed
    spot_at_exit: float | None = None


@dataclass
class Day:
    """One trading day of the range and its trades (in entry order)."""

    date: date
    day_number: int
    start: int
    end: int
    square_off: int
    trades: list[Trade] = field(default_factory=list)
    skips: list[tuple[int, LegSkip]] = field(default_factory=list)  # (node index, skipped leg entry)


@dataclass
class DayByDayRun:
    """Everything the documents of each day are built from."""

    strategy: Strategy
    ticker: str
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    minute_of_day: np.ndarray
    tz: ZoneInfo
    bar_ns: int
    days: list[Day]
    entry_eval: list[Evaluated]
    exit_eval: list[Evaluated]
    bars_evaluated: int


@dataclass
class DayPlan:
    """What every run of one session over one range shares: the trading days, the bars up to
    the range's end and the indicator cache (a sweep evaluates each distinct indicator once)."""

    tz: ZoneInfo
    tzname: str
    bar_ns: int
    n: int
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    minute: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    square_offs: np.ndarray
    dates: list[date]
    day_offset: int
    ctx: SeriesContext
    periods_per_year: int

    @property
    def span_days(self) -> float:
        """From the first session bar's start to the last one's (the metrics' trades per month)."""
        if not self.dates:
            return 0.0
        return (int(self.ts[int(self.ends[-1]) - 1]) - int(self.ts[int(self.starts[0])])) / NS_PER_DAY


def plan_days(bars: Bars, strategy: Strategy, start: date, end: date, *, interval: str = "1m", day_offset: int = 0) -> DayPlan:
    """The days of [start, end] in the strategy's session (its timezone, hours and
    square-off), the bars up to the range's end and an empty indicator cache; raises
    NoData when no day has bars. Runs of strategies that differ only in their conditions
    and levels (a sweep's combinations) share one plan."""
    tzname = strategy.timezone or bars.timezone or "UTC"
    tz = ZoneInfo(tzname)
    bar_ns = interval_ns(interval_name(interval) or "1m")
    plan = session_days(bars.ts, tzname, start, end, strategy.session_start, strategy.session_end)
    if plan.n == 0:
        raise NoData("no bars up to the end of the range")
    if plan.days.size == 0:
        raise NoData("no bars in the session hours of the range")
    n, day, minute = plan.n, plan.day, plan.minute
    starts, ends = plan.starts, plan.ends
    sqs = ends.copy()
    if strategy.square_off is not None:
        for j in range(starts.size):
            s, e = int(starts[j]), int(ends[j])
            sqs[j] = s + int(np.searchsorted(minute[s:e], strategy.square_off, side="left"))
    o, h, lo, c, v = (np.ascontiguousarray(a[:n]) for a in (bars.open, bars.high, bars.low, bars.close, bars.volume))
    # VWAP restarts at the strategy's session start (DESIGN.md), not at local midnight: bars
    # before a narrower session are a segment of their own and never enter the session's VWAP.
    vwap_segment = day * 2 + (minute >= strategy.session_start) if strategy.session_start is not None else day
    ctx = SeriesContext(o, h, lo, c, v, minute, vwap_segment)
    return DayPlan(
        tz=tz, tzname=tzname, bar_ns=bar_ns, n=n, ts=bars.ts[:n], open=o, high=h, low=lo, close=c, volume=v, minute=minute,
        starts=starts.astype(np.int64), ends=ends.astype(np.int64), square_offs=sqs.astype(np.int64),
        dates=plan.dates(), day_offset=day_offset, ctx=ctx, periods_per_year=bars.periods_per_year,
    )


def run_day_by_day(
    bars: Bars,
    strategy: Strategy,
    start: date,
    end: date,
    *,
    interval: str = "1m",
    ticker: str = "",
    slippage_pct: float = 0.0,
    commission_pct: float = 0.0,
    day_offset: int = 0,
    chain_for: ChainSource | None = None,
) -> DayByDayRun:
    """Trades of every day of [start, end] (numbered from `day_offset` + 1: a shard of a
    longer range keeps the range's numbers); raises NoData when no day has bars. A strategy
    with option legs needs `chain_for`, the underlying's chain of a day (None: no chain that
    day, so the legs' entries are skipped); without it, NoChain."""
    if strategy.option_legs and chain_for is None:
        raise NoChain(f"the strategy trades options and there is no option chain of {ticker or strategy.ticker}")
    plan = plan_days(bars, strategy, start, end, interval=interval, day_offset=day_offset)
    return run_planned(plan, strategy, ticker=ticker, slippage_pct=slippage_pct, commission_pct=commission_pct,
                       chain_for=chain_for)


def run_positions(plan: DayPlan, strategy: Strategy) -> tuple[dict[str, np.ndarray], list[Evaluated], list[Evaluated]]:
    """The strategy's signals on the plan's bars (indicators from its cache) and the positions
    the Cython state machine takes on them: its raw trade columns (node, day, bars, raw
    prices, reason) and the evaluated entry and exit conditions. Option legs take no
    position here: they trade their contracts (run_planned, walk_leg)."""
    raw, entry_eval, exit_eval, _, _ = _positions(plan, strategy)
    return raw, entry_eval, exit_eval


def _positions(
    plan: DayPlan, strategy: Strategy
) -> tuple[dict[str, np.ndarray], list[Evaluated], list[Evaluated], np.ndarray, np.ndarray]:
    """run_positions, with the entry and exit signals of every node (the legs' too)."""
    n, ctx = plan.n, plan.ctx
    entries = strategy.entries
    entry_eval = [evaluate(e.condition, ctx) for e in entries]
    exit_eval = [evaluate(x.condition, ctx) for x in strategy.exits]
    k = len(entries)
    entry_sig = np.zeros((k, n), dtype=np.uint8)
    exit_sig = np.zeros((k, n), dtype=np.uint8)
    for i, ev in enumerate(entry_eval):
        entry_sig[i] = ev.result
    legs = [i for i, e in enumerate(entries) if e.instrument is not None]
    kernel_entry_sig = entry_sig.copy() if legs else entry_sig
    kernel_entry_sig[legs] = 0  # legs trade their contracts (walk_leg below), not the underlying
    position = {e.id: i for i, e in enumerate(entries)}
    for x, ev in zip(strategy.exits, exit_eval):
        for target in x.entries:
            exit_sig[position[target]] |= ev.result
    raw = _k.run_days(
        plan.open,
        plan.high,
        plan.low,
        plan.close,
        plan.starts,
        plan.ends,
        plan.square_offs,
        kernel_entry_sig,
        exit_sig,
        np.array([1 if e.side == "buy" else -1 for e in entries], dtype=np.int8),
        np.array([_LEVEL_KIND[e.stop_loss.kind if e.stop_loss else None] for e in entries], dtype=np.int8),
        np.array([e.stop_loss.value if e.stop_loss else 0.0 for e in entries], dtype=np.float64),
        np.array([_LEVEL_KIND[e.target.kind if e.target else None] for e in entries], dtype=np.int8),
        np.array([e.target.value if e.target else 0.0 for e in entries], dtype=np.float64),
        np.array([e.max_reentries for e in entries], dtype=np.int32),
    )
    return raw, entry_eval, exit_eval, entry_sig, exit_sig


def run_planned(
    plan: DayPlan,
    strategy: Strategy,
    *,
    ticker: str = "",
    slippage_pct: float = 0.0,
    commission_pct: float = 0.0,
    chain_for: ChainSource | None = None,
) -> DayByDayRun:
    """`run_day_by_day` on a plan of the strategy's session (indicators from the plan's cache)."""
    n, tz, bar_ns, minute = plan.n, plan.tz, plan.bar_ns, plan.minute
    o, h, lo, c, v = plan.open, plan.high, plan.low, plan.close, plan.volume
    days = [
        Day(date=d, day_number=plan.day_offset + j + 1, start=int(s), end=int(e), square_off=int(q))
        for j, (d, s, e, q) in enumerate(
            zip(plan.dates, plan.starts.tolist(), plan.ends.tolist(), plan.square_offs.tolist())
        )
    ]
    entries = strategy.entries
    raw, entry_eval, exit_eval, entry_sig, exit_sig = _positions(plan, strategy)
    legs = [i for i, e in enumerate(entries) if e.instrument is not None]
    ts = plan.ts
    slip, comm = slippage_pct / 100.0, commission_pct / 100.0
    cols = {key: raw[key].tolist() for key in raw}
    for j in range(len(cols["node"])):
        node_i = cols["node"][j]
        node = entries[node_i]
        d = days[cols["day"][j]]
        t = Trade(
            node=node,
            node_index=node_i,
            day_index=cols["day"][j],
            re_entry_num=cols["re_entry"][j],
            signal_bar=cols["signal_bar"][j],
            entry_bar=cols["entry_bar"][j],
            entry_raw=cols["entry_price"][j],
            exit_bar=cols["exit_bar"][j],
            exit_raw=cols["exit_price"][j],
            reason=REASONS[cols["reason"][j]],
            exit_signal_bar=cols["exit_signal_bar"][j],
        )
        _price_trade(t, slip, comm)
        t.entry_ns = int(ts[t.entry_bar])
        if t.reason == "square_off" and d.square_off >= d.end:
            t.exit_ns = int(ts[t.exit_bar]) + bar_ns  # the day's last close
        else:
            t.exit_ns = int(ts[t.exit_bar])
        d.trades.append(t)
    if legs:
        assert chain_for is not None
        ts_day = np.ascontiguousarray(ts, dtype=np.int64)
        window = ChainWindow(plan.tzname, strategy.session_start, strategy.session_end, strategy.square_off)
        for j, d in enumerate(days):
            if callable(chain_for):
                chain = DayChain.from_rows(chain_for(d.date), d.date, window)
            else:
                chain = chain_for.day_chain(d.date, window, [x.date for x in days[j + 1 : j + 1 + CHAIN_DAYS_AHEAD]])
            for k in legs:
                node = entries[k]
                assert node.instrument is not None
                positions, skips = walk_leg(
                    node.instrument, node.side, node.stop_loss, node.target, node.max_reentries,
                    entry_sig[k], exit_sig[k], ts_day, c, d.start, d.end, d.square_off, bar_ns, chain,
                )
                d.skips.extend((k, sk) for sk in skips)
                for p in positions:
                    t = _leg_trade(node, k, j, p, ts_day, c, d, bar_ns)
                    _price_trade(t, slip, comm)
                    d.trades.append(t)
    for d in days:
        d.trades.sort(key=lambda t: (t.entry_ns, t.node_index))
        for num, t in enumerate(d.trades, start=1):
            t.position_num = num
    return DayByDayRun(
        strategy=strategy,
        ticker=ticker or strategy.ticker,
        ts=ts,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=v,
        minute_of_day=minute,
        tz=tz,
        bar_ns=bar_ns,
        days=days,
        entry_eval=entry_eval,
        exit_eval=exit_eval,
        bars_evaluated=n,
    )


def _spot_at(ts: np.ndarray, close: np.ndarray, s: int, e: int, ns: int, bar_ns: int) -> float:
    """The underlying's last close at instant `ns`: the close of the day's last bar that ended
    by then (NaN before any has)."""
    i = s + int(np.searchsorted(ts[s:e], ns - bar_ns, side="right")) - 1
    return float(close[i]) if i >= s else float("nan")


def _leg_trade(
    node: EntryNode, k: int, j: int, p: LegPosition, ts: np.ndarray, close: np.ndarray, d: Day, bar_ns: int
) -> Trade:
    """A closed leg position as a Trade: underlying bar indices for its signal and for the bars
    its fill and exit fall in (diagnostics), the contract's own in `leg`."""
    c = p.contract
    entry_ns, exit_ns = int(c.ts[p.entry_index]), p.exit_ns
    day_ts = ts[d.start:d.end]
    entry_bar = d.start + min(int(np.searchsorted(day_ts, entry_ns, side="left")), d.end - d.start - 1)
    exit_bar = d.start + min(int(np.searchsorted(day_ts, int(c.ts[p.exit_index]), side="left")), d.end - d.start - 1)
    return Trade(
        node=node,
        node_index=k,
        day_index=j,
        re_entry_num=p.re_entry,
        signal_bar=p.signal_bar,
        entry_bar=entry_bar,
        entry_raw=p.entry_raw,
        exit_bar=exit_bar,
        exit_raw=p.exit_raw,
        reason=p.reason,
        exit_signal_bar=p.exit_signal_bar if p.exit_signal_bar >= 0 else exit_bar,
        entry_ns=entry_ns,
        exit_ns=exit_ns,
        leg=p,
        spot_at_entry=_spot_at(ts, close, d.start, d.end, entry_ns, bar_ns),
        spot_at_exit=_spot_at(ts, close, d.start, d.end, exit_ns, bar_ns),
    )


def _price_trade(t: Trade, slip: float, comm: float) -> None:
    node = t.node
    sign = 1.0 if node.side == "buy" else -1.0
    t.entry_price = t.entry_raw * (1.0 + sign * slip)
    t.exit_price = t.exit_raw * (1.0 - sign * slip)
    q = node.quantity
    t.commission = (t.entry_price + t.exit_price) * q * comm
    t.pnl = sign * (t.exit_price - t.entry_price) * q - t.commission
    t.pnl_percent = t.pnl / (t.entry_price * q) * 100.0 if t.entry_price else 0.0
    if node.stop_loss is not None:
        t.stop_price = level_price(node.stop_loss, t.entry_raw, sign, stop=True)
    if node.target is not None:
        t.target_price = level_price(node.target, t.entry_raw, sign, stop=False)


# ---------------------------------------------------------------- documents


def _price(x: float | None) -> str:
    """A stop or target level as a reader wants it: to the cent (the raw level stays in the
    evaluated condition's numbers)."""
    return "-" if x is None or not math.isfinite(x) else f"{x:.2f}"


def _money(x: float) -> str:
    """Seed 002's decimal strings: two places."""
    return f"{x:.2f}"


@dataclass
class DaySummary:
    """Numbers of one day (what results keeps per day)."""

    positions: int
    pnl: float
    winning: int
    losing: int
    largest_win: float
    largest_loss: float
    # For the run's metrics (profit factor, average trade duration); not in the seed's shapes.
    gross_profit: float = 0.0
    gross_loss: float = 0.0
    trade_ns: int = 0

    def formatted(self) -> dict[str, Any]:
        """The day's summary as the trades file and the day_completed event show it (money as strings)."""
        return {
            "total_trades": self.positions,
            "total_pnl": _money(self.pnl),
            "winning_trades": self.winning,
            "losing_trades": self.losing,
            "win_rate": _money(self.winning / self.positions * 100 if self.positions else 0.0),
        }


def day_summary(day: Day) -> DaySummary:
    pnls = [t.pnl for t in day.trades]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    return DaySummary(
        positions=len(pnls),
        pnl=math.fsum(pnls),
        winning=len(wins),
        losing=len(losses),
        largest_win=max(wins) if wins else 0.0,
        largest_loss=min(losses) if losses else 0.0,
        gross_profit=math.fsum(wins),
        gross_loss=math.fsum(losses),
        trade_ns=sum(max(0, t.exit_ns - t.entry_ns) for t in day.trades),
    )


class _Clock:
    """Bar times as the seeds write them, cached per nanosecond value."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._cache: dict[int, datetime] = {}

    def local(self, ns: int) -> datetime:
        dt = self._cache.get(ns)
        if dt is None:
            dt = datetime.fromtimestamp(ns // 1_000_000_000, UTC).astimezone(self.tz)
            self._cache[ns] = dt
        return dt

    def naive(self, ns: int) -> str:
        return self.local(ns).strftime("%Y-%m-%dT%H:%M:%S")

    def offset(self, ns: int) -> str:
        return self.local(ns).isoformat(timespec="seconds")

    def hhmm(self, ns: int) -> str:
        return self.local(ns).strftime("%H:%M")


def _candle(run: DayByDayRun, clock: _Clock, i: int) -> dict[str, Any]:
    return {
        "timestamp": clock.naive(int(run.ts[i])),
        "open": float(run.open[i]),
        "high": float(run.high[i]),
        "low": float(run.low[i]),
        "close": float(run.close[i]),
        "volume": float(run.volume[i]),
    }


def _candles(run: DayByDayRun, clock: _Clock, i: int, leg: LegPosition | None = None, j: int = -1) -> dict[str, Any]:
    """The underlying's candle at bar i (and the one before); for a leg, also its contract's
    candle at contract bar j (and the one before)."""
    out = {run.ticker: {"current": _candle(run, clock, i), "previous": _candle(run, clock, i - 1) if i > 0 else None}}
    if leg is not None and j >= 0:
        out[leg.selection.symbol(run.ticker) or ""] = {
            "current": _contract_candle(leg, clock, j),
            "previous": _contract_candle(leg, clock, j - 1) if j > 0 else None,
        }
    return out


def _contract_candle(leg: LegPosition, clock: _Clock, j: int) -> dict[str, Any]:
    c = leg.contract
    return {
        "timestamp": clock.naive(int(c.ts[j])),
        "open": float(c.open[j]),
        "high": float(c.high[j]),
        "low": float(c.low[j]),
        "close": float(c.close[j]),
        "volume": float(c.volume[j]),
    }


def _selection(run: DayByDayRun, node: EntryNode, sel: Selection) -> dict[str, Any]:
    """What an option leg's entry picked (the entry diagnostic event's `option_selection`)."""
    leg = node.instrument
    return {
        "spot": sel.spot,
        "option_type": sel.option_type,
        "strike_selector": leg.strike if leg else None,
        "expiry_rule": leg.expiry if leg else None,
        "expiry": sel.expiry.isoformat() if sel.expiry else None,
        "atm_strike": sel.atm_strike,
        "strike": sel.strike,
        "contract": sel.symbol(run.ticker),
    }


def spot_key(ticker: str) -> str:
    """The prefix of a leg's spot fields: the underlying in lower case, other characters as
    '_' (NIFTY gives the seeds' nifty_spot_at_entry; DEMO-MINUTE demo_minute_spot_at_entry)."""
    return re.sub(r"[^a-z0-9]+", "_", ticker.lower()).strip("_") or "underlying"


def _hhmm_minutes(m: float | None) -> str | None:
    if m is None:
        return None
    m = int(m)
    return f"{m // 60:02d}:{m % 60:02d}"


def _conditions(ev: Evaluated, i: int) -> list[dict[str, Any]]:
    text = ev.condition.text
    out = []
    for cmp in ev.condition.compares:
        lv, rv = value_at(ev.lhs[cmp.index], i), value_at(ev.rhs[cmp.index], i)
        is_time = isinstance(cmp.left, (TimeOfDay, TimeLit))
        with np.errstate(invalid="ignore"):
            item: dict[str, Any] = {
                "condition": source_text(text, cmp),
                "lhs_expression": source_text(text, cmp.left),
                "lhs_value": _hhmm_minutes(lv) if is_time else lv,
                "operator": cmp.op,
                "rhs_expression": source_text(text, cmp.right),
                "rhs_value": _hhmm_minutes(rv) if is_time else rv,
                "result": _compare_result(cmp.op, ev, cmp.index, i),
                "condition_type": "non_live",
            }
        if cmp.op in ("crosses_above", "crosses_below"):
            item["lhs_previous"] = value_at(ev.lhs[cmp.index], i - 1) if i > 0 else None
            item["rhs_previous"] = value_at(ev.rhs[cmp.index], i - 1) if i > 0 else None
        out.append(item)
    return out


def _compare_result(op: str, ev: Evaluated, index: int, i: int) -> bool:
    a, b = value_at(ev.lhs[index], i), value_at(ev.rhs[index], i)
    if a is None or b is None:
        return False
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    pa = value_at(ev.lhs[index], i - 1) if i > 0 else None
    pb = value_at(ev.rhs[index], i - 1) if i > 0 else None
    if pa is None or pb is None:
        return False
    return (a > b and pa <= pb) if op == "crosses_above" else (a < b and pa >= pb)


def _level_condition(name: str, op: str, lhs_name: str, lhs: float, level: float) -> dict[str, Any]:
    return {
        "condition": f"{lhs_name} {op} {name}",
        "lhs_expression": lhs_name,
        "lhs_value": lhs,
        "operator": op,
        "rhs_expression": name,
        "rhs_value": level,
        "result": True,
        "condition_type": "live",
    }


def _node_variables(t: Trade) -> dict[str, Any]:
    n = t.node
    return {
        "side": n.side,
        "quantity": int(n.quantity) if float(n.quantity).is_integer() else n.quantity,
        "stop_loss": {"type": n.stop_loss.kind, "value": n.stop_loss.value} if n.stop_loss else None,
        "target": {"type": n.target.kind, "value": n.target.value} if n.target else None,
        "stop_loss_price": finite(t.stop_price),
        "target_price": finite(t.target_price),
        "max_reentries": n.max_reentries,
        "re_entry_num": t.re_entry_num,
        **(
            {"instrument": {"type": "option", "option_type": n.instrument.option_type, "strike": n.instrument.strike,
                            "expiry": n.instrument.expiry}}
            if n.instrument is not None
            else {}
        ),
    }


def _contract_fields(run: DayByDayRun, t: Trade) -> dict[str, Any]:
    """An option leg's symbol, strike, option type and the underlying's spot at entry and exit
    (the seeds' shapes); {} for a trade of the underlying."""
    if t.leg is None:
        return {}
    c, key = t.leg.contract, spot_key(run.ticker)
    return {
        "symbol": t.leg.selection.symbol(run.ticker),
        "strike": int(c.strike) if float(c.strike).is_integer() else c.strike,
        "option_type": c.option_type,
        f"{key}_spot_at_entry": finite(t.spot_at_entry),
        f"{key}_spot_at_exit": finite(t.spot_at_exit),
    }


def day_documents(run: DayByDayRun, day: Day) -> tuple[dict, dict, dict, DaySummary]:
    """(trades_daily, diagnostics_export, seed-004 day file, summary) of one day."""
    clock = _Clock(run.tz)
    strategy = run.strategy
    events: dict[str, dict[str, Any]] = {}
    # (bar, order, node index, key) -> event, for ordering; keys dedupe shared events. Within a
    # bar: stops/targets (inside the bar) before the exit and entry signals (at its close).
    pending: list[tuple[tuple, str, dict[str, Any]]] = []
    by_key: dict[tuple, dict[str, Any]] = {}

    def add(sort_key: tuple, key: tuple, event: dict[str, Any]) -> dict[str, Any]:
        if key in by_key:
            return by_key[key]
        by_key[key] = event
        pending.append((sort_key, "", event))
        return event

    exits_for = {e.id: [j for j, x in enumerate(strategy.exits) if e.id in x.entries] for e in strategy.entries}
    links: list[tuple[Trade, list[dict], list[dict], dict | None, dict]] = []
    last_stop: dict[int, dict[str, Any]] = {}
    # Sort keys start with a bar's open time (ns), so the underlying's and the contracts' events interleave.
    ts = run.ts
    for node_index, skip in day.skips:
        node = strategy.entries[node_index]
        sb = skip.signal_bar
        add(
            (int(ts[sb]), 2, node_index, 0),
            ("skip", node_index, sb),
            {
                "timestamp": clock.naive(int(ts[sb]) + run.bar_ns),
                "event_type": "ENTRY_SKIPPED",
                "node_id": node.id,
                "node_name": node.name,
                "node_type": "EntryNode",
                "signal_emitted": False,
                "reason": skip.reason,
                "message": skip.message,
                "conditions_preview": node.condition.text,
                "evaluated_conditions": {
                    "expression": node.condition.text,
                    "result": True,
                    "conditions": _conditions(run.entry_eval[node_index], sb),
                },
                "candle_data": _candles(run, clock, sb),
                "option_selection": _selection(run, node, skip.selection),
                "_parent": None,
            },
        )
    for t in sorted(day.trades, key=lambda t: (t.entry_ns, t.node_index)):
        node = t.node
        leg = t.leg
        ev = run.entry_eval[t.node_index]
        sb = t.signal_bar
        entry_event: dict[str, Any] = {
            "timestamp": clock.naive(int(ts[sb]) + run.bar_ns),
            "event_type": "ENTRY",
            "node_id": node.id,
            "node_name": node.name,
            "node_type": "EntryNode",
            "signal_emitted": True,
            "conditions_preview": node.condition.text,
            "evaluated_conditions": {"expression": node.condition.text, "result": True, "conditions": _conditions(ev, sb)},
            "candle_data": _candles(run, clock, sb, leg, leg.entry_index if leg else -1),
            "node_variables": _node_variables(t),
            "_parent": last_stop.get(t.node_index) if t.re_entry_num > 0 else None,
        }
        if leg is not None:
            entry_event["option_selection"] = _selection(run, node, leg.selection)
        entry_ev = add((int(ts[sb]), 2, t.node_index, 0), ("entry", t.node_index, sb), entry_event)
        entry_flow = [entry_ev]
        if t.re_entry_num > 0 and t.node_index in last_stop:
            entry_flow.insert(0, last_stop[t.node_index])
        xb = t.exit_signal_bar
        exit_flow: list[dict[str, Any]] = []
        exit_ev: dict[str, Any]
        if t.reason == "exit_signal":
            for j in exits_for[node.id]:
                xev = run.exit_eval[j]
                if not xev.result[xb]:
                    continue
                x = strategy.exits[j]
                exit_flow.append(
                    add(
                        (int(ts[xb]), 1, j, 0),
                        ("exit", j, xb),
                        {
                            "timestamp": clock.naive(int(run.ts[xb]) + run.bar_ns),
                            "event_type": "EXIT",
                            "node_id": x.id,
                            "node_name": x.name,
                            "node_type": "ExitNode",
                            "signal_emitted": True,
                            "conditions_preview": x.condition.text,
                            "evaluated_conditions": {
                                "expression": x.condition.text,
                                "result": True,
                                "conditions": _conditions(xev, xb),
                            },
                            "candle_data": _candles(run, clock, xb),
                            "_parent": None,
                        },
                    )
                )
            exit_ev = exit_flow[0]
        elif t.reason in ("stop_loss", "target"):
            is_sl = t.reason == "stop_loss"
            level = t.stop_price if is_sl else t.target_price
            buy = node.side == "buy"
            # A leg's stop and target are on its contract's bar; the underlying's otherwise.
            lows, highs, at = (leg.contract.low, leg.contract.high, leg.exit_index) if leg else (run.low, run.high, xb)
            when = t.exit_ns if leg else int(ts[xb])
            if is_sl:
                lhs_name, lhs, op = ("low", float(lows[at]), "<=") if buy else ("high", float(highs[at]), ">=")
            else:
                lhs_name, lhs, op = ("high", float(highs[at]), ">=") if buy else ("low", float(lows[at]), "<=")
            name = "stop_loss" if is_sl else "target"
            exit_ev = add(
                (when, 0, t.node_index, t.position_num),
                (name, t.node_index, t.position_num),
                {
                    "timestamp": clock.naive(when),
                    "event_type": "STOP_LOSS" if is_sl else "TARGET",
                    "node_id": node.id,
                    "node_name": f"{node.name} {'stop-loss' if is_sl else 'target'}",
                    "node_type": "EntryNode",
                    "signal_emitted": True,
                    "conditions_preview": f"{lhs_name} {op} {name} ({_price(level)})",
                    "evaluated_conditions": {
                        "expression": f"{lhs_name} {op} {name}",
                        "result": True,
                        "conditions": [_level_condition(name, op, lhs_name, lhs, float(level or 0.0))],
                    },
                    "candle_data": _candles(run, clock, xb, leg, leg.exit_index if leg else -1),
                    "_parent": entry_ev,
                },
            )
            exit_flow = [exit_ev]
            if is_sl:
                last_stop[t.node_index] = exit_ev
        else:
            eod = day.square_off >= day.end
            if leg is not None:  # at the contract's square-off bar, or after its last bar of the day
                when = t.exit_ns
                eod = eod or strategy.square_off is None or when > int(leg.contract.ts[leg.exit_index])
                bar_open = int(leg.contract.ts[leg.exit_index])
            else:
                when = int(ts[xb]) + (run.bar_ns if eod else 0)
                bar_open = int(ts[xb])
            sq_text = _hhmm_minutes(strategy.square_off) if not eod else "session end"
            exit_ev = add(
                (bar_open, 3, 0, 0),
                ("square_off", when),
                {
                    "timestamp": clock.naive(when),
                    "event_type": "SQUARE_OFF",
                    "node_id": "square-off",
                    "node_name": "Square-off",
                    "node_type": "SquareOffNode",
                    "signal_emitted": True,
                    "conditions_preview": f"time >= {sq_text}",
                    "evaluated_conditions": {
                        "expression": f"time >= {sq_text}",
                        "result": True,
                        "conditions": [
                            {
                                "condition": f"time >= {sq_text}",
                                "lhs_expression": "time",
                                "lhs_value": clock.hhmm(when),
                                "operator": ">=",
                                "rhs_expression": "square_off",
                                "rhs_value": sq_text,
                                "result": True,
                                "condition_type": "live",
                            }
                        ],
                    },
                    "candle_data": _candles(run, clock, xb, leg, leg.exit_index if leg else -1),
                    "_parent": None,
                },
            )
            exit_flow = [exit_ev]
        links.append((t, entry_flow, exit_flow, exit_ev, entry_ev))

    pending.sort(key=lambda p: p[0])
    for n, (_, _, event) in enumerate(pending, start=1):
        event["execution_id"] = f"exec_{n:03d}"
    for _, _, event in pending:
        parent = event.pop("_parent")
        eid = event["execution_id"]
        events[eid] = {
            "execution_id": eid,
            "parent_execution_id": parent["execution_id"] if parent else None,
            **event,
        }

    trades_out: list[dict[str, Any]] = []
    positions_out: list[dict[str, Any]] = []
    for t, entry_flow, exit_flow, _exit_ev, entry_ev in links:
        node = t.node
        entry_ids = [e["execution_id"] for e in entry_flow]
        exit_ids = [e["execution_id"] for e in exit_flow]
        duration = round((t.exit_ns - t.entry_ns) / NS_MIN, 2)
        pid = f"{node.id}-pos{t.position_num}"
        qty: float | int = int(node.quantity) if float(node.quantity).is_integer() else node.quantity
        contract = _contract_fields(run, t)
        trade_out: dict[str, Any] = {
            "trade_id": pid,
            "position_id": pid,
            "re_entry_num": t.re_entry_num,
            "symbol": contract.get("symbol", run.ticker),
            "side": node.side,
            "quantity": qty,
            "entry_price": _money(t.entry_price),
            "entry_time": clock.offset(t.entry_ns),
            "exit_price": _money(t.exit_price),
            "exit_time": clock.offset(t.exit_ns),
            "pnl": _money(t.pnl),
            "pnl_percent": _money(t.pnl_percent),
            "duration_minutes": duration,
            "status": "closed",
            "entry_flow_ids": entry_ids,
            "exit_flow_ids": exit_ids,
            "entry_trigger": node.id,
            "exit_reason": t.reason,
        }
        trades_out.append({**trade_out, **{k: v for k, v in contract.items() if k != "symbol"}})
        exit_events = [events[i] for i in exit_ids]
        positions_out.append(
            {
                "position_id": node.id,
                "position_num": t.position_num,
                "re_entry_num": t.re_entry_num,
                "symbol": contract.get("symbol", run.ticker),
                "strike": contract.get("strike"),
                "option_type": contract.get("option_type"),
                "side": node.side.upper(),
                "quantity": qty,
                "entry_price": t.entry_price,
                "entry_time": clock.naive(t.entry_ns),
                "exit_price": t.exit_price,
                "exit_time": clock.naive(t.exit_ns),
                "pnl": t.pnl,
                "pnl_percent": t.pnl_percent,
                "commission": t.commission,
                "duration_minutes": duration,
                "exit_reason": REASON_LABELS[t.reason],
                "exit_reason_code": t.reason,
                **{k: v for k, v in contract.items() if k.endswith(("_spot_at_entry", "_spot_at_exit"))},
                "status": "closed",
                "diagnostic_data": {
                    "conditions_evaluated": events[entry_ev["execution_id"]]["evaluated_conditions"]["conditions"],
                    "candle_data": events[entry_ev["execution_id"]]["candle_data"],
                },
                "exit_diagnostic_data": {
                    "conditions_evaluated": [c for e in exit_events for c in e["evaluated_conditions"]["conditions"]],
                    "candle_data": exit_events[0]["candle_data"] if exit_events else None,
                },
                "condition_preview": node.condition.text,
                "exit_condition_preview": " | ".join(e["conditions_preview"] for e in exit_events),
                "node_variables": _node_variables(t),
                "entry_flow_ids": entry_ids,
                "exit_flow_ids": exit_ids,
            }
        )

    summary = day_summary(day)
    iso = day.date.isoformat()
    trades_daily = {"date": iso, "summary": summary.formatted(), "trades": trades_out}
    diagnostics = {"date": iso, "events_history": events}
    positions_day = {
        "date": day.date.strftime("%d-%m-%Y"),
        "summary": {
            "total_positions": summary.positions,
            "closed_positions": summary.positions,
            "total_pnl": round(summary.pnl, 2),
            "winning_trades": summary.winning,
            "losing_trades": summary.losing,
            "win_rate": round(summary.winning / summary.positions * 100, 2) if summary.positions else 0.0,
        },
        "positions": positions_out,
    }
    return trades_daily, diagnostics, positions_day, summary
