"""Datasets: CSV import (chunks, versions, every validation error naming its row), listing,
resolution and bars for the engine, deletion."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from hindsight.results.v1 import results_pb2

from .helpers import CSV_HEADER, daily_csv, import_requests


async def _import(running, reqs):
    async def gen():
        for r in reqs:
            yield r

    return await running.stub.ImportDataset(gen())


async def _bars(running, version_id: str) -> dict[str, np.ndarray]:
    cols = {k: [] for k in ("ts", "open", "high", "low", "close", "volume")}
    chunks = []
    async for chunk in running.stub.GetBars(results_pb2.GetBarsRequest(version_id=version_id)):
        chunks.append(chunk.total_bars)
        for k in cols:
            cols[k].append(getattr(chunk, k))
    out = {k: np.frombuffer(b"".join(v), dtype="<i8" if k == "ts" else "<f8") for k, v in cols.items()}
    out["_chunks"] = chunks
    return out


@pytest.mark.asyncio
async def test_import_list_resolve_bars_versions_delete(backend):
    running, db = backend
    tenant, _ = db.tenant()
    # Any header case, any column order, extra columns ignored.
    rows = [line.split(",") for line in daily_csv(30).splitlines()[1:]]
    csv = "Volume,Timestamp,Open,High,Low,Close,Adj Close\n" + "".join(
        f"{r[5]},{r[0]},{r[1]},{r[2]},{r[3]},{r[4]},0\n" for r in rows
    )
    ds = (await _import(running, import_requests(tenant, "aapl", csv, chunk=100))).dataset
    assert ds.ticker == "AAPL" and ds.interval == "1d" and ds.bars == 30 and ds.version == 1
    assert ds.start == "2020-01-01T00:00:00Z" and ds.end == "2020-01-30T00:00:00Z"
    assert ds.calendar == "continuous" and ds.timezone == "UTC" and not ds.demo
    assert ds.dataset_id.startswith("ds_")

    # Re-import: a new version under the same dataset id.
    again = (await _import(running, import_requests(tenant, "AAPL", daily_csv(40), calendar="sessions",
                                                     timezone="America/New_York"))).dataset
    assert again.dataset_id == ds.dataset_id and again.version == 2 and again.bars == 40
    assert again.calendar == "sessions" and again.start == "2020-01-01T05:00:00Z"  # midnight New York
    # Another interval is another dataset.
    hourly = (await _import(running, import_requests(tenant, "AAPL", daily_csv(5), interval="1h"))).dataset
    assert hourly.dataset_id != ds.dataset_id and hourly.version == 1

    listed = (await running.stub.ListDatasets(results_pb2.ListDatasetsRequest(tenant_id=tenant))).datasets
    assert sorted((d.interval, d.version, d.bars) for d in listed) == [("1d", 2, 40), ("1h", 1, 5)]

    resolved = await running.stub.ResolveDataset(
        results_pb2.ResolveDatasetRequest(tenant_id=tenant, ticker="aapl", interval="1d")
    )
    assert resolved.found and resolved.dataset.version == 2 and resolved.version_id
    finest = await running.stub.ResolveDataset(results_pb2.ResolveDatasetRequest(tenant_id=tenant, ticker="AAPL"))
    assert finest.found and finest.dataset.interval == "1h"
    missing = await running.stub.ResolveDataset(results_pb2.ResolveDatasetRequest(tenant_id=tenant, ticker="MSFT"))
    assert not missing.found

    bars = await _bars(running, resolved.version_id)
    assert len(bars["ts"]) == 40 and bars["_chunks"] == [40]
    assert np.all(np.diff(bars["ts"]) == 86_400 * 10**9)
    assert bars["ts"][0] == np.datetime64("2020-01-01T05:00:00", "ns").astype(np.int64)
    assert np.all(bars["high"] >= np.maximum(bars["open"], bars["close"]))
    assert bars["volume"][0] == 1000.0

    deleted = await running.stub.DeleteDataset(results_pb2.DeleteDatasetRequest(tenant_id=tenant, dataset_id=ds.dataset_id))
    assert deleted.versions_deleted == 2
    listed = (await running.stub.ListDatasets(results_pb2.ListDatasetsRequest(tenant_id=tenant))).datasets
    assert [d.interval for d in listed] == ["1h"]
    assert db.scalar("SELECT count(*) FROM dataset_versions WHERE dataset_id = :d", d=ds.dataset_id) == 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await running.stub.DeleteDataset(results_pb2.DeleteDatasetRequest(tenant_id=tenant, dataset_id=ds.dataset_id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in running.stub.GetBars(results_pb2.GetBarsRequest(version_id=resolved.version_id)):
            pass
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.asyncio
async def test_bars_stream_in_chunks_of_100000(pg, pg_db):
    tenant, _ = pg_db.tenant()
    n = 250_001
    ts = np.datetime64("2024-01-01T00:00", "m") + np.arange(n)
    lines = [CSV_HEADER] + [f"{t},10,11,9,10.5,{i}\n" for i, t in enumerate(ts.astype(str))]
    ds = (await _import(pg, import_requests(tenant, "MIN", "".join(lines), interval="1m", chunk=1 << 20))).dataset
    assert ds.bars == n
    resolved = await pg.stub.ResolveDataset(results_pb2.ResolveDatasetRequest(tenant_id=tenant, ticker="MIN"))
    bars = await _bars(pg, resolved.version_id)
    assert bars["_chunks"] == [n, n, n]
    assert len(bars["ts"]) == n and bars["volume"][-1] == n - 1
    assert np.all(np.diff(bars["ts"]) == 60 * 10**9)


GOOD = "2024-01-01,10,11,9,10.5,100\n"
BAD_CASES = [
    ("", "empty"),
    ("   \n", "empty"),
    (CSV_HEADER, "no data rows"),
    ("timestamp,open,high,low,close\n" + GOOD, "row 1: the header lacks column(s) volume"),
    (CSV_HEADER + GOOD + "not-a-date,10,11,9,10.5,100\n", "row 3: timestamp 'not-a-date'"),
    (CSV_HEADER + GOOD + "2024-01-02,ten,11,9,10.5,100\n", "row 3: open is not a number: 'ten'"),
    (CSV_HEADER + GOOD + "2024-01-02,10,11,9,NaN,100\n", "row 3: close is NaN"),
    (CSV_HEADER + GOOD + "2024-01-02,10,11,9,10.5,\n", "row 3: volume is missing"),
    (CSV_HEADER + GOOD + GOOD.replace("01-01", "01-02") + "2024-01-03,10,8,9,10,1\n", "row 4: high (8) is below low (9)"),
    (CSV_HEADER + GOOD + "2024-01-02,10,10.2,9,10.5,100\n", "row 3: high (10.2) is below max(open, close) (10.5)"),
    (CSV_HEADER + GOOD + "2024-01-02,10,11,10.2,10.5,100\n", "row 3: low (10.2) is above min(open, close) (10)"),
    (CSV_HEADER + GOOD + "2024-01-02,10,11,9,10.5,-1\n", "row 3: volume is negative (-1)"),
    (CSV_HEADER + GOOD + "2023-12-31,10,11,9,10.5,100\n", "row 3: timestamp 2023-12-31T00:00:00Z is earlier than row 2's"),
    (CSV_HEADER + GOOD + GOOD, "row 3: duplicate timestamp 2024-01-01T00:00:00Z (same as row 2)"),
    (CSV_HEADER + GOOD + "2024-01-02,10,11,9,10.5,100,7\n", "row 3: expected 6 fields"),
    (CSV_HEADER + GOOD + "\n" + "2024-01-02,10,11,9,inf,100\n", "row 4: close is not finite"),  # blank row 3 skipped
]


@pytest.mark.asyncio
@pytest.mark.parametrize("csv,message", BAD_CASES, ids=[m for _, m in BAD_CASES])
async def test_bad_csv_is_invalid_argument_naming_the_row_and_stores_nothing(pg, pg_db, csv, message):
    tenant, _ = pg_db.tenant()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _import(pg, import_requests(tenant, "BAD", csv, chunk=7))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.value.details()
    assert pg_db.scalar("SELECT count(*) FROM datasets WHERE tenant_id = :t", t=tenant) == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "meta,message",
    [
        (dict(interval="7h"), "interval must be one of"),
        (dict(ticker="A B"), "ticker 'A B' must be"),
        (dict(ticker="a/../b"), "must not contain"),
        (dict(calendar="lunar"), "calendar must be one of continuous, sessions"),
        (dict(timezone="Mars/Olympus"), "unknown timezone"),
        (dict(ticker=""), "ticker is required"),
    ],
)
async def test_bad_metadata_is_invalid_argument(pg, pg_db, meta, message):
    tenant, _ = pg_db.tenant()
    values = dict(ticker="OK", interval="1d")
    values.update(meta)
    ticker, interval = values.pop("ticker"), values.pop("interval")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _import(pg, import_requests(tenant, ticker, CSV_HEADER + GOOD, interval=interval, **values))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.value.details()


@pytest.mark.asyncio
async def test_naive_timestamps_use_the_dataset_timezone_and_offsets_are_honoured(pg, pg_db):
    tenant, _ = pg_db.tenant()
    csv = CSV_HEADER + "2024-01-01 09:15:00,10,11,9,10.5,1\n2024-01-01T09:16:00+05:30,10,11,9,10.5,1\n2024-01-01T03:47:00Z,10,11,9,10.5,1\n"
    ds = (await _import(pg, import_requests(tenant, "NIFTY", csv, interval="1m", calendar="sessions", timezone="Asia/Kolkata"))).dataset
    assert (ds.start, ds.end, ds.bars) == ("2024-01-01T03:45:00Z", "2024-01-01T03:47:00Z", 3)


@pytest.mark.asyncio
async def test_row_limit(pg, pg_db, monkeypatch):
    from services.results import csv_bars

    monkeypatch.setattr(csv_bars, "MAX_ROWS", 3)
    tenant, _ = pg_db.tenant()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _import(pg, import_requests(tenant, "BIG", daily_csv(4)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "more than 3 data rows" in err.value.details()


@pytest.mark.asyncio
async def test_upload_size_limit(pg, pg_db, monkeypatch):
    from services.results import servicer

    monkeypatch.setattr(servicer, "MAX_IMPORT_BYTES", 1000)
    tenant, _ = pg_db.tenant()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _import(pg, import_requests(tenant, "BIG", daily_csv(100), chunk=200))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "512 MB" in err.value.details()
    assert pg_db.scalar("SELECT count(*) FROM datasets WHERE tenant_id = :t", t=tenant) == 0
