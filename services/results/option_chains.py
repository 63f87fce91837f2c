"""Option chains: their records (the database keeps what a chain is; its rows are Parquet in
the market store), import, listing, deletion, resolution by underlying, a day's chain, and the
demo chain. Every chain belongs to one tenant; nothing here reads another tenant's."""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.market import INTERVAL_RANK, INTERVALS, interval_message, normalize_ticker, ticker_problem
from domain.option_chain import OPTION_TYPE_RULE, PUT, normalize_option_type
from libs.option_chain_wire import chain_frame
from services.results.chain_import import ChainSummary
from services.results.csv_bars import check_timezone
from services.results.errors import InvalidArgument, NotFound
from services.results.keys import tenant_exists
from services.results.market_store import CHAIN_SCHEMA, MarketStore
from services.results.models_market import OptionChain
from services.results.timefmt import utcnow

CHAIN_ID_PREFIX = "oc_"


@dataclass(frozen=True)
class ChainView:
    """An option chain as listings and readers see it."""

    chain_id: str
    ticker: str
    underlying: str
    interval: str
    timezone: str
    demo: bool
    version: int
    storage_key: str
    rows: int
    contracts: int
    days: int
    bytes_stored: int
    expiries: list[str]
    strike_steps: list[float]
    columns: list[str]
    file_format: str
    start: datetime
    end: datetime
    created_at: datetime


def _view(c: OptionChain) -> ChainView:
    s = c.summary or {}
    return ChainView(
        chain_id=c.chain_id,
        ticker=c.ticker,
        underlying=c.underlying,
        interval=c.interval,
        timezone=c.timezone,
        demo=c.demo,
        version=c.version,
        storage_key=c.storage_key,
        rows=c.rows,
        contracts=c.contracts,
        days=c.days,
        bytes_stored=c.bytes_stored,
        expiries=list(s.get("expiries", [])),
        strike_steps=[float(x) for x in s.get("strike_steps", [])],
        columns=list(s.get("columns", [])),
        file_format=str(s.get("format", "")),
        start=c.start_at,
        end=c.end_at,
        created_at=c.created_at,
    )


def check_chain_metadata(ticker: str, interval: str, timezone: str) -> tuple[str, str, str]:
    """Normalized (underlying, interval, timezone) of a chain import, or InvalidArgument."""
    ticker = normalize_ticker(ticker or "")
    problem = ticker_problem(ticker)
    if problem is not None:
        raise InvalidArgument(f"ticker {ticker!r} {problem}" if ticker else "ticker (the underlying) is required")
    if interval not in INTERVALS:
        raise InvalidArgument(f"interval {interval_message()}, not {interval!r}")
    return ticker, interval, check_timezone(timezone or "UTC")


def _ns_to_datetime(ns: int) -> datetime:
    seconds, rem = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rem // 1000)


def _locked(session: Session, tenant_id: str, ticker: str, interval: str) -> OptionChain | None:
    return session.scalar(
        sa.select(OptionChain)
        .where(OptionChain.tenant_id == tenant_id, OptionChain.ticker == ticker, OptionChain.interval == interval)
        .with_for_update()
    )


@dataclass(frozen=True)
class Stored:
    """A chain recorded, and the files of the version it replaced (to remove after commit)."""

    view: ChainView
    replaced_key: str | None


def record_chain(
    session: Session,
    tenant_id: str,
    ticker: str,
    underlying: str,
    interval: str,
    timezone: str,
    summary: ChainSummary,
    storage_key: str,
    bytes_stored: int,
    demo: bool = False,
) -> Stored:
    """The chain's record for files already in place under `storage_key`: a new chain, or the
    next version of the tenant's chain of that ticker and interval."""
    if not tenant_exists(session, tenant_id):
        raise NotFound(f"tenant {tenant_id!r} not found")
    now = utcnow()
    fields = {
        "underlying": underlying,
        "timezone": timezone,
        "demo": demo,
        "storage_key": storage_key,
        "rows": summary.rows,
        "contracts": summary.contracts,
        "days": summary.days,
        "bytes_stored": bytes_stored,
        "summary": {
            "expiries": [d.isoformat() for d in summary.expiries],
            "strike_steps": summary.strike_steps,
            "columns": summary.columns,
            "format": summary.file_format,
        },
        "start_at": _ns_to_datetime(summary.first_ts),
        "end_at": _ns_to_datetime(summary.last_ts),
        "created_at": now,
    }
    chain = _locked(session, tenant_id, ticker, interval)
    replaced: str | None = None
    if chain is None:
        try:
            with session.begin_nested():
                chain = OptionChain(
                    chain_id=CHAIN_ID_PREFIX + secrets.token_hex(8),
                    tenant_id=tenant_id,
                    ticker=ticker,
                    interval=interval,
                    version=1,
                    **fields,
                )
                session.add(chain)
                session.flush()
                return Stored(_view(chain), None)
        except IntegrityError:  # the same chain imported at the same moment
            chain = _locked(session, tenant_id, ticker, interval)
            assert chain is not None
    replaced = None if chain.demo else chain.storage_key
    for name, value in fields.items():
        setattr(chain, name, value)
    chain.version += 1
    session.flush()
    return Stored(_view(chain), replaced)


def list_chains(session: Session, tenant_id: str) -> list[ChainView]:
    rows = session.scalars(
        sa.select(OptionChain).where(OptionChain.tenant_id == tenant_id).order_by(OptionChain.ticker, OptionChain.interval)
    )
    return [_view(c) for c in rows]


def get_chain(session: Session, tenant_id: str, chain_id: str) -> ChainView:
    chain = session.scalar(
        sa.select(OptionChain).where(OptionChain.tenant_id == tenant_id, OptionChain.chain_id == chain_id)
    )
    if chain is None:
        raise NotFound(f"dataset {chain_id!r} not found")
    return _view(chain)


def delete_chain(session: Session, tenant_id: str, chain_id: str) -> str | None:
    """Delete the tenant's chain; returns the files to remove after commit (None: shared demo files)."""
    chain = session.scalar(
        sa.select(OptionChain)
        .where(OptionChain.tenant_id == tenant_id, OptionChain.chain_id == chain_id)
        .with_for_update()
    )
    if chain is None:
        raise NotFound(f"dataset {chain_id!r} not found")
    key = None if chain.demo else chain.storage_key
    session.delete(chain)
    return key


def resolve_chain(session: Session, tenant_id: str, underlying: str, interval: str = "") -> ChainView | None:
    """The tenant's chain on `underlying` (the finest interval, unless `interval` is given; the
    most recently imported among equals), or None."""
    q = sa.select(OptionChain).where(
        OptionChain.tenant_id == tenant_id, OptionChain.underlying == normalize_ticker(underlying or "")
    )
    if interval:
        q = q.where(OptionChain.interval == interval)
    rows = [_view(c) for c in session.scalars(q)]
    if not rows:
        return None
    return min(rows, key=lambda c: (INTERVAL_RANK.get(c.interval, len(INTERVALS)), -c.created_at.timestamp()))


@dataclass(frozen=True)
class DaySelection:
    """What of a day's chain a reader wants: the stored columns (in the stored order) and the
    contracts (empty: all), each (expiry, strike, CE|PE)."""

    columns: tuple[str, ...] = tuple(CHAIN_SCHEMA.names)
    contracts: tuple[tuple[date, float, str], ...] = ()


MAX_SELECTED_CONTRACTS = 100_000


def day_selection(columns: Iterable[str], contracts: Iterable[tuple[str, float, str]]) -> DaySelection:
    """A reader's selection, checked: known columns without repeats (empty: all), contracts with
    an ISO expiry, a finite strike > 0 and an option type (CE/PE, C/P, call/put)."""
    names = list(columns)
    unknown = sorted(set(names) - set(CHAIN_SCHEMA.names))
    if unknown:
        raise InvalidArgument(f"unknown chain column(s) {', '.join(map(repr, unknown))}; "
                              f"the columns are {', '.join(CHAIN_SCHEMA.names)}")
    if len(set(names)) != len(names):
        raise InvalidArgument("a chain column is named twice")
    keys: list[tuple[date, float, str]] = []
    for expiry, strike, option_type in contracts:
        try:
            day = date.fromisoformat(expiry)
        except (TypeError, ValueError):
            raise InvalidArgument(f"contract expiry {expiry!r} is not a YYYY-MM-DD date") from None
        if not math.isfinite(strike) or strike <= 0:
            raise InvalidArgument(f"contract strike {strike!r} must be a number > 0")
        kind = normalize_option_type(option_type)
        if kind is None:
            raise InvalidArgument(f"contract option_type must be {OPTION_TYPE_RULE}, not {option_type!r}")
        keys.append((day, float(strike), kind))
        if len(keys) > MAX_SELECTED_CONTRACTS:
            raise InvalidArgument(f"at most {MAX_SELECTED_CONTRACTS} contracts may be selected")
    wanted = set(names)
    return DaySelection(tuple(n for n in CHAIN_SCHEMA.names if n in wanted) if names else tuple(CHAIN_SCHEMA.names),
                        tuple(keys))


def contract_rows(table: pa.Table, contracts: Iterable[tuple[date, float, str]]) -> np.ndarray:
    """Which rows of stored chain rows (with expiry, strike and option_type) belong to `contracts`."""
    n = table.num_rows
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    expiry = table.column("expiry").cast(pa.int32()).to_numpy()
    strike = table.column("strike").to_numpy()
    kinds = table.column("option_type")
    if pa.types.is_dictionary(kinds.type):
        codes = kinds.combine_chunks()
        put = (np.asarray(codes.dictionary.to_pylist(), dtype=object) == PUT)[codes.indices.to_numpy()]
    else:
        put = np.asarray(kinds.to_numpy(zero_copy_only=False) == PUT)
    groups: dict[tuple[int, bool], list[float]] = {}
    for expiry_day, k, kind in contracts:
        groups.setdefault(((expiry_day - date(1970, 1, 1)).days, kind == PUT), []).append(k)
    for (e, p), strikes in groups.items():
        mask |= (expiry == e) & (put == p) & np.isin(strike, np.asarray(strikes, dtype=np.float64))
    return mask


def chain_day_table(store: MarketStore, chain: ChainView, day: date, selection: DaySelection | None = None) -> pa.Table:
    """The stored rows of one local day of the chain (one file read); with a `selection`, only
    its columns and contracts' rows, in the stored order, option_type dictionary-encoded."""
    if selection is None:
        return store.read_day_table(chain.storage_key, day)
    read = list(selection.columns)
    if selection.contracts:
        keys = set(read) | {"expiry", "strike", "option_type"}
        read = [n for n in CHAIN_SCHEMA.names if n in keys]
    table = store.read_day_table(chain.storage_key, day, read, dictionary=["option_type"] if "option_type" in read else None)
    if selection.contracts:
        table = table.filter(pa.array(contract_rows(table, selection.contracts)))
    return table.select(list(selection.columns))


def chain_day(store: MarketStore, chain: ChainView, day: date) -> pd.DataFrame:
    """One day's chain in the shared in-memory form (domain.option_chain)."""
    return chain_frame(chain_day_table(store, chain, day))


def remove_files(store: MarketStore, key: str | None) -> None:
    if key:
        store.remove(key)


def staging_of(store: MarketStore) -> Path:
    return store.new_staging()

