"""Datasets: one (latest version), the caller's list, a deletion, bars for charts."""

from __future__ import annotations

from typing import Any, Literal

from hindsight.results.v1 import results_pb2
from pydantic import Field

from domain.bar_formats import FIELDS
from services.gateway.presenters.common import ResponseModel, timestamp


class Dataset(ResponseModel):
    dataset_id: str
    kind: Literal["bars"] = "bars"
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

    format: str = Field(description="the format the file was read as: generic, yahoo, binance, metatrader or parquet")
    columns: dict[str, str] = Field(
        description="each field (timestamp, open, high, low, close, volume) and the file's column it came from "
        "(MetaTrader's timestamp: '<DATE> <TIME>'; a file without a header: its format's column names)"
    )
    dropped: list[str] = Field(description="the file's columns not used, in the file's order")
    rows_dropped: int = Field(description="rows left out (Yahoo Finance's rows of null values)")
    notes: list[str] = Field(description="how timestamps were read, which volume was used, rows dropped: in words")


class OptionChainDataset(ResponseModel):
    """An option chain in the market-data store (Parquet, one file per day)."""

    dataset_id: str = Field(description="oc_...; DELETE /api/v1/datasets/{dataset_id} removes it")
    kind: Literal["option_chain"] = "option_chain"
    ticker: str = Field(description="the chain's name: its underlying, or DEMO-OPTIONS for the demo")
    underlying: str = Field(description="the bar dataset's ticker the contracts are on (their symbols' first part)")
    interval: str
    timezone: str
    rows: int = Field(description="bars of all contracts")
    contracts: int = Field(description="distinct (expiry, strike, option_type)")
    expiries: list[str] = Field(description="YYYY-MM-DD, in order")
    strike_steps: list[float] = Field(description="distinct gaps between neighbouring strikes of an expiry")
    days: int = Field(description="days with rows")
    start: str | None
    end: str | None
    version: int
    demo: bool = Field(description="synthetic data (DEMO-OPTIONS: Black-Scholes prices of DEMO-MINUTE), not market data")
    created_at: str | None
    bytes_stored: int
    format: str = Field(description="csv or parquet (the demo: synthetic)")
    columns: list[str] = Field(description="the columns read: the required ones and which of oi, iv were there")


class DatasetList(ResponseModel):
    datasets: list[Dataset | OptionChainDataset] = Field(description="bar datasets (kind bars), then option chains")


class DatasetDeleted(ResponseModel):
    deleted: bool
    dataset_id: str
    versions_deleted: int


class ChainContract(ResponseModel):
    symbol: str = Field(description="UNDERLYING:YYYY-MM-DD:OPT:STRIKE:CE|PE")
    expiry: str
    strike: float
    option_type: str
    bars: int
    first: str = Field(description="first bar's time, UTC")
    last: str = Field(description="last bar's time, UTC")
    volume: float


class ChainContracts(ResponseModel):
    """The contracts of one day of an option chain (those with at least one bar)."""

    dataset_id: str
    underlying: str
    date: str
    contracts: list[ChainContract]


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
        "kind": "bars",
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


def chain_view(c: results_pb2.OptionChain) -> dict[str, Any]:
    return {
        "dataset_id": c.chain_id,
        "kind": "option_chain",
        "ticker": c.ticker,
        "underlying": c.underlying,
        "interval": c.interval,
        "timezone": c.timezone or "UTC",
        "rows": c.rows,
        "contracts": c.contracts,
        "expiries": list(c.expiries),
        "strike_steps": list(c.strike_steps),
        "days": c.days,
        "start": timestamp(c.start),
        "end": timestamp(c.end),
        "version": c.version,
        "demo": c.demo,
        "created_at": timestamp(c.created_at),
        "bytes_stored": c.bytes_stored,
        "format": c.format,
        "columns": list(c.columns),
    }
