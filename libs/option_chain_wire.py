"""Option chains between services: results streams a day's chain as Arrow IPC (the stored
Parquet columns), and the reader turns it into the shared in-memory form of
domain.option_chain (a pandas DataFrame of CHAIN_COLUMNS). One home for the conversion, so
results' own readers and the engine see the same frame."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from domain.option_chain import CHAIN_COLUMNS, OPTIONAL_COLUMNS, empty_chain

IPC_CHUNK_BYTES = 1024 * 1024


def chain_frame(table: pa.Table, with_optional: bool = False) -> pd.DataFrame:
    """Stored chain rows as the shared form: `timestamp` datetime64[ns, UTC], `expiry`
    datetime64[ns] at midnight, `strike` float64, `option_type` str CE/PE, OHLCV float64;
    `oi` and `iv` (float64, NaN where absent) after them when `with_optional`."""
    names = list(CHAIN_COLUMNS) + (list(OPTIONAL_COLUMNS) if with_optional else [])
    if table.num_rows == 0:
        frame = empty_chain()
        for c in OPTIONAL_COLUMNS if with_optional else ():
            frame[c] = pd.Series([], dtype=np.float64)
        return frame[names]
    expiry_days = table.column("expiry").cast(pa.int32()).to_numpy().astype("datetime64[D]")
    data: dict[str, object] = {
        "timestamp": pd.DatetimeIndex(table.column("timestamp").cast(pa.int64()).to_numpy().view("datetime64[ns]"), tz="UTC"),
        "expiry": expiry_days.astype("datetime64[ns]"),
        "strike": table.column("strike").to_numpy(),
        "option_type": pd.array(option_types(table.column("option_type")), dtype=str),
    }
    for c in ("open", "high", "low", "close", "volume"):
        data[c] = table.column(c).to_numpy()
    for c in OPTIONAL_COLUMNS if with_optional else ():
        data[c] = table.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
    return pd.DataFrame(data, columns=names)


def option_types(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A chain's option_type column as a NumPy array of str, whether it came as strings or
    dictionary-encoded (as results sends it)."""
    if pa.types.is_dictionary(column.type):
        codes = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        values: np.ndarray = np.asarray(codes.dictionary.to_pylist(), dtype=object)
        picked: np.ndarray = values[codes.indices.to_numpy(zero_copy_only=False)]
        return picked
    return np.asarray(column.to_numpy(zero_copy_only=False))


def table_to_ipc(table: pa.Table) -> Iterator[bytes]:
    """The table as an Arrow IPC stream, in chunks of about IPC_CHUNK_BYTES."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    buf = sink.getvalue()
    view = memoryview(buf)
    for start in range(0, max(len(view), 1), IPC_CHUNK_BYTES):
        yield bytes(view[start : start + IPC_CHUNK_BYTES])


def ipc_to_table(chunks: Iterable[bytes]) -> pa.Table:
    data = b"".join(chunks)
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


async def fetch_chain_table(
    stub: Any, tenant_id: str, day: date, *, underlying: str = "", chain_id: str = "", interval: str = "",
    columns: Sequence[str] = (), contracts: Iterable[tuple[date, float, str]] = (), chain_only: bool = False,
    timeout: float | None = None,
) -> tuple[Any, pa.Table | None]:
    """One local day of a tenant's option chain from results (GetOptionChainDay, streamed): (the
    chain's OptionChain message, the day's stored rows as Arrow, option_type dictionary-encoded).
    By `chain_id`, or by `underlying` (the finest interval unless `interval` says); NOT_FOUND
    when there is none. Only `columns` (empty: all) and the rows of `contracts` (empty: all),
    each (expiry, strike, CE|PE); `chain_only`: the chain's description and no table (None)."""
    from hindsight.results.v1 import results_pb2

    request = results_pb2.GetOptionChainDayRequest(
        tenant_id=tenant_id, chain_id=chain_id, underlying=underlying, interval=interval, date=day.isoformat(),
        columns=list(columns), chain_only=chain_only,
        contracts=[results_pb2.OptionContractKey(expiry=e.isoformat(), strike=k, option_type=t) for e, k, t in contracts],
    )
    chain = None
    pieces: list[bytes] = []
    async for chunk in stub.GetOptionChainDay(request, timeout=timeout):
        if chunk.HasField("chain"):
            chain = chunk.chain
        pieces.append(chunk.arrow_ipc)
    return chain, None if chain_only else ipc_to_table(pieces)


async def fetch_chain_day(
    stub: Any, tenant_id: str, day: date, *, underlying: str = "", chain_id: str = "", interval: str = "",
    timeout: float | None = None,
) -> tuple[Any, pd.DataFrame]:
    """One local day of a tenant's option chain from results (GetOptionChainDay, streamed):
    (the chain's OptionChain message, the day's rows in the shared form). By `chain_id`, or by
    `underlying` (the finest interval unless `interval` says); NOT_FOUND when there is none.
    A day without rows is an empty frame."""
    chain, table = await fetch_chain_table(
        stub, tenant_id, day, underlying=underlying, chain_id=chain_id, interval=interval, timeout=timeout
    )
    assert table is not None
    return chain, chain_frame(table)
