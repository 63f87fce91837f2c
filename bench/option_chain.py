"""Option-chain import benchmark (issue 15): a synthetic year of one-minute weekly chain,
imported from Parquet and from CSV by results' import (services/results/chain_import.py: read
in batches, checked, written as day-partitioned Parquet to the market store).

    .venv/bin/python -m bench.option_chain            (what `make bench` runs: 250 days, ~15 M rows)
    .venv/bin/python -m bench.option_chain --days 20  (a quick look)

The chain: 250 weekdays from 2024-01-01, 375 one-minute bars a day (09:15-15:29
Asia/Kolkata), two live weekly expiries (Thursdays), 41 strikes 50 apart around the day's
first spot, CE and PE: 250 x 375 x 2 x 41 x 2 = 15.4 M rows, with `oi`. Prices are
intrinsic value plus a time value that decays to the expiry, on a 0.05 tick, from a random walk
of the spot: cheap to make (no Black-Scholes), realistic enough for the encodings.

Each import runs in a fresh child process so its peak RSS (ru_maxrss) is its own; the line
shows rows/s (targets: >= 1 M rows/s from Parquet, >= 300 k rows/s from CSV), the peak RSS
above the process's RSS before the import, and the bytes stored per row. A --days 25 import
of the same files' kind is run first, so the peak RSS of a file 10 times larger can be seen
not to grow with it. Then the year's Parquet is uploaded through a real standalone stack
(HTTP to the 201), and DEMO-OPTIONS is generated once (target < 10 s). The exit status is 1 if
a rate target is missed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

TARGET_PARQUET = 1_000_000
TARGET_CSV = 300_000
MINUTES = 375
STRIKES_EACH_SIDE = 20
STEP = 50.0
TICK = 0.05
ZONE = "Asia/Kolkata"


def _thursday_on_or_after(d: date) -> date:
    return d + timedelta(days=(3 - d.weekday()) % 7)


def chain_day(day: date, spot0: float, rng: np.random.Generator) -> tuple[pa.Table, np.ndarray]:
    """One day of the synthetic chain (sorted by timestamp, expiry, strike, type) and the spot
    of each minute (the walk the chain is priced on: its last value starts the next day)."""
    spot = spot0 * np.exp(np.cumsum(rng.normal(0.0, 0.0006, MINUTES)))
    start = np.datetime64(f"{day.isoformat()}T09:15", "s")
    ts = start + np.arange(MINUTES).astype("timedelta64[m]")
    first = _thursday_on_or_after(day)
    expiries = np.array([first, first + timedelta(weeks=1)], dtype="datetime64[D]")
    days_left = (expiries - np.datetime64(day, "D")).astype(np.float64) + 0.3
    strikes = round(spot0 / STEP) * STEP + np.arange(-STRIKES_EACH_SIDE, STRIKES_EACH_SIDE + 1) * STEP
    shape = (MINUTES, 2, strikes.size, 2)
    s = spot[:, None, None, None]
    k = strikes[None, None, :, None]
    width = (spot0 * 0.01 * np.sqrt(days_left))[None, :, None, None]
    is_call = np.array([True, False])[None, None, None, :]
    intrinsic = np.where(is_call, np.maximum(s - k, 0.0), np.maximum(k - s, 0.0))
    time_value = 0.4 * width * np.exp(-0.5 * ((s - k) / width) ** 2)
    mid = intrinsic + time_value + TICK
    noise = np.abs(rng.normal(0.0, 0.002, shape)) * mid
    open_ = np.round(mid / TICK) * TICK
    close = np.round((mid + rng.normal(0.0, 0.001, shape) * mid) / TICK) * TICK
    high = np.maximum(open_, close) + np.round(noise / TICK) * TICK
    low = np.maximum(np.minimum(open_, close) - np.round(noise / TICK) * TICK, 0.0)
    close = np.maximum(close, 0.0)
    volume = np.round(rng.lognormal(5.0, 1.0, shape))
    oi = np.round(rng.lognormal(9.0, 0.5, shape))
    n = int(np.prod(shape))
    table = pa.table({
        "timestamp": pa.array(np.repeat(ts, n // MINUTES)),
        "expiry": pa.array(np.broadcast_to(expiries[None, :, None, None], shape).reshape(-1)),
        "strike": pa.array(np.broadcast_to(k, shape).reshape(-1)),
        "option_type": pa.DictionaryArray.from_arrays(
            pa.array(np.broadcast_to(np.array([0, 1], np.int8)[None, None, None, :], shape).reshape(-1)),
            pa.array(["CE", "PE"]),
        ).cast(pa.string()),
        "open": open_.reshape(-1), "high": high.reshape(-1), "low": low.reshape(-1), "close": close.reshape(-1),
        "volume": volume.reshape(-1), "oi": oi.reshape(-1),
    })
    return table, spot


def trading_days(days: int) -> list[date]:
    """The chain's days: the first `days` weekdays from 2024-01-01."""
    return [d for d in (date(2024, 1, 1) + timedelta(days=i) for i in range(days * 2)) if d.weekday() < 5][:days]


def write_files(directory: Path, days: int, seed: int = 15, csv: bool = True) -> tuple[Path, Path, int, np.ndarray]:
    """The chain as Parquet and (when `csv`) as CSV; returns (parquet, csv, rows, the spot of
    every minute of every day: the underlying's walk)."""
    rng = np.random.default_rng(seed)
    pq_path, csv_path = directory / "chain.parquet", directory / "chain.csv"
    rows = 0
    spot = 24000.0
    walks: list[np.ndarray] = []
    pq_writer: pq.ParquetWriter | None = None
    csv_writer: pacsv.CSVWriter | None = None
    try:
        for day in trading_days(days):
            table, walk = chain_day(day, spot, rng)
            spot = float(walk[-1])
            walks.append(walk)
            if pq_writer is None:
                pq_writer = pq.ParquetWriter(pq_path, table.schema, compression="snappy")
                if csv:
                    csv_writer = pacsv.CSVWriter(csv_path, table.schema)
            pq_writer.write_table(table, row_group_size=256 * 1024)
            if csv_writer is not None:
                csv_writer.write_table(table)
            rows += table.num_rows
    finally:
        if pq_writer is not None:
            pq_writer.close()
        if csv_writer is not None:
            csv_writer.close()
    return pq_path, csv_path, rows, np.concatenate(walks)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def _import_child(path: str, store_dir: str, out: mp.Queue) -> None:
    from services.results.chain_import import import_chain_file
    from services.results.market_store import MarketStore
    from services.results.uploads import limit_malloc_arenas

    limit_malloc_arenas()  # as results does at start
    store = MarketStore(Path(store_dir))
    staging = store.new_staging()
    before = _rss_bytes()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    with open(path, "rb") as f:
        summary = import_chain_file(f, ZONE, "BENCH", staging)
    took = time.perf_counter() - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    stored = store.measure(staging).bytes
    out.put({"rows": summary.rows, "seconds": took, "cpu": cpu, "before": before, "peak": peak, "stored": stored,
             "contracts": summary.contracts, "expiries": len(summary.expiries), "days": summary.days})


def measure(path: Path, store_dir: Path) -> dict:
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    p = ctx.Process(target=_import_child, args=(str(path), str(store_dir), q))
    p.start()
    result = q.get(timeout=1800)
    p.join(60)
    return result


def report(label: str, size: int, r: dict, target: int | None) -> bool:
    rate = r["rows"] / r["seconds"]
    ok = target is None or rate >= target
    aim = f" (target >= {target / 1e6:g} M/s: {'met' if ok else 'MISSED'})" if target else ""
    print(f"{label:<22} {size / 1e6:8.0f} MB  {r['rows']:>11,} rows in {r['seconds']:6.2f} s = "
          f"{rate / 1e6:5.2f} M rows/s{aim} (CPU {r['cpu']:.1f} s); peak RSS +{(r['peak'] - r['before']) / 2**20:5.0f} MiB; "
          f"stored {r['stored'] / r['rows']:.1f} bytes/row")
    return ok


def through_the_stack(path: Path, base: Path) -> dict:
    """The Parquet file uploaded to a real standalone stack (HTTP multipart to the gateway,
    streamed over gRPC to results, imported there): wall time to the 201."""
    import httpx

    from tests.stacks import start_standalone

    data = base / "stack"
    data.mkdir()
    stack = start_standalone(data / "data", data)
    try:
        started = time.perf_counter()
        with open(path, "rb") as fh, httpx.Client(base_url=stack.base_url, timeout=1800) as c:
            r = c.post("/api/v1/datasets", headers={"X-API-Key": stack.api_key},
                       files={"file": ("chain.parquet", fh, "application/octet-stream")},
                       data={"kind": "option_chain", "ticker": "BENCH", "interval": "1m", "timezone": ZONE})
        took = time.perf_counter() - started
        if r.status_code != 201:
            raise SystemExit(f"upload answered {r.status_code}: {r.text[:500]}")
        return {"rows": r.json()["rows"], "seconds": took, "stored": r.json()["bytes_stored"]}
    finally:
        stack.stop(signal.SIGINT)


def demo_generation(base: Path) -> tuple[float, int]:
    from services.results.demo_chain import ensure_demo_chain_files
    from services.results.market_store import MarketStore

    started = time.perf_counter()
    _, summary, _ = ensure_demo_chain_files(MarketStore(base / "demo"))
    return time.perf_counter() - started, summary.rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=250, help="trading days of chain (250: about 15 M rows)")
    args = ap.parse_args()
    ok = True
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (a busy machine slows the wall-clock rates)")
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as tmp:
        base = Path(tmp)
        for days, check in ((max(1, args.days // 10), False), (args.days, True)):
            d = base / f"d{days}"
            d.mkdir()
            started = time.perf_counter()
            pq_path, csv_path, rows, _ = write_files(d, days)
            print(f"generated {days} days: {rows:,} rows ({rows / days / MINUTES:.0f} contracts a minute) in "
                  f"{time.perf_counter() - started:.1f} s; Parquet {pq_path.stat().st_size / 1e6:.0f} MB, "
                  f"CSV {csv_path.stat().st_size / 1e6:.0f} MB")
            for label, path, target in (("Parquet", pq_path, TARGET_PARQUET), ("CSV", csv_path, TARGET_CSV)):
                r = measure(path, d / f"store-{label}")
                ok &= report(f"{label} {days} days", path.stat().st_size, r, target if check else None)
                shutil.rmtree(d / f"store-{label}", ignore_errors=True)
            csv_path.unlink()
            if check:
                r = through_the_stack(pq_path, d)
                print(f"{'Parquet via HTTP':<22} {pq_path.stat().st_size / 1e6:8.0f} MB  {r['rows']:>11,} rows in "
                      f"{r['seconds']:6.2f} s = {r['rows'] / r['seconds'] / 1e6:5.2f} M rows/s (POST /api/v1/datasets "
                      f"to a standalone stack, to the 201); stored {r['stored'] / r['rows']:.1f} bytes/row")
            pq_path.unlink()
        took, rows = demo_generation(base)
        print(f"DEMO-OPTIONS generated in {took:.1f} s ({rows:,} rows; target < 10 s)")
    if not ok:
        print("an import rate target was missed", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
