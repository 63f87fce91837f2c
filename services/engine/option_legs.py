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

from dataclasses import dataclass
from datetime import date

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


class DayChain:
    """A day's option chain (domain.option_chain's shared frame) restricted to the day's
    session: the expiries and strikes listed that day, and the bars of a contract when a leg
    asks for it (a day has thousands of contracts and a leg trades one or two of them)."""

    def __init__(
        self,
        frame: pd.DataFrame | None,
        day: date,
        tz: str,
        session_start: int | None,
        session_end: int | None,
        square_off: int | None,
    ) -> None:
        self.day = day
        self._sq_minute = square_off
        self._frame = frame
        self.listed: dict[date, np.ndarray] = {}
        if frame is None or len(frame) == 0:
            self._rows = np.zeros(0, dtype=np.int64)
            return
        ts = pd.DatetimeIndex(frame["timestamp"]).tz_convert("UTC").as_unit("ns").asi8  # any resolution given
        wall = local_wall(ts, tz)
        local_day = np.floor_divide(wall, NS_PER_DAY)
        minute = (wall - local_day * NS_PER_DAY) // NS_PER_MINUTE
        keep = local_day == epoch_day(day)
        if session_start is not None:
            keep &= minute >= session_start
        if session_end is not None:
            keep &= minute < session_end
        self._rows = np.flatnonzero(keep)  # the frame's rows of the day's session
        self._ts, self._minute = ts[self._rows], minute[self._rows]
        self._expiry = frame["expiry"].to_numpy().astype("datetime64[D]").astype(np.int64)[self._rows]
        self._strike = frame["strike"].to_numpy(dtype=np.float64)[self._rows]
        self._put = (frame["option_type"] == "PE").to_numpy(dtype=bool)[self._rows]
        epoch = date(1970, 1, 1).toordinal()
        for d in np.unique(self._expiry).tolist():
            self.listed[date.fromordinal(epoch + d)] = np.unique(self._strike[self._expiry == d])

    def contract(self, expiry: date, strike: float, option_type: str) -> ContractBars | None:
        """The contract's bars of the day in time order (copies: a trade keeps them for its
        documents, not the whole day's chain), or None when it has none."""
        if self._frame is None or self._rows.size == 0:
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
            expiry, float(strike), option_type, self._ts[mine],
            *(self._frame[c].to_numpy(dtype=np.float64)[rows] for c in ("open", "high", "low", "close", "volume")), sq,
        )


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
