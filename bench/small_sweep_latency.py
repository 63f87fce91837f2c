"""The small case's latency (issue 11, bench 4): seed 001's 8-combination sweep from its
POST to its `done` event, as the seed's client sees it, over 50 runs, in the standalone
stack and in the distributed one (every service its own process, Postgres, RabbitMQ).

    .venv/bin/python -m bench.small_sweep_latency           (what `make bench` runs; ~1 min)
    .venv/bin/python -m bench.small_sweep_latency --runs N

Each run: POST /api/v1/strategy/sweep, then GET /api/v1/jobs/{id}/stream until the
terminal event; the time is from before the POST to the `done` event's arrival. The
first run of each stack warms it (bars cached, connections open) and is not counted.
This is the baseline that sharding large sweeps must not move: the p50 and p95 print
side by side for both modes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.stacks import Stack, start_distributed, start_standalone

# Seed 001's example ranges (fast 10..20, slow 20..30, step 5; fast < slow leaves 8 pairs), on the demo daily bars.
SWEEP = {"ticker": "DEMO-DAILY", "fast_range": [10, 20], "slow_range": [20, 30], "step": 5, "min_trades": 10}


def one_sweep(client: httpx.Client) -> float:
    t0 = time.perf_counter()
    resp = client.post("/api/v1/strategy/sweep", json=SWEEP)
    resp.raise_for_status()
    job_id = resp.json()["job_id"]
    with client.stream("GET", f"/api/v1/jobs/{job_id}/stream") as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if event.get("done") or event.get("error"):
                    if not event.get("done") or event.get("status") != "completed":
                        raise RuntimeError(f"sweep {job_id} did not complete: {event}")
                    return time.perf_counter() - t0
    raise RuntimeError(f"stream of {job_id} ended without a terminal event")


def measure(stack: Stack, runs: int) -> list[float]:
    with stack.client(headers={"X-API-Key": stack.api_key}) as client:
        if not any(d["ticker"] == "DEMO-DAILY" for d in client.get("/api/v1/datasets").json()["datasets"]):
            raise RuntimeError("the stack has no DEMO-DAILY dataset")
        one_sweep(client)  # warm-up
        return [one_sweep(client) for _ in range(runs)]


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    try:
        stack = start_standalone(tmp / "data", tmp)
        try:
            results["standalone"] = measure(stack, args.runs)
        finally:
            stack.stop()
        db_name, db_url = create_database()
        vhost, amqp_url = create_vhost()
        try:
            # The bootstrap tenant gets the demo datasets at its first start.
            stack = start_distributed(db_url, amqp_url, tmp)
            try:
                results["distributed"] = measure(stack, args.runs)
            finally:
                stack.stop()
        finally:
            delete_vhost(vhost)
            drop_database(db_name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"seed 001's 8-combination sweep, POST to done event, {args.runs} runs each (after one warm-up):")
    for mode, values in results.items():
        print(f"  {mode:11s} p50 {p(values, 50) * 1000:7.1f} ms   p95 {p(values, 95) * 1000:7.1f} ms   "
              f"mean {statistics.fmean(values) * 1000:7.1f} ms   max {max(values) * 1000:7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
