"""Issue 15 end to end on the standalone stack: a short straddle (and a bought OTM call of the
next week) on DEMO-MINUTE, its legs traded on the demo chain DEMO-OPTIONS that results
generated at first start and the engine read day by day over gRPC. The seed-004 flow's
positions name option contracts and equal, trade for trade, the independent plain-Python
model (tests/engine/option_legs_reference.py) run on the same bars and chain."""

from __future__ import annotations

import signal
import time
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import requests

from services.results.demo_chain import demo_chain_days
from services.results.demo_datasets import demo_minute
from tests.engine.option_legs_reference import RefLeg, simulate_legs
from tests.stacks import start_standalone

TZ = "Asia/Kolkata"
START, END = date(2024, 1, 8), date(2024, 1, 12)  # Monday to Friday: Thursday 11th is an expiry
ENTRIES = [
    {"id": "entry-ce", "condition": "time >= 09:20", "side": "sell", "quantity": 50,
     "instrument": {"type": "option", "option_type": "CE", "strike": "ATM", "expiry": "current_week"},
     "stop_loss": {"type": "percent", "value": 30}, "target": {"type": "percent", "value": 50}},
    {"id": "entry-pe", "condition": "time >= 09:20", "side": "sell", "quantity": 50,
     "instrument": {"type": "option", "option_type": "PE", "strike": "ATM", "expiry": "current_week"},
     "stop_loss": {"type": "percent", "value": 30}, "target": {"type": "percent", "value": 50}},
    {"id": "otm-call", "condition": "time >= 10:00", "side": "buy", "quantity": 25,
     "instrument": {"type": "option", "option_type": "CE", "strike": "OTM 2", "expiry": "next_week"},
     "stop_loss": {"type": "percent", "value": 20}, "max_reentries": 1},
]
STRATEGY = {"name": "Short straddle (e2e)", "dataset": {"ticker": "DEMO-MINUTE", "interval": "1m"},
            "session": {"square_off": "15:15"}, "entries": ENTRIES,
            "exits": [{"id": "x-afternoon", "condition": "time >= 14:00", "entries": ["otm-call"]}]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = start_standalone(tmp_path_factory.mktemp("legs-data"), tmp_path_factory.mktemp("legs-logs"))
    yield s
    codes = s.stop(signal.SIGINT)
    assert codes["standalone"] == 0, s.log_text()


def _reference() -> list[dict]:
    bars = demo_minute().bars
    zone = ZoneInfo(TZ)
    minutes = [datetime.fromtimestamp(ns / 1e9, zone).strftime("%H:%M") for ns in bars.ts.tolist()]
    keep = [i for i, ns in enumerate(bars.ts.tolist()) if START <= datetime.fromtimestamp(ns / 1e9, zone).date() <= END]
    under = [{"ns": int(bars.ts[i]), "open": float(bars.open[i]), "high": float(bars.high[i]),
              "low": float(bars.low[i]), "close": float(bars.close[i])} for i in keep]
    chain = []
    for day, table in demo_chain_days():
        if START <= day <= END:
            frame = table.to_pandas()
            for r in frame.itertuples(index=False):
                chain.append({"ns": r.timestamp.value, "expiry": r.expiry, "strike": float(r.strike),
                              "option_type": r.option_type, "open": r.open, "high": r.high, "low": r.low,
                              "close": r.close})
    exit_after_two = [minutes[i] >= "14:00" for i in keep]
    legs = []
    for e in ENTRIES:
        sl, tg = e.get("stop_loss"), e.get("target")
        start = e["condition"].removeprefix("time >= ")
        legs.append(RefLeg(e["id"], e["instrument"]["option_type"], e["instrument"]["strike"], e["instrument"]["expiry"],
                           e["side"], e["quantity"], (sl["type"], sl["value"]) if sl else None,
                           (tg["type"], tg["value"]) if tg else None, e.get("max_reentries", 0),
                           [minutes[i] >= start for i in keep],
                           exit_after_two if e["id"] == "otm-call" else [False] * len(keep)))
    trades, skips = simulate_legs(under, chain, legs, TZ, (None, None), "15:15")
    assert not skips
    return trades


def test_straddle_on_the_demo_chain_matches_the_reference(stack):
    base, headers = stack.base_url, {"X-API-Key": stack.api_key}
    r = requests.post(f"{base}/api/v1/strategies", json=STRATEGY, headers=headers, timeout=30)
    assert r.status_code == 201, r.text
    sid = r.json()["strategy_id"]
    r = requests.post(f"{base}/api/v1/backtest/run", json={
        "user_id": "user_1", "strategy_id": sid, "start_date": START.isoformat(), "end_date": END.isoformat()},
        headers=headers, timeout=30)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    deadline = time.time() + 120
    while (status := requests.get(f"{base}/api/v1/backtest/status/{job_id}", headers=headers, timeout=30).json())[
            "status"] != "completed":
        assert status["status"] in ("queued", "running") and time.time() < deadline, (status, stack.log_text())
        time.sleep(0.2)

    zone = ZoneInfo(TZ)
    want = sorted(_reference(), key=lambda t: (t["entry_ns"], t["node"]))
    got = []
    for n in range((END - START).days + 1):
        day = date.fromordinal(START.toordinal() + n)
        r = requests.get(f"{base}/api/v1/backtest/day/user_1/{sid}/{day.strftime('%d-%m-%Y')}", headers=headers,
                         timeout=30)
        assert r.status_code == 200, r.text
        got += r.json()["positions"]
    got.sort(key=lambda p: (p["entry_time"], p["position_id"]))
    assert len(got) == len(want) > 0
    for p, w in zip(got, want):
        expiry, strike, otype = w["contract"]
        assert p["symbol"] == f"DEMO-MINUTE:{expiry.isoformat()}:OPT:{strike:g}:{otype}"
        assert (p["position_id"], p["strike"], p["option_type"], p["exit_reason_code"]) == (
            w["node"], strike, otype, w["reason"])
        local = datetime.fromtimestamp(w["entry_ns"] / 1e9, zone).strftime("%Y-%m-%dT%H:%M:%S")
        assert p["entry_time"] == local
        assert p["exit_time"] == datetime.fromtimestamp(w["exit_ns"] / 1e9, zone).strftime("%Y-%m-%dT%H:%M:%S")
        assert p["entry_price"] == pytest.approx(w["entry_raw"], rel=1e-12)
        assert p["exit_price"] == pytest.approx(w["exit_raw"], rel=1e-12)
        assert p["pnl"] == pytest.approx(w["pnl"], rel=1e-9, abs=1e-9)
        assert p["demo_minute_spot_at_entry"] > 0 and p["demo_minute_spot_at_exit"] > 0
    assert len({p["exit_reason_code"] for p in got}) >= 2  # more than one way out was compared
