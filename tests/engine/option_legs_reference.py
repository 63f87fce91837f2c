"""An independent, plain-Python model of option legs (issue 15, items 2 and 3), for the tests.

Written from the issue's definition without any of the engine's or the domain's code: the
chain is a list of row dicts, the clock walks the day minute by minute, and every position is
a dict. Entry and exit signals are given per underlying bar (the tests compute them).

- Listed expiries: those with a bar in the day's session, on or after the day; current_week
  the nearest, next_week the one after, current_month the last of the day's month (when none
  of it is left, the last of the next month).
- Listed strikes: the strikes of that expiry with a bar in the day's session (CE or PE).
- ATM: the listed strike nearest to the signal bar's close, a tie to the lower; ATM+N / ATM-N
  N listed strikes above / below; OTM N above ATM for a CE, below for a PE; ITM N the other way.
- Fill at the open of the contract's first bar at or after the minute after the signal bar,
  before the square-off; none: skip `no_quote` (and the node is done for the day); no listed
  contract: skip `no_contract`.
- Inside each contract bar from the fill: stop and target on the premium; a bar opening beyond
  either exits at its open; when the open lies between them and the range reaches both, the stop.
- An exit signal at the close of an underlying bar (not the day's last, before the square-off
  minute) fills at the contract's next bar's open; the square-off at the contract's first bar at
  or after the square-off minute; else the contract's last close of the day.
- After a stop-out a node may enter again, on a signal at the close of the same minute or later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass
class RefLeg:
    id: str
    option_type: str  # CE / PE
    strike: str  # ATM, ATM+2, ATM-1, OTM 2, ITM 1
    expiry: str
    side: str
    quantity: float
    stop: tuple[str, float] | None
    target: tuple[str, float] | None
    max_reentries: int
    entry: list[bool]  # per underlying bar
    exit: list[bool]


def _offset(selector: str, option_type: str) -> int:
    if selector == "ATM":
        return 0
    if selector.startswith("ATM+"):
        return int(selector[4:])
    if selector.startswith("ATM-"):
        return -int(selector[4:])
    kind, n = selector.split()
    above = (kind == "OTM") == (option_type == "CE")
    return int(n) if above else -int(n)


def _expiry(day: date, expiries: list[date], rule: str) -> date | None:
    ahead = sorted(x for x in set(expiries) if x >= day)
    if rule == "current_week":
        return ahead[0] if ahead else None
    if rule == "next_week":
        return ahead[1] if len(ahead) >= 2 else None
    same = [x for x in ahead if x.year == day.year and x.month == day.month]
    if same:
        return same[-1]
    first_next = (date(day.year, day.month, 28) + timedelta(days=4)).replace(day=1)
    nxt = [x for x in ahead if x.year == first_next.year and x.month == first_next.month]
    return nxt[-1] if nxt else None


def _level(entry: float, level: tuple[str, float], buy: bool, stop: bool) -> float:
    kind, value = level
    up = (not buy) if stop else buy  # which way the level lies from the fill
    if kind == "percent":
        return entry * (1 + value / 100) if up else entry * (1 - value / 100)
    return entry + value if up else entry - value


def simulate_legs(
    under: list[dict],  # {"ns", "open", "high", "low", "close"}, ascending
    chain: list[dict],  # {"ns", "expiry": date, "strike", "option_type", "open", "high", "low", "close"}
    legs: list[RefLeg],
    tz: str,
    session: tuple[str | None, str | None],
    square_off: str | None,
    slippage_pct: float = 0.0,
    commission_pct: float = 0.0,
) -> tuple[list[dict], list[dict]]:
    zone = ZoneInfo(tz)

    def local(ns: int) -> datetime:
        return datetime.fromtimestamp(ns / 1e9, zone)

    def in_session(ns: int) -> bool:
        hhmm = local(ns).strftime("%H:%M")
        return (session[0] is None or hhmm >= session[0]) and (session[1] is None or hhmm < session[1])

    under_days: dict[date, list[int]] = {}
    for i, b in enumerate(under):
        if in_session(b["ns"]):
            under_days.setdefault(local(b["ns"]).date(), []).append(i)
    chain_days: dict[date, list[dict]] = {}
    for r in chain:
        if in_session(r["ns"]):
            chain_days.setdefault(local(r["ns"]).date(), []).append(r)

    trades: list[dict] = []
    skips: list[dict] = []
    minute_ns = 60 * 1_000_000_000
    for day in sorted(under_days):
        bars = under_days[day]
        rows = chain_days.get(day, [])
        quotes: dict[tuple, dict[int, dict]] = {}  # contract -> minute ns -> row
        for r in rows:
            quotes.setdefault((r["expiry"], r["strike"], r["option_type"]), {})[r["ns"]] = r
        expiries = sorted({r["expiry"] for r in rows})
        bar_at = {under[i]["ns"]: (j, i) for j, i in enumerate(bars)}
        first_ns = under[bars[0]]["ns"]
        last_ns = max([under[bars[-1]]["ns"]] + [r["ns"] for r in rows])
        state = {leg.id: {"pos": None, "pending": None, "exit_at": None, "done": False, "used": 0} for leg in legs}

        def hhmm(ns: int) -> str:
            return local(ns).strftime("%H:%M")

        def close_pos(leg: RefLeg, st: dict, ns: int, px: float, reason: str, exit_ns: int, day: date = day) -> None:
            p = st["pos"]
            buy = leg.side == "buy"
            sign = 1 if buy else -1
            slip, comm = slippage_pct / 100, commission_pct / 100
            entry_px = p["entry"] * (1 + sign * slip)
            exit_px = px * (1 - sign * slip)
            commission = (entry_px + exit_px) * leg.quantity * comm
            trades.append({
                "day": day, "node": leg.id, "re_entry": p["re"], "contract": p["contract"], "atm": p["atm"],
                "spot": p["spot"], "signal_ns": p["signal_ns"], "entry_ns": p["entry_ns"], "entry_raw": p["entry"],
                "exit_ns": exit_ns, "exit_raw": px, "reason": reason,
                "pnl": sign * (exit_px - entry_px) * leg.quantity - commission,
            })
            st["pos"] = None

        ns = first_ns
        while ns <= last_ns:
            for leg in legs:
                st = state[leg.id]
                buy = leg.side == "buy"
                after_sq = square_off is not None and hhmm(ns) >= square_off
                if st["pending"] is not None:
                    pend = st["pending"]
                    q = quotes.get(pend["contract"], {}).get(ns)
                    if after_sq:
                        skips.append({"day": day, "node": leg.id, "signal_ns": pend["signal_ns"], "reason": "no_quote"})
                        st["pending"], st["done"] = None, True
                    elif q is not None:
                        st["pending"] = None
                        st["pos"] = {**pend, "entry": q["open"], "entry_ns": ns}
                        p = st["pos"]
                        p["stop"] = _level(q["open"], leg.stop, buy, True) if leg.stop else None
                        p["target"] = _level(q["open"], leg.target, buy, False) if leg.target else None
                if st["pos"] is None:
                    continue
                q = quotes.get(st["pos"]["contract"], {}).get(ns)
                if q is None:
                    continue
                if st["exit_at"] is not None:
                    close_pos(leg, st, ns, q["open"], "exit_signal", ns)
                    st["exit_at"], st["done"] = None, True
                    continue
                if after_sq:
                    close_pos(leg, st, ns, q["open"], "square_off", ns)
                    st["done"] = True
                    continue
                p = st["pos"]
                stop, target, o = p["stop"], p["target"], q["open"]
                hit_stop = stop is not None and (q["low"] <= stop if buy else q["high"] >= stop)
                hit_target = target is not None and (q["high"] >= target if buy else q["low"] <= target)
                if not (hit_stop or hit_target):
                    continue
                opened_past_stop = stop is not None and (o <= stop if buy else o >= stop)
                opened_past_target = target is not None and (o >= target if buy else o <= target)
                if opened_past_stop:
                    reason, px = "stop_loss", o
                elif opened_past_target:
                    reason, px = "target", o
                elif hit_stop:
                    reason, px = "stop_loss", stop
                else:
                    reason, px = "target", target
                close_pos(leg, st, ns, px, reason, ns)
                if reason == "stop_loss" and st["used"] < leg.max_reentries:
                    st["used"] += 1
                else:
                    st["done"] = True
            # the underlying bar of this minute closes: decisions
            if ns in bar_at:
                j, i = bar_at[ns]
                has_next = j + 1 < len(bars)
                next_ns = under[bars[j + 1]]["ns"] if has_next else None
                for leg in legs:
                    st = state[leg.id]
                    if st["pos"] is not None:
                        if leg.exit[i] and has_next and st["exit_at"] is None and (
                                square_off is None or hhmm(ns) < square_off):
                            st["exit_at"] = ns
                        continue
                    if st["done"] or st["pending"] is not None or not leg.entry[i]:
                        continue
                    if not has_next or (square_off is not None and hhmm(next_ns) >= square_off):
                        continue
                    spot = under[i]["close"]
                    expiry = _expiry(day, expiries, leg.expiry)
                    strikes = sorted({r["strike"] for r in rows if r["expiry"] == expiry})
                    if expiry is None or not strikes:
                        skips.append({"day": day, "node": leg.id, "signal_ns": ns, "reason": "no_contract"})
                        st["done"] = True
                        continue
                    atm = min(strikes, key=lambda k: (abs(k - spot), k))
                    pos = strikes.index(atm) + _offset(leg.strike, leg.option_type)
                    if not 0 <= pos < len(strikes):
                        skips.append({"day": day, "node": leg.id, "signal_ns": ns, "reason": "no_contract"})
                        st["done"] = True
                        continue
                    st["pending"] = {"contract": (expiry, strikes[pos], leg.option_type), "atm": atm, "spot": spot,
                                     "signal_ns": ns, "re": st["used"]}
            ns += minute_ns
        for leg in legs:
            st = state[leg.id]
            if st["pending"] is not None:
                skips.append({"day": day, "node": leg.id, "signal_ns": st["pending"]["signal_ns"], "reason": "no_quote"})
            if st["pos"] is not None:
                mine = quotes[st["pos"]["contract"]]
                last = max(mine)
                close_pos(leg, st, last, mine[last]["close"], "square_off", last + minute_ns)
    return trades, skips
