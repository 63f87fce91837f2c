"""The seed-004 client flow end to end, in both modes of a real stack: the Python example
(requests: POST /run, poll /status every few seconds, GET a day) and the JavaScript
one's metadata + day reads, reproduced request for request; positions checked against
an independent calculation on the same bars; clear and cleanup."""

from __future__ import annotations

import math
import time

import requests

from tests.e2e.day_by_day_support import (  # noqa: F401  (fixtures)
    auth_headers,
    dbd_stack_fixture,
    expected_trades,
    seed_strategy_fixture,
)

START, END = "2024-01-15", "2024-02-23"


def test_seed004_python_client_flow(dbd_stack, seed_strategy):
    base = dbd_stack.base_url
    headers = auth_headers(dbd_stack)
    strategy_id = seed_strategy

    # 1. Start backtest
    response = requests.post(f"{base}/api/v1/backtest/run", json={
        "user_id": "user_123",
        "strategy_id": strategy_id,
        "start_date": START,
        "end_date": END,
    }, headers=headers, timeout=30)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert response.json()["status"] == "queued"

    # 2. Wait for completion (the seed sleeps 5 s between polls; 0.2 s here)
    deadline = time.time() + 120
    percentages = []
    while True:
        status = requests.get(f"{base}/api/v1/backtest/status/{job_id}", headers=headers, timeout=30).json()
        if status["status"] == "completed":
            break
        assert status["status"] in ("queued", "running"), status
        percentages.append(status["progress"]["percentage"])  # print(f"Progress: {...}%")
        assert time.time() < deadline, status
        time.sleep(0.2)
    assert status["progress"] == {"current_date": END, "completed_days": 30, "total_days": 30, "percentage": 100.0}
    assert status["started_at"] and status["estimated_completion"] and status["error"] is None
    assert all(0 <= p <= 100 for p in percentages)
    job = requests.get(f"{base}/api/v1/jobs/{job_id}", headers=headers, timeout=30).json()
    assert job["kind"] == "day-backtest" and job["metrics"]["shards"] == 3  # 30 days, 10 per shard
    ran = {name: sum(1 for line in path.read_text().splitlines() if "shard done" in line and job_id in line)
           for name, path in dbd_stack.logs.items()}
    assert sum(ran.values()) == 3, ran
    if dbd_stack.mode == "distributed":  # two engine replicas shared the shards
        assert ran["engine"] >= 1 and ran["engine2"] >= 1, ran

    # 3. Get day data (requests asks for gzip and decompresses it, like a browser)
    raw = requests.get(f"{base}/api/v1/backtest/day/user_123/{strategy_id}/15-01-2024", headers=headers, timeout=30)
    assert raw.headers["Content-Encoding"] == "gzip" and raw.headers["Content-Type"] == "application/json"
    day_data = raw.json()
    assert len(day_data["positions"]) == day_data["summary"]["total_positions"]  # print(f"Positions: ...")
    assert isinstance(day_data["summary"]["total_pnl"], float)  # print(f"Total P&L: ...")

    # The JavaScript flow: metadata (calendar of P&L per day), then a day when clicked.
    meta = requests.get(f"{base}/api/v1/backtest/metadata/user_123/{strategy_id}", headers=headers, timeout=30).json()
    assert meta["strategy_id"] == strategy_id and meta["status"] == "completed" and meta["total_days"] == 30
    assert meta["start_date"] == START and meta["end_date"] == END and meta["expires_at"] > meta["created_at"]
    expected = expected_trades(START, END)
    assert [d["date"] for d in meta["daily_summaries"]] == [f"{k[8:]}-{k[5:7]}-{k[:4]}" for k in sorted(expected)]
    total_positions = 0
    total_pnl = 0.0
    for row in meta["daily_summaries"]:
        day = requests.get(f"{base}/api/v1/backtest/day/user_123/{strategy_id}/{row['date']}", headers=headers, timeout=30).json()
        iso = f"{row['date'][6:]}-{row['date'][3:5]}-{row['date'][:2]}"
        exp = expected[iso]
        assert day["date"] == row["date"] and len(day["positions"]) == row["positions"] == len(exp)
        assert row["has_data"] is (len(exp) > 0) and row["file_size_kb"] > 0
        for p, (node, re_entry, et, xt, ep, xp, why) in zip(day["positions"], exp, strict=True):
            assert (p["position_id"], p["re_entry_num"], p["exit_reason_code"]) == (node, re_entry, why)
            assert p["entry_time"] == et[:19] and p["exit_time"] == xt[:19] and p["side"] == "BUY"
            assert math.isclose(p["entry_price"], ep, rel_tol=1e-12) and math.isclose(p["exit_price"], xp, rel_tol=1e-12)
            assert math.isclose(p["pnl"], (xp - ep) * 10, rel_tol=1e-9, abs_tol=1e-9)
            assert p["condition_preview"] == "RSI(14) < 30"
            assert p["diagnostic_data"]["conditions_evaluated"][0]["operator"] == "<"
            assert p["diagnostic_data"]["candle_data"]["DEMO-MINUTE"]["current"]["timestamp"]
            assert p["exit_diagnostic_data"]["conditions_evaluated"] and p["exit_condition_preview"]
            assert p["node_variables"]["stop_loss"] == {"type": "percent", "value": 0.3}
            total_pnl += p["pnl"]
        total_positions += len(exp)
    summary = meta["overall_summary"]
    assert summary["total_positions"] == total_positions > 10
    assert abs(summary["total_pnl"] - total_pnl) <= 0.01
    assert summary["total_winning_trades"] + summary["total_losing_trades"] <= total_positions

    # Refusals: a foreign user id sees nothing; malformed dates and traversal are 400.
    assert requests.get(f"{base}/api/v1/backtest/metadata/user_999/{strategy_id}", headers=headers, timeout=30).status_code == 404
    assert requests.get(f"{base}/api/v1/backtest/day/user_999/{strategy_id}/15-01-2024", headers=headers, timeout=30).status_code == 404
    for path in (f"day/user_123/{strategy_id}/2024-01-15", f"day/user_123/{strategy_id}/31-02-2024",
                 f"day/..%2F..%2F/{strategy_id}/15-01-2024", "metadata/user_123/..%2F..%2Fetc"):
        r = requests.get(f"{base}/api/v1/backtest/{path}", headers=headers, timeout=30)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", (path, r.text)

    # 5./6./7. Clear, cleanup status, cleanup run.
    cleared = requests.delete(f"{base}/api/v1/backtest/clear/user_123/{strategy_id}", headers=headers, timeout=30).json()
    assert cleared["deleted_files"] == 90 and cleared["freed_space_mb"] > 0
    assert requests.get(f"{base}/api/v1/backtest/metadata/user_123/{strategy_id}", headers=headers, timeout=30).status_code == 404
    assert requests.get(f"{base}/api/v1/backtest/cleanup/status", headers=headers, timeout=30).json()["ttl_hours"] == 12
    run = requests.post(f"{base}/api/v1/backtest/cleanup/run?ttl_hours=12", headers=headers, timeout=30).json()
    assert run["message"] == "Cleanup completed" and run["cutoff_time"]
