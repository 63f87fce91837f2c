"""Datasets: CSV upload (streamed to results in chunks), list, delete, bars for charts."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Any, Literal

import grpc
import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, Query
from hindsight.results.v1 import results_pb2

from domain.option_chain import contract_symbol
from libs.option_chain_wire import chain_frame, ipc_to_table
from services.gateway.backend import Backend
from services.gateway.body import MAX_UPLOAD_BODY, UploadReader
from services.gateway.deps import BackendDep, CallerDep, checked_id
from services.gateway.errors import ApiError, from_grpc, invalid
from services.gateway.presenters.datasets import (
    ChainContracts,
    DatasetBars,
    DatasetDeleted,
    DatasetImport,
    DatasetList,
    OptionChainDataset,
    chain_view,
    dataset_view,
    import_view,
)
from services.gateway.requests.datasets import DatasetUpload

router = APIRouter(tags=["datasets"])
CHUNK_BYTES = 1024 * 1024
# Upload deadline: the RPC timeout plus time to move the bytes at a modest rate.
UPLOAD_BYTES_PER_SECOND = 4 * 1024 * 1024
# Text fields of an upload.
MAX_UPLOAD_FIELD = 64 * 1024
_read_upload = UploadReader(
    DatasetUpload, message="invalid dataset upload", max_files=1, max_fields=20, max_part_size=MAX_UPLOAD_FIELD
)


@router.post(
    "/api/v1/datasets",
    status_code=201,
    summary="Import a dataset: bars (CSV) or an option chain (CSV or Parquet); a new version of ticker+interval",
    response_model=DatasetImport | OptionChainDataset,
)
async def import_dataset(
    upload: Annotated[DatasetUpload, Depends(_read_upload)], backend: BackendDep, caller: CallerDep
) -> dict[str, Any]:
    """The file is read as `format` says (domain/bar_formats.py): `generic` (a header
    timestamp,open,high,low,close,volume in any case and order, or the columns `columns`
    names; ISO or Unix times; TradingView's chart export is one), `yahoo`, `binance` or
    `metatrader`. The answer is the new version with what was read: `format`, `columns`
    (field → the file's column), `dropped` (columns not used), `rows_dropped` (Yahoo's null
    rows) and `notes`. A file that is not of its format is a 400 naming the columns expected
    and the format its first line looks like; nothing is stored then.

    `kind=option_chain`: an option chain on the underlying `ticker`, as CSV or Parquet with the
    columns `timestamp, expiry, strike, option_type, open, high, low, close, volume` (any case;
    optional `oi`, `iv`); `option_type` CE or PE (C, P, call, put accepted); naive timestamps are
    in `timezone`. The answer is the chain: rows, contracts, expiries, strike steps, date range.
    The first bad row (a strike <= 0, an expiry before the bar's date, a repeated (timestamp,
    contract), high < low, ...) is a 400 naming it; nothing is stored then."""
    file = upload.file
    size = file.size
    if size is None:
        file.file.seek(0, 2)
        size = file.file.tell()
        file.file.seek(0)
    if size == 0:
        raise invalid("invalid dataset upload", [{"field": "file", "message": "the file is empty"}])
    if size > MAX_UPLOAD_BODY:
        raise ApiError(413, "payload_too_large", f"file exceeds {MAX_UPLOAD_BODY} bytes")

    chain = upload.kind == "option_chain"

    async def chunks() -> AsyncIterator[results_pb2.ImportDatasetRequest]:
        first = True
        while True:
            data = await file.read(CHUNK_BYTES)
            if first:
                yield results_pb2.ImportDatasetRequest(
                    tenant_id=caller.tenant_id,
                    ticker=upload.ticker,
                    interval=upload.interval,
                    calendar=upload.calendar,
                    timezone=upload.timezone or "",
                    format=upload.format or "",
                    columns=upload.columns or "",
                    data=data,
                )
                first = False
            elif data:
                yield results_pb2.ImportDatasetRequest(data=data)
            if len(data) < CHUNK_BYTES:
                return

    timeout = backend.rpc_timeout + size / UPLOAD_BYTES_PER_SECOND
    if chain:
        # A chain's rows are also written as Parquet day files: a slower rate than bars.
        imported = await backend.call(backend.stub.ImportOptionChain, chunks(), timeout=timeout * 2)
        return chain_view(imported.chain)
    resp = await backend.call(backend.stub.ImportDataset, chunks(), timeout=timeout)
    return import_view(resp.dataset, resp.report)


@router.get("/api/v1/datasets", summary="Datasets of the caller (latest version of each)", response_model=DatasetList)
async def list_datasets(backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    resp = await backend.call(backend.stub.ListDatasets, results_pb2.ListDatasetsRequest(tenant_id=caller.tenant_id))
    return {"datasets": [dataset_view(d) for d in resp.datasets] + [chain_view(c) for c in resp.option_chains]}


@router.get(
    "/api/v1/datasets/{dataset_id}/contracts",
    summary="The contracts of one day of an option chain",
    response_model=ChainContracts,
)
async def chain_contracts(
    dataset_id: str,
    backend: BackendDep,
    caller: CallerDep,
    date: Annotated[str, Query(description="the day, YYYY-MM-DD in the chain's timezone")],
) -> dict[str, Any]:
    """`{dataset_id, underlying, date, contracts: [{symbol, expiry, strike, option_type, bars,
    first, last, volume}]}`: each contract with a bar that day, by expiry, strike, type."""
    checked_id(dataset_id, "dataset")
    _day_ns(date, "date")
    call = backend.stub.GetOptionChainDay(
        results_pb2.GetOptionChainDayRequest(tenant_id=caller.tenant_id, chain_id=dataset_id, date=date),
        timeout=backend.rpc_timeout * 4,
    )
    pieces: list[bytes] = []
    underlying = ""
    try:
        async for chunk in call:
            if chunk.HasField("chain"):
                underlying = chunk.chain.underlying
            pieces.append(chunk.arrow_ipc)
    except grpc.aio.AioRpcError as exc:
        raise from_grpc(exc) from None
    frame = chain_frame(ipc_to_table(pieces))
    contracts = []
    if len(frame):
        groups = frame.groupby(["expiry", "strike", "option_type"], sort=True).agg(
            bars=("close", "size"), first=("timestamp", "min"), last=("timestamp", "max"), volume=("volume", "sum")
        )
        for (expiry, strike, kind), g in groups.iterrows():
            day = expiry.date()
            contracts.append({
                "symbol": contract_symbol(underlying, day, float(strike), str(kind)),
                "expiry": day.isoformat(),
                "strike": float(strike),
                "option_type": str(kind),
                "bars": int(g["bars"]),
                "first": g["first"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                "last": g["last"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                "volume": float(g["volume"]),
            })
    return {"dataset_id": dataset_id, "underlying": underlying, "date": date, "contracts": contracts}


@router.delete(
    "/api/v1/datasets/{dataset_id}", summary="Delete a dataset with all its versions", response_model=DatasetDeleted
)
async def delete_dataset(dataset_id: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    checked_id(dataset_id, "dataset")
    resp = await backend.call(
        backend.stub.DeleteDataset,
        results_pb2.DeleteDatasetRequest(tenant_id=caller.tenant_id, dataset_id=dataset_id),
    )
    return {"deleted": True, "dataset_id": dataset_id, "versions_deleted": resp.versions_deleted}


# ---------------------------------------------------------------- bars (for charts)

MAX_CHART_BARS = 5000


def downsample_bars(
    ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray, limit: int
) -> tuple[np.ndarray, ...]:
    """At most `limit` bars: consecutive bars merged into equal buckets as OHLCV bars
    (first open, highest high, lowest low, last close, summed volume, first time), so a
    chart of the result still shows every extreme of the original."""
    n = len(ts)
    if n <= limit:
        return ts, o, h, lo, c, v
    starts = np.unique(np.linspace(0, n, limit, endpoint=False).astype(np.int64))
    ends = np.append(starts[1:], n) - 1
    return (
        ts[starts],
        o[starts],
        np.maximum.reduceat(h, starts),
        np.minimum.reduceat(lo, starts),
        c[ends],
        np.add.reduceat(v, starts),
    )


async def version_bars(backend: Backend, version_id: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Every bar of a dataset version, streamed from results: (ts, [open, high, low, close, volume])."""
    parts: dict[str, list[bytes]] = {k: [] for k in ("ts", "open", "high", "low", "close", "volume")}
    call = backend.stub.GetBars(results_pb2.GetBarsRequest(version_id=version_id), timeout=backend.rpc_timeout * 4)
    try:
        async for chunk in call:
            for name, buf in parts.items():
                buf.append(getattr(chunk, name))
    except grpc.aio.AioRpcError as exc:
        raise from_grpc(exc) from None
    ts = np.frombuffer(b"".join(parts["ts"]), dtype="<i8")
    return ts, [np.frombuffer(b"".join(parts[k]), dtype="<f8") for k in ("open", "high", "low", "close", "volume")]


def chart_bars(ts: np.ndarray, cols: list[np.ndarray], limit: int) -> list[dict[str, Any]]:
    """Bars as the charts read them (`{timestamp, open, high, low, close, volume}`, UTC), at most
    `limit` of them (downsample_bars: each stretch's extremes kept)."""
    out_ts, o, h, lo, c, v = downsample_bars(ts, *cols, limit=limit)
    stamps = (out_ts // 1_000_000_000).astype("datetime64[s]").astype(str)
    return [
        {"timestamp": f"{t}Z", "open": _finite(a), "high": _finite(b), "low": _finite(d), "close": _finite(e),
         "volume": _finite(f)}
        for t, a, b, d, e, f in zip(stamps.tolist(), o.tolist(), h.tolist(), lo.tolist(), c.tolist(), v.tolist())
    ]


@router.get(
    "/api/v1/datasets/{dataset_id}/bars",
    summary="Bars of a dataset's latest version, downsampled for charts",
    response_model=DatasetBars,
)
async def dataset_bars(
    dataset_id: str,
    backend: BackendDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_CHART_BARS, description="most bars returned")] = 1000,
    start: Annotated[str | None, Query(description="first day, YYYY-MM-DD in the dataset's timezone")] = None,
    end: Annotated[str | None, Query(description="last day (inclusive), YYYY-MM-DD in the dataset's timezone")] = None,
    tz: Annotated[Literal["utc", "local"], Query(description="timestamps in UTC (…Z) or the dataset's local time")] = "utc",
) -> dict[str, Any]:
    """`{dataset_id, ticker, interval, version, timezone, total_bars, returned, downsampled,
    bars: [{timestamp, open, high, low, close, volume}]}`; `total_bars` counts the bars in
    the date range. With more bars than `limit`, runs of consecutive bars are merged into
    one OHLCV bar each (first open, max high, min low, last close, summed volume; the run's
    first time). `tz=local` writes times as the dataset's wall-clock time without offset, as
    the day-by-day files do."""
    checked_id(dataset_id, "dataset")
    day_range = _day_range(start, end)
    listed = await backend.call(
        backend.stub.ListDatasets, results_pb2.ListDatasetsRequest(tenant_id=caller.tenant_id)
    )
    ds = next((d for d in listed.datasets if d.dataset_id == dataset_id), None)
    if ds is None:
        raise ApiError(404, "not_found", "dataset not found")
    resolved = await backend.call(
        backend.stub.ResolveDataset,
        results_pb2.ResolveDatasetRequest(tenant_id=caller.tenant_id, ticker=ds.ticker, interval=ds.interval),
    )
    if not resolved.found:
        raise ApiError(404, "not_found", "dataset not found")
    ts, cols = await version_bars(backend, resolved.version_id)
    zone = resolved.dataset.timezone or "UTC"
    wall = ts
    if (day_range is not None or tz == "local") and len(ts):
        wall = pd.DatetimeIndex(ts, tz="UTC").tz_convert(zone).tz_localize(None).asi8
    if day_range is not None:
        keep = (wall >= day_range[0]) & (wall < day_range[1])
        ts, wall, cols = ts[keep], wall[keep], [col[keep] for col in cols]
    out_ts, o, h, lo, c, v = downsample_bars(wall if tz == "local" else ts, *cols, limit=limit)
    suffix = "" if tz == "local" else "Z"
    stamps = (out_ts // 1_000_000_000).astype("datetime64[s]").astype(str)
    bars = [
        {"timestamp": f"{t}{suffix}", "open": _finite(a), "high": _finite(b), "low": _finite(d), "close": _finite(e),
         "volume": _finite(f)}
        for t, a, b, d, e, f in zip(stamps.tolist(), o.tolist(), h.tolist(), lo.tolist(), c.tolist(), v.tolist())
    ]
    return {
        "dataset_id": ds.dataset_id,
        "ticker": ds.ticker,
        "interval": ds.interval,
        "version": resolved.dataset.version,
        "timezone": zone,
        "total_bars": len(ts),
        "returned": len(bars),
        "downsampled": len(bars) < len(ts),
        "bars": bars,
    }


def in_days(ts: np.ndarray, zone: str, start: str, end: str) -> np.ndarray:
    """Which bars fall on the local days start..end (YYYY-MM-DD, inclusive) of `zone`."""
    lo, hi = _day_range(start, end) or (_NS_MIN, _NS_MAX)
    wall = pd.DatetimeIndex(ts, tz="UTC").tz_convert(zone).tz_localize(None).asi8 if len(ts) else ts
    mask: np.ndarray = (wall >= lo) & (wall < hi)
    return mask


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _day_range(start: str | None, end: str | None) -> tuple[int, int] | None:
    """[first day 00:00, the day after the last 00:00) as wall-clock ns; None without bounds."""
    if start is None and end is None:
        return None
    lo = _day_ns(start, "start") if start is not None else _NS_MIN
    hi = _day_ns(end, "end") + _DAY_NS if end is not None else _NS_MAX
    if hi <= lo:
        raise invalid("invalid date range", [{"field": "query.end", "message": "must not be before start"}])
    return max(lo, _NS_MIN), min(hi, _NS_MAX)


_DAY_NS = 86_400 * 1_000_000_000
_NS_MIN, _NS_MAX = -(2**63), 2**63 - 1


def _day_ns(text: str, name: str) -> int:
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise invalid("invalid date", [{"field": f"query.{name}", "message": "a date YYYY-MM-DD"}])
    return (day - date(1970, 1, 1)).days * _DAY_NS
