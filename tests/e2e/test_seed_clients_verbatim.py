"""The seeds' own example clients, run as written, in both modes of a real stack:

- seed 002's JavaScript (fetch + EventSource + the day download) in Node, on a minimal page
  (tests/e2e/seed_clients/seed002_page.mjs) whose origin is the gateway;
- seed 004's Python (requests: POST /run, poll /status every 5 s, GET a day), in a
  subprocess with only http://localhost:8000 replaced by the stack's address.

Their dates (2024-10-24..31; 2024-02-01..2024-12-31 and the day 01-10-2024) are outside the
demo minute data, so the seeds' strategy id is pointed, for this test, at an imported
dataset of 1-minute session bars covering 2024, and pointed back afterwards. The copies
are read out of the seed documents at test time (tests/seeds.py finds them) and differ
from the seeds only where the seeds elide the strategy id; nothing of the seeds' code is
kept in this repository.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.e2e.day_by_day_support import (  # noqa: F401  (fixtures)
    SEED_STRATEGY_ID,
    STRATEGY,
    auth_headers,
    dbd_stack_fixture,
)
from tests.seeds import seed_file

CLIENTS = Path(__file__).parent / "seed_clients"


def seed_code(prefix: str, language: str) -> str:
    """The first ```<language> block of a seed document (the seed's example client)."""
    path = seed_file(prefix)
    if path is None:
        pytest.skip("the seed documents are not on this machine (set HINDSIGHT_SEEDS_DIR)")
    blocks = re.findall(rf"```{language}\n(.*?)\n```", path.read_text(), re.DOTALL)
    assert blocks, f"no {language} block in {path.name}"
    return blocks[0] + "\n"


def seed002_client(tmp_path: Path) -> Path:
    """Seed 002's frontend flow with its elided strategy id written out."""
    code = seed_code("002", "javascript")
    assert code.count("'5708424d...'") == 1
    out = tmp_path / "seed002_frontend.js"
    out.write_text(code.replace("'5708424d...'", f"'{SEED_STRATEGY_ID}'"))
    return out


def seed004_client(tmp_path: Path) -> str:
    """Seed 004's Python client with the day URL's `strategy_id` placeholder filled in."""
    code = seed_code("004", "python")
    placeholder = "/day/user_123/strategy_id/"
    assert code.count(placeholder) == 1
    return code.replace(placeholder, f"/day/user_123/{SEED_STRATEGY_ID}/")
TICKER = "SEED-2024"
SEED_VERBATIM_STRATEGY = {
    **STRATEGY,
    "name": "RSI mean reversion (seed clients)",
    "dataset": {"ticker": TICKER, "interval": "1m"},
}
# Seed 004's client in a subprocess; in the distributed mode (credentials always required)
# the key is added to every request the way a logged-in session would carry it.
PYTHON_PRELUDE = """
import os, runpy, sys
import requests
key = os.environ.get("HINDSIGHT_TEST_API_KEY")
if key:
    _request = requests.Session.request
    def request(self, method, url, **kw):
        kw["headers"] = {**(kw.get("headers") or {}), "X-API-Key": key}
        return _request(self, method, url, **kw)
    requests.Session.request = request
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def year_2024_csv() -> bytes:
    """1-minute bars 09:15-15:29 Asia/Kolkata on the weekdays of 2024 (a random walk)."""
    days = pd.bdate_range("2024-01-01", "2024-12-31")
    minutes = pd.timedelta_range(start="09:15:00", periods=375, freq="min")
    ts = pd.DatetimeIndex([d + m for d in days for m in minutes])
    rng = np.random.default_rng(2024)
    close = 22_000 * np.exp(np.cumsum(rng.normal(0, 0.0009, ts.size)))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0, 0.0004, ts.size)) * close
    frame = pd.DataFrame({
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S"),
        "open": open_.round(2), "high": (np.maximum(open_, close) + spread).round(2),
        "low": (np.minimum(open_, close) - spread).round(2), "close": close.round(2),
        "volume": rng.integers(1_000, 50_000, ts.size),
    })
    return frame.to_csv(index=False).encode()


@pytest.fixture(scope="module")
def seed_dataset_strategy(dbd_stack):
    headers = auth_headers(dbd_stack)
    with httpx.Client(base_url=dbd_stack.base_url, headers=headers, timeout=120) as c:
        have = [d["ticker"] for d in c.get("/api/v1/datasets").json()["datasets"]]
        if TICKER not in have:
            r = c.post("/api/v1/datasets", files={"file": ("seed2024.csv", year_2024_csv(), "text/csv")},
                       data={"ticker": TICKER, "interval": "1m", "calendar": "sessions", "timezone": "Asia/Kolkata"})
            assert r.status_code == 201, r.text
        r = c.put(f"/api/v1/strategies/{SEED_STRATEGY_ID}", json=SEED_VERBATIM_STRATEGY)
        assert r.status_code in (200, 201), r.text
        try:
            yield SEED_STRATEGY_ID
        finally:  # the other seed flows of this session expect the demo-data strategy
            r = c.put(f"/api/v1/strategies/{SEED_STRATEGY_ID}", json=STRATEGY)
            assert r.status_code == 200, r.text


def _env(stack) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HINDSIGHT_TEST_API_KEY", None)
    if stack.mode != "standalone":
        env["HINDSIGHT_TEST_API_KEY"] = stack.api_key
    return env


def test_seed002_javascript_client_runs_unchanged(dbd_stack, seed_dataset_strategy, tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node (>= 18) is needed to run seed 002's JavaScript client")
    proc = subprocess.run(
        [node, str(CLIENTS / "seed002_page.mjs"), dbd_stack.base_url, str(seed002_client(tmp_path))],
        capture_output=True, text=True, timeout=180, env=_env(dbd_stack), check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    harness = json.loads(lines[-1].removeprefix("HARNESS "))
    days = ["2024-10-24", "2024-10-25", "2024-10-28", "2024-10-29", "2024-10-30", "2024-10-31"]
    # The seed's console output: a start and a completion per day, in order, then the total.
    started = [ln for ln in lines if re.match(r"^Day \d+ started: ", ln)]
    assert started == [f"Day {n} started: {d}" for n, d in enumerate(days, 1)], proc.stdout
    completed = [ln.split()[1] for ln in lines if re.match(r"^Day \S+ complete: \{", ln)]
    assert completed == days, proc.stdout
    assert any(ln.startswith("Backtest complete! {") for ln in lines), proc.stdout
    assert "total_trades:" in proc.stdout and "win_rate:" in proc.stdout
    backtest_id = f"{SEED_STRATEGY_ID}_2024-10-24_2024-10-31"
    reqs = harness["requests"]
    assert reqs[0]["url"].endswith("/api/v1/backtest/start") and reqs[0]["status"] == 200, reqs
    stream = [r for r in reqs if r["url"].endswith(f"/api/v1/backtest/{backtest_id}/stream")]
    assert stream and stream[0]["status"] == 200 and stream[0]["contentType"].startswith("text/event-stream"), reqs
    # The seed closes its EventSource on backtest_completed: no reconnection happened.
    assert len(stream) == 1, reqs
    # The click: the ZIP the seed downloads is the seed's, with both files in its formats.
    (download,) = [r for r in reqs if "/day/" in r["url"]]
    assert download["url"].endswith(f"/api/v1/backtest/{backtest_id}/day/2024-10-25")
    assert download["status"] == 200 and download["contentType"] == "application/zip"
    assert download["disposition"] == 'attachment; filename="backtest_2024-10-25.zip"'
    with httpx.Client(base_url=dbd_stack.base_url, headers=auth_headers(dbd_stack), timeout=30) as c:
        blob = c.get(f"/api/v1/backtest/{backtest_id}/day/2024-10-25").content
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        assert sorted(z.namelist()) == ["diagnostics_export.json.gz", "trades_daily.json.gz"]
        trades = json.loads(gzip.decompress(z.read("trades_daily.json.gz")))
        events = json.loads(gzip.decompress(z.read("diagnostics_export.json.gz")))["events_history"]
    assert trades["date"] == "2024-10-25"
    for t in trades["trades"]:
        assert t["symbol"] == TICKER and all(f in events for f in t["entry_flow_ids"] + t["exit_flow_ids"])


def test_seed004_python_client_runs_unchanged(dbd_stack, seed_dataset_strategy, tmp_path):
    script = seed004_client(tmp_path)
    code = [ln for ln in script.splitlines() if not ln.startswith("#")]
    assert sum(ln.count("http://localhost:8000") for ln in code) == 3
    client = tmp_path / "seed004_client.py"
    client.write_text(script.replace("http://localhost:8000", dbd_stack.base_url.rstrip("/")))
    proc = subprocess.run([sys.executable, "-c", PYTHON_PRELUDE, str(client)], capture_output=True, text=True, check=False,
                          timeout=300, env=_env(dbd_stack))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout.splitlines()
    assert all(re.match(r"^Progress: \d+(\.\d+)?%$", ln) for ln in out[:-2]), proc.stdout
    positions = int(out[-2].removeprefix("Positions: "))
    total_pnl = float(out[-1].removeprefix("Total P&L: "))
    # What it printed is what the API holds for that day.
    with httpx.Client(base_url=dbd_stack.base_url, headers=auth_headers(dbd_stack), timeout=30) as c:
        meta = c.get(f"/api/v1/backtest/metadata/user_123/{SEED_STRATEGY_ID}").json()
    assert meta["start_date"] == "2024-02-01" and meta["end_date"] == "2024-12-31" and meta["status"] == "completed"
    (row,) = [d for d in meta["daily_summaries"] if d["date"] == "01-10-2024"]
    assert row["positions"] == positions and abs(row["pnl"] - total_pnl) <= 0.01
    assert len(meta["daily_summaries"]) == meta["total_days"] == len(pd.bdate_range("2024-02-01", "2024-12-31"))
