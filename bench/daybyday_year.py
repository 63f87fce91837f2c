"""Day-by-day benchmark: one year of 1-minute session bars with an RSI entry/exit strategy,
through a real standalone stack, from `POST /api/v1/backtest/start` to `backtest_completed`
(artifacts written: three gzip JSON files per day).

    .venv/bin/python -m bench.daybyday_year          (what `make bench` runs; ~30 s)

Data: 250 weekdays from 2023-01-02, 09:15-15:29 Asia/Kolkata (375 bars a day,
93,750 bars), a geometric random walk (seed 2023). Strategy: buy 1 when
RSI(14) < 30, stop-loss 0.5 %, target 1 %, up to 2 re-entries after a stop-out;
exit when RSI(14) > 70; square-off at 15:15.

Figures printed:
- cold: the first run after the import (the engine fetches and caches the bars);
- warm: the median of three further runs (bars cached; a new run replaces the
  previous run's artifacts);
- engine only: in this process, the whole-range evaluation and the building of
  every day's three gzip files, without the services around it (the stack runs
  the year as one shard: standalone has one engine);
beside seed 004's own figure of about 5 s per day (about 1,250 s for 250 days).
Target: the whole year in under 2 s.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TZ = "Asia/Kolkata"
DAYS = 250
STRATEGY_ID = "00000000-0000-4000-8000-000000000001"
STRATEGY = {
    "name": "RSI entry/exit (bench)",
    "dataset": {"ticker": "BENCH-YEAR", "interval": "1m"},
    "session": {"square_off": "15:15"},
    "entries": [{"id": "entry-1", "condition": "RSI(14) < 30", "side": "buy", "quantity": 1,
                 "stop_loss": {"type": "percent", "value": 0.5}, "target": {"type": "percent", "value": 1.0},
                 "max_reentries": 2}],
    "exits": [{"id": "exit-1", "condition": "RSI(14) > 70"}],
}
SEED_SECONDS_PER_DAY = 5.0
TARGET_SECONDS = 2.0


def year_bars() -> pd.DataFrame:
    days = pd.bdate_range("2023-01-02", periods=DAYS)
    minutes = pd.timedelta_range(start="09:15:00", periods=375, freq="min")
    local = pd.DatetimeIndex([d + m for d in days for m in minutes])
    rng = np.random.default_rng(2023)
    n = len(local)
    close = 1000 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    open_ = np.concatenate([[1000.0], close[:-1]]) * np.exp(rng.normal(0, 0.0002, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0004, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0004, n)))
    return pd.DataFrame({"timestamp": local.strftime("%Y-%m-%dT%H:%M:%S"), "open": open_, "high": high, "low": low,
                         "close": close, "volume": rng.integers(100, 10_000, n)})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_stack(data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, HINDSIGHT_PORT=str(port), HINDSIGHT_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    env.pop("DATABASE_URL", None)
    env.pop("AMQP_URL", None)
    with open(data_dir / "stack.log", "ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen([sys.executable, "-m", "services.standalone"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the standalone stack exited ({proc.returncode}); see {data_dir / 'stack.log'}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the standalone stack did not become healthy")


def follow_run(c: httpx.Client, stream_url: str, timeout: float) -> tuple[int, dict | None]:
    """(days completed, the backtest_completed event or None) of a day-by-day run's SSE stream,
    read to its end; an `error` event ends the bench."""
    final, days = None, 0
    with c.stream("GET", stream_url, timeout=timeout) as resp:
        event = ""
        for line in resp.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                if event == "day_completed":
                    days += 1
                elif event == "backtest_completed":
                    final = json.loads(line[5:])
                    break
                elif event == "error":
                    raise SystemExit(f"backtest failed: {line}")
    return days, final


def run_once(c: httpx.Client, start: str, end: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    r = c.post("/api/v1/backtest/start", json={"strategy_id": STRATEGY_ID, "start_date": start, "end_date": end})
    r.raise_for_status()
    days, final = follow_run(c, r.json()["stream_url"], timeout=300)
    elapsed = time.perf_counter() - t0
    assert final is not None and days == DAYS, (days, final)
    return elapsed, final["overall_summary"]


def engine_only(df: pd.DataFrame) -> float:
    from domain.rules.strategy import compile_strategy
    from services.engine.bars import Bars
    from services.engine.day_by_day import run_day_by_day
    from services.engine.kinds.day_by_day import build_day

    ts = pd.DatetimeIndex(pd.to_datetime(df["timestamp"])).tz_localize(TZ).tz_convert("UTC").as_unit("ns").asi8
    bars = Bars(ts, df["open"].to_numpy(), df["high"].to_numpy(), df["low"].to_numpy(), df["close"].to_numpy(),
                df["volume"].to_numpy(dtype=float), timezone=TZ, calendar="sessions")
    strategy = compile_strategy(STRATEGY)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        run = run_day_by_day(bars, strategy, date(2023, 1, 2), date(2023, 12, 29), interval="1m", ticker="BENCH-YEAR")
        for d in run.days:
            build_day(run, d)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    df = year_bars()
    start, end = df["timestamp"].iloc[0][:10], df["timestamp"].iloc[-1][:10]
    print(f"Day-by-day: {len(df):,} one-minute session bars, {DAYS} days ({start} .. {end}), RSI(14) entry/exit", flush=True)
    with tempfile.TemporaryDirectory(prefix="hindsight-bench-") as tmp:
        proc, base = start_stack(Path(tmp))
        try:
            with httpx.Client(base_url=base, timeout=120) as c:
                csv = df.to_csv(index=False, float_format="%.10g").encode()
                r = c.post("/api/v1/datasets", files={"file": ("year.csv", csv, "text/csv")},
                           data={"ticker": "BENCH-YEAR", "interval": "1m", "calendar": "sessions", "timezone": TZ})
                r.raise_for_status()
                c.put(f"/api/v1/strategies/{STRATEGY_ID}", json=STRATEGY).raise_for_status()
                cold, summary = run_once(c, start, end)
                warm = [run_once(c, start, end)[0] for _ in range(3)]
                files = list((Path(tmp) / "artifacts").rglob("*.json.gz"))
                size = sum(f.stat().st_size for f in files)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
    eng = engine_only(df)
    seed = SEED_SECONDS_PER_DAY * DAYS
    w = statistics.median(warm)
    print(f"  trades: {summary['total_trades']}, total P&L {summary['total_pnl']}; artifacts: {len(files)} files, {size / 1e6:.2f} MB")
    print(f"  {'':34s}{'seconds':>10s}{'per day (ms)':>15s}")
    print(f"  {'start -> backtest_completed, cold':34s}{cold:10.3f}{cold / DAYS * 1000:15.2f}")
    print(f"  {'start -> backtest_completed, warm':34s}{w:10.3f}{w / DAYS * 1000:15.2f}")
    print(f"  {'engine only (evaluate + files)':34s}{eng:10.3f}{eng / DAYS * 1000:15.2f}")
    print(f"  {'seed 004 (~5 s per day)':34s}{seed:10.0f}{SEED_SECONDS_PER_DAY * 1000:15.0f}")
    verdict = "met" if w < TARGET_SECONDS else "MISSED"
    print(f"  target: the year in under {TARGET_SECONDS:.0f} s (warm) -> {verdict}; {seed / w:,.0f}x the seed's speed")


if __name__ == "__main__":
    main()
