"""Bar datasets from Parquet: a file that starts with Parquet's magic bytes is read batch by
batch (ParquetFile.iter_batches, no pre-buffering), its columns found as a generic CSV's are
(domain.bar_formats.GENERIC_NAMES, any case; or the `columns=` mapping), and each batch checked
by the same bar rules as a CSV (csv_bars._bar_problem: positive prices, high >= max(open,
close), low <= min(open, close), volume >= 0, timestamps strictly increasing). Timestamps are a
Parquet timestamp (with a zone: converted to UTC; without: wall-clock time in the dataset's
timezone), a date, or ISO text. Memory: the bars (48 bytes each) and one batch."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from domain.bar_formats import FIELDS, GENERIC_NAMES
from services.results.chain_import import parse_times
from services.results.csv_bars import MAX_ROWS, ImportedBars, ImportReport, _bar_problem, _Filler
from services.results.errors import InvalidArgument

BATCH_ROWS = 256 * 1024
PARQUET_FORMAT = "parquet"
_NAT = np.iinfo(np.int64).min


def _columns(names: list[str], mapping: dict[str, str]) -> dict[str, str]:
    lower = {n.strip().lower(): n for n in reversed(names)}
    found: dict[str, str] = {}
    for f in FIELDS:
        if f in mapping:
            name = lower.get(mapping[f].strip().lower())
            if name is None:
                raise InvalidArgument(f"columns= names {mapping[f]!r} for {f}, but the file has no such column "
                                      f"(it has {', '.join(names)})")
            found[f] = name
            continue
        name = next((lower[n] for n in GENERIC_NAMES[f] if n in lower), None)
        if name is None:
            raise InvalidArgument(
                f"the Parquet file has no {f} column (looked for {', '.join(GENERIC_NAMES[f])} in any case; "
                f"it has {', '.join(names)}); name it with columns={f}:Column"
            )
        found[f] = name
    return found


def _numbers(arr: pa.ChunkedArray | pa.Array, name: str) -> np.ndarray:
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type)):
        raise InvalidArgument(f"the {name} column must hold numbers, not {arr.type}")
    return np.asarray(arr.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _read(pf: pq.ParquetFile, cols: dict[str, str], timezone: str, out: _Filler) -> None:
    """Every batch checked and added to `out`; InvalidArgument names the first bad row."""
    row = 0
    prev: tuple[int, int] | None = None
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=list(dict.fromkeys(cols.values()))):
        n = batch.num_rows
        ts, _ = parse_times(batch.column(cols["timestamp"]), timezone)
        o, h, lo, c, v = (_numbers(batch.column(cols[k]), k) for k in ("open", "high", "low", "close", "volume"))
        rows = np.arange(row + 1, row + n + 1)
        bad_ts = np.flatnonzero(ts == _NAT)
        if bad_ts.size:
            j = int(bad_ts[0])
            raise InvalidArgument(f"row {row + j + 1}: the timestamp {batch.column(cols['timestamp'])[j].as_py()!r} "
                                  f"is not a date-time (or does not exist in {timezone})")
        missing = ~(np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & np.isfinite(v))
        if missing.any():
            j = int(np.flatnonzero(missing)[0])
            raise InvalidArgument(f"row {row + j + 1}: a price or the volume is missing or not a number")
        problem = _bar_problem(ts, o, h, lo, c, v, rows, prev)
        if problem is not None:
            j, message = problem
            raise InvalidArgument(f"row {row + j + 1}: {message}")
        out.add(ts, o, h, lo, c, v)
        prev = (int(ts[-1]), int(rows[-1]))
        row += n


def import_bars_parquet(f: BinaryIO, timezone: str, mapping: dict[str, str], max_rows: int | None = None) -> ImportedBars:
    """The bars of a Parquet file and the report of what was read; InvalidArgument names the
    first bad row (rows numbered from 1)."""
    max_rows = MAX_ROWS if max_rows is None else max_rows
    try:
        pf = pq.ParquetFile(f, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidArgument(f"the file starts like Parquet but cannot be read: {exc}") from None
    names = pf.schema_arrow.names
    cols = _columns(names, mapping)
    total = pf.metadata.num_rows
    if total == 0:
        raise InvalidArgument("the Parquet file has no rows")
    if total > max_rows:
        raise InvalidArgument(f"the file has {total:,} rows; a dataset holds at most {max_rows:,} bars")
    out = _Filler(total)
    ts_type = pf.schema_arrow.field(cols["timestamp"]).type
    try:
        _read(pf, cols, timezone, out)
    except (pa.ArrowException, OSError, ValueError, OverflowError) as exc:  # a damaged file, a time beyond 2262
        first = str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise InvalidArgument(f"the Parquet file cannot be read: {first}") from None
    bars, _ = out.bars()
    notes = []
    if pa.types.is_timestamp(ts_type) and ts_type.tz is not None:
        notes.append(f"timestamps with a zone ({ts_type.tz}) converted to UTC")
    elif pa.types.is_timestamp(ts_type) or pa.types.is_date(ts_type):
        notes.append(f"timestamps without a zone read as {timezone} wall-clock time")
    else:
        notes.append(f"ISO text timestamps: without an offset read as {timezone} wall-clock time, with one converted "
                     "to UTC")
    used = set(cols.values())
    return ImportedBars(
        bars,
        ImportReport(
            format=PARQUET_FORMAT,
            columns=dict(cols),
            dropped=[n for n in names if n not in used],
            rows_dropped=0,
            notes=notes,
        ),
    )
