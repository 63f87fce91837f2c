"""The year's short straddle, day by day through a standalone stack (issue 15): a synthetic year of
one-minute weekly option chain (bench/option_chain.py: 250 days x 375 minutes x 41 strikes x
2 types x 2 expiries, ~15.4 M rows) and its underlying (the spot walk the chain is priced on),
both uploaded over HTTP; then a short ATM straddle of the current week, run day by day over the
year from `POST /api/v1/backtest/start` to `backtest_completed` on the SSE stream.

    .venv/bin/python -m bench.option_straddle             (what `make bench` runs: 250 days)
    .venv/bin/python -m bench.option_straddle --days 20   (a quick look)

Strategy: at 09:20 sell 50 of the ATM CE and 50 of the ATM PE of the current week, stop-loss
30 % and target 50 % of the premium, square-off at 15:15 (the dashboard's demo straddle).

Figures printed:
- cold: the first run after the imports (the engine reads each day's chain from results);
- warm: the best of two further runs of the same strategy (the engine's caches may be warm;
  each run replaces the previous run's artifacts). Target: <= 10 s;
- the standalone process' peak resident set during the runs (VmHWM after resetting it through
  /proc/<pid>/clear_refs once the imports are done; the whole stack is one process, so this
  bounds the engine's). Target: < 1 GiB. Its VmHWM over its whole life (the imports
  included) is printed beside it.
The exit status is 1 if the warm target or the memory target is missed.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from bench.daybyday_year import follow_run
from bench.option_chain import MINUTES, ZONE, trading_days, write_files

TARGET_WARM_SECONDS = 10.0
TARGET_PEAK_BYTES = 1 << 30
UNDERLYING = "BENCH-SPOT"
STRATEGY_ID = "00000000-0000-4000-8000-000000000015"
LEG = {"side": "sell", "quantity": 50, "condition": "time >= 09:20",
       "stop_loss": {"type": "percent", "value": 30}, "target": {"type": "percent", "value": 50}}
STRATEGY = {
    "name": "Short straddle (bench)",
    "dataset": {"ticker": UNDERLYING, "interval": "1m"},
    "session": {"square_off": "15:15"},
    "entries": [
        {"id": "entry-ce", **LEG, "instrument": {"type": "option", "option_type": "CE", "strike": "ATM",
                                                 "expiry": "current_week"}},
        {"id": "entry-pe", **LEG, "instrument": {"type": "option", "option_type": "PE", "strike": "ATM",
                                                 "expiry": "current_week"}},
    ],
}


def underlying_csv(days: int, walk: np.ndarray) -> bytes:
    """The underlying's one-minute bars: each minute closes at the chain's spot and opens at the
    previous close (naive local timestamps, read in ZONE at the upload)."""
    local = pd.DatetimeIndex([
        pd.Timestamp(f"{d.isoformat()} 09:15") + pd.Timedelta(minutes=m) for d in trading_days(days) for m in range(MINUTES)
    ])
    close = walk
    open_ = np.concatenate([[close[0]], close[:-1]])
    frame = pd.DataFrame({
        "timestamp": local.strftime("%Y-%m-%dT%H:%M:%S"), "open": open_, "high": np.maximum(open_, close),
        "low": np.minimum(open_, close), "close": close, "volume": np.full(close.size, 1000.0),
    })
    buf = io.StringIO()
    frame.to_csv(buf, index=False, float_format="%.10g")
    return buf.getvalue().encode()


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0]) * 1024
    return out


def reset_peak(pid: int) -> bool:
    """Reset the process' VmHWM to its current RSS (Linux: "5" to clear_refs)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def run_once(c: httpx.Client, start: str, end: str, days: int) -> tuple[float, dict]:
    t0 = time.perf_counter()
    r = c.post("/api/v1/backtest/start", json={"strategy_id": STRATEGY_ID, "start_date": start, "end_date": end})
    if r.status_code != 200 and r.status_code != 202:
        raise SystemExit(f"start answered {r.status_code}: {r.text[:500]}")
    done, final = follow_run(c, r.json()["stream_url"], timeout=900)
    took = time.perf_counter() - t0
    if final is None or done != days:
        raise SystemExit(f"the run ended after {done} of {days} days: {final}")
    return took, final["overall_summary"]


def main() -> int:
    from tests.stacks import start_standalone

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=250, help="trading days (250: about 15 M chain rows)")
    ap.add_argument("--warm-runs", type=int, default=2)
    args = ap.parse_args()
    print(f"Option straddle: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-straddle-") as tmp:
        base = Path(tmp)
        t = time.perf_counter()
        pq_path, _, rows, walk = write_files(base, args.days, csv=False)
        print(f"  generated {args.days} days: {rows:,} chain rows, {walk.size:,} underlying bars in "
              f"{time.perf_counter() - t:.1f} s", flush=True)
        stack = start_standalone(base / "data", base, {"HINDSIGHT_MARKET_DIR": str(base / "market")})
        pid = stack.procs["standalone"].pid
        try:
            with httpx.Client(base_url=stack.base_url, timeout=1800, headers={"X-API-Key": stack.api_key}) as c:
                r = c.post("/api/v1/datasets", files={"file": ("spot.csv", underlying_csv(args.days, walk), "text/csv")},
                           data={"ticker": UNDERLYING, "interval": "1m", "calendar": "sessions", "timezone": ZONE})
                if r.status_code != 201:
                    raise SystemExit(f"underlying upload answered {r.status_code}: {r.text[:500]}")
                t = time.perf_counter()
                with open(pq_path, "rb") as fh:
                    r = c.post("/api/v1/datasets", files={"file": ("chain.parquet", fh, "application/octet-stream")},
                               data={"kind": "option_chain", "ticker": UNDERLYING, "interval": "1m", "timezone": ZONE})
                if r.status_code != 201:
                    raise SystemExit(f"chain upload answered {r.status_code}: {r.text[:500]}")
                print(f"  chain uploaded: {r.json()['rows']:,} rows in {time.perf_counter() - t:.1f} s", flush=True)
                c.put(f"/api/v1/strategies/{STRATEGY_ID}", json=STRATEGY).raise_for_status()
                days = trading_days(args.days)
                start, end = days[0].isoformat(), days[-1].isoformat()
                life_before = proc_status(pid)
                reset = reset_peak(pid)
                rss0 = proc_status(pid)["VmRSS"]
                cold, summary = run_once(c, start, end, args.days)
                warm = [run_once(c, start, end, args.days)[0] for _ in range(args.warm_runs)]
                status = proc_status(pid)
        finally:
            stack.stop(signal.SIGINT)
    best = min(warm)
    peak = status["VmHWM"]
    print(f"  trades: {summary['total_trades']}, total P&L {summary['total_pnl']}")
    print(f"  {'':40s}{'seconds':>10s}{'per day (ms)':>15s}")
    print(f"  {'start -> backtest_completed, cold':40s}{cold:10.2f}{cold / args.days * 1000:15.1f}")
    print(f"  {'start -> backtest_completed, warm':40s}{best:10.2f}{best / args.days * 1000:15.1f}"
          f"   (runs: {', '.join(f'{w:.2f}' for w in warm)})")
    ok_time = best <= TARGET_WARM_SECONDS
    ok_mem = peak < TARGET_PEAK_BYTES
    how = "since the imports (clear_refs)" if reset else "over its life (clear_refs refused)"
    print(f"  target: the year in <= {TARGET_WARM_SECONDS:.0f} s warm -> {'met' if ok_time else 'MISSED'}")
    print(f"  standalone process peak RSS {how}: {peak / 2**20:,.0f} MiB (RSS before the runs {rss0 / 2**20:,.0f} MiB; "
          f"VmHWM before the reset, imports included: {life_before['VmHWM'] / 2**20:,.0f} MiB); target < 1 GiB -> "
          f"{'met' if ok_mem else 'MISSED'}")
    return 0 if ok_time and ok_mem else 1


if __name__ == "__main__":
    sys.exit(main())
