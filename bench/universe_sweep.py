"""A universe sweep across engine replicas (issue 11, bench 2 and 3): 20 tickers x 590 pairs
(S2's grid) x 250,000 one-minute bars each, through the distributed stack as `make up`
runs it (every service its own process, Postgres, RabbitMQ), with 1 and with 2
single-threaded engine replicas (HINDSIGHT_ENGINE_THREADS=1, one job at a time each), in
rounds (1 replica, then 2, then again: `--rounds`, 2 by default), so that a busy moment
of this shared machine does not decide the ratio alone.

    .venv/bin/python -m bench.universe_sweep                   (what `make bench` runs)
    .venv/bin/python -m bench.universe_sweep --tickers 6 --bars 50000 --rounds 1

Prints, for each replica count, every run's time from the POST to the `done` event and
the best, the ratio of the best runs (and round by round), whether every run's rows are
identical, the CPU seconds each part of the stack used in the best runs (engines,
results, gateway, notifier, Postgres, RabbitMQ; from /proc) and the speed-up they allow
on this machine's CPUs, the CPU time the stack left unused during the best 2-replica run
against what the target allows, and each engine process's peak memory (VmHWM: its resident set's
high-water mark over its life; fresh engine processes for each run). An engine holds one
ticker's bars at a time (plus the bar cache, HINDSIGHT_BAR_CACHE_MB), so its peak
follows one ticker's bars, not the universe's size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.e2e.test_seed001_flow import minute_csv
from tests.stacks import Stack, _spawn, free_port, start_distributed

GRID = {"fast_range": [5, 100], "slow_range": [10, 200], "step": 5, "min_trades": 10, "strategy_type": "SMA"}
PAIRS = 590
TARGET = 1.8  # issue 11: 2 replicas against 1, end to end
ONE_THREAD = {"HINDSIGHT_ENGINE_CONCURRENCY": "1", "HINDSIGHT_ENGINE_THREADS": "1"}


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_engines(stack: Stack, names: list[str]) -> None:
    for name in names:
        env = dict(stack.env, ENGINE_PORT=str(free_port()), HINDSIGHT_METRICS_PORT="0", **ONE_THREAD)
        stack.procs[name], stack.logs[name] = _spawn(name, "services.engine", env, stack.logs["results"].parent)
    time.sleep(3)  # connected and consuming


def compute_seconds(stack: Stack, name: str) -> tuple[float, float, int]:
    """(kernel + statistics seconds, of which statistics, shards) the engine's log reports."""
    total = stats = 0.0
    shards = 0
    for line in stack.logs[name].read_text(errors="replace").splitlines():
        if '"sweep done"' in line:
            doc = json.loads(line)
            total += float(doc.get("seconds", 0.0))
            stats += float(doc.get("statistics_seconds", 0.0))
            shards += 1
    return total, stats, shards


_PROCESS_GROUPS = (("engines", "services.engine"), ("results", "services.results"), ("gateway", "services.gateway"),
                   ("notifier", "services.notifier"), ("postgres", "postgres"), ("rabbitmq", "beam"))


def cpu_seconds() -> dict[tuple[str, str], float]:
    """CPU seconds (user + system) so far of every process of the stack, Postgres and RabbitMQ,
    by (group, pid); a process started later counts from 0."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        group = next((g for g, marker in _PROCESS_GROUPS if marker in cmd), None)
        if group is not None:
            out[(group, pid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_used(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> dict[str, float]:
    used: dict[str, float] = {}
    for key, value in after.items():
        used[key[0]] = used.get(key[0], 0.0) + value - before.get(key, 0.0)
    return used


@dataclass(frozen=True)
class Run:
    """One run of the universe sweep: POST-to-done seconds, CPU seconds by part of the stack,
    each engine's peak memory and (kernel seconds, statistics seconds, shards), the rows."""

    seconds: float
    cpu: dict[str, float]
    peaks: dict[str, float]
    busy: dict[str, tuple[float, float, int]]
    rows: dict[str, list[dict]]


def stop_engines(stack: Stack, names: list[str]) -> None:
    for name in names:
        stack.kill(name, signal.SIGTERM)
        del stack.procs[name]


def run_universe(client: httpx.Client, tickers: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    resp = client.post("/api/v1/strategy/sweep", json={"tickers": tickers, **GRID})
    resp.raise_for_status()
    job_id = resp.json()["job_id"]
    with client.stream("GET", f"/api/v1/jobs/{job_id}/stream", timeout=3600) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if event.get("done") or event.get("error"):
                    if not event.get("done") or event.get("status") != "completed":
                        raise RuntimeError(f"universe sweep {job_id} did not complete: {event}")
                    return time.perf_counter() - t0, event["sweep_run_id"]
    raise RuntimeError(f"stream of {job_id} ended without a terminal event")


def rows_of(client: httpx.Client, run_id: str, tickers: list[str]) -> dict[str, list[dict]]:
    out = {}
    for t in tickers:
        best = client.get(f"/api/v1/sweeps/{run_id}/best", params={"ticker": t, "limit": 1000}).json()
        out[t] = best["results"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickers", type=int, default=20)
    parser.add_argument("--bars", type=int, default=250_000)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each replica count, interleaved (1, 2, 1, 2, ...)")
    args = parser.parse_args()
    tickers = [f"UNI{i:02d}" for i in range(args.tickers)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-universe-"))
    db_name, db_url = create_database()
    vhost, amqp_url = create_vhost()
    runs: dict[int, list[Run]] = {1: [], 2: []}
    try:
        stack = start_distributed(db_url, amqp_url, tmp, service_env={"engine": ONE_THREAD})
        try:
            stop_engines(stack, ["engine"])  # each run gets fresh engine processes
            with httpx.Client(base_url=stack.base_url, headers={"X-API-Key": stack.api_key}, timeout=600) as client:
                t0 = time.perf_counter()
                for i, t in enumerate(tickers):
                    r = client.post("/api/v1/datasets", files={"file": (f"{t}.csv", minute_csv(args.bars, seed=1000 + i),
                                                                        "text/csv")},
                                    data={"ticker": t, "interval": "1m", "calendar": "continuous"})
                    r.raise_for_status()
                print(f"uploaded {len(tickers)} x {args.bars:,} bars in {time.perf_counter() - t0:.0f} s", flush=True)
                for round_ in range(1, args.rounds + 1):
                    for replicas in (1, 2):
                        names = [f"engine-r{replicas}-{round_}-{k}" for k in range(1, replicas + 1)]
                        start_engines(stack, names)
                        before = cpu_seconds()
                        seconds, run_id = run_universe(client, tickers)
                        cpu = cpu_used(before, cpu_seconds())
                        peaks = {n: peak_rss_mib(stack.procs[n].pid) for n in names}
                        busy = {n: compute_seconds(stack, n) for n in names}
                        runs[replicas].append(Run(seconds, cpu, peaks, busy, rows_of(client, run_id, tickers)))
                        stop_engines(stack, names)
                        print(f"round {round_}, {replicas} replica(s): {seconds:.2f} s", flush=True)
        finally:
            stack.stop()
    finally:
        delete_vhost(vhost)
        drop_database(db_name)
        shutil.rmtree(tmp, ignore_errors=True)
    first = runs[1][0].rows
    identical = all(r.rows == first for rs in runs.values() for r in rs) and all(len(v) > 0 for v in first.values())
    best = {replicas: min(rs, key=lambda r: r.seconds) for replicas, rs in runs.items()}
    total = len(tickers) * PAIRS * args.bars
    print(f"universe sweep: {len(tickers)} tickers x {PAIRS} pairs x {args.bars:,} bars = {total / 1e9:.2f} G bar-pairs, "
          f"single-threaded engines, CPUs here: {os.cpu_count()}; {args.rounds} round(s) of 1 then 2 replicas")
    for replicas in (1, 2):
        b = best[replicas]
        mem = ", ".join(f"{n} {v:.0f} MiB" for r in runs[replicas] for n, v in r.peaks.items())
        every = ", ".join(f"{r.seconds:.2f}" for r in runs[replicas])
        print(f"  {replicas} replica(s): {b.seconds:7.2f} s POST to done, best of {every} "
              f"({total / b.seconds / 1e6:,.0f} M bar-pairs/s)")
        print(f"      peak memory: {mem}")
        for n, (sec, st, k) in b.busy.items():
            print(f"      {n}: {k} shards, {sec:.1f} s in the kernel and statistics ({st:.1f} s statistics)")
    ratios = ", ".join(f"x{a.seconds / b.seconds:.2f}" for a, b in zip(runs[1], runs[2], strict=True))
    print(f"  speed-up 2 vs 1: {best[1].seconds / best[2].seconds:.2f}x, best against best (round by round: {ratios}; "
          f"target >= {TARGET}x on 2 free cores)   identical results: {'yes' if identical else 'NO'}")
    for replicas in (1, 2):
        used = best[replicas].cpu
        print(f"  CPU seconds, {replicas} replica(s), best run: "
              + ", ".join(f"{g} {used.get(g, 0.0):.2f}" for g, _ in _PROCESS_GROUPS) + f" (sum {sum(used.values()):.2f})")
    cpus = os.cpu_count() or 1
    used_2 = sum(best[2].cpu.values())  # S2: what the stack used in the best 2-replica run
    print(f"  results, Postgres and the engines share this machine's {cpus} CPUs: 2 replicas take at least "
          f"the sum / {cpus} = {used_2 / cpus:.2f} s, so the speed-up here is at most x{best[1].seconds * cpus / used_2:.2f}")
    # T2 = (S2 + I) / cpus, so T1 / T2 >= target exactly when I <= cpus x T1 / target - S2
    print(f"  CPU time the stack left unused during the best 2-replica run: "
          f"{cpus * best[2].seconds - used_2:.2f} CPU-s ({cpus} x {best[2].seconds:.2f} s - {used_2:.2f}); "
          f"x{TARGET} against the best 1-replica run allows at most {cpus * best[1].seconds / TARGET - used_2:.2f}")
    from bench.machine_ceiling import parallel_ceiling

    print(f"  this machine's ceiling now: x{parallel_ceiling(2):.2f} (2 independent CPU-bound processes "
          f"against one; bench/machine_ceiling.py)")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
