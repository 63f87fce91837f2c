"""Bar datasets in the market store (issue 15, item 5): how long results' GetBars takes to
stream a 1,000,000-bar dataset, and how many bytes a bar takes on disk.

    .venv/bin/python -m bench.bars_store            (what `make bench` runs; ~1 min)
    .venv/bin/python -m bench.bars_store --runs 3   (fewer timed reads)

A results service (standalone: SQLite and the market store in a temporary data directory, the
in-process bus) is started in this process; two datasets of 1,000,000 one-minute bars around the
clock (~694 days, 23 month files) are imported through ImportDataset (as Parquet):
1. prices on a 0.05 tick (what market data looks like);
2. full-precision random-walk floats (the worst case for compression).

For each: the bytes its version takes in the store per bar, and GetBars over real gRPC on
loopback, read as the engine's bar cache reads it (services/engine/bars_cache.py: every chunk
joined into six NumPy arrays), `--runs` times: the median and the best. Then the same with a
range (one month of the 23). Before this store the bars were one deflated .npz blob per version
in the database (README, "Where bars are stored", gives the numbers of both).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hindsight.results.v1 import results_pb2, results_pb2_grpc

from libs.bus import InProcessBus
from libs.grpc_util import channel
from libs.settings import Settings
from services.results import keys
from services.results.db import Database, sqlite_url
from services.results.service import start

BARS = 1_000_000
TENANT = "bench-bars"
UPLOAD_CHUNK = 1 << 20
COLUMNS = ("ts", "open", "high", "low", "close", "volume")
# The range read: one month of the 23.
MONTH = {"start_ns": int(pd.Timestamp("2024-03-01", tz="UTC").value),
         "end_ns": int(pd.Timestamp("2024-03-31 23:59", tz="UTC").value)}


def bars_parquet(tick: float | None, seed: int) -> bytes:
    """BARS one-minute bars from 2023-01-01 UTC of a random walk (on `tick`, or unrounded)."""
    rng = np.random.default_rng(seed)
    close = 2000 * np.exp(np.cumsum(rng.normal(0, 0.0008, BARS)))
    open_ = np.concatenate([[2000.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0004, BARS)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0004, BARS)))
    if tick is not None:
        open_, close = np.round(open_ / tick) * tick, np.round(close / tick) * tick
        high = np.maximum(np.ceil(high / tick) * tick, np.maximum(open_, close))
        low = np.minimum(np.floor(low / tick) * tick, np.minimum(open_, close))
    ts = pd.date_range("2023-01-01", periods=BARS, freq="min", tz="UTC")
    table = pa.table({"timestamp": pa.array(ts), "open": open_, "high": high, "low": low, "close": close,
                      "volume": np.round(rng.lognormal(8, 1, BARS))})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


async def import_bars(stub, ticker: str, data: bytes) -> None:
    async def requests():
        for i in range(0, len(data), UPLOAD_CHUNK):
            head = dict(tenant_id=TENANT, ticker=ticker, interval="1m") if i == 0 else {}
            yield results_pb2.ImportDatasetRequest(data=data[i : i + UPLOAD_CHUNK], **head)

    await stub.ImportDataset(requests())


async def get_bars(stub, version_id: str, **bounds: int) -> dict[str, np.ndarray]:
    """As the engine's bar cache reads them: every chunk, joined into six arrays."""
    cols: dict[str, list[bytes]] = {k: [] for k in COLUMNS}
    async for chunk in stub.GetBars(results_pb2.GetBarsRequest(version_id=version_id, **bounds)):
        for k in cols:
            cols[k].append(getattr(chunk, k))
    return {k: np.frombuffer(b"".join(v), dtype="<i8" if k == "ts" else "<f8").copy() for k, v in cols.items()}


async def timed(runs: int, read) -> tuple[float, float, int]:
    times, n = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        bars = await read()
        times.append(time.perf_counter() - t0)
        n = len(bars["ts"])
    return statistics.median(times), min(times), n


def stored_bytes(data_dir: Path, ticker: str) -> int:
    with sqlite3.connect(data_dir / "hindsight.db") as db:
        return int(db.execute(
            "SELECT v.bytes_stored FROM dataset_versions v JOIN datasets d USING (dataset_id) WHERE d.ticker = ?",
            (ticker,),
        ).fetchone()[0])


async def main(runs: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="hindsight-bench-bars-"))
    try:
        settings = Settings(hindsight_mode="standalone", hindsight_data_dir=data_dir, database_url="", amqp_url="",
                            hindsight_bootstrap_keys="", hindsight_demo_option_chain=False)
        db = Database(sqlite_url(data_dir))
        db.migrate(settings.market_root())
        with db.write() as s:
            keys.ensure_key(s, TENANT, "bench-bars-key-0123456789abcdef")
        db.close()
        handle = await start(settings, InProcessBus(), port=0)
        chan = channel(f"127.0.0.1:{handle.port}")
        stub = results_pb2_grpc.ResultsServiceStub(chan)
        try:
            print(f"GetBars of {BARS:,} one-minute bars (23 month files), {runs} reads each, over gRPC on loopback")
            for ticker, tick in (("BENCH-TICK", 0.05), ("BENCH-FLOAT", None)):
                data = bars_parquet(tick, seed=7)
                t0 = time.perf_counter()
                await import_bars(stub, ticker, data)
                imported = time.perf_counter() - t0
                resolved = await stub.ResolveDataset(results_pb2.ResolveDatasetRequest(tenant_id=TENANT, ticker=ticker))
                vid = resolved.version_id
                await get_bars(stub, vid)  # warm: the channel, the page cache
                med, best, n = await timed(runs, lambda v=vid: get_bars(stub, v))
                assert n == BARS, n
                mmed, _, mn = await timed(runs, lambda v=vid: get_bars(stub, v, **MONTH))
                size = stored_bytes(data_dir, ticker)
                prices = "0.05 tick" if tick else "random floats"
                print(f"  {prices:>13}: {size / BARS:5.1f} B/bar stored ({size / 1e6:.1f} MB); "
                      f"GetBars all {med * 1000:6.0f} ms median, {best * 1000:6.0f} ms best; "
                      f"one month ({mn:,} bars) {mmed * 1000:5.0f} ms; import {imported:.1f} s")
        finally:
            await chan.close()
            await handle.stop(grace=0.5)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    logging.disable(logging.WARNING)  # the service's own lines; the table is the output
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    asyncio.run(main(parser.parse_args().runs))
