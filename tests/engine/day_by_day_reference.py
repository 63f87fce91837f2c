"""An independent, plain-Python model of the day-by-day rules, for the tests.

Written from the documented semantics (services/engine/day_by_day.py) without
reusing any of the engine's code: signals are given per bar as Python
booleans (computed by the tests from TA-Lib / pandas), and the bar loop is a
straightforward object-per-position simulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo


@dataclass
class RefNode:
    id: str
    side: str  # buy / sell
    quantity: float
    stop: tuple[str, float] | None
    target: tuple[str, float] | None
    max_reentries: int
    entry: list[bool]  # signal at each bar's close
    exit: list[bool]  # combined exit signal at each bar's close


@dataclass
class RefTrade:
    node: str
    re_entry: int
    entry_bar: int
    exit_bar: int
    entry_raw: float
    exit_raw: float
    reason: str


def local_days(ts_ns: list[int], tz: str, start: str | None, end: str | None) -> list[list[int]]:
    """Bar indices of each local day, session hours only (HH:MM, end exclusive)."""
    zone = ZoneInfo(tz)
    days: dict = {}
    for i, ns in enumerate(ts_ns):
        dt = datetime.fromtimestamp(ns / 1e9, zone)
        hhmm = dt.strftime("%H:%M")
        if start and hhmm < start:
            continue
        if end and hhmm >= end:
            continue
        days.setdefault(dt.date(), []).append(i)
    return [days[d] for d in sorted(days)]


def simulate(o, h, l, c, day_bars: list[list[int]], minutes: list[str], square_off: str | None, nodes: list[RefNode]):  # noqa: E741
    trades: list[RefTrade] = []
    for bars in day_bars:
        sq_bar = next((b for b in bars if square_off and minutes[b] >= square_off), None)
        pos: dict[str, dict] = {}
        done: set[str] = set()
        used = {n.id: 0 for n in nodes}
        want_in: set[str] = set()
        want_out: set[str] = set()
        finished = False
        for j, b in enumerate(bars):
            nxt = bars[j + 1] if j + 1 < len(bars) else None
            for n in nodes:
                if n.id in want_out and n.id in pos:
                    p = pos.pop(n.id)
                    trades.append(RefTrade(n.id, p["re"], p["bar"], b, p["px"], o[b], "exit_signal"))
                    done.add(n.id)
            want_out.clear()
            if b == sq_bar:
                for n in nodes:
                    if n.id in pos:
                        p = pos.pop(n.id)
                        trades.append(RefTrade(n.id, p["re"], p["bar"], b, p["px"], o[b], "square_off"))
                finished = True
                break
            for n in nodes:
                if n.id in want_in:
                    px = o[b]
                    sgn = 1 if n.side == "buy" else -1
                    stop = tgt = None
                    if n.stop:
                        stop = px * (1 - sgn * n.stop[1] / 100) if n.stop[0] == "percent" else px - sgn * n.stop[1]
                    if n.target:
                        tgt = px * (1 + sgn * n.target[1] / 100) if n.target[0] == "percent" else px + sgn * n.target[1]
                    pos[n.id] = {"bar": b, "px": px, "re": used[n.id], "stop": stop, "tgt": tgt}
            want_in.clear()
            for n in nodes:
                if n.id not in pos:
                    continue
                p = pos[n.id]
                buy = n.side == "buy"
                sl_hit = p["stop"] is not None and (l[b] <= p["stop"] if buy else h[b] >= p["stop"])
                tg_hit = p["tgt"] is not None and (h[b] >= p["tgt"] if buy else l[b] <= p["tgt"])
                # DESIGN.md: a bar that opens beyond the target exits at its open, the open
                # having come first; the stop wins only when the open lies between the two.
                opens_past_target = p["tgt"] is not None and (o[b] >= p["tgt"] if buy else o[b] <= p["tgt"])
                opens_past_stop = p["stop"] is not None and (o[b] <= p["stop"] if buy else o[b] >= p["stop"])
                if opens_past_target and not opens_past_stop:
                    sl_hit = False
                if sl_hit:
                    px = min(o[b], p["stop"]) if buy else max(o[b], p["stop"])
                    del pos[n.id]
                    trades.append(RefTrade(n.id, p["re"], p["bar"], b, p["px"], px, "stop_loss"))
                    if used[n.id] < n.max_reentries:
                        used[n.id] += 1
                    else:
                        done.add(n.id)
                elif tg_hit:
                    px = max(o[b], p["tgt"]) if buy else min(o[b], p["tgt"])
                    del pos[n.id]
                    trades.append(RefTrade(n.id, p["re"], p["bar"], b, p["px"], px, "target"))
                    done.add(n.id)
            if nxt is None:
                continue
            for n in nodes:
                if n.id in pos:
                    if n.exit[b] and (sq_bar is None or nxt <= sq_bar):
                        want_out.add(n.id)
                elif n.id not in done and n.entry[b] and (sq_bar is None or nxt < sq_bar):
                    want_in.add(n.id)
        if not finished:
            last = bars[-1]
            for n in nodes:
                if n.id in pos:
                    p = pos.pop(n.id)
                    trades.append(RefTrade(n.id, p["re"], p["bar"], last, p["px"], c[last], "square_off"))
    return trades
