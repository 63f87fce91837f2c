"""The engine's bar cache against real results: bounded by bytes (HINDSIGHT_BAR_CACHE_MB),
least recently used out, a dataset larger than the whole cache read but not kept."""

from __future__ import annotations

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
