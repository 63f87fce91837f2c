"""UniversesService over real results (Postgres and SQLite): the per-tenant limit, counted
under a lock on the tenant, and the rules' errors as INVALID_ARGUMENT with nothing stored."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from hindsight.universes.v1 import universes_pb2, universes_pb2_grpc

from domain.universe import UNIVERSES_PER_TENANT_MAX


def _stub(running) -> universes_pb2_grpc.UniversesServiceStub:
    return universes_pb2_grpc.UniversesServiceStub(running._channel)


def _put(tenant: str, name: str, tickers: list[str]) -> universes_pb2.PutUniverseRequest:
    return universes_pb2.PutUniverseRequest(tenant_id=tenant, name=name, tickers=tickers)


@pytest.mark.asyncio
async def test_a_tenant_keeps_at_most_the_documented_number(backend) -> None:
    running, db = backend
    stub = _stub(running)
    tenant, _ = db.tenant()
    other, _ = db.tenant()
    # All but the last at once: the lock on the tenant counts each.
    await asyncio.gather(*(stub.PutUniverse(_put(tenant, f"u{i:03d}", ["AAPL"]))
                           for i in range(UNIVERSES_PER_TENANT_MAX - 1)))
    last, extra = await asyncio.gather(
        stub.PutUniverse(_put(tenant, "last", ["AAPL"])),
        stub.PutUniverse(_put(tenant, "extra", ["AAPL"])),
        return_exceptions=True,
    )
    refused = [r for r in (last, extra) if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 1 and refused[0].code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"at most {UNIVERSES_PER_TENANT_MAX} universes" in refused[0].details()
    listed = (await stub.ListUniverses(universes_pb2.ListUniversesRequest(tenant_id=tenant))).universes
    assert len(listed) == UNIVERSES_PER_TENANT_MAX
    assert [u.name for u in listed] == sorted(u.name for u in listed)
    # At the limit, replacing one still works, and other tenants are not counted against it.
    replaced = await stub.PutUniverse(_put(tenant, "u000", ["MSFT", "nvda"]))
    assert not replaced.created and list(replaced.universe.tickers) == ["MSFT", "NVDA"]
    assert (await stub.PutUniverse(_put(other, "u000", ["X"]))).created


@pytest.mark.asyncio
async def test_rules_are_checked_at_results_too(backend) -> None:
    running, db = backend
    stub = _stub(running)
    tenant, _ = db.tenant()
    for name, tickers, words in [("ok", [], "at least one"), ("ok", ["A", "a"], "A is already tickers[0]"),
                                 ("bad name", ["A"], "name must be"), ("ok", ["a/../b"], "tickers[0]")]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.PutUniverse(_put(tenant, name, tickers))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in err.value.details()
    assert not (await stub.ListUniverses(universes_pb2.ListUniversesRequest(tenant_id=tenant))).universes
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.PutUniverse(_put("no-such-tenant", "ok", ["A"]))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.asyncio
async def test_two_first_puts_of_one_name_at_once(backend) -> None:
    """The tenant's row lock orders them: one creates, the other replaces; neither fails."""
    running, db = backend
    stub = _stub(running)
    tenant, _ = db.tenant()
    for i in range(5):
        a, b = await asyncio.gather(stub.PutUniverse(_put(tenant, f"same{i}", ["AAPL"])),
                                    stub.PutUniverse(_put(tenant, f"same{i}", ["MSFT"])))
        assert sorted([a.created, b.created]) == [False, True]
    listed = (await stub.ListUniverses(universes_pb2.ListUniversesRequest(tenant_id=tenant))).universes
    assert [u.name for u in listed] == [f"same{i}" for i in range(5)]
