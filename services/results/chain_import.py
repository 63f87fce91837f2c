"""Option-chain imports in bounded memory: a spooled CSV or Parquet file is read batch by
batch (pyarrow.csv.open_csv, ParquetFile.iter_batches), each batch normalised (option
types, timestamps to UTC, expiries to dates), checked against the chain's rules
(domain.option_chain) and written to day files under a staging directory of the market
store. A day whose rows arrive sorted and in one run is written once; a day that arrives
out of order or in several runs is sorted and checked for duplicates at the end, one day
at a time. The first bad row stops the import with a message naming it; the staging
directory is then removed, so nothing is stored.

Rows are numbered from 1, the first row after a CSV's header (a CSV's row N is its line
N + 1 when no field holds a line break).
"""

from __future__ import annotations

import queue
import re
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from domain.option_chain import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    TYPE_CODES,
    contract_symbol,
    first_bad_row,
    key_order,
    normalize_option_type,
    strike_steps,
)
from services.results.errors import InvalidArgument
from services.results.market_store import CHAIN_SCHEMA, COMPRESSION, COMPRESSION_LEVEL, PART, SORT_KEYS, day_dir_name

BATCH_ROWS = 128 * 1024
# Blocks of the CSV read at once; the reader works a few ahead, so this bounds its memory.
CSV_BLOCK_BYTES = 4 * 1024 * 1024
NUMERIC = ("strike", "open", "high", "low", "close", "volume", *OPTIONAL_COLUMNS)
TEXT = ("timestamp", "expiry", "option_type")
_DAY_NS = 86_400 * 1_000_000_000
_NAT = np.iinfo(np.int64).min
_OFFSET_RE = re.compile(r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$")
_TYPE_NAMES = {code: name for name, code in TYPE_CODES.items()}
# Batches read ahead by a second thread while one is checked and written (pyarrow reads and
# writes without the GIL): at most this many wait, so memory stays bounded.
PREFETCH_BATCHES = 2
# Rows of one day held before they are written (a day of a weekly index chain is ~60 k).
FLUSH_ROWS = 512 * 1024
# Day files handed to the writing thread and not yet written, at most.
WRITES_IN_FLIGHT = 2


@dataclass
class ChainSummary:
    """What an import (or the demo) wrote."""

    rows: int = 0
    contracts: int = 0
    expiries: list[date] = field(default_factory=list)
    strike_steps: list[float] = field(default_factory=list)
    days: int = 0
    first_ts: int = 0
    last_ts: int = 0
    columns: list[str] = field(default_factory=list)
    file_format: str = ""


@dataclass
class _Batch:
    """A batch normalised: int64 ns UTC times, days since 1970-01-01, codes, float64 columns."""

    ts: np.ndarray
    local_day: np.ndarray
    expiry_day: np.ndarray
    strike: np.ndarray
    code: np.ndarray
    values: dict[str, np.ndarray]
    optional: dict[str, np.ndarray]
    expiry_ok: np.ndarray

    def table(self, a: int, b: int) -> pa.Table:
        n = b - a
        cols: list[Any] = [
            pa.array(self.ts[a:b], type=pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
            pa.array(self.expiry_day[a:b].astype(np.int32), type=pa.int32()).cast(pa.date32()),
            pa.array(self.strike[a:b]),
            pa.DictionaryArray.from_arrays(
                pa.array(self.code[a:b].astype(np.int8)), pa.array(["CE", "PE"])
            ).cast(pa.string()),
        ]
        cols += [pa.array(self.values[c][a:b]) for c in ("open", "high", "low", "close", "volume")]
        for c in OPTIONAL_COLUMNS:
            col = self.optional.get(c)
            cols.append(pa.array(col[a:b], from_pandas=True) if col is not None else pa.nulls(n, pa.float64()))
        return pa.Table.from_arrays(cols, schema=CHAIN_SCHEMA)


# ---------------------------------------------------------------- reading the file


def is_parquet(f: BinaryIO) -> bool:
    f.seek(0)
    head = f.read(4)
    f.seek(0)
    return head == b"PAR1"


def _column_map(names: list[str]) -> dict[str, str]:
    """Our column -> the file's column (names in any case, spaces around them ignored)."""
    found: dict[str, str] = {}
    for name in names:
        key = name.strip().lstrip("\ufeff").lower()
        if key in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) and key not in found:
            found[key] = name
    missing = [c for c in REQUIRED_COLUMNS if c not in found]
    if missing:
        raise InvalidArgument(
            f"the option chain file lacks the column(s) {', '.join(missing)}: a chain has the columns "
            f"{', '.join(REQUIRED_COLUMNS)} (optional: {', '.join(OPTIONAL_COLUMNS)}); the file has {', '.join(names)}"
        )
    return found


def _csv_header(f: BinaryIO) -> list[str]:
    import csv
    import io

    f.seek(0)
    first = f.readline(1024 * 1024)
    f.seek(0)
    text = first.decode("utf-8-sig", errors="replace")
    try:
        return next(csv.reader(io.StringIO(text)), [])
    except csv.Error:  # not text: no header to find the columns in
        return text.strip().split(",")


def _batches(f: BinaryIO) -> tuple[str, dict[str, str], Callable[[], Iterator[pa.RecordBatch]]]:
    """(format, column map, a function that starts the batches over)."""
    if is_parquet(f):
        try:
            pf = pq.ParquetFile(f, pre_buffer=False)
        except (pa.ArrowException, OSError) as exc:
            raise InvalidArgument(f"the file starts like Parquet but cannot be read: {exc}") from None
        cols = _column_map(pf.schema_arrow.names)

        def parquet() -> Iterator[pa.RecordBatch]:
            # Without pre-buffering: its cache keeps every row group read until the file is closed,
            # so the memory would grow with the file.
            # Text columns come dictionary-encoded: a few distinct values (CE/PE, the expiries), not a
            # string per row, and the checks below work on the distinct values.
            texts = [name for name in cols.values() if pa.types.is_string(pf.schema_arrow.field(name).type)]
            reader = pq.ParquetFile(f, pre_buffer=False, read_dictionary=texts)
            yield from reader.iter_batches(batch_size=BATCH_ROWS, columns=list(cols.values()))

        return "parquet", cols, parquet
    header = _csv_header(f)
    if not header:
        raise InvalidArgument("the file is empty")
    cols = _column_map(header)

    def csv(all_text: bool = False, threads: bool = True, on_bad_row: Any = None) -> Iterator[pa.RecordBatch]:
        f.seek(0)
        types = {cols[c]: (pa.string() if c in TEXT or all_text else pa.float64()) for c in cols}
        reader = pacsv.open_csv(
            f,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=threads),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_bad_row),
            convert_options=pacsv.ConvertOptions(
                column_types=types, include_columns=list(cols.values()), strings_can_be_null=False
            ),
        )
        yield from reader

    def csv_typed() -> Iterator[pa.RecordBatch]:
        try:
            yield from csv()
        except pa.ArrowInvalid as exc:
            raise _csv_problem(str(exc), cols, csv) from None

    return "csv", cols, csv_typed


def _csv_problem(message: str, cols: dict[str, str], csv: Callable[..., Iterator[pa.RecordBatch]]) -> InvalidArgument:
    """pyarrow's reader (on threads) says what is wrong but not on which row: read the file
    again, as text, to find it. Only after an error."""
    first = message.splitlines()[0] if message else "unreadable"
    try:
        if "CSV parse error" in message:
            bad: list[Any] = []

            def note(row: Any) -> str:
                bad.append(row)
                return "error"

            try:
                for _ in csv(all_text=True, threads=False, on_bad_row=note):
                    pass
            except pa.ArrowInvalid:
                pass
            if bad and bad[0].number is not None:
                b = bad[0]  # its number counts the header's line
                return InvalidArgument(
                    f"row {b.number - 1}: expected {b.expected_columns} columns (as the header), got "
                    f"{b.actual_columns}: {b.text[:200]!r}"
                )
        elif "UTF8" in message or "UTF-8" in message:
            return InvalidArgument(f"the CSV is not UTF-8 text: {first}")
        elif "conversion error to double" in message:
            for ours in NUMERIC:
                if ours not in cols:
                    continue
                row = 0
                for batch in csv(all_text=True):
                    texts = batch.column(cols[ours]).to_pandas()
                    nums = pd.to_numeric(texts, errors="coerce")
                    hit = np.flatnonzero(nums.isna().to_numpy() & (texts.str.strip() != "").to_numpy())
                    if hit.size:
                        value = texts.iloc[int(hit[0])]
                        return InvalidArgument(f"row {row + int(hit[0]) + 1}: {ours} is not a number ({value!r})")
                    row += batch.num_rows
    except (pa.ArrowException, OSError, ValueError):
        pass  # the second read failed too: say what the first did
    return InvalidArgument(f"the CSV cannot be read: {first}")


# ---------------------------------------------------------------- normalising a batch


_FIRST_TIME, _LAST_TIME = pd.Timestamp("1900-01-01"), pd.Timestamp("2200-01-01")


def _bounded(parsed: Any) -> pd.DatetimeIndex:
    """Parsed times with those outside 1900-2199 as NaT (beyond nanoseconds' range, and no market's)."""
    idx = pd.DatetimeIndex(parsed)
    naive = idx.tz_localize(None) if idx.tz is not None else idx
    ok = np.asarray((naive >= _FIRST_TIME) & (naive < _LAST_TIME))
    return idx.where(ok).as_unit("ns") if len(idx) else idx.as_unit("ns")


def parse_times(arr: pa.Array, zone: str) -> tuple[np.ndarray, np.ndarray]:
    """(UTC ns, local day) of timestamps; _NAT where they do not parse."""
    arr = _plain_unless_text(arr)
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        aware = pa.types.is_timestamp(arr.type) and arr.type.tz is not None
        enc = pc.dictionary_encode(arr.cast(pa.timestamp("ns", tz=arr.type.tz if aware else None)))
        values = pd.DatetimeIndex(enc.dictionary.to_pandas())
        idx = values if aware else values.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
        utc = idx.tz_convert("UTC")
    elif _is_text(arr.type):
        enc = _encoded(arr)
        texts = pd.Series(enc.dictionary.to_pylist(), dtype=object).str.strip()
        has_offset = texts.str.contains(_OFFSET_RE).fillna(False).to_numpy()
        utc_ns = np.full(len(texts), _NAT, dtype=np.int64)
        if (~has_offset).any():
            naive = _bounded(pd.to_datetime(texts[~has_offset], format="ISO8601", errors="coerce"))
            local = pd.DatetimeIndex(naive).tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
            utc_ns[~has_offset] = local.tz_convert("UTC").as_unit("ns").asi8
        if has_offset.any():
            aware = _bounded(pd.to_datetime(texts[has_offset], format="ISO8601", errors="coerce", utc=True))
            utc_ns[has_offset] = pd.DatetimeIndex(aware).as_unit("ns").asi8
        utc = pd.DatetimeIndex(np.where(utc_ns == _NAT, np.datetime64("NaT"), utc_ns.view("datetime64[ns]")), tz="UTC")
    else:
        raise InvalidArgument(f"the timestamp column must hold ISO date-times, not {arr.type}")
    uniq_ns = utc.as_unit("ns").asi8.copy()
    wall = utc.tz_convert(zone).tz_localize(None).as_unit("ns").asi8
    uniq_day = np.where(uniq_ns == _NAT, 0, np.floor_divide(wall, _DAY_NS))
    # Each row's distinct value; an empty cell (null) points past them, to NaT and day 0.
    uniq_ns = np.append(uniq_ns, _NAT)
    uniq_day = np.append(uniq_day, 0)
    indices = enc.indices.fill_null(len(uniq_ns) - 1).to_numpy(zero_copy_only=False)
    return uniq_ns[indices].astype(np.int64), uniq_day[indices].astype(np.int64)


def _expiry_days(arr: pa.Array, zone: str) -> tuple[np.ndarray, np.ndarray]:
    """(days since 1970-01-01, valid) of expiries."""
    arr = _plain_unless_text(arr)
    if pa.types.is_date(arr.type):
        days = arr.cast(pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False)
        valid = ~arr.is_null().to_numpy(zero_copy_only=False)
        return np.where(valid, np.nan_to_num(days), 0).astype(np.int64), valid
    if pa.types.is_timestamp(arr.type):
        ts = pd.DatetimeIndex(arr.to_pandas())
        if ts.tz is not None:
            ts = ts.tz_convert(zone).tz_localize(None)
        valid = ~ts.isna()
        days = np.where(valid, ts.as_unit("ns").asi8 // _DAY_NS, 0)
        return days.astype(np.int64), np.asarray(valid)
    if not _is_text(arr.type):
        raise InvalidArgument(f"the expiry column must hold dates YYYY-MM-DD, not {arr.type}")
    enc = _encoded(arr)
    texts = pd.Series(enc.dictionary.to_pylist(), dtype=object).str.strip()
    parsed = _bounded(pd.to_datetime(texts, format="ISO8601", errors="coerce"))
    if parsed.tz is not None:
        parsed = parsed.tz_localize(None)
    ok = ~parsed.isna()
    uniq_days = np.where(ok, parsed.as_unit("ns").asi8 // _DAY_NS, 0)
    idx = enc.indices.fill_null(0).to_numpy(zero_copy_only=False) if len(texts) else np.zeros(len(arr), np.int64)
    if not len(texts):
        return np.zeros(len(arr), np.int64), np.zeros(len(arr), bool)
    valid = ok[idx] & ~enc.indices.is_null().to_numpy(zero_copy_only=False)
    return uniq_days[idx].astype(np.int64), valid


def _is_text(t: pa.DataType) -> bool:
    """Strings, plain or dictionary-encoded."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _plain_unless_text(arr: pa.Array) -> pa.Array:
    """A dictionary-encoded column as its values' type, unless they are text (kept encoded)."""
    if pa.types.is_dictionary(arr.type) and not _is_text(arr.type):
        return arr.cast(arr.type.value_type)
    return arr


def _encoded(arr: pa.Array) -> pa.DictionaryArray:
    """Text as (distinct values, an index per row); as it came when the file had it so."""
    return arr if pa.types.is_dictionary(arr.type) else pc.dictionary_encode(arr)


def _type_codes(arr: pa.Array) -> np.ndarray:
    if not _is_text(arr.type):
        raise InvalidArgument(f"the option_type column must hold CE or PE, not {arr.type}")
    enc = _encoded(arr)
    kinds = [normalize_option_type(t) if t is not None else None for t in enc.dictionary.to_pylist()]
    # The code of each distinct text, then -1 for an empty cell (a null's index points past them).
    codes = np.array([TYPE_CODES[k] if k else -1 for k in kinds] + [-1], dtype=np.int64)
    return codes[enc.indices.fill_null(len(kinds)).to_numpy(zero_copy_only=False)]


def _numbers(arr: pa.Array, name: str) -> np.ndarray:
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type)
            or pa.types.is_null(arr.type)):
        raise InvalidArgument(f"the {name} column must hold numbers, not {arr.type}")
    return arr.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _normalize(batch: pa.RecordBatch, cols: dict[str, str], zone: str) -> _Batch:
    ts, local_day = parse_times(batch.column(cols["timestamp"]), zone)
    expiry, expiry_ok = _expiry_days(batch.column(cols["expiry"]), zone)
    return _Batch(
        ts=ts,
        local_day=local_day,
        expiry_day=expiry,
        strike=_numbers(batch.column(cols["strike"]), "strike"),
        code=_type_codes(batch.column(cols["option_type"])),
        values={c: _numbers(batch.column(cols[c]), c) for c in ("open", "high", "low", "close", "volume")},
        optional={c: _numbers(batch.column(cols[c]), c) for c in OPTIONAL_COLUMNS if c in cols},
        expiry_ok=expiry_ok,
    )


def _problem(b: _Batch) -> Any:
    return first_bad_row(
        ts=b.ts,
        ts_valid=b.ts != _NAT,
        local_day=b.local_day,
        expiry_day=b.expiry_day,
        expiry_valid=b.expiry_ok,
        strike=b.strike,
        type_code=b.code,
        open_=b.values["open"],
        high=b.values["high"],
        low=b.values["low"],
        close=b.values["close"],
        volume=b.values["volume"],
        optional=b.optional,
    )


# ---------------------------------------------------------------- the import


class _DayFiles:
    """The staging day files. The current run's day is buffered (up to FLUSH_ROWS) and written
    as one row group when the day changes: a row group's dictionaries then cover a whole day.
    Writing (encoding, compressing) runs on a thread of its own, in order, while the next
    batches are read and checked; at most WRITES_IN_FLIGHT wait, so memory stays bounded."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self.parts: dict[int, list[Path]] = {}
        self.unsorted: set[int] = set()
        self.day: int | None = None
        self.path: Path | None = None
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chain-import-write")
        self.in_flight: deque[Future[None]] = deque()

    def write(self, day: int, table: pa.Table) -> None:
        if day != self.day:
            self.close_day()
            parts = self.parts.setdefault(day, [])
            directory = self.staging / day_dir_name(_as_date(day))
            directory.mkdir(mode=0o700, exist_ok=True)
            self.path = directory / f"run-{len(parts)}.parquet"
            parts.append(self.path)
            if len(parts) > 1:
                self.unsorted.add(day)
            self.day = day
        self.pending.append(table)
        self.pending_rows += table.num_rows
        if self.pending_rows >= FLUSH_ROWS:
            # A day larger than FLUSH_ROWS goes in several files of the same day (sorted at the end).
            self.close_day()

    def close_day(self) -> None:
        """Write the buffered run to its file, on the writing thread."""
        if self.pending and self.path is not None:
            self._submit(_write_file, self.path, pa.concat_tables(self.pending), self.pending_rows)
        self.pending, self.pending_rows = [], 0
        self.day = self.path = None

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        while len(self.in_flight) >= WRITES_IN_FLIGHT:
            self.in_flight.popleft().result()  # re-raises the writer's error
        self.in_flight.append(self.pool.submit(fn, *args))

    def finish(self) -> None:
        """Every file written (or the first writing error raised)."""
        self.close_day()
        while self.in_flight:
            self.in_flight.popleft().result()

    def shutdown(self) -> None:
        for f in self.in_flight:
            f.cancel()
        self.pool.shutdown(wait=True)


def _write_file(path: Path, table: pa.Table, rows: int) -> None:
    with day_writer(path) as w:
        w.write_table(table, row_group_size=max(rows, 1))


def day_writer(path: Path, dictionary: bool | list[str] = True) -> pq.ParquetWriter:
    """A day file's writer (the store's compression and encodings)."""
    # Dictionary pages for every column by default: a day repeats its minutes, expiries, strikes
    # and (on a tick) most prices; a column whose values do not repeat falls back to plain pages
    # by itself, after trying (the demo's untruncated prices name the columns worth it instead).
    return pq.ParquetWriter(
        path, CHAIN_SCHEMA, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL, use_dictionary=dictionary,
        write_statistics=["timestamp"],
    )


def _read_ahead(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """`batches`, read by a second thread up to PREFETCH_BATCHES ahead; its errors re-raised here."""
    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=PREFETCH_BATCHES)
    stop = threading.Event()

    def produce() -> None:
        try:
            for b in batches:
                while not stop.is_set():
                    try:
                        box.put(("batch", b), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(("end", None))
        except InvalidArgument as exc:
            box.put(("error", exc))
        except (pa.ArrowException, OSError) as exc:  # the file is not what it says it is
            box.put(("error", InvalidArgument(f"the file cannot be read: {str(exc).splitlines()[0] if str(exc) else exc!r}")))
        except BaseException as exc:  # handed to the consumer
            box.put(("error", exc))

    worker = threading.Thread(target=produce, name="chain-import-read", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while worker.is_alive():
            try:
                box.get_nowait()
            except queue.Empty:
                worker.join(0.05)


def _as_date(day: int) -> date:
    return date.fromordinal(date(1970, 1, 1).toordinal() + int(day))


def _row_text(batch: pa.RecordBatch, cols: dict[str, str], column: str, i: int) -> str:
    try:
        return repr(batch.column(cols[column])[i].as_py())
    except (KeyError, IndexError):
        return ""


def import_chain_file(f: BinaryIO, timezone: str, underlying: str, staging: Path) -> ChainSummary:
    """Read, check and write the chain in `f` to day files under `staging`; InvalidArgument
    names the first bad row (the caller removes `staging` then)."""
    file_format, cols, batches = _batches(f)
    out = ChainSummary(columns=[c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in cols], file_format=file_format)
    files = _DayFiles(staging)
    contracts: set[tuple[int, float, int]] = set()
    first_ts, last_ts = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    last: tuple[int, int, int, float, int] | None = None  # (day, ts, expiry, strike, code) of the previous row
    row = 0
    try:
        for batch in _read_ahead(batches()):
            n = batch.num_rows
            if n == 0:
                continue
            try:
                b = _normalize(batch, cols, timezone)
            except (pa.ArrowException, ValueError, OverflowError) as exc:  # e.g. a time beyond 2262
                raise InvalidArgument(f"rows {row + 1}-{row + n}: cannot be read: {str(exc).splitlines()[0]}") from None
            bad = _problem(b)
            if bad is not None:
                raise InvalidArgument(
                    f"row {row + bad.index + 1}: {bad.message} ({bad.column} = {_row_text(batch, cols, bad.column, bad.index)})"
                )
            # Order and repeats of consecutive rows (the previous batch's last row first).
            day = b.local_day
            if last is not None:
                ts_k = np.concatenate(([last[1]], b.ts))
                exp_k = np.concatenate(([last[2]], b.expiry_day))
                strike_k = np.concatenate(([last[3]], b.strike))
                code_k = np.concatenate(([last[4]], b.code))
                day_k = np.concatenate(([last[0]], day))
            else:
                ts_k, exp_k, strike_k, code_k, day_k = b.ts, b.expiry_day, b.strike, b.code, day
            rises, same = key_order(ts_k, exp_k, strike_k, code_k)
            new_day = np.diff(day_k) != 0
            dup = np.flatnonzero(same)
            if dup.size:
                i = int(dup[0]) + (0 if last is not None else 1)  # index in this batch of the repeat
                raise InvalidArgument(_duplicate_message(underlying, row + i + 1, row + i, b, i, timezone))
            disorder = np.flatnonzero(~rises & ~new_day)
            files.unsorted.update(int(d) for d in np.unique(day_k[disorder + 1]))
            # Day runs of the batch.
            cuts = np.flatnonzero(np.diff(day)) + 1
            starts = np.concatenate(([0], cuts))
            ends = np.concatenate((cuts, [n]))
            for a, e in zip(starts.tolist(), ends.tolist()):
                files.write(int(day[a]), b.table(a, e))
            # What the summary needs.
            first_ts, last_ts = min(first_ts, int(b.ts.min())), max(last_ts, int(b.ts.max()))
            codes, uniq = pd.factorize(b.strike)
            key = (b.expiry_day * 2 + b.code) * len(uniq) + codes
            for k in pd.unique(key):
                pair, s = divmod(int(k), len(uniq))
                exp, code = divmod(pair, 2)
                contracts.add((exp, float(uniq[s]), code))
            last = (int(day[-1]), int(b.ts[-1]), int(b.expiry_day[-1]), float(b.strike[-1]), int(b.code[-1]))
            row += n
        files.finish()
        if row == 0:
            raise InvalidArgument("the option chain file has no rows")
        for d, parts in files.parts.items():
            final = parts[0].parent / PART
            if d in files.unsorted or len(parts) > 1:
                _merge_day(parts, final, underlying, timezone, lambda key: _rows_of_key(batches, cols, timezone, key))
            else:
                parts[0].rename(final)
    finally:
        files.shutdown()
    out.rows = row
    out.contracts = len(contracts)
    expiries = sorted({e for e, _, _ in contracts})
    out.expiries = [_as_date(e) for e in expiries]
    by_expiry: dict[int, set[float]] = {}
    for e, s, _ in contracts:
        by_expiry.setdefault(e, set()).add(s)
    out.strike_steps = strike_steps(by_expiry)
    out.days = len(files.parts)
    out.first_ts, out.last_ts = first_ts, last_ts
    return out


def _merge_day(
    parts: list[Path],
    final: Path,
    underlying: str,
    timezone: str,
    rows_of_key: Callable[[tuple[int, int, float, int]], list[int]],
) -> None:
    """Sort a day that arrived out of order or in several runs; refuse a repeated key."""
    table = pa.concat_tables([pq.read_table(p) for p in parts]).sort_by(SORT_KEYS)
    ts = table.column("timestamp").cast(pa.int64()).to_numpy()
    exp = table.column("expiry").cast(pa.int32()).to_numpy().astype(np.int64)
    strike = table.column("strike").to_numpy()
    code = (table.column("option_type").to_numpy(zero_copy_only=False) == "PE").astype(np.int64)
    _, same = key_order(ts, exp, strike, code)
    dup = np.flatnonzero(same)
    if dup.size:
        i = int(dup[0]) + 1
        key = (int(ts[i]), int(exp[i]), float(strike[i]), int(code[i]))
        rows = rows_of_key(key)
        symbol = contract_symbol(underlying, _as_date(key[1]), key[2], _TYPE_NAMES[key[3]])
        when = pd.Timestamp(key[0], tz="UTC").tz_convert(timezone).isoformat()
        first, second = ([*rows, 0, 0])[:2]
        raise InvalidArgument(
            f"row {second}: duplicate (timestamp, contract) of row {first}: {when} {symbol}"
        )
    with day_writer(final) as w:
        w.write_table(table)
    for p in parts:
        p.unlink()


def _rows_of_key(
    batches: Callable[[], Iterator[pa.RecordBatch]], cols: dict[str, str], zone: str, key: tuple[int, int, float, int]
) -> list[int]:
    """The row numbers holding a (timestamp, contract): a second read, only to name them."""
    found: list[int] = []
    row = 0
    for batch in batches():
        b = _normalize(batch, cols, zone)
        hit = np.flatnonzero((b.ts == key[0]) & (b.expiry_day == key[1]) & (b.strike == key[2]) & (b.code == key[3]))
        found += [row + int(i) + 1 for i in hit[: 2 - len(found)]]
        if len(found) >= 2:
            break
        row += batch.num_rows
    return found


def _duplicate_message(underlying: str, row: int, previous: int, b: _Batch, i: int, zone: str) -> str:
    symbol = contract_symbol(underlying, _as_date(int(b.expiry_day[i])), float(b.strike[i]), _TYPE_NAMES[int(b.code[i])])
    when = pd.Timestamp(int(b.ts[i]), tz="UTC").tz_convert(zone).isoformat()
    return f"row {row}: duplicate (timestamp, contract) of row {previous}: {when} {symbol}"


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
