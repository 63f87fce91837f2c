"""Datasets of bars: versioned imports, listing, deletion, resolution for the engine, demo data."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from domain.market import CALENDARS, INTERVAL_RANK, INTERVALS, interval_message, normalize_ticker, ticker_problem
from services.results.bar_arrays import BarArrays, EncodedBars
from services.results.csv_bars import check_timezone
from services.results.demo_datasets import demo_datasets
from services.results.errors import InvalidArgument, NotFound
from services.results.keys import tenant_exists
from services.results.models import Dataset, DatasetVersion
from services.results.timefmt import utcnow

# Finest first: what an empty interval resolves to.


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


def store_dataset(
    session: Session,
    tenant_id: str,
    ticker: str,
    interval: str,
    calendar: str,
    timezone: str,
    bars: BarArrays | EncodedBars,
    demo: bool = False,
) -> DatasetView:
    """Add `bars` as the next version of the tenant's ticker+interval dataset (created on first import).

    `EncodedBars` (an import's, encoded before the transaction) keep the arrays out of it."""
    ticker, interval, calendar, timezone = check_metadata(ticker, interval, calendar, timezone)
    if not tenant_exists(session, tenant_id):
        raise NotFound(f"tenant {tenant_id!r} not found")
    if len(bars) == 0:
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
    encoded = bars if isinstance(bars, EncodedBars) else bars.encode()
    last = session.scalar(sa.select(sa.func.max(DatasetVersion.version)).where(DatasetVersion.dataset_id == ds.dataset_id))
    version = DatasetVersion(
        version_id="dsv_" + secrets.token_hex(12),
        dataset_id=ds.dataset_id,
        version=(last or 0) + 1,
        bars=len(encoded),
        start_at=_ns_to_datetime(encoded.first_ts),
        end_at=_ns_to_datetime(encoded.last_ts),
        bars_npz=encoded.npz,
        created_at=now,
    )
    session.add(version)
    session.flush()
    return _view(ds, version)


def _latest_versions(tenant_id: str):
    latest = (
        sa.select(DatasetVersion.dataset_id, sa.func.max(DatasetVersion.version).label("version"))
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
        # Never load the bars to list datasets.
        .options(defer(DatasetVersion.bars_npz))
    )


def list_datasets(session: Session, tenant_id: str) -> list[DatasetView]:
    rows = session.execute(_latest_versions(tenant_id).order_by(Dataset.ticker, Dataset.interval))
    return [_view(ds, v) for ds, v in rows]


def delete_dataset(session: Session, tenant_id: str, dataset_id: str) -> int:
    """Delete a dataset and all its versions; returns the number of versions removed."""
    ds = session.scalar(
        sa.select(Dataset).where(Dataset.dataset_id == dataset_id, Dataset.tenant_id == tenant_id).with_for_update()
    )
    if ds is None:
        raise NotFound(f"dataset {dataset_id!r} not found")
    count = session.execute(sa.delete(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)).rowcount
    session.delete(ds)
    return int(count or 0)


def resolve_dataset(session: Session, tenant_id: str, ticker: str, interval: str) -> DatasetView | None:
    """Latest version of the tenant's ticker at `interval` (empty: the finest interval there is)."""
    q = _latest_versions(tenant_id).where(Dataset.ticker == normalize_ticker(ticker))
    if interval:
        q = q.where(Dataset.interval == interval)
    rows = [_view(ds, v) for ds, v in session.execute(q)]
    if not rows:
        return None
    return min(rows, key=lambda d: INTERVAL_RANK.get(d.interval, len(INTERVALS)))


def load_bars(session: Session, version_id: str) -> BarArrays:
    blob = session.scalar(sa.select(DatasetVersion.bars_npz).where(DatasetVersion.version_id == version_id))
    if blob is None:
        raise NotFound(f"dataset version {version_id!r} not found")
    return BarArrays.from_npz(blob)


def has_datasets(session: Session, tenant_id: str) -> bool:
    return session.scalar(sa.select(sa.func.count()).select_from(Dataset).where(Dataset.tenant_id == tenant_id)) > 0


def ensure_demo_datasets(session: Session, tenant_id: str, only_if_none: bool) -> list[str]:
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
            store_dataset(session, tenant_id, demo.ticker, demo.interval, demo.calendar, demo.timezone, demo.bars, demo=True)
            added.append(demo.ticker)
    return added
