"""Datasets of bars: versioned imports, listing, deletion, resolution for the engine, demo data.

A version's bars are Parquet files in the market store (market_store.py, `bars/...`): an import
writes them to a staging directory (`write_staged_bars`) and publishes them under
`bar_version_key` before `store_dataset`'s row is committed; `read_version_bars` is the one
reader of bars."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.market import (
    CALENDARS,
    INTERVAL_MINUTES,
    INTERVAL_RANK,
    INTERVALS,
    interval_message,
    normalize_ticker,
    ticker_problem,
)
from services.results.bar_arrays import COLUMNS, BarArrays
from services.results.csv_bars import check_timezone
from services.results.demo_datasets import DEMO_BARS_VERSION, DemoDataset, demo_datasets
from services.results.errors import InvalidArgument, NotFound
from services.results.keys import tenant_exists
from services.results.market_store import (
    MarketStore,
    StoredBars,
    demo_bar_key,
    is_shared_key,
    read_bars,
    write_bars,
)
from services.results.models import Dataset, DatasetVersion
from services.results.timefmt import utcnow

VERSION_ID_PREFIX = "dsv_"


@dataclass(frozen=True)
class DatasetView:
    """A dataset with one of its versions (the latest, unless said otherwise)."""

    dataset_id: str
    ticker: str
    interval: str
    calendar: str
    timezone: str
    demo: bool
    version: int
    version_id: str
    bars: int
    start: datetime
    end: datetime
    created_at: datetime


def check_metadata(ticker: str, interval: str, calendar: str, timezone: str) -> tuple[str, str, str, str]:
    """Normalized (ticker, interval, calendar, timezone) of an import, or InvalidArgument."""
    ticker = normalize_ticker(ticker or "")
    problem = ticker_problem(ticker)
    if problem is not None:
        raise InvalidArgument(f"ticker {ticker!r} {problem}" if ticker else "ticker is required")
    if interval not in INTERVALS:
        raise InvalidArgument(f"interval {interval_message()}, not {interval!r}")
    calendar = calendar or "continuous"
    if calendar not in CALENDARS:
        raise InvalidArgument(f"calendar must be one of {', '.join(CALENDARS)}, not {calendar!r}")
    timezone = check_timezone(timezone or "UTC")
    return ticker, interval, calendar, timezone


def _view(ds: Dataset, v: DatasetVersion) -> DatasetView:
    return DatasetView(
        dataset_id=ds.dataset_id,
        ticker=ds.ticker,
        interval=ds.interval,
        calendar=ds.calendar,
        timezone=ds.timezone,
        demo=ds.demo,
        version=v.version,
        version_id=v.version_id,
        bars=v.bars,
        start=v.start_at,
        end=v.end_at,
        created_at=v.created_at,
    )


def _ns_to_datetime(ns: int) -> datetime:
    seconds, rem = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rem // 1000)


def _dataset_for_update(session: Session, tenant_id: str, ticker: str, interval: str) -> Dataset | None:
    return session.scalar(
        sa.select(Dataset)
        .where(Dataset.tenant_id == tenant_id, Dataset.ticker == ticker, Dataset.interval == interval)
        .with_for_update()
    )


def new_version_id() -> str:
    return VERSION_ID_PREFIX + secrets.token_hex(12)


def write_staged_bars(
    market: MarketStore, columns: dict[str, np.ndarray], interval: str, *, consume: bool = False
) -> tuple[Path, StoredBars]:
    """(staging directory, StoredBars): the bars written as a version not yet published.
    `consume`: see market_store.write_bars. Nothing is left behind if writing fails."""
    staging = market.new_staging()
    try:
        return staging, write_bars(staging, columns, INTERVAL_MINUTES[interval], consume=consume)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def store_dataset(
    session: Session,
    tenant_id: str,
    ticker: str,
    interval: str,
    calendar: str,
    timezone: str,
    stored: StoredBars,
    version_id: str,
    storage_key: str,
    demo: bool = False,
) -> DatasetView:
    """Record bars already published under `storage_key` (`stored`: what they hold) as the next
    version of the tenant's ticker+interval dataset (created on first import)."""
    ticker, interval, calendar, timezone = check_metadata(ticker, interval, calendar, timezone)
    if not tenant_exists(session, tenant_id):
        raise NotFound(f"tenant {tenant_id!r} not found")
    if stored.bars == 0:
        raise InvalidArgument("a dataset needs at least one bar")
    now = utcnow()
    ds = _dataset_for_update(session, tenant_id, ticker, interval)
    if ds is None:
        try:
            with session.begin_nested():
                ds = Dataset(
                    dataset_id="ds_" + secrets.token_hex(8),
                    tenant_id=tenant_id,
                    ticker=ticker,
                    interval=interval,
                    calendar=calendar,
                    timezone=timezone,
                    demo=demo,
                    created_at=now,
                )
                session.add(ds)
        except IntegrityError:  # created at the same moment by a concurrent import
            ds = _dataset_for_update(session, tenant_id, ticker, interval)
            assert ds is not None
    # The newest import says what the bars are.
    ds.calendar, ds.timezone, ds.demo = calendar, timezone, demo
    last = session.scalar(sa.select(sa.func.max(DatasetVersion.version)).where(DatasetVersion.dataset_id == ds.dataset_id))
    version = DatasetVersion(
        version_id=version_id,
        dataset_id=ds.dataset_id,
        version=(last or 0) + 1,
        bars=stored.bars,
        start_at=_ns_to_datetime(stored.first_ts),
        end_at=_ns_to_datetime(stored.last_ts),
        storage_key=storage_key,
        bytes_stored=stored.bytes,
        created_at=now,
    )
    session.add(version)
    session.flush()
    return _view(ds, version)


def _latest_versions(tenant_id: str, tickers: Sequence[str] | None = None):
    # The newest version of each of the tenant's datasets (of `tickers` only, when given):
    # the versions grouped are the tenant's own, not every tenant's.
    mine = sa.select(Dataset.dataset_id).where(Dataset.tenant_id == tenant_id)
    if tickers is not None:
        mine = mine.where(Dataset.ticker.in_(list(tickers)))
    latest = (
        sa.select(DatasetVersion.dataset_id, sa.func.max(DatasetVersion.version).label("version"))
        .where(DatasetVersion.dataset_id.in_(mine))
        .group_by(DatasetVersion.dataset_id)
        .subquery()
    )
    return (
        sa.select(Dataset, DatasetVersion)
        .join(latest, latest.c.dataset_id == Dataset.dataset_id)
        .join(
            DatasetVersion,
            sa.and_(DatasetVersion.dataset_id == latest.c.dataset_id, DatasetVersion.version == latest.c.version),
        )
        .where(Dataset.tenant_id == tenant_id)
    )


def list_datasets(session: Session, tenant_id: str) -> list[DatasetView]:
    rows = session.execute(_latest_versions(tenant_id).order_by(Dataset.ticker, Dataset.interval))
    return [_view(ds, v) for ds, v in rows]


def delete_dataset(session: Session, tenant_id: str, dataset_id: str) -> tuple[int, list[str]]:
    """Delete a dataset and all its versions: the number of versions removed, and the storage
    keys of their files, to remove once this commits (not the shared demo files)."""
    ds = session.scalar(
        sa.select(Dataset).where(Dataset.dataset_id == dataset_id, Dataset.tenant_id == tenant_id).with_for_update()
    )
    if ds is None:
        raise NotFound(f"dataset {dataset_id!r} not found")
    keys = list(session.scalars(sa.select(DatasetVersion.storage_key).where(DatasetVersion.dataset_id == dataset_id)))
    count = session.execute(sa.delete(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)).rowcount
    session.delete(ds)
    return int(count or 0), [k for k in keys if not is_shared_key(k)]


def remove_version_files(market: MarketStore, keys: list[str]) -> None:
    """After the rows naming them are gone (a crash in between leaves files nobody names, never
    a row whose files are missing)."""
    for key in keys:
        if not is_shared_key(key):
            market.remove(key)


def resolve_dataset(session: Session, tenant_id: str, ticker: str, interval: str) -> DatasetView | None:
    """Latest version of the tenant's ticker at `interval` (empty: the finest interval there is)."""
    return resolve_datasets(session, tenant_id, [ticker], interval)[normalize_ticker(ticker)]


def resolve_datasets(session: Session, tenant_id: str, tickers: Sequence[str],
                     interval: str) -> dict[str, DatasetView | None]:
    """`resolve_dataset` of many tickers in one query (a universe sweep's), by normalized ticker."""
    wanted = sorted({normalize_ticker(t) for t in tickers})
    q = _latest_versions(tenant_id, wanted)
    if interval:
        q = q.where(Dataset.interval == interval)
    found: dict[str, DatasetView | None] = dict.fromkeys(wanted)
    for ds, v in session.execute(q):
        best = found[ds.ticker]
        if best is None or _finer(ds.interval, best.interval):
            found[ds.ticker] = _view(ds, v)
    return found


def _finer(interval: str, than: str) -> bool:
    return INTERVAL_RANK.get(interval, len(INTERVALS)) < INTERVAL_RANK.get(than, len(INTERVALS))


def version_storage_key(session: Session, version_id: str) -> str:
    key = session.scalar(sa.select(DatasetVersion.storage_key).where(DatasetVersion.version_id == version_id))
    if key is None:
        raise NotFound(f"dataset version {version_id!r} not found")
    return key


def read_version_bars(market: MarketStore, key: str, start_ns: int | None = None, end_ns: int | None = None,
                      columns: Sequence[str] | None = None) -> BarArrays:
    """A stored version's bars with start_ns <= ts <= end_ns (None: unbounded): the one reader
    of bars (GetBars, and results' own planning of day-by-day backtests and rule sweeps).
    With `columns`, only `ts` and those are read (the others are None)."""
    table = read_bars(market, key, start_ns, end_ns, columns)
    return BarArrays(**{c: _numpy(table.column(c)) if c in table.column_names else None for c in COLUMNS})


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return column.to_numpy()


def load_bars(session: Session, market: MarketStore, version_id: str) -> BarArrays:
    """A version's bars, inside a transaction (planning a backtest on the version it resolved)."""
    return read_version_bars(market, version_storage_key(session, version_id))


def has_datasets(session: Session, tenant_id: str) -> bool:
    return session.scalar(sa.select(sa.func.count()).select_from(Dataset).where(Dataset.tenant_id == tenant_id)) > 0


def ensure_demo_files(market: MarketStore, demo: DemoDataset) -> tuple[str, StoredBars]:
    """(storage key, what it holds) of a demo dataset's shared files, written if the store lacks
    them. Every tenant's demo version names the same files: the data is the same for all, and a
    new tenant costs a row, not a copy."""
    key = demo_bar_key(f"{demo.ticker}-v{DEMO_BARS_VERSION}")
    final = market.path_of(key)
    if not final.is_dir():
        staging, _ = write_staged_bars(market, {c: getattr(demo.bars, c) for c in COLUMNS}, demo.interval)
        try:
            market.publish(staging, key)
        except OSError:  # another process (a replica on the same volume) published it first
            shutil.rmtree(staging, ignore_errors=True)
            if not final.is_dir():
                raise
    ts = demo.bars.ts
    stored = StoredBars(bars=len(demo.bars), first_ts=int(ts[0]), last_ts=int(ts[-1]), files=0,
                        bytes=market.measure(final).bytes)
    return key, stored


def ensure_demo_datasets(session: Session, market: MarketStore, tenant_id: str, only_if_none: bool) -> list[str]:
    """Load the demo datasets for a tenant; returns the tickers added.

    `only_if_none`: add them only to a tenant without any dataset (bootstrap
    tenants); otherwise add each demo dataset the tenant lacks (the dev tenant).
    """
    if only_if_none and has_datasets(session, tenant_id):
        return []
    added = []
    for demo in demo_datasets():
        exists = session.scalar(
            sa.select(Dataset.dataset_id).where(
                Dataset.tenant_id == tenant_id, Dataset.ticker == demo.ticker, Dataset.interval == demo.interval
            )
        )
        if exists is None:
            key, stored = ensure_demo_files(market, demo)
            store_dataset(session, tenant_id, demo.ticker, demo.interval, demo.calendar, demo.timezone, stored,
                          new_version_id(), key, demo=True)
            added.append(demo.ticker)
    return added
