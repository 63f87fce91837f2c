"""The artifact store: gzip JSON files per day, under
``<root>/<tenant>/<user_id or _>/<strategy_id>/<YYYY-MM-DD>/<name>``.

Paths are built only from validated ids (tenant ids, user ids of letters,
digits and ``_ . @ -`` starting with a letter or digit, canonical UUIDs, real
ISO dates, a fixed set of file names) and checked to stay under the root, so no
input can name a file outside the store. Files are written to a temporary name
in the same directory and renamed into place (atomic on POSIX): a reader sees
the previous file or the complete new one, never a half-written one. Files are
created 0600 and directories 0700: only the service's user reads them.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from domain.backtest_spec import USER_ID_RULE, user_id_problem
from libs.private_files import make_private_dir, open_private_new
from services.results.errors import InvalidArgument
from services.results.keys import TENANT_ID_RE

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TRADES_FILE = "trades_daily.json.gz"
DIAGNOSTICS_FILE = "diagnostics_export.json.gz"
POSITIONS_FILE = "positions.json.gz"
FILE_NAMES = (TRADES_FILE, DIAGNOSTICS_FILE, POSITIONS_FILE)
# The directory of seed-002 runs (no user): "_" cannot be a user id (those start with a letter or digit).
NO_USER = "_"


def check_user_id(user_id: str, *, required: bool = True) -> str:
    if not user_id and not required:
        return ""
    if user_id_problem(user_id or "") is not None:
        raise InvalidArgument(f"user_id must be {USER_ID_RULE}")
    return user_id


def check_strategy_id(strategy_id: str) -> str:
    """A canonical (lower-case, hyphenated) UUID."""
    try:
        canonical = str(uuid.UUID(strategy_id))
    except (ValueError, TypeError, AttributeError):
        raise InvalidArgument(f"strategy_id {strategy_id!r} is not a UUID") from None
    if canonical != strategy_id.lower():
        raise InvalidArgument(f"strategy_id {strategy_id!r} is not a UUID (8-4-4-4-12 hex digits)")
    return canonical


def check_date(value: str, field: str = "date") -> date:
    """An ISO date YYYY-MM-DD that exists."""
    if not isinstance(value, str) or not DATE_RE.match(value):
        raise InvalidArgument(f"{field} must be a date YYYY-MM-DD, not {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(f"{field} {value!r} is not a real date") from None


@dataclass(frozen=True)
class Removed:
    """What a deletion freed."""

    files: int
    bytes: int


class ArtifactStore:
    """Day files of day-by-day backtests on a local (or shared) filesystem."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def strategy_dir(self, tenant_id: str, user_id: str, strategy_id: str) -> Path:
        if not TENANT_ID_RE.match(tenant_id or ""):
            raise InvalidArgument("invalid tenant id")
        user = check_user_id(user_id) if user_id else NO_USER
        path = (self.root / tenant_id / user / check_strategy_id(strategy_id)).resolve()
        if self.root not in path.parents:
            raise InvalidArgument("path outside the artifact store")
        return path

    def day_dir(self, tenant_id: str, user_id: str, strategy_id: str, day: str) -> Path:
        check_date(day)
        return self.strategy_dir(tenant_id, user_id, strategy_id) / day

    def write_day(self, tenant_id: str, user_id: str, strategy_id: str, day: str, files: list[tuple[str, bytes]]) -> int:
        """Write (or replace) a day's files atomically; returns the bytes written."""
        directory = self.day_dir(tenant_id, user_id, strategy_id, day)
        make_private_dir(directory)  # 0700, like every directory of the store it creates
        total = 0
        for name, data in files:
            if name not in FILE_NAMES:
                raise InvalidArgument(f"unknown artifact file {name!r}")
            final = directory / name
            tmp = directory / f".{name}.{uuid.uuid4().hex}.tmp"
            with open_private_new(tmp) as fh:  # 0600
                fh.write(data)
            os.replace(tmp, final)
            total += len(data)
        return total

    def read(self, tenant_id: str, user_id: str, strategy_id: str, day: str, name: str) -> bytes | None:
        if name not in FILE_NAMES:
            raise InvalidArgument(f"unknown artifact file {name!r}")
        path = self.day_dir(tenant_id, user_id, strategy_id, day) / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def delete_strategy(self, tenant_id: str, user_id: str, strategy_id: str) -> Removed:
        """Remove a user's (or seed 002's) artifacts of one strategy."""
        directory = self.strategy_dir(tenant_id, user_id, strategy_id)
        files = size = 0
        if not directory.exists():
            return Removed(0, 0)
        for dirpath, _, names in os.walk(directory):
            for n in names:
                try:
                    size += os.path.getsize(os.path.join(dirpath, n))
                    files += 1
                except OSError:
                    pass
        shutil.rmtree(directory, ignore_errors=True)
        for parent in (directory.parent, directory.parent.parent):
            try:
                parent.rmdir()  # only when empty
            except OSError:
                break
        return Removed(files, size)
