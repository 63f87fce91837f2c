"""Finding 4 of the trust audit: uploads used about 4x their size in memory (one 238 MB
CSV took results from 0.19 to 1.18 GB and three at once to 3.79 GB), and concurrent
uploads were not capped.

A real standalone stack (every service in one process, so its RSS is results' and the
gateway's together) over real HTTP: an upload of about 60 MB keeps the growth of the RSS
within a bound proportional to its bars and far below 4x the file, and memory returns
near the baseline afterwards; with HINDSIGHT_MAX_CONCURRENT_UPLOADS=1 a second upload
while one is being imported is a 429 with Retry-After and stores nothing, and the first
one succeeds. (`make bench` runs bench/upload_memory.py for the audit's sizes.)
"""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.stacks import Stack, start_standalone

MB = 1024 * 1024
BARS = 560_000  # about 60 MB of CSV
# The bound the README states for the growth of the RSS during an import (see bench/upload_memory.py):
# 128 bytes a bar (48 for the arrays while parsing; while storing, a month's Parquet pages; before
# the market store, the compressed blob and SQLite's two copies of it) plus one parsed chunk and the
# transfer's buffers.
BYTES_PER_BAR = 128
FIXED_BYTES = 48 * MB
# After the import: back to the baseline, give or take allocator slack.
AFTER_SLACK = 32 * MB


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_standalone(tmp_path_factory.mktemp("upload-data"), tmp_path_factory.mktemp("upload-logs"),
                         {"HINDSIGHT_MAX_CONCURRENT_UPLOADS": "1"})
    yield s
    s.stop(signal.SIGINT)


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1-minute bars with full-precision prices, as pandas writes them (about 105 bytes a row)."""
    rng = np.random.default_rng(12)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.0008, BARS)))
    open_ = np.concatenate([[100.0], close[:-1]])
    ts = np.datetime64("2015-01-01T00:00", "m") + np.arange(BARS)
    df = pd.DataFrame({
        "timestamp": np.char.add(ts.astype("datetime64[s]").astype(str), "Z"),
        "open": open_,
        "high": np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0004, BARS))),
        "low": np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0004, BARS))),
        "close": close,
        "volume": rng.random(BARS) * 10_000,
    })
    path = tmp_path_factory.mktemp("upload-csv") / "bars.csv"
    df.to_csv(path, index=False, lineterminator="\n")
    return path


def rss(stack: Stack) -> int:
    with open(f"/proc/{stack.procs['standalone'].pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def upload(stack: Stack, path: Path | None, ticker: str, body: bytes = b"") -> httpx.Response:
    with httpx.Client(base_url=stack.base_url, timeout=120) as c:
        fh = open(path, "rb") if path is not None else None  # noqa: SIM115 - closed below
        try:
            return c.post("/api/v1/datasets", headers={"X-API-Key": stack.api_key},
                          files={"file": ("bars.csv", fh if fh is not None else body, "text/csv")},
                          data={"ticker": ticker, "interval": "1m"})
        finally:
            if fh is not None:
                fh.close()


def tickers(stack: Stack) -> set[str]:
    with stack.client(headers={"X-API-Key": stack.api_key}) as c:
        return {d["ticker"] for d in c.get("/api/v1/datasets").json()["datasets"]}


SMALL = b"timestamp,open,high,low,close,volume\n2024-01-01,10,11,9,10.5,1\n2024-01-02,10,11,9,10.5,1\n"


def settle(stack: Stack) -> int:
    time.sleep(1.5)
    return rss(stack)


def test_an_upload_grows_the_rss_by_its_bars_not_4x_its_size_and_gives_it_back(stack: Stack, big_csv: Path) -> None:
    assert upload(stack, None, "WARM-UP", SMALL).status_code == 201  # the import path's code is loaded
    baseline = settle(stack)
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss(stack))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        r = upload(stack, big_csv, "MEM-BIG")
    finally:
        done.set()
        sampler.join()
    assert r.status_code == 201, r.text
    assert r.json()["bars"] == BARS
    size = big_csv.stat().st_size
    growth = peak - baseline
    bound = BYTES_PER_BAR * BARS + FIXED_BYTES
    print(f"file {size / MB:.0f} MB, {BARS:,} bars: baseline {baseline / MB:.0f} MB, peak +{growth / MB:.0f} MB "
          f"(bound {bound / MB:.0f} MB, audit ~4x the file: {4 * size / MB:.0f} MB)")
    assert growth <= bound, f"RSS grew by {growth / MB:.0f} MB for {BARS:,} bars (bound {bound / MB:.0f} MB)"
    assert growth < 1.5 * size
    after = settle(stack)
    print(f"after {after / MB:.0f} MB")
    assert after <= baseline + AFTER_SLACK, f"RSS stayed at {after / MB:.0f} MB (baseline {baseline / MB:.0f} MB)"


def _spooled_upload(stack: Stack) -> os.stat_result | None:
    """The stat of a file results is spooling an upload to (its descriptor under the data dir's uploads/)."""
    fd_dir = Path(f"/proc/{stack.procs['standalone'].pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
            if "/uploads/" in target and target.endswith("(deleted)"):
                return os.stat(fd)
        except OSError:  # closed meanwhile
            continue
    return None


def test_past_the_cap_an_upload_is_a_429_with_retry_after_and_stores_nothing(stack: Stack, big_csv: Path) -> None:
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(upload, stack, big_csv, "CAP-FIRST")
        # Wait until results spools the first upload: from then on it holds the only slot.
        deadline = time.time() + 60
        spooled = None
        while spooled is None and not first.done() and time.time() < deadline:
            spooled = _spooled_upload(stack)
            time.sleep(0.005)
        assert spooled is not None, "the first upload was never seen spooling"
        # Unnamed (deleted) and private while it exists.
        assert stat.S_IMODE(spooled.st_mode) == 0o600
        refused = upload(stack, None, "CAP-REFUSED", SMALL)
        assert not first.done(), "the first upload ended before the second was sent: make the file bigger"
        first_response = first.result()
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) > 0
    error = refused.json()["error"]
    assert error["code"] == "too_many_requests" and "at most 1 at once" in error["message"]
    assert first_response.status_code == 201, first_response.text
    assert first_response.json()["bars"] == BARS
    have = tickers(stack)
    assert "CAP-FIRST" in have and "CAP-REFUSED" not in have
    # The slot is free again.
    assert upload(stack, None, "CAP-AFTER", SMALL).status_code == 201
    assert _spooled_upload(stack) is None
