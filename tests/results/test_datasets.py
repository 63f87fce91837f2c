"""Datasets: CSV import (chunks, versions, every validation error naming its row), listing,
resolution and bars for the engine, deletion."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from hindsight.results.v1 import results_pb2
from sqlalchemy.orm import Session

from services.results import datasets
from services.results.demo_datasets import demo_minute

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


def _minute_csv(first: str, n: int) -> str:
    ts = np.datetime64(first, "m") + np.arange(n)
    return CSV_HEADER + "".join(f"{t},10,11,9,{10 + i % 7 / 10},{i}\n" for i, t in enumerate(ts.astype(str)))


async def _bars_in(running, version_id: str, start: str | None = None, end: str | None = None) -> np.ndarray:
    """The timestamps GetBars streams for a range (ISO minutes, UTC; None: unbounded)."""
    req = results_pb2.GetBarsRequest(version_id=version_id)
    if start is not None:
        req.start_ns = int(np.datetime64(start, "ns").astype(np.int64))
    if end is not None:
        req.end_ns = int(np.datetime64(end, "ns").astype(np.int64))
    parts, totals = [], set()
    async for chunk in running.stub.GetBars(req):
        parts.append(chunk.ts)
        totals.add(chunk.total_bars)
    ts = np.frombuffer(b"".join(parts), dtype="<i8")
    assert totals == {len(ts)}
    return ts


@pytest.mark.asyncio
async def test_bars_are_parquet_files_of_the_market_store_read_by_range_and_deleted_with_their_dataset(backend):
    running, db = backend
    market = running.handle.servicer.market.root
    tenant, _ = db.tenant()
    # Minute bars from 2024-01-31 22:00 UTC to 2024-02-01 02:59 UTC: two months, two files.
    ds = (await _import(running, import_requests(tenant, "MINS", _minute_csv("2024-01-31T22:00", 300),
                                                 interval="1m", chunk=1 << 16))).dataset
    resolved = await running.stub.ResolveDataset(results_pb2.ResolveDatasetRequest(tenant_id=tenant, ticker="MINS"))
    vid = resolved.version_id
    key, stored = db.rows("SELECT storage_key, bytes_stored FROM dataset_versions WHERE version_id = :v", v=vid)[0]
    assert key == f"bars/{tenant}/{vid}"
    files = sorted(p for p in (market / key).rglob("*") if p.is_file())
    assert [p.relative_to(market / key).as_posix() for p in files] == [
        "month=2024-01/part-0.parquet", "month=2024-02/part-0.parquet"]
    assert stored == sum(p.stat().st_size for p in files)
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files)
    assert (market / key).stat().st_mode & 0o777 == 0o700

    every = await _bars_in(running, vid)
    assert len(every) == ds.bars == 300 and np.all(np.diff(every) == 60 * 10**9)
    # A range: both ends included, across the month boundary, or within one month only.
    span = await _bars_in(running, vid, "2024-01-31T23:58", "2024-02-01T00:01")
    assert span.tolist() == every[118:122].tolist()
    assert (await _bars_in(running, vid, "2024-02-01T02:00")).tolist() == every[240:].tolist()
    assert (await _bars_in(running, vid, end="2024-01-31T22:00")).tolist() == every[:1].tolist()
    assert len(await _bars_in(running, vid, "2025-01-01T00:00")) == 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _bars_in(running, vid, "2024-02-01T00:00", "2024-01-31T00:00")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # A second version is a directory of its own; deleting the dataset removes both, after the rows.
    await _import(running, import_requests(tenant, "MINS", _minute_csv("2024-03-01T00:00", 5), interval="1m"))
    keys = [r[0] for r in db.rows("SELECT storage_key FROM dataset_versions v JOIN datasets d USING (dataset_id) "
                                  "WHERE d.tenant_id = :t", t=tenant)]
    assert len(set(keys)) == 2 and all((market / k).is_dir() for k in keys)
    await running.stub.DeleteDataset(results_pb2.DeleteDatasetRequest(tenant_id=tenant, dataset_id=ds.dataset_id))
    assert not any((market / k).exists() for k in keys)
    assert not (market / "bars" / tenant).exists()


@pytest.mark.asyncio
async def test_an_import_whose_row_is_refused_leaves_no_files(pg, pg_db):
    market = pg.handle.servicer.market.root
    staging = set((market / ".staging").iterdir()) if (market / ".staging").is_dir() else set()
    with pytest.raises(grpc.aio.AioRpcError) as err:  # the files are written, then the row is refused
        await _import(pg, import_requests("t_nobody", "GHOST", daily_csv(10)))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert not (market / "bars" / "t_nobody").exists()
    assert set((market / ".staging").iterdir()) <= staging


@pytest.mark.asyncio
async def test_demo_datasets_share_one_copy_that_outlives_any_tenant_s_deletion(backend):
    running, db = backend
    market = running.handle.servicer.market
    alpha, beta = db.tenant()[0], db.tenant()[0]
    with Session(db.engine) as s, s.begin():
        assert datasets.ensure_demo_datasets(s, market, alpha, only_if_none=True) == ["DEMO-DAILY", "DEMO-MINUTE"]
        datasets.ensure_demo_datasets(s, market, beta, only_if_none=True)
    rows = db.rows("SELECT d.tenant_id, d.dataset_id, d.ticker, v.version_id, v.storage_key FROM dataset_versions v "
                   "JOIN datasets d USING (dataset_id) WHERE d.tenant_id IN (:a, :b) ORDER BY d.ticker, d.tenant_id",
                   a=alpha, b=beta)
    of = {(tenant, ticker): (dataset_id, vid, key) for tenant, dataset_id, ticker, vid, key in rows}
    for ticker in ("DEMO-DAILY", "DEMO-MINUTE"):
        a, b = of[alpha, ticker], of[beta, ticker]
        assert a[2] == b[2] == f"bars/_demo/{ticker}-v1" and a[1] != b[1]  # one copy, two versions
    alpha_minute, _, key = of[alpha, "DEMO-MINUTE"]
    beta_minute_version = of[beta, "DEMO-MINUTE"][1]
    await running.stub.DeleteDataset(results_pb2.DeleteDatasetRequest(tenant_id=alpha, dataset_id=alpha_minute))
    assert (market.root / key).is_dir()
    close = np.frombuffer(b"".join([c.close async for c in running.stub.GetBars(
        results_pb2.GetBarsRequest(version_id=beta_minute_version))]), dtype="<f8")
    assert np.array_equal(close, demo_minute().bars.close)


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
    assert not (pg.handle.servicer.market.root / "bars" / tenant).exists()


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


@pytest.mark.asyncio
async def test_many_tickers_resolve_in_one_query(backend):
    # a universe sweep resolves all its tickers at once: each to its tenant's newest version,
    # at the interval asked or else the finest there is; another tenant's tickers are unknown
    running, db = backend
    tenant, _ = db.tenant()
    other, _ = db.tenant()
    await _import(running, import_requests(tenant, "AAA", daily_csv(10)))
    await _import(running, import_requests(tenant, "AAA", daily_csv(12)))  # version 2
    await _import(running, import_requests(tenant, "AAA", daily_csv(5), interval="1h"))
    await _import(running, import_requests(tenant, "BBB", daily_csv(7)))
    await _import(running, import_requests(other, "CCC", daily_csv(9)))
    asked = ["aaa", "BBB", "CCC", "ZZZ", "bbb"]
    with Session(db.engine) as s:
        finest = datasets.resolve_datasets(s, tenant, asked, "")
        assert sorted(finest) == ["AAA", "BBB", "CCC", "ZZZ"]
        assert (finest["AAA"].interval, finest["AAA"].bars) == ("1h", 5)
        assert (finest["BBB"].interval, finest["BBB"].bars) == ("1d", 7)
        assert finest["CCC"] is None and finest["ZZZ"] is None
        daily = datasets.resolve_datasets(s, tenant, asked, "1d")
        assert (daily["AAA"].version, daily["AAA"].bars) == (2, 12) and daily["BBB"].bars == 7
        assert datasets.resolve_datasets(s, tenant, asked, "1h")["BBB"] is None
        theirs = datasets.resolve_datasets(s, other, ["ccc", "AAA"], "")
        assert theirs["CCC"].bars == 9 and theirs["AAA"] is None
        assert datasets.resolve_dataset(s, tenant, "aaa", "1d") == daily["AAA"]
