"""Datasets: one (latest version), the caller's list, a deletion, bars for charts."""

from __future__ import annotations

from typing import Any

from hindsight.results.v1 import results_pb2
from pydantic import Field

from services.gateway.presenters.common import ResponseModel, timestamp


class Dataset(ResponseModel):
    dataset_id: str
    ticker: str
    interval: str
    bars: int
    start: str | None
    end: str | None
    calendar: str
    timezone: str
    version: int
    demo: bool
    created_at: str | None


class DatasetList(ResponseModel):
    datasets: list[Dataset]


class DatasetDeleted(ResponseModel):
    deleted: bool
    dataset_id: str
    versions_deleted: int


class Bar(ResponseModel):
    timestamp: str
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: float | None


class DatasetBars(ResponseModel):
    """Bars of a dataset's latest version in a date range, at most `limit` of them."""

    dataset_id: str
    ticker: str
    interval: str
    version: int
    timezone: str
    total_bars: int = Field(description="bars in the date range")
    returned: int
    downsampled: bool
    bars: list[Bar]


def dataset_view(ds: results_pb2.Dataset) -> dict[str, Any]:
    return {
        "dataset_id": ds.dataset_id,
        "ticker": ds.ticker,
        "interval": ds.interval,
        "bars": ds.bars,
        "start": timestamp(ds.start),
        "end": timestamp(ds.end),
        "calendar": ds.calendar,
        "timezone": ds.timezone or "UTC",
        "version": ds.version,
        "demo": ds.demo,
        "created_at": timestamp(ds.created_at),
    }
