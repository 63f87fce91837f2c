"""Datasets: one (latest version), the caller's list, a deletion, bars for charts."""

from __future__ import annotations

from typing import Any

from hindsight.results.v1 import results_pb2
from pydantic import Field

from domain.bar_formats import FIELDS
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


class DatasetImport(Dataset):
    """The new version, and what the import read from the file."""

    format: str = Field(description="the format the file was read as: generic, yahoo, binance or metatrader")
    columns: dict[str, str] = Field(
        description="each field (timestamp, open, high, low, close, volume) and the file's column it came from "
        "(MetaTrader's timestamp: '<DATE> <TIME>'; a file without a header: its format's column names)"
    )
    dropped: list[str] = Field(description="the file's columns not used, in the file's order")
    rows_dropped: int = Field(description="rows left out (Yahoo Finance's rows of null values)")
    notes: list[str] = Field(description="how timestamps were read, which volume was used, rows dropped: in words")


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


def import_view(ds: results_pb2.Dataset, report: results_pb2.ImportReport) -> dict[str, Any]:
    return {
        **dataset_view(ds),
        "format": report.format,
        "columns": {name: report.columns[name] for name in FIELDS if name in report.columns},
        "dropped": list(report.dropped),
        "rows_dropped": report.rows_dropped,
        "notes": list(report.notes),
    }
