"""The seed-002 client flow end to end, in both modes of a real stack: the JavaScript
example (fetch `/api/v1/backtest/start`, an EventSource on `stream_url` with its
`day_started` / `day_completed` / `backtest_completed` listeners, the day ZIP
download) reproduced request for request, then every trade checked against an
independent calculation on the same bars and every flow id against the diagnostics."""

from __future__ import annotations

import gzip
import io
import json
import math
import zipfile

import httpx
import numpy as np

from tests.e2e.day_by_day_support import (  # noqa: F401  (fixtures)
    SEED_STRATEGY_ID,
    EventSource,
    auth_headers,
    dbd_stack_fixture,
    demo_bars,
    expected_trades,
    seed_strategy_fixture,
)

START, END = "2024-01-01", "2024-01-12"


def download_day_details(client: httpx.Client, backtest_id: str, date: str) -> tuple[dict, dict]:
    """`downloadDayDetails(date)`: fetch the URL, take the blob, unzip, extract trades + diagnostics."""
    response = client.get(f"/api/v1/backtest/{backtest_id}/day/{date}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == f'attachment; filename="backtest_{date}.zip"'
    blob = response.content
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        assert sorted(z.namelist()) == ["diagnostics_export.json.gz", "trades_daily.json.gz"]
        trades = json.loads(gzip.decompress(z.read("trades_daily.json.gz")))
        diagnostics = json.loads(gzip.decompress(z.read("diagnostics_export.json.gz")))
    return trades, diagnostics


def test_seed002_eventsource_flow(dbd_stack, seed_strategy):
    with httpx.Client(base_url=dbd_stack.base_url, headers=auth_headers(dbd_stack), timeout=30) as client:
        # 1. Start backtest: fetch() with a JSON string body and no headers sends text/plain.
        response = client.post(
            "/api/v1/backtest/start",
            content=json.dumps({"strategy_id": seed_strategy, "start_date": START, "end_date": END}),
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        )
        assert response.status_code == 200, response.text
        started = response.json()
        backtest_id, stream_url = started["backtest_id"], started["stream_url"]
        assert backtest_id == f"{SEED_STRATEGY_ID}_{START}_{END}" and started["status"] == "ready"
        assert started["total_days"] == 10 and stream_url == f"/api/v1/backtest/{backtest_id}/stream"

        # 2. Connect to SSE stream.
        event_source = EventSource(client, stream_url)
        seen: list[tuple[str, dict, str]] = []
        event_source.add_event_listener("day_started", lambda e: seen.append(("day_started", json.loads(e["data"]), e["lastEventId"])))
        event_source.add_event_listener("day_completed", lambda e: seen.append(("day_completed", json.loads(e["data"]), e["lastEventId"])))

        def on_completed(e):
            seen.append(("backtest_completed", json.loads(e["data"]), e["lastEventId"]))
            event_source.close()

        event_source.add_event_listener("backtest_completed", on_completed)
        event_source.add_event_listener("error", lambda e: seen.append(("error", json.loads(e["data"]), e["lastEventId"])))
        event_source.run()
        assert [s[0] for s in seen] == ["day_started", "day_completed"] * 10 + ["backtest_completed"], seen
        ids = [int(s[2]) for s in seen]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)

        # Resumable: a new EventSource that had seen the first 7 events gets exactly the rest.
        resumed: list[str] = []
        again = EventSource(client, stream_url)
        again.last_event_id = seen[6][2]
        for name in ("day_started", "day_completed", "backtest_completed"):
            again.add_event_listener(name, lambda e: resumed.append(e["lastEventId"]))
        again.run()
        assert [int(i) for i in resumed] == ids[7:]
        again.last_event_id = seen[-1][2]
        again.closed = False
        again.run()
        assert again.status == 204  # an EventSource stops reconnecting

        # 3. Download day details for every day; check against the independent calculation.
        expected = expected_trades(START, END)
        completed = [s[1] for s in seen if s[0] == "day_completed"]
        assert [d["date"] for d in completed] == sorted(expected)
        assert [d["day_number"] for d in completed] == list(range(1, 11))
        total_trades = 0
        total_pnl = 0.0
        best, worst = 0.0, 0.0
        rsi = __import__("talib").RSI(demo_bars().close, 14)
        for day in completed:
            date = day["date"]
            trades, diagnostics = download_day_details(client, backtest_id, date)
            assert trades["date"] == date and trades["summary"] == day["summary"]
            assert day["has_detail_data"] is (len(trades["trades"]) > 0)
            ours = [(t["entry_trigger"], t["re_entry_num"], t["entry_time"], t["exit_time"], t["entry_price"],
                     t["exit_price"], t["exit_reason"]) for t in trades["trades"]]
            theirs = [(n, r, et, xt, f"{ep:.2f}", f"{xp:.2f}", why) for n, r, et, xt, ep, xp, why in expected[date]]
            assert ours == theirs, date
            events = diagnostics["events_history"]
            for t, exp in zip(trades["trades"], expected[date]):
                pnl = (exp[5] - exp[4]) * 10
                assert t["pnl"] == f"{pnl:.2f}" and t["symbol"] == "DEMO-MINUTE" and t["status"] == "closed"
                assert t["side"] == "buy" and t["quantity"] == 10
                total_pnl += pnl
                best, worst = max(best, pnl), min(worst, pnl)
                for fid in t["entry_flow_ids"] + t["exit_flow_ids"]:
                    assert events[fid]["execution_id"] == fid
                entry = events[t["entry_flow_ids"][-1]]
                assert entry["event_type"] == "ENTRY" and entry["node_id"] == "entry-1" and entry["node_type"] == "EntryNode"
                assert entry["timestamp"][11:16] == t["entry_time"][11:16]  # node_id + HH:MM matching
                (cond,) = entry["evaluated_conditions"]["conditions"]
                assert (cond["lhs_expression"], cond["operator"], cond["rhs_value"], cond["result"]) == ("RSI(14)", "<", 30.0, True)
                candle = entry["candle_data"]["DEMO-MINUTE"]["current"]
                bar = int(np.flatnonzero(np.isclose(demo_bars().close, candle["close"], rtol=0, atol=0))[0])
                assert math.isclose(cond["lhs_value"], rsi[bar], rel_tol=1e-9)
                exit_event = events[t["exit_flow_ids"][0]]
                assert exit_event["event_type"] == {"stop_loss": "STOP_LOSS", "target": "TARGET", "exit_signal": "EXIT",
                                                    "square_off": "SQUARE_OFF"}[t["exit_reason"]]
                if t["re_entry_num"]:
                    assert events[t["entry_flow_ids"][0]]["event_type"] == "STOP_LOSS"
            total_trades += len(trades["trades"])
        overall = seen[-1][1]["overall_summary"]
        assert overall["total_days"] == 10 and overall["total_trades"] == total_trades > 5
        assert abs(float(overall["total_pnl"]) - total_pnl) <= 0.01
        assert overall["largest_win"] == f"{best:.2f}" and overall["largest_loss"] == f"{worst:.2f}"
        reasons = {e[6] for v in expected.values() for e in v}
        assert reasons == {"stop_loss", "target", "exit_signal", "square_off"}


def test_seed002_legacy_all_days_with_costs(dbd_stack, seed_strategy):
    with httpx.Client(base_url=dbd_stack.base_url, headers=auth_headers(dbd_stack), timeout=120) as client:
        r = client.post("/api/v1/backtest", json={
            "strategy_id": seed_strategy, "start_date": "2024-01-15", "end_date": "2024-01-19",
            "initial_capital": 100000, "slippage_percentage": 0.05, "commission_percentage": 0.01})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "completed" and len(body["days"]) == 5 and body["total_days"] == 5
        expected = expected_trades("2024-01-15", "2024-01-19")
        n = 0
        for d in body["days"]:
            for t, exp in zip(d["trades"], expected[d["date"]], strict=True):
                ein, eout = exp[4] * 1.0005, exp[5] * 0.9995
                pnl = (eout - ein) * 10 - (ein + eout) * 10 * 0.0001
                assert t["entry_price"] == f"{ein:.2f}" and t["exit_price"] == f"{eout:.2f}"
                assert abs(float(t["pnl"]) - pnl) <= 0.005 + 1e-9
                n += 1
        assert body["overall_summary"]["total_trades"] == n
        # Bad input: 4xx JSON and nothing started.
        jobs_before = client.get("/api/v1/jobs").json()["total"]
        for bad in ({"strategy_id": seed_strategy}, {"strategy_id": seed_strategy, "start_date": "2024-01-19",
                                                     "end_date": "2024-01-15"}):
            resp = client.post("/api/v1/backtest/start", json=bad)
            assert resp.status_code == 400 and set(resp.json()["error"]) == {"code", "message", "details"}
        assert client.get("/api/v1/jobs").json()["total"] == jobs_before
