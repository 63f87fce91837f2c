"""The columnar market-data store: Parquet files on a local (or shared) filesystem, owned by
results; the database keeps only what they are (services/results/models_market.py).

Layout under the root (HINDSIGHT_MARKET_DIR; standalone: HINDSIGHT_DATA_DIR/market):

    option_chains/<tenant>/<version_id>/day=<YYYY-MM-DD>/part-0.parquet
    option_chains/_demo/<version_id>/day=<YYYY-MM-DD>/part-0.parquet    (shared by tenants)
    bars/<tenant>/<version_id>/month=<YYYY-MM>/part-0.parquet           (bar datasets: see below)
    .staging/<random>/...                                               (imports in progress)

One file per local trading day, sorted by (timestamp, expiry, strike, option_type), so a
day's chain is one file read and a date range is the files of its days (hive-style
`day=` directories: pyarrow.dataset prunes by them). A version is written under
.staging, then renamed into place (atomic on one filesystem) before the database row that
names it is committed; an import that fails leaves nothing. Paths are built only from
validated ids and ISO dates and checked to stay under the root. Files are 0600 and
directories 0700.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from domain.market import BAR_PRICE_COLUMNS
from libs.private_files import make_private_dir, open_private_new
from services.results.errors import InvalidArgument, NotFound
from services.results.keys import TENANT_ID_RE

CHAINS = "option_chains"
DEMO_OWNER = "_demo"  # cannot be a tenant id (those start with a letter or digit)
STAGING = ".staging"
# An import directory untouched this long was left by a crash (a live import adds a day directory
# every few milliseconds to seconds).
STALE_STAGING_S = 3600.0
PART = "part-0.parquet"
ID_RE = re.compile(r"^[a-z]{2,4}_[0-9a-f]{8,32}$")
COMPRESSION = "zstd"
# zstd's fastest level: near its best size on these columns (dictionary-encoded), twice the speed.
COMPRESSION_LEVEL = 1

# The stored schema of a chain's rows.
CHAIN_SCHEMA = pa.schema([
    ("timestamp", pa.timestamp("ns", tz="UTC")),
    ("expiry", pa.date32()),
    ("strike", pa.float64()),
    ("option_type", pa.string()),
    ("open", pa.float64()),
    ("high", pa.float64()),
    ("low", pa.float64()),
    ("close", pa.float64()),
    ("volume", pa.float64()),
    ("oi", pa.float64()),
    ("iv", pa.float64()),
])
SORT_KEYS = [("timestamp", "ascending"), ("expiry", "ascending"), ("strike", "ascending"), ("option_type", "ascending")]


def day_dir_name(day: date) -> str:
    return f"day={day.isoformat()}"


def _checked_id(value: str, what: str) -> str:
    if not ID_RE.match(value or ""):
        raise InvalidArgument(f"invalid {what}")
    return value


@dataclass(frozen=True)
class Stored:
    """What a written version holds on disk."""

    files: int
    bytes: int


class MarketStore:
    """Option chains as day-partitioned Parquet; bar datasets (the functions after the class) by period."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    # ------------------------------------------------------------ paths

    def _inside(self, path: Path) -> Path:
        path = path.resolve()
        if self.root not in path.parents:
            raise InvalidArgument("path outside the market-data store")
        return path

    def chain_version_key(self, tenant_id: str, version_id: str) -> str:
        """An imported version's directory relative to the root (what the database keeps)."""
        if not TENANT_ID_RE.match(tenant_id or ""):
            raise InvalidArgument("invalid tenant id")
        return f"{CHAINS}/{tenant_id}/{_checked_id(version_id, 'version id')}"

    @staticmethod
    def demo_version_key(version_id: str) -> str:
        return f"{CHAINS}/{DEMO_OWNER}/{_checked_id(version_id, 'version id')}"

    def path_of(self, key: str) -> Path:
        return self._inside(self.root / key)

    def new_staging(self) -> Path:
        """A fresh private directory for an import in progress."""
        path = self.root / STAGING / secrets.token_hex(12)
        make_private_dir(path)
        return path

    def clear_staging(self, older_than_s: float = STALE_STAGING_S) -> None:
        """At start: what imports cut short by a crash left behind. Only directories untouched for
        `older_than_s`: another results process sharing the store (a replica on the same volume)
        may be importing into a fresh one right now."""
        base = self.root / STAGING
        if not base.is_dir():
            return
        cutoff = time.time() - older_than_s
        for entry in base.iterdir():
            try:
                stale = entry.stat().st_mtime < cutoff
            except FileNotFoundError:
                continue
            if stale:
                shutil.rmtree(entry, ignore_errors=True)

    # ------------------------------------------------------------ writing

    def publish(self, staging: Path, key: str) -> Path:
        """Move a complete staged version to its place (atomic rename on one filesystem)."""
        final = self.path_of(key)
        make_private_dir(final.parent)
        os.replace(staging, final)
        return final

    def remove(self, key: str) -> None:
        """Remove a version's files (and its owner's directory once empty)."""
        path = self.path_of(key)
        shutil.rmtree(path, ignore_errors=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass

    @staticmethod
    def measure(path: Path) -> Stored:
        files = size = 0
        for dirpath, _, names in os.walk(path):
            for n in names:
                size += os.path.getsize(os.path.join(dirpath, n))
                files += 1
        return Stored(files, size)

    # ------------------------------------------------------------ reading

    def days(self, key: str) -> list[date]:
        """The days a version has files for, in order."""
        path = self.path_of(key)
        if not path.is_dir():
            raise NotFound("the chain's files are missing")
        return sorted(date.fromisoformat(p.name[4:]) for p in path.iterdir() if p.name.startswith("day="))

    def read_day_table(
        self, key: str, day: date, columns: list[str] | None = None, dictionary: list[str] | None = None
    ) -> pa.Table:
        """One day's rows (no other file is opened); an empty table for a day without rows.
        `dictionary`: string columns read dictionary-encoded (no string per row)."""
        path = self.path_of(key) / day_dir_name(day) / PART
        try:
            return pq.read_table(path, columns=columns, read_dictionary=dictionary)
        except FileNotFoundError:
            names = columns or CHAIN_SCHEMA.names
            return CHAIN_SCHEMA.empty_table().select(names)

    def read_range_table(self, key: str, first: date, last: date, columns: list[str] | None = None) -> pa.Table:
        """The rows of the days first..last (inclusive); only those days' files are read."""
        base = self.path_of(key)
        files = [
            str(base / day_dir_name(d) / PART)
            for d in self.days(key)
            if first <= d <= last
        ]
        if not files:
            return CHAIN_SCHEMA.empty_table().select(columns or CHAIN_SCHEMA.names)
        return pads.dataset(files, schema=CHAIN_SCHEMA, format="parquet").to_table(columns=columns)


# ================================================================== bar datasets
#
#     bars/<tenant>/<version_id>/month=<YYYY-MM>/part-0.parquet    (intervals below a day)
#     bars/<tenant>/<version_id>/year=<YYYY>/part-0.parquet        (a day and longer)
#     bars/_demo/<name>/...                                        (the demo datasets, shared)
#
# A version is one dataset import (immutable). Its rows are cut by UTC calendar month, or by
# year for daily and weekly bars, so that a file holds a sensible number of rows at any interval
# (a month of one-minute bars is 8 k to 45 k rows; a month of daily bars would be 30 rows in a
# file whose footer outweighs them), and a date range reads only the files it overlaps. UTC
# periods, not local ones: the cut is only about which files to open, and the reader trims the
# rows to the exact range. Files are written 0600 into a staging directory, which is renamed
# into place before the database row naming it commits (as for chains).

BARS = "bars"
BAR_SCHEMA = pa.schema([
    ("ts", pa.timestamp("ns", tz="UTC")),
    ("open", pa.float64()),
    ("high", pa.float64()),
    ("low", pa.float64()),
    ("close", pa.float64()),
    ("volume", pa.float64()),
])
# Sorted timestamps delta-encode to a few bits a bar; floats split into byte streams compress
# (zstd) about a third better than plain pages, and read faster. Measured in bench/bars_store.py.
BAR_ENCODINGS = {"ts": "DELTA_BINARY_PACKED", **{c: "BYTE_STREAM_SPLIT" for c in BAR_PRICE_COLUMNS}}
# Intervals of a day or longer are cut by year, the others by month.
YEARLY_MINUTES = 1_440
DEMO_NAME_RE = re.compile(r"^[A-Z][A-Z0-9-]{0,30}-v[0-9]{1,4}$")
_PERIOD_RE = re.compile(r"^(month=(\d{4})-(\d{2})|year=(\d{4}))$")


@dataclass(frozen=True)
class StoredBars:
    """A bar version written to staging: what its database row records."""

    bars: int
    first_ts: int
    last_ts: int
    files: int
    bytes: int


def bar_version_key(tenant_id: str, version_id: str) -> str:
    """A bar version's directory relative to the root (what the database keeps)."""
    if not TENANT_ID_RE.match(tenant_id or ""):
        raise InvalidArgument("invalid tenant id")
    return f"{BARS}/{tenant_id}/{_checked_id(version_id, 'version id')}"


def demo_bar_key(name: str) -> str:
    """A shared demo dataset's directory (`name`: ticker and generator version, e.g. DEMO-DAILY-v1)."""
    if not DEMO_NAME_RE.match(name or ""):
        raise InvalidArgument("invalid demo dataset name")
    return f"{BARS}/{DEMO_OWNER}/{name}"


def is_shared_key(key: str) -> bool:
    """Files several tenants' rows name (the demo's): never removed with one of them."""
    parts = key.split("/")
    return len(parts) > 1 and parts[1] == DEMO_OWNER


def _period_bounds(name: str) -> tuple[int, int] | None:
    """[start, end) in ns of a `month=`/`year=` directory, or None for another name."""
    m = _PERIOD_RE.match(name)
    if m is None:
        return None
    if m.group(4) is not None:
        year = int(m.group(4))
        first, after = np.datetime64(f"{year:04d}", "Y"), np.datetime64(f"{year + 1:04d}", "Y")
    else:
        first = np.datetime64(f"{m.group(2)}-{m.group(3)}", "M")
        after = first + np.timedelta64(1, "M")
    return int(first.astype("datetime64[ns]").astype(np.int64)), int(after.astype("datetime64[ns]").astype(np.int64))


def _period_name(start_ns: int, yearly: bool) -> str:
    t = np.datetime64(int(start_ns), "ns")
    return f"year={t.astype('datetime64[Y]')}" if yearly else f"month={t.astype('datetime64[M]')}"


def write_bars(staging: Path, columns: dict[str, np.ndarray], interval_minutes: int, *, consume: bool = False) -> StoredBars:
    """Write bars (`ts` int64 ns UTC strictly increasing, the rest float64) under `staging`, one
    file per period. `consume`: each period's slices are all that stays referenced from here
    once written, and `columns` is emptied at the end (the caller's arrays can then be freed)."""
    ts = np.ascontiguousarray(columns["ts"], dtype=np.int64)
    n = int(ts.shape[0])
    if n == 0:
        raise InvalidArgument("a dataset needs at least one bar")
    yearly = interval_minutes >= YEARLY_MINUTES
    unit = "datetime64[Y]" if yearly else "datetime64[M]"
    periods = ts.view("datetime64[ns]").astype(unit)
    cuts = [0, *(np.flatnonzero(periods[1:] != periods[:-1]) + 1).tolist(), n]
    del periods
    files = size = 0
    for start, stop in itertools.pairwise(cuts):
        directory = staging / _period_name(int(ts[start]), yearly)
        directory.mkdir(mode=0o700)
        table = pa.Table.from_arrays(
            [
                pa.array(ts[start:stop], type=pa.int64()).cast(BAR_SCHEMA.field("ts").type),
                *(pa.array(np.ascontiguousarray(columns[c][start:stop], dtype=np.float64)) for c in BAR_PRICE_COLUMNS),
            ],
            schema=BAR_SCHEMA,
        )
        path = directory / PART
        with open_private_new(path) as fh:
            pq.write_table(
                table, fh, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL, use_dictionary=False,
                column_encoding=BAR_ENCODINGS, write_statistics=["ts"],
            )
        size += path.stat().st_size
        files += 1
    stored = StoredBars(bars=n, first_ts=int(ts[0]), last_ts=int(ts[-1]), files=files, bytes=size)
    if consume:
        columns.clear()
    return stored


def read_bars(store: MarketStore, key: str, start_ns: int | None = None, end_ns: int | None = None,
              columns: Sequence[str] | None = None) -> pa.Table:
    """A bar version's rows with start_ns <= ts <= end_ns (None: unbounded), in time order; only
    the files of the periods that overlap the range are opened, and of them only `ts` and
    `columns` (None: every column) are read."""
    base = store.path_of(key)
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        raise NotFound("the dataset's files are missing") from None
    lo = np.iinfo(np.int64).min if start_ns is None else int(start_ns)
    hi = np.iinfo(np.int64).max if end_ns is None else int(end_ns)
    parts = []
    for name in names:
        bounds = _period_bounds(name)
        if bounds is not None and bounds[0] <= hi and lo < bounds[1]:
            parts.append((bounds[0], str(base / name / PART)))
    wanted = None if columns is None else ["ts", *(c for c in BAR_PRICE_COLUMNS if c in columns)]
    if not parts:
        empty = BAR_SCHEMA.empty_table()
        return empty if wanted is None else empty.select(wanted)
    table = pa.concat_tables([pq.read_table(path, schema=BAR_SCHEMA, columns=wanted) for _, path in sorted(parts)])
    if start_ns is not None or end_ns is not None:
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        first, last = np.searchsorted(ts, lo, "left"), np.searchsorted(ts, hi, "right")
        table = table.slice(int(first), int(last - first))
    return table
