"""Option legs of day-by-day runs: a day's chain indexed by contract, and the positions of one
leg node over one day, walked on its contract's bars (services.engine.day_by_day).

The contract is picked at the signal bar by domain.option_legs. Then, as for the underlying
(DESIGN.md, "Engine semantics"), on the contract's own bars of the day's session:

- fill: the open of the contract's first bar at or after the end of the signal bar (its
  next bar), before the square-off; when it has none, the entry is skipped (`no_quote`)
  and the node takes no more positions that day (a skip also when no listed contract
  fits: `no_contract`);
- stop-loss and target: on the premium from the fill, checked inside each contract bar from
  the fill bar on, with the open-first rule (a sell leg's stop is the premium rising);
- an exit signal at the close of an underlying bar at or after the fill (with an underlying
  bar left before the square-off, as for the underlying) fills at the open of the
  contract's next bar; the square-off at the open of the contract's first bar at or after
  the square-off time; a leg still open with no such bar (or without a square-off time)
  closes at its contract's last close of the day (`square_off`);
- after a stop-out the node may enter again (`max_reentries`) on an entry signal at the
  close of an underlying bar at or after the stop's bar, picking its contract again.
Nodes are independent, as in the kernel, so a leg is walked event by event (NumPy searches)
rather than bar by bar.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import numpy as np
import pandas as pd

from domain.market import NS_PER_DAY, NS_PER_MINUTE
from domain.option_legs import OptionLeg, Selection, select_contract
from domain.rules.strategy import Level, level_price
from domain.sessions import epoch_day, local_wall

NO_QUOTE = "no_quote"
NO_CONTRACT = "no_contract"


@dataclass(frozen=True)
class ContractBars:
    """One contract's bars inside a day's session (ascending time), and where its square-off
    bar is (`square_off` = the count when it has none)."""

    expiry: date
    strike: float
    option_type: str
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    square_off: int

    def first_at(self, ns: int) -> int:
        """Index of the first bar at or after `ns` (the count when none)."""
        return int(np.searchsorted(self.ts, ns, side="left"))


ContractKey = tuple[date, float, str]  # (expiry, strike, CE|PE)


@dataclass(frozen=True)
class ChainWindow:
    """What of a day's chain a strategy sees: the underlying's timezone, its session
    [start, end) and its square-off (local minutes of the day; None: none)."""

    tz: str
    session_start: int | None
    session_end: int | None
    square_off: int | None


@dataclass(frozen=True)
class ChainRows:
    """A day's chain rows as arrays (any order): UTC ns, expiry as epoch days, strike, whether a
    put, and OHLCV (None where only the keys were read)."""

    ts: np.ndarray
    expiry: np.ndarray
    strike: np.ndarray
    put: np.ndarray
    bars: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> ChainRows:
        """domain.option_chain's shared frame."""
        return cls(
            pd.DatetimeIndex(frame["timestamp"]).tz_convert("UTC").as_unit("ns").asi8,  # any resolution given
            frame["expiry"].to_numpy().astype("datetime64[D]").astype(np.int64),
            frame["strike"].to_numpy(dtype=np.float64),
            (frame["option_type"] == "PE").to_numpy(dtype=bool),
            tuple(frame[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")),  # type: ignore[arg-type]
        )


def _local_minutes(ts: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """(local day, local minute of the day) of UTC ns timestamps. A chain repeats each minute for
    every contract: stored rows come sorted by time, so each distinct instant is converted once."""
    if ts.size > 1 and bool(np.all(ts[1:] >= ts[:-1])):
        starts = np.flatnonzero(np.concatenate(([True], ts[1:] != ts[:-1])))
        wall = np.repeat(local_wall(ts[starts], tz), np.diff(np.append(starts, ts.size)))
    else:
        wall = local_wall(ts, tz)
    local_day = np.floor_divide(wall, NS_PER_DAY)
    return local_day, (wall - local_day * NS_PER_DAY) // NS_PER_MINUTE


class DayChain:
    """A day's option chain restricted to the day's session: the expiries and strikes listed
    that day, and the bars of a contract when a leg asks for it (a day has thousands of
    contracts and a leg trades one or two of them; each is cut out once and kept in `known`).

    Built from the day's rows (a frame or ChainRows); or from what an earlier run of the same
    window kept (`listed` and `known`) and a `load` that reads one contract's rows of the day
    when a leg asks for one not kept (services.engine.option_chains caches days that way)."""

    def __init__(
        self,
        frame: pd.DataFrame | ChainRows | None,
        day: date,
        tz: str,
        session_start: int | None,
        session_end: int | None,
        square_off: int | None,
        *,
        listed: dict[date, np.ndarray] | None = None,
        known: dict[ContractKey, ContractBars | None] | None = None,
        load: Callable[[ContractKey], ChainRows | None] | None = None,
    ) -> None:
        self.day = day
        self.window = ChainWindow(tz, session_start, session_end, square_off)
        self._sq_minute = square_off
        self.listed: dict[date, np.ndarray] = {} if listed is None else listed
        self.known: dict[ContractKey, ContractBars | None] = {} if known is None else known
        self._load = load
        self._rows = np.zeros(0, dtype=np.int64)
        self._bars: tuple[np.ndarray, ...] | None = None
        rows = ChainRows.from_frame(frame) if isinstance(frame, pd.DataFrame) and len(frame) else frame
        if not isinstance(rows, ChainRows) or rows.ts.size == 0:
            return
        local_day, minute = _local_minutes(rows.ts, tz)
        keep = local_day == epoch_day(day)
        if session_start is not None:
            keep &= minute >= session_start
        if session_end is not None:
            keep &= minute < session_end
        self._bars = rows.bars
        if keep.all():  # the usual case (a chain file is a day, a session most of it): no copies
            self._rows = np.arange(keep.size)
            self._ts, self._minute, self._expiry, self._strike, self._put = (
                rows.ts, minute, rows.expiry, rows.strike, rows.put)
        else:
            self._rows = np.flatnonzero(keep)  # the rows of the day's session
            self._ts, self._minute = rows.ts[self._rows], minute[self._rows]
            self._expiry = rows.expiry[self._rows]
            self._strike = rows.strike[self._rows]
            self._put = rows.put[self._rows]
        if listed is None:
            # Hashing (pd.unique) then sorting the few distinct values: a day has tens of thousands of rows.
            epoch = date(1970, 1, 1).toordinal()
            for d in sorted(pd.unique(self._expiry).tolist()):
                self.listed[date.fromordinal(epoch + d)] = np.sort(pd.unique(self._strike[self._expiry == d]))

    @classmethod
    def from_rows(
        cls, rows: pd.DataFrame | ChainRows | None, day: date, window: ChainWindow, **kw: Any
    ) -> DayChain:
        return cls(rows, day, window.tz, window.session_start, window.session_end, window.square_off, **kw)

    def contract(self, expiry: date, strike: float, option_type: str) -> ContractBars | None:
        """The contract's bars of the day in time order (copies: a trade keeps them for its
        documents, not the whole day's chain), or None when it has none."""
        key = (expiry, float(strike), option_type)
        if key not in self.known:
            if self._bars is None and self._load is not None and self.listed:
                part = DayChain.from_rows(self._load(key), self.day, self.window, listed={})
                self.known[key] = part._cut(*key)
            else:
                self.known[key] = self._cut(*key)
        return self.known[key]

    def _cut(self, expiry: date, strike: float, option_type: str) -> ContractBars | None:
        if self._bars is None or self._rows.size == 0:
            return None
        mine = np.flatnonzero(
            (self._expiry == epoch_day(expiry)) & (self._strike == float(strike)) & (self._put == (option_type == "PE"))
        )
        if mine.size == 0:
            return None
        mine = mine[np.argsort(self._ts[mine], kind="stable")]
        minute = self._minute[mine]
        sq = int(np.searchsorted(minute, self._sq_minute, side="left")) if self._sq_minute is not None else mine.size
        rows = self._rows[mine]
        return ContractBars(
            expiry, float(strike), option_type, self._ts[mine], *(np.ascontiguousarray(a[rows]) for a in self._bars), sq,
        )


class DayChains(Protocol):
    """A source of DayChains that reads (and keeps) days itself (services.engine.option_chains)."""

    def day_chain(self, day: date, window: ChainWindow, coming: Sequence[date] = ()) -> DayChain:
        """The day's chain as `window` sees it; `coming`: the days that will be asked next, in order."""
        ...


@dataclass
class LegPosition:
    """One closed position of a leg node (raw premiums: costs are applied by the caller)."""

    selection: Selection
    contract: ContractBars
    re_entry: int
    signal_bar: int  # underlying
    entry_index: int  # contract bar
    entry_raw: float
    exit_index: int  # contract bar
    exit_raw: float
    exit_ns: int
    reason: str
    exit_signal_bar: int  # underlying bar of an exit signal, else -1


@dataclass
class LegSkip:
    """An entry signal that took no position: `reason` no_quote or no_contract."""

    signal_bar: int
    reason: str
    message: str
    selection: Selection


def _hits(c: ContractBars, a: int, b: int, buy: bool, stop: float | None, target: float | None) -> int:
    """The first contract bar of [a, b) whose range reaches the stop or the target (b if none)."""
    if a >= b or (stop is None and target is None):
        return b
    hit = np.zeros(b - a, dtype=bool)
    lo, hi = c.low[a:b], c.high[a:b]
    if stop is not None:
        hit |= (lo <= stop) if buy else (hi >= stop)
    if target is not None:
        hit |= (hi >= target) if buy else (lo <= target)
    first = np.flatnonzero(hit)
    return a + int(first[0]) if first.size else b


def _level_exit(c: ContractBars, x: int, buy: bool, stop: float | None, target: float | None) -> tuple[str, float]:
    """Reason and price of a stop or target inside contract bar x (the open-first rule)."""
    o = float(c.open[x])
    hit_sl = stop is not None and (c.low[x] <= stop if buy else c.high[x] >= stop)
    hit_tg = target is not None and (c.high[x] >= target if buy else c.low[x] <= target)
    if hit_tg and target is not None:
        opened_beyond_stop = stop is not None and (o <= stop if buy else o >= stop)
        if not opened_beyond_stop and (o >= target if buy else o <= target):
            hit_sl = False
    if hit_sl and stop is not None:
        return "stop_loss", (min(o, stop) if buy else max(o, stop))
    assert target is not None
    return "target", (max(o, target) if buy else min(o, target))


def walk_leg(
    leg: OptionLeg,
    side: str,
    stop_loss: Level | None,
    target: Level | None,
    max_reentries: int,
    entry_sig: np.ndarray,
    exit_sig: np.ndarray,
    ts: np.ndarray,
    close: np.ndarray,
    s: int,
    e: int,
    sq: int,
    bar_ns: int,
    chain: DayChain,
) -> tuple[list[LegPosition], list[LegSkip]]:
    """The positions and skipped entries of one leg node over one day: underlying bars
    [s, e), its square-off bar sq (e without one), signals per underlying bar."""
    buy = side == "buy"
    sign = 1.0 if buy else -1.0
    positions: list[LegPosition] = []
    skips: list[LegSkip] = []
    day_ts = ts[s:e]
    # An entry decided at bar t's close needs a bar left before the square-off (as the kernel).
    last_entry = min(sq, e) - 1
    last_exit = min(e - 1, sq)
    t_from, reused = s, 0
    while t_from < last_entry:
        found = np.flatnonzero(entry_sig[t_from:last_entry])
        if not found.size:
            break
        t = t_from + int(found[0])
        sel = select_contract(leg, chain.day, chain.listed, float(close[t]))
        if sel.strike is None or sel.expiry is None:
            skips.append(LegSkip(t, NO_CONTRACT, sel.problem or "no listed contract", sel))
            break
        c = chain.contract(sel.expiry, sel.strike, leg.option_type)
        j = c.first_at(int(ts[t]) + bar_ns) if c is not None else 0
        if c is None or j >= c.square_off:
            skips.append(LegSkip(t, NO_QUOTE, "the contract has no bar after the signal before the square-off", sel))
            break
        entry = float(c.open[j])
        stop = level_price(stop_loss, entry, sign, stop=True) if stop_loss else None
        tgt = level_price(target, entry, sign, stop=False) if target else None
        n = int(c.ts.shape[0])
        u0 = s + int(np.searchsorted(day_ts, c.ts[j], side="left"))
        xs = np.flatnonzero(exit_sig[u0:last_exit]) if u0 < last_exit else np.zeros(0, dtype=np.int64)
        u = u0 + int(xs[0]) if xs.size else -1
        x_sig = c.first_at(int(ts[u]) + bar_ns) if u >= 0 else n
        x_sq = c.square_off
        x_end = min(x_sig, x_sq, n)
        x = _hits(c, j, x_end, buy, stop, tgt)
        if x < x_end:
            reason, px = _level_exit(c, x, buy, stop, tgt)
            positions.append(LegPosition(sel, c, reused, t, j, entry, x, px, int(c.ts[x]), reason, -1))
            if reason == "stop_loss" and reused < max_reentries:
                reused += 1
                t_from = s + int(np.searchsorted(day_ts, c.ts[x], side="left"))
                continue
            break
        if x_sig < n and x_sig <= x_sq:
            positions.append(
                LegPosition(sel, c, reused, t, j, entry, x_sig, float(c.open[x_sig]), int(c.ts[x_sig]), "exit_signal", u)
            )
        elif x_sq < n:
            positions.append(
                LegPosition(sel, c, reused, t, j, entry, x_sq, float(c.open[x_sq]), int(c.ts[x_sq]), "square_off", -1)
            )
        else:
            last = n - 1
            positions.append(
                LegPosition(
                    sel, c, reused, t, j, entry, last, float(c.close[last]), int(c.ts[last]) + bar_ns, "square_off", -1
                )
            )
        break
    return positions, skips
