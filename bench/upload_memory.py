"""Upload memory benchmark: the resident memory of the results service while CSV datasets
are imported through a real standalone stack (`POST /api/v1/datasets`, multipart), beside
the trust audit's figures (issue 12, finding 4).

    .venv/bin/python -m bench.upload_memory            (what `make bench` runs; ~3 min)
    .venv/bin/python -m bench.upload_memory --quick    (the 238 MB upload alone)

In standalone every service (gateway, results, engine, notifier) is one process: its RSS
(/proc/<pid>/status VmRSS, sampled every 20 ms) is what is measured, so the gateway's own
share of an upload (multipart parsing, spooled to disk) is included.

Scenarios, each on a fresh stack and data directory:
1. one ~238 MB CSV (the audit's file size), then three of them at once, with
   HINDSIGHT_MAX_CONCURRENT_UPLOADS=3 so that all three run together as in the audit;
2. three at once with the default cap (2): the third is refused with a 429 at once;
3. one ~500 MB CSV (MAX_IMPORT_BYTES is 512 MiB).

The CSVs are 1-minute bars with full-precision prices (about 105 bytes a row, as
`pandas.to_csv` writes them), generated once into a temporary directory. Each line
says whether the import stayed within the bound the README states (BYTES_PER_BAR a
bar + FIXED_BYTES per upload above the RSS before it); the exit status is 1 if not.

Before the uploads streamed (the whole CSV in a bytearray, parsed at once), on the
machine the README's table comes from: 238 MB x1 0.17 -> 1.00 GB (after 0.35), x3
at once 2.85 GB (after 1.08), 500 MiB 2.06 GB (after 0.62).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from tests.stacks import Stack, start_standalone

MB = 1024 * 1024
# The audit's figures (GB of RSS): one 238 MB upload and three at once.
AUDIT = {"baseline": 0.19, "one_peak": 1.18, "three_peak": 3.79, "three_after": 1.3}
# The stated bound (README, datasets): an import grows the RSS by at most this much per bar
# plus FIXED_BYTES; uploads beyond HINDSIGHT_MAX_CONCURRENT_UPLOADS are refused.
BYTES_PER_BAR = 128
FIXED_BYTES = 48 * MB
MEASURED: list[dict] = []


def make_csv(path: Path, target_bytes: int, seed: int) -> int:
    """A valid OHLCV CSV of about `target_bytes`; returns its number of bars."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2010-01-01T00:00", "m")
    n_done = 0
    block = 250_000
    with open(path, "w", newline="") as f:
        f.write("timestamp,open,high,low,close,volume\n")
        price = 100.0
        while f.tell() < target_bytes:
            close = price * np.exp(np.cumsum(rng.normal(0, 0.0008, block)))
            open_ = np.concatenate([[price], close[:-1]])
            high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0004, block)))
            low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0004, block)))
            volume = rng.random(block) * 10_000
            ts = (start + np.arange(n_done, n_done + block)).astype("datetime64[s]").astype(str)
            df = pd.DataFrame({"timestamp": np.char.add(ts, "Z"), "open": open_, "high": high, "low": low,
                               "close": close, "volume": volume})
            # Trim the last block to land near the target size.
            left = target_bytes - f.tell()
            if left < block * 110:
                df = df.iloc[: max(1, left // 105)]
            df.to_csv(f, header=False, index=False, lineterminator="\n")
            n_done += len(df)
            price = float(close[len(df) - 1])
    return n_done


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Sampler:
    """RSS of one process every 20 ms in a thread; `peak` since the last `reset`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, RuntimeError):
                return
            time.sleep(0.02)

    def reset(self) -> None:
        self.peak = rss_bytes(self.pid)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def upload(stack: Stack, path: Path, ticker: str) -> tuple[int, float, httpx.Response]:
    t0 = time.perf_counter()
    with open(path, "rb") as fh, httpx.Client(base_url=stack.base_url, timeout=900) as c:
        r = c.post("/api/v1/datasets", headers={"X-API-Key": stack.api_key},
                   files={"file": (path.name, fh, "text/csv")}, data={"ticker": ticker, "interval": "1m"})
    return r.status_code, time.perf_counter() - t0, r


def settle(pid: int, seconds: float = 3.0) -> int:
    time.sleep(seconds)
    return rss_bytes(pid)


def gb(n: float) -> str:
    return f"{n / 1e9:5.2f} GB"


def scenario(name: str, stack: Stack, sampler: Sampler, files: list[tuple[Path, str, int]]) -> dict:
    pid = stack.procs["standalone"].pid
    before = settle(pid, 1.0)
    sampler.reset()
    with ThreadPoolExecutor(len(files)) as pool:
        outcomes = list(pool.map(lambda f: upload(stack, f[0], f[1]), files))
    peak = sampler.peak
    after = settle(pid)
    codes = [code for code, _, _ in outcomes]
    seconds = max(s for _, s, _ in outcomes)
    for code, _, r in outcomes:
        if code not in (201, 429):
            raise SystemExit(f"{name}: upload answered {code}: {r.text[:500]}\n{stack.log_text()}")
    retry = [r.headers.get("Retry-After") for code, _, r in outcomes if code == 429]
    bars = sum(n for (_, _, n), (code, _, _) in zip(files, outcomes) if code == 201)
    bound = BYTES_PER_BAR * bars + FIXED_BYTES * len(files)
    verdict = "within" if peak - before <= bound else "OVER"
    print(f"{name:<34} before {gb(before)}  peak {gb(peak)} (+{(peak - before) / 1e9:.2f}, {verdict} the bound "
          f"+{bound / 1e9:.2f})  after {gb(after)}  {seconds:6.1f} s  statuses {codes}"
          + (f"  Retry-After {retry}" if retry else ""), flush=True)
    MEASURED.append({"name": name, "before": before, "peak": peak, "after": after, "codes": codes,
                     "within": peak - before <= bound})
    return MEASURED[-1]


def with_stack(extra_env: dict, body) -> None:
    data = Path(tempfile.mkdtemp(prefix="hs-bench-upload-"))
    stack = start_standalone(data / "data", data, extra_env)
    sampler = Sampler(stack.procs["standalone"].pid)
    try:
        time.sleep(2.0)  # demo datasets loaded, startup garbage settled
        body(stack, sampler)
    finally:
        sampler.stop()
        stack.stop(signal.SIGINT)
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="only one 238 MB upload")
    p.add_argument("--size-mb", type=float, default=238.0, help="size of the audit-sized file (MB, 10^6 bytes)")
    p.add_argument("--big-mb", type=float, default=500.0, help="size of the big file (MiB)")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hs-bench-csv-"))
    try:
        t0 = time.perf_counter()
        small = work / "bars-238.csv"
        bars = make_csv(small, int(args.size_mb * 1e6), seed=1)
        print(f"generated {small.name}: {small.stat().st_size / 1e6:.0f} MB, {bars:,} bars "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        copies = [(small, f"BENCH-{i}", bars) for i in range(3)]
        print(f"audit (issue 12): baseline {AUDIT['baseline']:.2f} GB; one 238 MB upload peaked at "
              f"{AUDIT['one_peak']:.2f} GB; three at once peaked at {AUDIT['three_peak']:.2f} GB and stayed at "
              f"{AUDIT['three_after']:.2f} GB", flush=True)

        def audit_sized(stack: Stack, sampler: Sampler) -> None:
            scenario("238 MB x1", stack, sampler, copies[:1])
            if not args.quick:
                scenario("238 MB x3 at once (cap 3)", stack, sampler, copies)

        with_stack({"HINDSIGHT_MAX_CONCURRENT_UPLOADS": "3"}, audit_sized)
        if not args.quick:
            with_stack({}, lambda stack, sampler: scenario("238 MB x3 at once (default cap 2)", stack, sampler, copies))
            big = work / "bars-500.csv"
            t0 = time.perf_counter()
            big_bars = make_csv(big, int(args.big_mb * MB), seed=2)
            print(f"generated {big.name}: {big.stat().st_size / MB:.0f} MiB, {big_bars:,} bars "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            with_stack({}, lambda stack, sampler: scenario(f"{args.big_mb:.0f} MiB x1", stack, sampler,
                                                           [(big, "BENCH-BIG", big_bars)]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not all(r["within"] for r in MEASURED):
        print("an import grew the RSS beyond the stated bound", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
