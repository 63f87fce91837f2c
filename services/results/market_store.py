"""The columnar market-data store: Parquet files on a local (or shared) filesystem, owned by
results; the database keeps only what they are (services/results/models_market.py).

Layout under the root (HINDSIGHT_MARKET_DIR; standalone: HINDSIGHT_DATA_DIR/market):

    option_chains/<tenant>/<version_id>/day=<YYYY-MM-DD>/part-0.parquet
    option_chains/_demo/<version_id>/day=<YYYY-MM-DD>/part-0.parquet    (shared by tenants)
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

import os
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from libs.private_files import make_private_dir
from services.results.errors import InvalidArgument, NotFound
from services.results.keys import TENANT_ID_RE

CHAINS = "option_chains"
DEMO_OWNER = "_demo"  # cannot be a tenant id (those start with a letter or digit)
STAGING = ".staging"
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
    """Option chains (and, later, bar datasets) as day-partitioned Parquet."""

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

    def clear_staging(self) -> None:
        """At start: what imports cut short by a crash left behind."""
        shutil.rmtree(self.root / STAGING, ignore_errors=True)

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
