"""An upload refused while its client is still writing gets our status, never INTERNAL.

gRPC's Python client turns a write that meets a call the server has already ended into
INTERNAL ("Internal error from Core", grpc/grpc#36066), hiding the server's status: the gateway
answered a 500 where the refusal was a 429 (uploads past the cap) or a 400 (bad metadata).
Results reads the rest of a refused upload's stream before it answers (uploads.drain).
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from hindsight.results.v1 import results_pb2

from .helpers import CSV_HEADER

CHUNKS = 150  # 10 MB in 64 kB chunks: the client is still writing when the refusal is decided


async def big_upload(tenant_id: str, **meta):
    """As the gateway sends a file: chunks as they are read, with the event loop turning between them."""
    yield results_pb2.ImportDatasetRequest(tenant_id=tenant_id, ticker="CAP", interval="1d",
                                           data=CSV_HEADER.encode(), **meta)
    for _ in range(CHUNKS):
        await asyncio.sleep(0.0005)
        yield results_pb2.ImportDatasetRequest(data=b"x" * 65536)


@pytest.mark.parametrize("rpc", ["ImportDataset", "ImportOptionChain"])
async def test_refused_past_the_cap_while_the_client_writes(lite, lite_db, rpc):
    tenant, _ = lite_db.tenant()
    servicer = lite.handle.servicer
    servicer.upload_slots.active = servicer.upload_slots.limit  # every slot taken
    try:
        for _ in range(5):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await getattr(lite.stub, rpc)(big_upload(tenant))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value
    finally:
        servicer.upload_slots.active = 0


async def test_bad_metadata_refused_while_the_client_writes(lite, lite_db):
    tenant, _ = lite_db.tenant()
    for _ in range(5):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await lite.stub.ImportDataset(big_upload(tenant, timezone="Mars/Olympus"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value
