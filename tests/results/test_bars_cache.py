"""The engine's bar cache against real results: bounded by bytes (HINDSIGHT_BAR_CACHE_MB),
least recently used out, a dataset larger than the whole cache read but not kept."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from hindsight.results.v1 import results_pb2

from services.engine.bars_cache import BarsCache

from .helpers import daily_csv, import_requests


class CountingStub:
    """results' stub, counting GetBars calls (each is one read of a dataset's bars)."""

    def __init__(self, stub) -> None:
        self.stub = stub
        self.reads: list[str] = []

    def GetBars(self, request):
        self.reads.append(request.version_id)
        return self.stub.GetBars(request)


@pytest.mark.asyncio
async def test_the_cache_is_bounded_by_bytes(pg, pg_db) -> None:
    tenant, _ = pg_db.tenant()
    resolved = {}
    for ticker, n in (("A", 100), ("B", 100), ("C", 100), ("BIG", 400)):
        await pg.stub.ImportDataset(iter(import_requests(tenant, ticker, daily_csv(n), chunk=1 << 20)))
        resolved[ticker] = await pg.stub.ResolveDataset(results_pb2.ResolveDatasetRequest(tenant_id=tenant, ticker=ticker))
    stub = CountingStub(pg.stub)
    per_bar = 6 * 8
    cache = BarsCache(max_bytes=250 * per_bar)  # room for two of the 100-bar datasets, not three

    async def get(ticker: str):
        r = resolved[ticker]
        return await cache.get(stub, r.dataset, r.version_id)

    a = await get("A")
    assert len(a.close) == 100 and cache.bytes == 100 * per_bar
    await get("B")
    assert await get("A") is a  # kept: no second read
    await get("C")  # over the bound: B, the least recently used, goes
    assert cache.bytes == 200 * per_bar <= cache.max_bytes
    assert [stub.reads.count(resolved[t].version_id) for t in "ABC"] == [1, 1, 1]
    await get("B")
    assert stub.reads.count(resolved["B"].version_id) == 2
    big = await get("BIG")  # larger than the whole cache: read for its job, not kept
    assert len(big.close) == 400 and np.all(np.diff(big.ts) > 0)
    assert cache.bytes <= cache.max_bytes
    await get("BIG")
    assert stub.reads.count(resolved["BIG"].version_id) == 2
    assert await get("B") is not None and stub.reads.count(resolved["B"].version_id) == 2  # B stayed


@pytest.mark.asyncio
async def test_a_sweep_fetches_open_and_close_only_and_a_backtest_the_rest(pg, pg_db) -> None:
    # A crossover sweep reads ts, open and close (SWEEP_COLUMNS): results reads and sends only
    # those; a later job that needs every column reads the version again and keeps it whole.
    from services.engine.bars_cache import SWEEP_COLUMNS

    tenant, _ = pg_db.tenant()
    await pg.stub.ImportDataset(iter(import_requests(tenant, "COLS", daily_csv(150), chunk=1 << 20)))
    r = await pg.stub.ResolveDataset(results_pb2.ResolveDatasetRequest(tenant_id=tenant, ticker="COLS"))
    stub = CountingStub(pg.stub)
    cache = BarsCache()

    sweep = await cache.get(stub, r.dataset, r.version_id, columns=SWEEP_COLUMNS)
    assert sweep.high is None and sweep.low is None and sweep.volume is None
    assert cache.bytes == 150 * 3 * 8
    whole = await cache.get(stub, r.dataset, r.version_id)
    assert stub.reads == [r.version_id] * 2 and cache.bytes == 150 * 6 * 8
    assert all(np.array_equal(getattr(whole, c), getattr(sweep, c)) for c in ("ts", "open", "close"))
    assert np.all(whole.high >= np.maximum(whole.open, whole.close)) and np.all(whole.volume >= 0)
    assert await cache.get(stub, r.dataset, r.version_id, columns=SWEEP_COLUMNS) is whole  # no third read
    assert len(stub.reads) == 2

    # On the wire: the columns asked for, ts always; empty bytes for the others.
    parts = [p async for p in pg.stub.GetBars(results_pb2.GetBarsRequest(version_id=r.version_id,
                                                                          columns=["close"]))]
    assert sum(len(p.ts) for p in parts) == 150 * 8 and sum(len(p.close) for p in parts) == 150 * 8
    assert not any(p.open or p.high or p.low or p.volume for p in parts)
    for bad in (["close", "close"], ["ts"], ["Close"], ["adj_close"]):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            _ = [p async for p in pg.stub.GetBars(results_pb2.GetBarsRequest(version_id=r.version_id, columns=bad))]
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
