"""Day-by-day strategies that trade option legs agree, trade for trade, with an independent
plain-Python model of the issue's rules (tests/engine/option_legs_reference.py) on a small
hand-made chain: the contract picked, fill times and prices, stops and targets (gaps through
them included), exit signals, the square-off, P&L, and the skipped entries."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from domain.rules.strategy import compile_strategy
from services.engine.bars import Bars
from services.engine.day_by_day import NoChain, day_documents, run_day_by_day

from .option_legs_reference import RefLeg, simulate_legs

TZ = "Asia/Kolkata"
NS_MIN = 60 * 1_000_000_000
DAYS = [date(2024, 10, 21), date(2024, 10, 24), date(2024, 10, 25), date(2024, 10, 31), date(2024, 11, 29)]
WEEKLIES = [date(2024, 10, 24), date(2024, 10, 31), date(2024, 11, 7), date(2024, 11, 14), date(2024, 11, 21),
            date(2024, 11, 28), date(2024, 12, 5), date(2024, 12, 12), date(2024, 12, 19), date(2024, 12, 26)]
MINUTES = 75  # 09:15 .. 10:29
STRIKES = np.arange(23700.0, 24301.0, 50.0)


def _listed_expiries(day: date) -> list[date]:
    ahead = [e for e in WEEKLIES if e >= day]
    if day == date(2024, 10, 25):
        return ahead[:1]  # one expiry: next_week names none
    return ahead[:4]


def make_market(seed: int = 3) -> tuple[Bars, dict[date, pd.DataFrame]]:
    """Underlying minute bars around 24000 and a chain priced loosely off them, with holes:
    bars missing at random, contracts that start quoting late, big gaps at the open, and on
    2024-10-25 calls that stop quoting at 09:20."""
    rng = np.random.default_rng(seed)
    ts_all, o_all, h_all, l_all, c_all = [], [], [], [], []
    chains: dict[date, pd.DataFrame] = {}
    level = 24000.0
    for day in DAYS:
        start = pd.Timestamp(f"{day.isoformat()} 09:15", tz=TZ).tz_convert("UTC").value
        ts = start + np.arange(MINUTES, dtype=np.int64) * NS_MIN
        steps = rng.normal(0, 6.0, MINUTES)
        close = level + np.cumsum(steps)
        open_ = np.r_[level, close[:-1]] + rng.normal(0, 2.0, MINUTES)
        high = np.maximum(open_, close) + np.abs(rng.normal(0, 4.0, MINUTES))
        low = np.minimum(open_, close) - np.abs(rng.normal(0, 4.0, MINUTES))
        level = float(close[-1])
        ts_all.append(ts), o_all.append(open_), h_all.append(high), l_all.append(low), c_all.append(close)
        rows = []
        for expiry in _listed_expiries(day):
            weeks = 1 + (expiry - day).days / 7
            for strike in STRIKES:
                for otype in ("CE", "PE"):
                    if rng.random() < 0.03:
                        continue  # a contract with no bar that day
                    late = int(rng.integers(1, 12)) if rng.random() < 0.15 else 0
                    tv = 40.0 * weeks * np.exp(-((strike - 24000.0) / 250.0) ** 2) + 3.0
                    drift = np.cumsum(rng.normal(0, 0.015, MINUTES))
                    for m in range(late, MINUTES):
                        if rng.random() < 0.08:
                            continue  # a missing quote
                        if day == date(2024, 10, 25) and otype == "CE" and m > 5:
                            continue  # calls stop quoting after 09:20
                        scale = float(np.exp(drift[m]))
                        po, pc = (max(0.5, (max(0.0, (s - strike) if otype == "CE" else (strike - s)) + tv) * scale)
                                  for s in (open_[m], close[m]))
                        if rng.random() < 0.012:
                            po *= float(rng.choice([0.55, 1.6]))  # a gap at the open
                        ph = max(po, pc) * (1 + abs(rng.normal(0, 0.015)))
                        pl = min(po, pc) * (1 - abs(rng.normal(0, 0.015)))
                        rows.append((ts[m], expiry, strike, otype, po, ph, pl, pc, float(rng.integers(1, 500))))
        frame = pd.DataFrame(rows, columns=["ts", "expiry", "strike", "option_type", "open", "high", "low", "close",
                                            "volume"])
        frame.insert(0, "timestamp", pd.to_datetime(frame.pop("ts"), utc=True))
        frame["expiry"] = pd.to_datetime(frame["expiry"]).astype("datetime64[ns]")
        frame = frame.sort_values(["timestamp", "expiry", "strike", "option_type"], ignore_index=True)
        chains[day] = frame
    ts = np.concatenate(ts_all)
    bars = Bars(ts, np.concatenate(o_all), np.concatenate(h_all), np.concatenate(l_all), np.concatenate(c_all),
                np.ones(ts.size), timezone=TZ, calendar="sessions")
    return bars, chains


@pytest.fixture(scope="module")
def market() -> tuple[Bars, dict[date, pd.DataFrame]]:
    return make_market()


def _entry(nid: str, otype: str, side: str, strike: str, expiry: str, condition: str, *, qty: int = 50,
           stop=None, target=None, reentries: int = 0) -> dict:
    node = {"id": nid, "condition": condition, "side": side, "quantity": qty,
            "instrument": {"type": "option", "option_type": otype, "strike": strike, "expiry": expiry},
            "max_reentries": reentries}
    if stop:
        node["stop_loss"] = {"type": stop[0], "value": stop[1]}
    if target:
        node["target"] = {"type": target[0], "value": target[1]}
    return node


CASES = {
    # The example: a short ATM straddle of the current week, stop 30 %, target 50 %.
    "short_straddle": (
        {"session": {"square_off": "10:20"},
         "entries": [
             _entry("entry-ce", "CE", "sell", "ATM", "current_week", "time >= 09:20", stop=("percent", 30),
                    target=("percent", 50)),
             _entry("entry-pe", "PE", "sell", "ATM", "current_week", "time >= 09:20", stop=("percent", 30),
                    target=("percent", 50)),
         ]},
        0.0, 0.0,
    ),
    "offsets_and_expiries": (
        {"session": {"square_off": "10:25"},
         "entries": [
             _entry("ce-up2-next", "CE", "buy", "ATM+2", "next_week", "time >= 09:17", stop=("percent", 8),
                    target=("percent", 10), reentries=3),
             _entry("pe-dn1-month", "PE", "buy", "ATM-1", "current_month", "close > open", stop=("points", 4),
                    target=("points", 6), reentries=2),
             _entry("ce-otm2", "CE", "sell", "OTM 2", "current_week", "time >= 09:30", stop=("percent", 10),
                    reentries=2),
             _entry("pe-otm3", "PE", "sell", "OTM 3", "next_week", "time >= 09:16", target=("percent", 12)),
             _entry("ce-itm1", "CE", "buy", "ITM 1", "current_month", "close < open and time >= 09:40",
                    stop=("percent", 5), target=("percent", 5), reentries=1),
             _entry("pe-itm2", "PE", "sell", "ITM 2", "current_week", "time >= 09:25", stop=("points", 5),
                    target=("points", 5), reentries=4),
             _entry("ce-far", "CE", "buy", "ATM+9", "current_week", "time >= 09:20"),
         ],
         "exits": [{"id": "x-time", "condition": "time >= 10:05", "entries": ["ce-up2-next", "pe-itm2"]},
                   {"id": "x-down", "condition": "close < open and time >= 09:50", "entries": ["pe-dn1-month"]}]},
        0.0, 0.0,
    ),
    "session_no_square_off_costs": (
        {"session": {"start": "09:16", "end": "10:25"},
         "entries": [
             _entry("ce-atm-1", "CE", "sell", "ATM-1", "current_week", "time >= 09:21", stop=("percent", 25),
                    reentries=1),
             _entry("pe-atm-p1", "PE", "buy", "ATM+1", "current_month", "time >= 09:35", target=("percent", 15)),
         ],
         "exits": [{"id": "x1", "condition": "close > open and time >= 10:00", "entries": ["pe-atm-p1", "ce-atm-1"]}]},
        0.1, 0.05,
    ),
}


def _minutes(bars: Bars) -> list[str]:
    zone = ZoneInfo(TZ)
    return [datetime.fromtimestamp(ns / 1e9, zone).strftime("%H:%M") for ns in bars.ts.tolist()]


def _signal(text: str, bars: Bars, minutes: list[str]) -> list[bool]:
    """The few conditions the cases use, computed here from their meaning."""
    out = []
    for i, m in enumerate(minutes):
        o, c = float(bars.open[i]), float(bars.close[i])
        value = True
        for part in text.split(" and "):
            if part.startswith("time >= "):
                value &= m >= part[len("time >= "):]
            elif part == "close > open":
                value &= c > o
            elif part == "close < open":
                value &= c < o
            else:
                raise AssertionError(part)
        out.append(value)
    return out


def _reference(case: str, bars: Bars, chains: dict[date, pd.DataFrame]):
    definition, slip, comm = CASES[case]
    minutes = _minutes(bars)
    legs = []
    for e in definition["entries"]:
        exits = [x["condition"] for x in definition.get("exits", []) if e["id"] in x.get("entries", [e["id"]])]
        exit_sig = [any(v) for v in zip(*[_signal(x, bars, minutes) for x in exits])] if exits else [False] * len(minutes)
        sl, tg = e.get("stop_loss"), e.get("target")
        legs.append(RefLeg(
            e["id"], e["instrument"]["option_type"], e["instrument"]["strike"], e["instrument"]["expiry"], e["side"],
            e["quantity"], (sl["type"], sl["value"]) if sl else None, (tg["type"], tg["value"]) if tg else None,
            e["max_reentries"], _signal(e["condition"], bars, minutes), exit_sig,
        ))
    under = [{"ns": int(bars.ts[i]), "open": float(bars.open[i]), "high": float(bars.high[i]),
              "low": float(bars.low[i]), "close": float(bars.close[i])} for i in range(bars.ts.size)]
    chain_rows = []
    for frame in chains.values():
        for r in frame.itertuples(index=False):
            chain_rows.append({"ns": r.timestamp.value, "expiry": r.expiry.date(), "strike": float(r.strike),
                               "option_type": r.option_type, "open": r.open, "high": r.high, "low": r.low,
                               "close": r.close})
    sess = definition["session"]
    return simulate_legs(under, chain_rows, legs, TZ, (sess.get("start"), sess.get("end")), sess.get("square_off"),
                         slip, comm)


def _run(case: str, bars: Bars, chains: dict[date, pd.DataFrame]):
    definition, slip, comm = CASES[case]
    strategy = compile_strategy({"name": case, "dataset": {"ticker": "NIFTY"}, **definition})
    return run_day_by_day(bars, strategy, DAYS[0], DAYS[-1], interval="1m", ticker="NIFTY", slippage_pct=slip,
                          commission_pct=comm, chain_for=chains.get)


@pytest.mark.parametrize("case", sorted(CASES))
def test_legs_match_the_reference(market, case):
    bars, chains = market
    run = _run(case, bars, chains)
    ref_trades, ref_skips = _reference(case, bars, chains)
    got = sorted(
        ({"day": d.date, "node": t.node.id, "re_entry": t.re_entry_num,
          "contract": (t.leg.contract.expiry, t.leg.contract.strike, t.leg.contract.option_type),
          "atm": t.leg.selection.atm_strike, "spot": t.leg.selection.spot, "signal_ns": int(run.ts[t.signal_bar]),
          "entry_ns": t.entry_ns, "entry_raw": t.entry_raw, "exit_ns": t.exit_ns, "exit_raw": t.exit_raw,
          "reason": t.reason, "pnl": t.pnl}
         for d in run.days for t in d.trades),
        key=lambda r: (r["day"], r["node"], r["entry_ns"]))
    want = sorted(ref_trades, key=lambda r: (r["day"], r["node"], r["entry_ns"]))
    assert len(got) == len(want) and want
    for g, w in zip(got, want):
        assert {k: v for k, v in g.items() if k != "pnl"} == {k: v for k, v in w.items() if k != "pnl"}
        assert g["pnl"] == pytest.approx(w["pnl"], rel=1e-12, abs=1e-9)
    got_skips = sorted((d.date, run.strategy.entries[k].id, int(run.ts[s.signal_bar]), s.reason)
                       for d in run.days for k, s in d.skips)
    assert got_skips == sorted((s["day"], s["node"], s["signal_ns"], s["reason"]) for s in ref_skips)


def test_the_cases_cover_every_rule(market):
    """The comparison above means something only if the data exercise each rule."""
    bars, chains = market
    trades, skips = [], []
    for case in CASES:
        run = _run(case, bars, chains)
        trades += [(d, t) for d in run.days for t in d.trades]
        skips += [s for d in run.days for _, s in d.skips]
    reasons = Counter(t.reason for _, t in trades)
    assert all(reasons[r] > 0 for r in ("stop_loss", "target", "exit_signal", "square_off")), reasons
    assert Counter(s.reason for s in skips).keys() == {"no_quote", "no_contract"}
    assert any(t.re_entry_num > 0 for _, t in trades)
    # A fill later than the minute after the signal (the contract had no bar then).
    assert any(t.entry_ns > int(bars.ts[t.signal_bar]) + NS_MIN for _, t in trades)
    # A gap through the stop: the bar opened beyond it and the exit is that open.
    gaps = [t for _, t in trades if t.reason == "stop_loss" and t.exit_raw == t.leg.contract.open[t.leg.exit_index]
            and t.exit_raw != t.stop_price]
    assert gaps
    # Each expiry rule, both types and sides, strikes away from ATM.
    for node, rule in (("ce-up2-next", "next_week"), ("pe-dn1-month", "current_month"), ("entry-ce", "current_week")):
        picked = {(d.date, t.leg.contract.expiry) for d, t in trades if t.node.id == node}
        assert picked and all(t.node.instrument.expiry == rule for d, t in trades if t.node.id == node), node
    month = {(d.date, t.leg.contract.expiry) for d, t in trades if t.node.id == "pe-dn1-month"}
    assert (date(2024, 11, 29), date(2024, 12, 26)) in month  # November's last had passed: December's
    assert (date(2024, 10, 21), date(2024, 10, 31)) in month
    assert {t.leg.contract.strike - t.leg.selection.atm_strike for _, t in trades if t.node.id == "ce-up2-next"} == {100.0}
    assert {t.leg.contract.strike - t.leg.selection.atm_strike for _, t in trades if t.node.id == "pe-otm3"} == {-150.0}
    assert {t.leg.contract.strike - t.leg.selection.atm_strike for _, t in trades if t.node.id == "ce-itm1"} == {-50.0}
    assert {t.node.side for _, t in trades} == {"buy", "sell"}


def _tiny(bars_premium: list[tuple[float, float, float, float]], side: str, stop: float, target: float,
          unit: str = "ns"):
    """One underlying at 24010 for six minutes, one CE 24000 contract with the given bars from 09:16."""
    ts = pd.date_range("2024-10-21 09:15", periods=6, freq="min", tz=TZ).tz_convert("UTC").as_unit("ns").asi8
    flat = np.full(6, 24010.0)
    bars = Bars(ts, flat, flat + 1, flat - 1, flat, np.ones(6), timezone=TZ, calendar="sessions")
    n = len(bars_premium)
    frame = pd.DataFrame({
        "timestamp": pd.to_datetime(ts[1:1 + n], utc=True).as_unit(unit),
        "expiry": pd.to_datetime(["2024-10-24"] * n).astype("datetime64[ns]"),
        "strike": np.full(n, 24000.0), "option_type": ["CE"] * n,
        "open": [b[0] for b in bars_premium], "high": [b[1] for b in bars_premium],
        "low": [b[2] for b in bars_premium], "close": [b[3] for b in bars_premium], "volume": np.ones(n),
    })
    strategy = compile_strategy({"name": "tiny", "dataset": {"ticker": "NIFTY"}, "entries": [
        _entry("e", "CE", side, "ATM", "current_week", "time == 09:15", qty=50, stop=("percent", stop),
               target=("percent", target))]})
    run = run_day_by_day(bars, strategy, date(2024, 10, 21), date(2024, 10, 21), ticker="NIFTY",
                         chain_for={date(2024, 10, 21): frame}.get)
    (trade,) = run.days[0].trades
    return trade


@pytest.mark.parametrize(("side", "bar2", "reason", "exit_px"), [
    # Sold at 100, stop 30 % (130), target 50 % (50): the premium opens at 140, through the stop.
    ("sell", (140.0, 150.0, 45.0, 60.0), "stop_loss", 140.0),
    # ... opens at 40, through the target, then rallies through the stop: the open came first.
    ("sell", (40.0, 135.0, 40.0, 120.0), "target", 40.0),
    # ... opens between, the range reaches both: the stop, at its level.
    ("sell", (100.0, 131.0, 49.0, 100.0), "stop_loss", 130.0),
    # Bought at 100, stop 30 % (70), target 50 % (150): opens at 60, through the stop.
    ("buy", (60.0, 160.0, 55.0, 150.0), "stop_loss", 60.0),
])
def test_gaps_through_a_leg_stop(side, bar2, reason, exit_px):
    trade = _tiny([(100.0, 101.0, 99.0, 100.0), bar2, (100.0, 101.0, 99.0, 100.0)], side, 30, 50)
    assert (trade.entry_raw, trade.reason, trade.exit_raw) == (100.0, reason, exit_px)
    sign = 1 if side == "buy" else -1
    assert trade.pnl == pytest.approx(sign * (exit_px - 100.0) * 50)


def test_a_chain_in_seconds_resolution_reads_the_same():
    """pandas and Arrow may hand timestamps in s or us; the instants are what count."""
    legs = [(100.0, 101.0, 99.0, 100.0), (100.0, 131.0, 99.0, 120.0), (100.0, 101.0, 99.0, 100.0)]
    ns, s = _tiny(legs, "sell", 30, 50), _tiny(legs, "sell", 30, 50, unit="s")
    assert (s.entry_ns, s.entry_raw, s.exit_ns, s.exit_raw, s.reason) == (
        ns.entry_ns, ns.entry_raw, ns.exit_ns, ns.exit_raw, ns.reason) == (ns.entry_ns, 100.0, ns.exit_ns, 130.0,
                                                                            "stop_loss")


def test_a_leg_without_a_chain_is_no_chain(market):
    bars, _ = market
    definition, _, _ = CASES["short_straddle"]
    strategy = compile_strategy({"name": "x", "dataset": {"ticker": "NIFTY"}, **definition})
    with pytest.raises(NoChain):
        run_day_by_day(bars, strategy, DAYS[0], DAYS[-1], ticker="NIFTY")


def test_a_day_without_chain_completes_with_skips(market):
    bars, chains = market
    definition, _, _ = CASES["short_straddle"]
    strategy = compile_strategy({"name": "x", "dataset": {"ticker": "NIFTY"}, **definition})
    run = run_day_by_day(bars, strategy, DAYS[0], DAYS[-1], ticker="NIFTY",
                         chain_for=lambda d: None if d == DAYS[1] else chains[d])
    day = run.days[1]
    assert day.trades == [] and sorted(s.reason for _, s in day.skips) == ["no_contract", "no_contract"]
    _, diagnostics, _, summary = day_documents(run, day)
    assert summary.positions == 0
    skipped = [e for e in diagnostics["events_history"].values() if e["event_type"] == "ENTRY_SKIPPED"]
    assert sorted(e["node_id"] for e in skipped) == ["entry-ce", "entry-pe"]
    assert {e["reason"] for e in skipped} == {"no_contract"} and all(e["option_selection"]["contract"] is None
                                                                       for e in skipped)


def _symbol(contract: tuple) -> str:
    expiry, strike, otype = contract
    return f"NIFTY:{expiry.isoformat()}:OPT:{int(strike) if strike.is_integer() else strike}:{otype}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_documents_show_the_legs_in_the_seeds_shapes(market, case):
    """Issue 15, item 4: seed 002's trades and seed 004's positions name the contract
    (NIFTY:2024-10-31:OPT:24350:PE), its strike and type, and the spot at entry and exit;
    the entry event records the selection; a skipped entry is an event saying why."""
    bars, chains = market
    run = _run(case, bars, chains)
    ref_trades, ref_skips = _reference(case, bars, chains)
    by_entry = {(r["node"], r["entry_ns"]): r for r in ref_trades}
    closes = [(int(ns), float(c)) for ns, c in zip(bars.ts.tolist(), bars.close.tolist())]

    def spot_at(ns: int) -> float:  # the last close of a bar that had ended by `ns`
        return [c for t, c in closes if t + NS_MIN <= ns][-1]

    zone = ZoneInfo(TZ)
    seen_skips = 0
    for day in run.days:
        trades, diagnostics, positions, _ = day_documents(run, day)
        json.dumps([trades, diagnostics, positions], allow_nan=False)
        events = diagnostics["events_history"]
        for tr, pos in zip(trades["trades"], positions["positions"], strict=True):
            entry_ns = int(datetime.fromisoformat(tr["entry_time"]).timestamp() * 1e9)
            ref = by_entry[(tr["entry_trigger"], entry_ns)]
            assert tr["symbol"] == pos["symbol"] == _symbol(ref["contract"])
            assert pos["strike"] == tr["strike"] == ref["contract"][1] and pos["option_type"] == ref["contract"][2]
            assert pos["nifty_spot_at_entry"] == tr["nifty_spot_at_entry"] == spot_at(ref["entry_ns"])
            assert pos["nifty_spot_at_exit"] == spot_at(ref["exit_ns"])
            sign = 1 if tr["side"] == "buy" else -1
            assert pos["exit_reason_code"] == ref["reason"]
            assert pos["entry_price"] == pytest.approx(ref["entry_raw"] * (1 + sign * CASES[case][1] / 100))
            assert pos["pnl"] == pytest.approx(ref["pnl"])
            (entry_event,) = [events[i] for i in tr["entry_flow_ids"] if events[i]["event_type"] == "ENTRY"]
            sel = entry_event["option_selection"]
            assert sel["contract"] == tr["symbol"] and sel["spot"] == ref["spot"] and sel["atm_strike"] == ref["atm"]
            assert (sel["strike"], sel["expiry"]) == (ref["contract"][1], ref["contract"][0].isoformat())
            assert tr["symbol"] in entry_event["candle_data"] and "NIFTY" in entry_event["candle_data"]
            assert all(i in events for i in tr["exit_flow_ids"]) and tr["exit_flow_ids"]
        skipped = [e for e in events.values() if e["event_type"] == "ENTRY_SKIPPED"]
        want = sorted((s["node"], s["reason"]) for s in ref_skips if s["day"] == day.date)
        assert sorted((e["node_id"], e["reason"]) for e in skipped) == want
        seen_skips += len(skipped)
        stamps = [datetime.fromisoformat(e["timestamp"]).replace(tzinfo=zone) for e in events.values()]
        assert list(events) == [f"exec_{n:03d}" for n in range(1, len(events) + 1)]
        assert stamps == sorted(stamps)  # events are numbered in time order
    assert seen_skips == len(ref_skips)
