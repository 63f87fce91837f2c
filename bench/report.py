"""Run report benchmark (issue 13): how fast `GET /runs/{id}/report` answers and how large
`report.html` is for a 1,000,000-bar run, on a real standalone stack.

    .venv/bin/python -m bench.report            (what `make bench` runs; ~2 min)
    .venv/bin/python -m bench.report --quick    (the minute run alone)

Two synchronous backtests of 1,000,000 bars each (the synchronous limit), SMA 60/240 in
both directions (about 5,000 trades: more than the 5,000 trade markers the report draws):
1. one-minute bars around the clock: ~694 days, a downsampled curve of 2,000 points;
2. one-hour bars around the clock: ~41,700 days, the longest day-end series a run can keep.

For each: the report endpoint's latency over `--runs` calls (median and worst, one client,
the stack idle otherwise), its answer's size, and report.html's size and build time (the
file carries plotly.js and the run's price, downsampled to 2,000 candles). Targets: the
report under 1 s, the file under 5 MB; the exit status is 1 if one is missed. Timings
include the HTTP round trip on loopback.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from tests.stacks import start_standalone

BARS = 1_000_000
TARGET_SECONDS = 1.0
TARGET_BYTES = 5_000_000
STRATEGY = {"strategy": "sma_crossover", "parameters": {"fast_period": 60, "slow_period": 240}, "direction": "both"}


def make_csv(path: Path, freq: str, start: str, seed: int) -> None:
    """BARS bars of a random walk at `freq`, written as the generic CSV."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.0008, BARS)))
    open_ = np.concatenate([[100.0], close[:-1]])
    ts = pd.date_range(start, periods=BARS, freq=freq, tz="UTC")
    frame = pd.DataFrame({
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "open": open_.round(6),
        "high": (np.maximum(open_, close) * 1.0004).round(6), "low": (np.minimum(open_, close) * 0.9996).round(6),
        "close": close.round(6), "volume": 1000,
    })
    frame.to_csv(path, index=False)


def measure(c: httpx.Client, csv: Path, ticker: str, interval: str, runs: int) -> bool:
    t0 = time.perf_counter()
    with open(csv, "rb") as fh:
        up = c.post("/api/v1/datasets", files={"file": (csv.name, fh, "text/csv")},
                    data={"ticker": ticker, "interval": interval}, timeout=900)
    if up.status_code != 201:
        raise SystemExit(f"upload of {ticker} answered {up.status_code}: {up.text[:500]}")
    uploaded = time.perf_counter() - t0
    t0 = time.perf_counter()
    bt = c.post("/api/v1/runs/backtest", json={"ticker": ticker, **STRATEGY}, timeout=300)
    if bt.status_code != 200:
        raise SystemExit(f"backtest of {ticker} answered {bt.status_code}: {bt.text[:500]}")
    run = bt.json()
    backtested = time.perf_counter() - t0
    url = f"/api/v1/runs/{run['id']}/report"
    c.get(url).raise_for_status()  # warm: plotly's packing and the first import happen once per process
    times, size, report = [], 0, {}
    for _ in range(runs):
        t0 = time.perf_counter()
        r = c.get(url)
        times.append(time.perf_counter() - t0)
        r.raise_for_status()
        size, report = len(r.content), r.json()
    t0 = time.perf_counter()
    page = c.get(f"{url}.html", timeout=300)
    html_seconds = time.perf_counter() - t0
    page.raise_for_status()
    html_bytes = len(page.content)
    print(f"{ticker}: {run['bars']:,} {interval} bars, {report['days']:,} days, {run['total_trades']:,} trades "
          f"(upload {uploaded:.0f} s, backtest {backtested:.1f} s)", flush=True)
    print(f"  GET /runs/{{id}}/report: median {statistics.median(times):.3f} s, worst {max(times):.3f} s over {runs} "
          f"calls (target < {TARGET_SECONDS:.0f} s); answer {size / 1e6:.2f} MB; rolling Sharpe "
          f"{len(report['rolling_sharpe']['points']):,} of {report['rolling_sharpe']['points_total']:,} points, "
          f"{len(report['trades']):,} trade markers, {len(report['equity']['timestamps']):,} equity points", flush=True)
    print(f"  report.html: {html_bytes / 1e6:.2f} MB (target < {TARGET_BYTES / 1e6:.0f} MB), built and sent in "
          f"{html_seconds:.2f} s", flush=True)
    return max(times) < TARGET_SECONDS and html_bytes < TARGET_BYTES


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10, help="report calls timed per run")
    p.add_argument("--quick", action="store_true", help="the one-minute run alone")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hindsight-bench-report-"))
    stack = None
    try:
        minute, hourly = work / "minute.csv", work / "hourly.csv"
        make_csv(minute, "1min", "2022-01-01", seed=3)
        if not args.quick:
            make_csv(hourly, "1h", "1905-01-01", seed=4)
        (work / "data").mkdir()
        stack = start_standalone(work / "data", work)
        ok = True
        with httpx.Client(base_url=stack.base_url, timeout=60, headers={"X-API-Key": stack.api_key}) as c:
            ok &= measure(c, minute, "BENCH-1M", "1m", args.runs)
            if not args.quick:
                ok &= measure(c, hourly, "BENCH-1H", "1h", args.runs)
        if not ok:
            print("FAIL: a report took 1 s or more, or a report.html weighed 5 MB or more", file=sys.stderr)
        return 0 if ok else 1
    finally:
        if stack is not None:
            stack.stop(signal.SIGINT)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
