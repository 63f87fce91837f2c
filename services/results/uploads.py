"""Dataset uploads in bounded memory: the CSV is spooled to an unnamed temporary file as its
chunks arrive, parsed from there chunk by chunk (csv_bars.import_bars_file) and written as a staged version
of the market store before the database sees it; a per-process cap on concurrent uploads refuses the
one too many at once, and memory the import used is handed back to the system after it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from domain.bar_formats import parse_columns
from services.results.bar_arrays import COLUMNS
from services.results.chain_import import is_parquet
from services.results.csv_bars import ImportReport, import_bars_file
from services.results.datasets import write_staged_bars
from services.results.errors import InvalidArgument, TooManyRequests
from services.results.market_store import MarketStore, StoredBars
from services.results.parquet_bars import import_bars_parquet

DEFAULT_MAX_CONCURRENT_UPLOADS = 2
# What the refusal tells the client to wait (seconds): about one upload's time.
RETRY_AFTER_SECONDS = 10


class UploadSlots:
    """At most `limit` uploads at once in this process; the next is refused at once (no queue:
    a waiting upload would hold its connection and its spooled file for nothing)."""

    def __init__(self, limit: int = DEFAULT_MAX_CONCURRENT_UPLOADS) -> None:
        self.limit = max(1, int(limit))
        self.active = 0

    @contextmanager
    def take(self) -> Iterator[None]:
        # One event loop: no lock needed between the check and the increment.
        if self.active >= self.limit:
            raise TooManyRequests(
                f"too many uploads in progress (at most {self.limit} at once); retry in {RETRY_AFTER_SECONDS} s",
                retry_after_seconds=RETRY_AFTER_SECONDS,
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


async def drain(request_iterator: AsyncIterator[object]) -> None:
    """Read and drop what is left of an upload's stream before the call ends with a refusal: a
    client still writing when the server ends the call gets INTERNAL ("Internal error from Core",
    grpc/grpc#36066) in place of our status, and the gateway would answer a 500 for a 429 or a 400.
    A stream that already ended or failed (the client went away) is left as it is."""
    try:
        async for _ in request_iterator:
            pass
    except Exception:  # the refusal being sent matters, not why the stream stopped
        pass


def spool_file(directory: Path | None) -> BinaryIO:
    """An unnamed temporary file (0600, gone when closed or when the process dies) under
    `directory` (created 0700), or the system's temporary directory."""
    if directory is not None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return tempfile.TemporaryFile(dir=directory, prefix="upload-", suffix=".csv")


def parse_and_stage(
    f: BinaryIO,
    market: MarketStore,
    interval: str,
    timezone: str,
    fmt: str = "",
    columns: str = "",
    directory: Path | None = None,
) -> tuple[Path, StoredBars, ImportReport]:
    """The file's bars (in format `fmt`, or by the `columns` mapping) written as a version under
    a new staging directory of `market` (not yet published), what they hold, and the report of
    what was read. No array is left when this returns: the database step holds no bars.
    `directory`: where a UTF-16 file's UTF-8 copy goes (beside the spooled upload)."""
    if is_parquet(f):
        # Parquet carries its own types: `format` names CSV layouts only.
        if fmt and fmt != "generic":
            raise InvalidArgument(f"format={fmt} names a CSV layout; this file is Parquet (leave format out)")
        imported = import_bars_parquet(f, timezone, parse_columns(columns) if columns else {})
    else:
        imported = import_bars_file(f, timezone, fmt, columns, spool_dir=directory)
    report = imported.report
    arrays = {c: getattr(imported.bars, c) for c in COLUMNS}
    del imported
    staging, stored = write_staged_bars(market, arrays, interval, consume=True)
    release_memory()  # the parser's and the writer's leftovers
    return staging, stored, report


# glibc's mallopt parameter for the number of malloc arenas.
_M_ARENA_MAX = -8
MALLOC_ARENAS = 2
_libc: ctypes.CDLL | bool | None = None


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc.malloc_trim  # noqa: B018 - glibc only (not musl)
            _libc.mallopt  # noqa: B018
        except (OSError, AttributeError):
            _libc = False
    return _libc or None


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """At start, before the worker threads: at most `arenas` glibc malloc arenas (default: 8 per
    core). Each arena keeps up to 64 MB of freed memory at its top that malloc_trim does not
    return, so an import's buffers, freed in whichever pool thread ran it, would otherwise stay
    in the RSS a few tens of MB per thread. MALLOC_ARENA_MAX in the environment wins."""
    libc = _glibc()
    if libc is not None and "MALLOC_ARENA_MAX" not in os.environ:
        libc.mallopt(_M_ARENA_MAX, int(arenas))


def release_memory() -> None:
    """After an import: collect garbage and, on glibc, give the free pages of the heap back to
    the system (without it a 238 MB import left about 110 MB more in the RSS)."""
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
