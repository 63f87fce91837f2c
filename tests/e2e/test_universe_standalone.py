"""Issue 11 in standalone mode: a universe sweep survives a SIGKILL of the one process.

Standalone's bus is in memory: at restart results queues one whole-job message for every
active job; the engine then runs the shards of a universe sweep that have not ended, one
after the other, and the shards stored before the kill are not stored again.
"""

from __future__ import annotations

import signal

from tests.e2e.test_seed001_flow import minute_csv
from tests.security.conftest import wait_for
from tests.stacks import start_standalone, wait_healthy

HEAVY = {"fast_range": [2, 100], "slow_range": [101, 300], "step": 1, "min_trades": 10}
HEAVY_PAIRS = 99 * 200


def test_a_universe_sweep_completes_after_the_process_is_killed(tmp_path):
    stack = start_standalone(tmp_path / "data", tmp_path, {"HINDSIGHT_ENGINE_CONCURRENCY": "1",
                                                           "HINDSIGHT_ENGINE_THREADS": "1"})
    try:
        tickers = [f"SK{i}" for i in range(3)]
        with stack.client(headers={"X-API-Key": stack.api_key}) as c:
            for i, t in enumerate(tickers):
                r = c.post("/api/v1/datasets", files={"file": (f"{t}.csv", minute_csv(40_000, seed=300 + i), "text/csv")},
                           data={"ticker": t, "interval": "1m", "calendar": "continuous"})
                assert r.status_code == 201, r.text
            r = c.post("/api/v1/strategy/sweep", json={"tickers": tickers, **HEAVY})
            assert r.status_code == 202, r.text
            job_id = r.json()["job_id"]

            def shard_states() -> list[str]:
                return [t["status"] for t in c.get(f"/api/v1/sweeps/{job_id}/tickers").json()["tickers"]]

            # Killed with the first ticker stored and the others not.
            wait_for(lambda: "completed" in shard_states(), 120, "a ticker stored", stack)
            assert shard_states().count("completed") < len(tickers), "the kill must come mid-sweep"
        stack.kill("standalone", signal.SIGKILL)
        stack.restart("standalone")
        wait_healthy(stack)
        with stack.client(headers={"X-API-Key": stack.api_key}) as c:
            job = wait_for(lambda: (j := c.get(f"/api/v1/jobs/{job_id}").json())["status"] in
                           ("completed", "failed", "cancelled") and j, 240, "the sweep ended", stack)
            assert job["status"] == "completed", job
            assert job["metrics"]["combinations_tested"] == len(tickers) * HEAVY_PAIRS
            run_id = job["sweep_run_id"]
            for t in tickers:
                best = c.get(f"/api/v1/sweeps/{run_id}/best", params={"ticker": t, "limit": 1}).json()
                assert best["total_results"] + best["excluded_below_min_trades"] == HEAVY_PAIRS, (t, best)
            assert shard_states() == ["completed"] * len(tickers)
    finally:
        stack.stop()
