"""A day of an underlying's option chain as the engine gets it from results
(ResultsService.GetOptionChainDay through libs.option_chain_wire.fetch_chain_day), in the
shared in-memory form of domain.option_chain. Day-by-day runs with option legs read each
trading day once, when they reach it, so a year never sits in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date

import grpc
import pandas as pd
from hindsight.results.v1 import results_pb2_grpc

from libs.option_chain_wire import fetch_chain_day
from services.engine.day_by_day import NoChain


async def read_chain_day(
    stub: results_pb2_grpc.ResultsServiceStub, tenant_id: str, underlying: str, day: date, timeout: float = 60.0
) -> pd.DataFrame:
    """The tenant's chain on `underlying` for the local `day` (no rows: an empty frame);
    NoChain when the tenant has no chain on it (deleted since the submission)."""
    try:
        _, frame = await fetch_chain_day(stub, tenant_id, day, underlying=underlying, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise NoChain(f"there is no option chain of {underlying} any more") from None
        raise
    return frame


def chain_source(
    stub: results_pb2_grpc.ResultsServiceStub, tenant_id: str, underlying: str, loop: asyncio.AbstractEventLoop
) -> Callable[[date], pd.DataFrame | None]:
    """`run_day_by_day`'s chain_for, called from its worker thread: each day is read on the
    event loop `loop` (where the gRPC channel lives) while the thread waits."""

    def chain_for(day: date) -> pd.DataFrame | None:
        return asyncio.run_coroutine_threadsafe(read_chain_day(stub, tenant_id, underlying, day), loop).result()

    return chain_for
