"""Parse and validate a file of bars (CSV, in one of the import formats) into bar arrays.

The formats (generic, yahoo, binance, metatrader) are defined in domain/bar_formats.py and
read by the layouts of bar_layouts.py; the rules below hold for all of them.

Rules (the API docs repeat them):
- generic: a header row with `timestamp, open, high, low, close, volume` (any case, any
  order; `datetime`, `date` or `time` are accepted for `timestamp`; other columns are
  ignored), or the columns a `columns=field:Column,...` mapping names;
- timestamps are ISO dates or date-times, or Unix times (9 to 19 digits: seconds,
  milliseconds, microseconds or nanoseconds by their size); naive ones are read in the
  dataset's timezone, ones with `Z` or an offset are honoured, Unix times are UTC; all are
  stored as UTC ns;
- prices are positive numbers, volume a non-negative number, no NaN or inf;
  high >= low, high >= max(open, close), low <= min(open, close);
- timestamps strictly increasing (no duplicates);
- blank lines are skipped (and, in Yahoo files, rows holding `null`, counted);
- UTF-8 text, or UTF-16 with a byte-order mark (as Windows programs may save text), read as UTF-8
  from a transcoded copy.

Every error names the row as a spreadsheet numbers it (the header is row 1; in a file
without a header the first bar is) and the first offending row is reported; a file over
the row limit is refused as such, whatever else is wrong with it.

A file is parsed in chunks of about CHUNK_BYTES of text (`import_bars_file`, what uploads
use, from their spooled file): memory is the bars and one chunk, not the file. A rule
across a chunk boundary (order, duplicates) is checked against the previous chunk's last
bar, and row numbers count from the top of the file.
"""

from __future__ import annotations

import codecs
import io
import re
import tempfile
import zoneinfo
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from domain import bar_formats
from domain.bar_formats import EPOCH_DIGITS, EPOCH_UNITS, FormatError
from services.results.bar_arrays import BarArrays
from services.results.bar_layouts import Layout, first_line, resolve
from services.results.bar_layouts import quoted as _quoted
from services.results.errors import InvalidArgument

MAX_ROWS = 5_000_000
PRICE_COLUMNS = ("open", "high", "low", "close")
# A time part followed by `Z` or a UTC offset: the timestamp carries its own zone.
_AWARE_RE = r"[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"
_EPOCH_RE = re.compile(EPOCH_DIGITS)
_FIELDS_RE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_TS_MIN = pd.Timestamp("1678-01-01", tz="UTC")
_TS_MAX = pd.Timestamp("2261-12-31", tz="UTC")
# Kinds of timestamps seen (for the import's notes): naive, with an offset, Unix times by unit.
NAIVE, OFFSET = "naive", "offset"


def check_timezone(name: str) -> str:
    """The IANA zone name, or InvalidArgument."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(
            f"unknown timezone {_quoted(name)} (expected an IANA name such as 'UTC' or 'America/New_York')"
        ) from None
    return name


def check_format(fmt: str, columns: str) -> tuple[str, dict[str, str]]:
    """The import's format (empty: generic) and `columns=` mapping, or InvalidArgument."""
    try:
        return bar_formats.check_import(fmt, columns)
    except FormatError as exc:
        raise InvalidArgument(str(exc)) from None


def _fmt(x: float) -> str:
    return f"{x:.10g}"


def _epoch_ns(text: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unix times (9 to 19 digits) as UTC ns: (ns, in range, unit index into EPOCH_UNITS).

    The unit of each value follows from its size (domain.bar_formats.EPOCH_UNITS), so a file
    whose times change from milliseconds to microseconds (Binance, 2025) reads right."""
    values = pd.to_numeric(text, errors="coerce").to_numpy()
    big = values.astype(np.float64)  # for the range check only: the products below may not fit int64
    unit = np.zeros(len(values), dtype=np.int64)
    for below, _, _ in EPOCH_UNITS[:-1]:
        unit += big >= below
    per_unit = np.array([ns for _, _, ns in EPOCH_UNITS], dtype=np.int64)[unit]
    approx = big * per_unit
    in_range = (approx >= _TS_MIN.value) & (approx <= _TS_MAX.value)
    ns = np.zeros(len(values), dtype=np.int64)
    ns[in_range] = values[in_range].astype(np.int64) * per_unit[in_range]
    return ns, in_range, unit


def _saw_units(seen: set[str], unit: np.ndarray) -> None:
    for i in np.unique(unit).tolist():
        seen.add(EPOCH_UNITS[i][1])


def _parse_timestamps(
    raw: pd.Series, rows: np.ndarray, timezone: str, seen: set[str]
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """UTC ns per row, and (row, message) of the first bad timestamp of each kind; the kinds
    of the timestamps read are added to `seen`."""
    text = raw.str.rstrip().reset_index(drop=True)
    fast = _parse_timestamps_fast(text, timezone, seen)
    if fast is not None:
        return fast, []
    n = len(text)
    ns = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    out_of_range = np.zeros(n, dtype=bool)
    not_local = np.zeros(n, dtype=bool)
    epoch = text.str.fullmatch(EPOCH_DIGITS).to_numpy(dtype=bool)
    aware = text.str.contains(_AWARE_RE, regex=True).to_numpy(dtype=bool) & ~epoch

    def store(positions: np.ndarray, parsed: pd.Series) -> None:
        valid = parsed.notna().to_numpy()
        in_range = valid & ((parsed >= _TS_MIN) & (parsed <= _TS_MAX)).to_numpy()
        out_of_range[positions[valid & ~in_range]] = True
        if in_range.any():
            ns[positions[in_range]] = pd.DatetimeIndex(parsed[in_range]).as_unit("ns").asi8
            ok[positions[in_range]] = True

    if epoch.any():
        positions = np.flatnonzero(epoch)
        values, in_range, unit = _epoch_ns(text[epoch])
        ns[positions[in_range]] = values[in_range]
        ok[positions[in_range]] = True
        out_of_range[positions[~in_range]] = True
        _saw_units(seen, unit)
    if aware.any():
        positions = np.flatnonzero(aware)
        store(positions, pd.to_datetime(text[aware], format="ISO8601", errors="coerce", utc=True))
        seen.add(OFFSET)
    naive = ~aware & ~epoch
    if naive.any():
        positions = np.flatnonzero(naive)
        parsed = pd.to_datetime(text[naive], format="ISO8601", errors="coerce")
        localized = parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
        not_local[positions[(localized.isna() & parsed.notna()).to_numpy()]] = True
        store(positions, localized.dt.tz_convert("UTC"))
        seen.add(NAIVE)

    problems: list[tuple[int, str]] = []
    j = _first(not_local)
    if j is not None:
        problems.append(
            (
                int(rows[j]),
                f"timestamp {_quoted(text[j])} does not exist or is ambiguous in timezone {timezone} "
                "(a daylight-saving change); give it with a UTC offset",
            )
        )
    j = _first(out_of_range)
    if j is not None:
        problems.append((int(rows[j]), f"timestamp {_quoted(text[j])} is outside the years 1678-2261"))
    j = _first(~ok & ~not_local & ~out_of_range)
    if j is not None:
        value = text[j]
        msg = (
            "timestamp is missing"
            if value == ""
            else f"timestamp {_quoted(value)} is not an ISO date or date-time (e.g. 2024-01-31 or "
            "2024-01-31T09:15:00) nor a Unix time"
        )
        problems.append((int(rows[j]), msg))
    return ns, problems


def _parse_timestamps_fast(text: pd.Series, timezone: str, seen: set[str]) -> np.ndarray | None:
    """All timestamps valid and of one kind (all naive, all with an offset, or all Unix
    times): UTC ns; else None (the slow path finds the row)."""
    try:
        if len(text) and _EPOCH_RE.fullmatch(str(text.iloc[0])):
            if not text.str.fullmatch(EPOCH_DIGITS).all():
                return None
            ns, in_range, unit = _epoch_ns(text)
            if not in_range.all():
                return None
            _saw_units(seen, unit)
            return ns
        parsed = pd.to_datetime(text, format="ISO8601", errors="raise")
        kind = OFFSET
        if not isinstance(parsed.dtype, pd.DatetimeTZDtype):
            parsed = parsed.dt.tz_localize(timezone, ambiguous="raise", nonexistent="raise")
            kind = NAIVE
        parsed = parsed.dt.tz_convert("UTC")
        if parsed.isna().any() or (parsed < _TS_MIN).any() or (parsed > _TS_MAX).any():
            return None
        seen.add(kind)
        return pd.DatetimeIndex(parsed).as_unit("ns").asi8.copy()
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
        return None


# Yahoo Finance's mark of a day without a quote, named when a generic import meets it.
_NULL_HINT = " (Yahoo Finance's mark of a day without a quote: format=yahoo drops those rows)"


def _parse_number(
    name: str, raw: pd.Series, rows: np.ndarray, null_hint: bool = False
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if not bad.any():
        return values, []
    j = int(np.flatnonzero(bad)[0])
    value = str(raw.iloc[j]).strip()
    low = value.lower()
    if value == "":
        msg = f"{name} is missing"
    elif low in ("nan", "-nan", "+nan"):
        msg = f"{name} is NaN"
    elif np.isinf(values[j]):
        msg = f"{name} is not finite: {_quoted(value)}"
    else:
        msg = f"{name} is not a number: {_quoted(value)}"
        if null_hint and low == bar_formats.YAHOO_NULL:
            msg += _NULL_HINT
    return values, [(int(rows[j]), msg)]


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def _bar_problem(
    ts: np.ndarray, o, h, lo, c, v, rows: np.ndarray | None, prev: tuple[int, int] | None = None
) -> tuple[int, str] | None:
    """(index, message) of the first row breaking a bar rule, or None.

    `rows` (spreadsheet row numbers) is only used to word the message. `prev` is the
    (timestamp, row) of the bar just before `ts[0]` (an earlier chunk's last), if any.
    """
    checks: list[tuple[np.ndarray, object]] = [
        (
            (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0),
            lambda j: f"prices must be positive (open {_fmt(o[j])}, high {_fmt(h[j])}, "
            f"low {_fmt(lo[j])}, close {_fmt(c[j])})",
        ),
        (h < lo, lambda j: f"high ({_fmt(h[j])}) is below low ({_fmt(lo[j])})"),
        (
            h < np.maximum(o, c),
            lambda j: f"high ({_fmt(h[j])}) is below max(open, close) ({_fmt(max(o[j], c[j]))})",
        ),
        (
            lo > np.minimum(o, c),
            lambda j: f"low ({_fmt(lo[j])}) is above min(open, close) ({_fmt(min(o[j], c[j]))})",
        ),
        (v < 0, lambda j: f"volume is negative ({_fmt(v[j])})"),
    ]
    if len(ts) > 1 or (prev is not None and len(ts) > 0):
        before = np.concatenate(([np.iinfo(np.int64).min if prev is None else prev[0]], ts[:-1]))

        def prev_row(j: int) -> int:
            if rows is None:
                return j + 1
            return int(rows[j - 1]) if j > 0 else (prev[1] if prev is not None else 1)

        checks.append((ts == before, lambda j: f"duplicate timestamp {_iso(ts[j])} (same as row {prev_row(j)})"))
        checks.append(
            (
                ts < before,
                lambda j: f"timestamp {_iso(ts[j])} is earlier than row {prev_row(j)}'s ({_iso(before[j])}); "
                "rows must be sorted oldest first",
            )
        )
    found = [(j, describe) for mask, describe in checks if (j := _first(mask)) is not None]
    if not found:
        return None
    j, describe = min(found, key=lambda x: x[0])
    return j, describe(j)


# ---------------------------------------------------------------- reading a file in chunks
#
# A file is read twice at most, each time in chunks of about CHUNK_BYTES of text: first
# by the fast reader (the C parser straight into floats; any doubt ends it), then, if the
# fast reader gave up, by the checked reader (every value as text, checked, the first bad
# row named). Memory: the bars themselves (48 bytes a bar, preallocated from a count of
# the line breaks; 56 for a MetaTrader file, whose two volumes are kept until the end says
# which one is used) and one chunk's parsing, whatever the file's size.

EMPTY_MESSAGE = "the CSV file is empty (expected a header row: timestamp,open,high,low,close,volume)"
CHUNK_BYTES = 8 * 1024 * 1024
MAX_CHUNK_ROWS = 200_000
SCAN_BLOCK = 1024 * 1024
_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


class _Plan:
    """How many rows to ask the parser for next, so that a chunk is about CHUNK_BYTES of
    text: from the line breaks counted in each SCAN_BLOCK of the file."""

    def __init__(self, breaks_per_block: list[int], chunk_bytes: int, max_chunk_rows: int) -> None:
        self.cum = np.cumsum(np.asarray(breaks_per_block or [0], dtype=np.int64))
        self.blocks = max(1, chunk_bytes // SCAN_BLOCK)
        self.max_rows = max_chunk_rows
        self.header_lines = 1

    @property
    def lines(self) -> int:
        return int(self.cum[-1])

    def rows_after(self, rows_read: int) -> int:
        line = rows_read + self.header_lines  # the header, if any, is line 0
        i = int(np.searchsorted(self.cum, line, side="right"))
        end = int(self.cum[min(i + self.blocks - 1, len(self.cum) - 1)])
        return max(1, min(self.max_rows, end - line))


def _scan(f, chunk_bytes: int, max_chunk_rows: int) -> _Plan:
    """One pass over the file: InvalidArgument if it is empty (or only white space); else the plan."""
    f.seek(0)
    blank = True
    breaks: list[int] = []
    while block := f.read(SCAN_BLOCK):
        blank = blank and block.isspace()
        # \n, \r\n or (old Macs) \r alone: counted once either way.
        breaks.append(max(block.count(b"\n"), block.count(b"\r")))
    if blank:
        raise InvalidArgument(EMPTY_MESSAGE)
    f.seek(0)
    return _Plan(breaks, chunk_bytes, max_chunk_rows)


def _utf8(f, directory):
    """`f` itself, or for UTF-16 text (a byte-order mark first, as Windows programs may write) a
    temporary UTF-8 copy under `directory`, transcoded block by block."""
    f.seek(0)
    if f.read(2) not in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        f.seek(0)
        return f
    f.seek(0)
    out = tempfile.TemporaryFile(dir=directory, prefix="upload-", suffix=".utf8.csv")  # noqa: SIM115 - the caller closes it
    decoder = codecs.getincrementaldecoder("utf-16")()  # the mark says which byte order
    try:
        while block := f.read(SCAN_BLOCK):
            out.write(decoder.decode(block).encode("utf-8"))
        out.write(decoder.decode(b"", final=True).encode("utf-8"))
    except UnicodeDecodeError:
        out.close()
        raise InvalidArgument("the file starts with a UTF-16 byte-order mark but is not UTF-16 text") from None
    out.seek(0)
    return out


class _Filler:
    """The bar arrays, preallocated and filled chunk by chunk (grown if the estimate was short);
    with `alt`, a second volume (MetaTrader's tick volume) beside the first."""

    def __init__(self, capacity: int, alt: bool = False) -> None:
        self.capacity = max(1, capacity)
        self.n = 0
        names = (*_COLUMNS, "alt") if alt else _COLUMNS
        self.arrays = {c: np.empty(self.capacity, dtype=np.int64 if c == "ts" else np.float64) for c in names}

    def add(self, ts, o, h, lo, c, v, alt=None) -> None:
        k = len(ts)
        if self.n + k > self.capacity:
            self.capacity = max(self.n + k, int(self.capacity * 1.5))
            for name, arr in self.arrays.items():
                grown = np.empty(self.capacity, dtype=arr.dtype)
                grown[: self.n] = arr[: self.n]
                self.arrays[name] = grown
        for name, values in zip(self.arrays, (ts, o, h, lo, c, v, alt)):
            self.arrays[name][self.n : self.n + k] = values
        self.n += k

    def last(self) -> int:
        return int(self.arrays["ts"][self.n - 1])

    def bars(self) -> tuple[BarArrays, bool]:
        """The filled part: views when nearly full, else trimmed copies (the spare capacity freed);
        and whether the second volume replaced the first (the first all zero)."""
        alt = self.arrays.pop("alt", None)
        used_alt = alt is not None and not self.arrays["volume"][: self.n].any()
        if used_alt:
            self.arrays["volume"] = alt
        del alt
        trim = self.n < 0.9 * self.capacity
        cols = {name: (arr[: self.n].copy() if trim else arr[: self.n]) for name, arr in self.arrays.items()}
        self.arrays = {}
        return BarArrays(**cols), used_alt


@dataclass
class _Read:
    """What a pass learnt besides the bars: for the import's report."""

    seen: set[str] = field(default_factory=set)
    null_rows: int = 0
    first_null_row: int = 0


def _reader_options(layout: Layout) -> dict:
    return {
        "sep": layout.sep,
        "header": 0 if layout.header else None,
        "names": list(layout.names) if layout.names else None,
        # With `names`, a first row longer than them must not become an index.
        "index_col": False,
        "keep_default_na": False,
        "skipinitialspace": True,
        "encoding": "utf-8-sig",
        "engine": "c",
        "iterator": True,
    }


def _fast_pass(f, layout: Layout, timezone: str, max_rows: int, plan: _Plan, out: _Filler, read: _Read) -> bool:
    """Parse a valid file into `out`; False at the first doubt (the checked pass then finds the row).

    Any irregularity (a bad or missing value, a broken rule) gives up.
    """
    numeric = layout.value_columns()
    if len(set(numeric)) != len(numeric) or set(numeric) & set(layout.timestamp):
        return False  # one column for two fields: the checked pass reads it for each
    try:
        f.seek(0)
        # No usecols: with it the parser would let rows with extra fields through.
        reader = pd.read_csv(
            f,
            dtype={**{c: str for c in layout.timestamp}, **{c: np.float64 for c in numeric}},
            na_values=[],
            **_reader_options(layout),
        )
    except Exception:
        return False
    rows_read = 0
    with reader:
        while True:
            try:
                df = reader.get_chunk(plan.rows_after(rows_read))
            except StopIteration:
                break
            except Exception:
                return False
            if len(df) == 0:
                break
            rows_read += len(df)
            if rows_read > max_rows:
                return False
            values = [df[c].to_numpy(dtype=np.float64) for c in numeric]
            if not all(np.isfinite(a).all() for a in values):
                return False
            ts = _parse_timestamps_fast(layout.timestamp_text(df).str.rstrip(), timezone, read.seen)
            del df
            o, h, lo, c, v = values[:5]
            alt = values[5] if layout.alt_volume else None
            prev = (out.last(), 0) if out.n else None
            if ts is None or _bar_problem(ts, o, h, lo, c, v, None, prev) is not None:
                return False
            if alt is not None and (alt < 0).any():
                return False
            out.add(ts, o, h, lo, c, v, alt)
    return out.n > 0


def _header_cells(f):
    """`header_cells(sep)` for bar_layouts.resolve: the first line's cells as the reader splits them."""

    def cells(sep: str) -> list[str]:
        try:
            f.seek(0)
            header = pd.read_csv(f, nrows=0, sep=sep, encoding="utf-8-sig", skipinitialspace=True, engine="c")
        except Exception as exc:
            _raise_read_error(exc, True)
        finally:
            f.seek(0)
        return [str(c) for c in header.columns]

    return cells


def _open_table(f, layout: Layout):
    try:
        f.seek(0)
        # Leading blanks go in the C parser (cheap); numbers tolerate trailing ones.
        return pd.read_csv(f, dtype=str, skip_blank_lines=False, **_reader_options(layout))
    except Exception as exc:
        _raise_read_error(exc, layout.header)


def _next_table(reader, rows: int, max_rows: int, header: bool) -> pd.DataFrame | None:
    try:
        return reader.get_chunk(rows)
    except StopIteration:
        return None
    except pd.errors.ParserError as exc:
        m = _FIELDS_RE.search(str(exc))
        if m and int(m.group(2)) > max_rows + 2:  # a broken line past the limit: the limit is the problem
            raise InvalidArgument(f"the CSV file has more than {max_rows:,} data rows (the limit per import)") from None
        _raise_read_error(exc, header)
    except Exception as exc:
        _raise_read_error(exc, header)


def _raise_read_error(exc: Exception, header: bool):
    if isinstance(exc, UnicodeDecodeError):
        raise InvalidArgument("the CSV file is not UTF-8 text (nor UTF-16 with a byte-order mark)") from None
    if isinstance(exc, pd.errors.EmptyDataError):
        raise InvalidArgument(EMPTY_MESSAGE) from None
    if isinstance(exc, pd.errors.ParserError):
        m = _FIELDS_RE.search(str(exc))
        if m:
            expected, line, saw = m.groups()
            like = "the header" if header else "the first row"
            raise InvalidArgument(f"row {line}: expected {expected} fields like {like}, saw {saw}") from None
        raise InvalidArgument(f"the CSV file cannot be parsed: {str(exc).strip()}") from None
    raise exc


def _checked_pass(f, layout: Layout, timezone: str, max_rows: int, plan: _Plan, out: _Filler, read: _Read) -> None:
    """Every value read as text and checked, chunk by chunk, into `out`; raises InvalidArgument
    naming the first bad row (problems are reported in the order of the file)."""
    reader = _open_table(f, layout)
    used = [*layout.timestamp, *layout.value_columns()]
    lines_read = 0
    last_row = 1  # the spreadsheet row of the last bar added
    with reader:
        while True:
            df = _next_table(reader, plan.rows_after(lines_read), max_rows, layout.header)
            if df is None or len(df) == 0:
                break
            # Spreadsheet row numbers: with a header, it is row 1 and the first data row is row 2.
            rows_all = np.arange(lines_read + layout.first_row, lines_read + layout.first_row + len(df), dtype=np.int64)
            lines_read += len(df)
            skip = np.logical_and.reduce([(df[c].to_numpy() == "") for c in used])
            if layout.null_rows:
                null = np.logical_or.reduce(
                    [df[c].str.strip().str.lower().to_numpy() == bar_formats.YAHOO_NULL for c in layout.value_columns()]
                ) & ~skip
                if null.any():
                    if read.null_rows == 0:
                        read.first_null_row = int(rows_all[_first(null)])
                    read.null_rows += int(null.sum())
                    skip |= null
            df = df[~skip]
            rows = rows_all[~skip]
            # A file over the row limit is refused as such, whatever else is wrong with it.
            too_many = out.n + len(df) > max_rows
            if not too_many:
                try:
                    _check_chunk(df, rows, layout, timezone, out, (out.last(), last_row) if out.n else None, read)
                except InvalidArgument:
                    left = max_rows - out.n - len(df)
                    if not (plan.lines > max_rows and _more_rows_than(reader, plan, lines_read, used, left, max_rows)):
                        raise
                    too_many = True
            if too_many:
                raise InvalidArgument(f"the CSV file has more than {max_rows:,} data rows (the limit per import)")
            if len(rows):
                last_row = int(rows[-1])
    if out.n == 0:
        if read.null_rows:
            raise InvalidArgument(f"no bars left: every one of the {read.null_rows:,} data rows holds null values")
        raise InvalidArgument("the CSV file has a header but no data rows")


def _more_rows_than(reader, plan: _Plan, lines_read: int, used: list[str], limit: int, max_rows: int) -> bool:
    """Whether the rest of the file has more than `limit` data rows (blank ones not counted)."""
    count = 0
    while count <= limit:
        try:
            df = _next_table(reader, plan.rows_after(lines_read), max_rows, True)
        except InvalidArgument as exc:  # a broken line past the limit says so; another is not a count
            return str(exc).startswith("the CSV file has more than")
        if df is None:
            return False
        if len(df) == 0:
            return False
        lines_read += len(df)
        count += int((~np.logical_and.reduce([(df[c].to_numpy() == "") for c in used])).sum())
    return True


def _check_chunk(df: pd.DataFrame, rows: np.ndarray, layout: Layout, timezone: str, out: _Filler,
                 prev: tuple[int, int] | None, read: _Read) -> None:
    if len(df) == 0:
        return
    problems: list[tuple[int, str]] = []
    ts, p = _parse_timestamps(layout.timestamp_text(df), rows, timezone, read.seen)
    problems += p
    values = {}
    hint = layout.format == "generic"
    for name in (*PRICE_COLUMNS, "volume"):
        values[name], p = _parse_number(name, df[layout.fields[name]].astype(str), rows, hint)
        problems += p
    alt = None
    if layout.alt_volume:
        alt, p = _parse_number(layout.alt_volume, df[layout.alt_volume].astype(str), rows)
        problems += p
        j = _first(alt < 0)
        if j is not None:
            problems.append((int(rows[j]), f"{layout.alt_volume} is negative ({_fmt(alt[j])})"))
    o, h, lo, c, v = (values[n] for n in (*PRICE_COLUMNS, "volume"))
    # Rows before the first unreadable value are complete: a broken rule there comes first.
    k = len(rows)
    if problems:
        first_row, first_msg = min(problems, key=lambda x: x[0])
        k = int(np.searchsorted(rows, first_row))
    problem = _bar_problem(ts[:k], o[:k], h[:k], lo[:k], c[:k], v[:k], rows[:k], prev)
    if problem is not None:
        j, msg = problem
        raise InvalidArgument(f"row {rows[j]}: {msg}")
    if problems:
        raise InvalidArgument(f"row {first_row}: {first_msg}")
    out.add(ts, o, h, lo, c, v, alt)


# ---------------------------------------------------------------- the import

@dataclass(frozen=True)
class ImportReport:
    """What an import read: the format, which column gave each field, the columns left out,
    rows dropped (Yahoo's null rows), and notes in words (how timestamps were read, which
    volume was used)."""

    format: str
    columns: dict[str, str]
    dropped: list[str]
    rows_dropped: int
    notes: list[str]


@dataclass(frozen=True)
class ImportedBars:
    bars: BarArrays
    report: ImportReport


_UNIT_NOTES = {unit: f"Unix times in {unit}, UTC" for _, unit, _ in EPOCH_UNITS}


def _notes(layout: Layout, read: _Read, timezone: str, used_alt: bool, utf16: bool) -> list[str]:
    notes = []
    if utf16:
        notes.append("read as UTF-16 text")
    if NAIVE in read.seen:
        zone = "MetaTrader server time" if layout.format == "metatrader" else "timestamps without a UTC offset"
        notes.append(f"{zone} read as {timezone} wall-clock time")
    if OFFSET in read.seen:
        notes.append("timestamps with a UTC offset (or Z) converted to UTC")
    notes += [note for unit, note in _UNIT_NOTES.items() if unit in read.seen]
    if layout.alt_volume:
        vol, tick = layout.fields["volume"], layout.alt_volume
        notes.append(f"volume from {tick}: {vol} is all zero" if used_alt else f"volume from {vol}, not {tick}")
    if read.null_rows:
        s = "" if read.null_rows == 1 else "s"
        notes.append(f"{read.null_rows:,} row{s} with null values dropped (the first: row {read.first_null_row})")
    return notes


def import_bars_file(
    f,
    timezone: str = "UTC",
    fmt: str = "",
    columns: str = "",
    max_rows: int | None = None,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    max_chunk_rows: int = MAX_CHUNK_ROWS,
    spool_dir=None,
) -> ImportedBars:
    """The bars of a file of format `fmt` (empty: generic; `columns`: a generic file's
    `field:Column,...` mapping) in a seekable binary file, with the report of what was read;
    or InvalidArgument naming the first bad row.

    The file is read in chunks of about `chunk_bytes` of text (at most `max_chunk_rows`
    rows): memory is the bars (48 bytes each) plus one chunk's parsing, not the file. UTF-16
    text is first copied as UTF-8 to a temporary file under `spool_dir`.
    """
    timezone = check_timezone(timezone or "UTC")
    fmt, mapping = check_format(fmt, columns)
    max_rows = MAX_ROWS if max_rows is None else max_rows
    text = _utf8(f, spool_dir)
    try:
        plan = _scan(text, chunk_bytes, max_chunk_rows)
        layout = resolve(fmt, mapping, first_line(text), _header_cells(text))
        plan.header_lines = 1 if layout.header else 0
        capacity = min(plan.lines + 1, max_rows)
        alt = layout.alt_volume is not None
        out, read = _Filler(capacity, alt), _Read()
        if not _fast_pass(text, layout, timezone, max_rows, plan, out, read):
            out, read = _Filler(capacity, alt), _Read()
            _checked_pass(text, layout, timezone, max_rows, plan, out, read)
        bars, used_alt = out.bars()
    finally:
        if text is not f:
            text.close()
    report = ImportReport(
        format=fmt,
        columns=layout.columns(used_alt),
        dropped=layout.dropped_columns(used_alt),
        rows_dropped=read.null_rows,
        notes=_notes(layout, read, timezone, used_alt, text is not f),
    )
    return ImportedBars(bars, report)


def parse_bars_file(
    f,
    timezone: str = "UTC",
    max_rows: int | None = None,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    max_chunk_rows: int = MAX_CHUNK_ROWS,
) -> BarArrays:
    """The bars of a generic CSV in a seekable binary file, or InvalidArgument naming the first bad row."""
    return import_bars_file(f, timezone, "", "", max_rows, chunk_bytes=chunk_bytes, max_chunk_rows=max_chunk_rows).bars


def parse_bars_csv(data: bytes | bytearray, timezone: str = "UTC", max_rows: int | None = None, **chunking) -> BarArrays:
    """The bars of a generic CSV file's bytes, or InvalidArgument naming the first bad row."""
    return parse_bars_file(io.BytesIO(data), timezone, max_rows, **chunking)


def _parse_checked(data: bytes | bytearray, timezone: str, max_rows: int, fmt: str = "") -> BarArrays:
    """The checked reader alone (tests): every value read as text and checked."""
    f = io.BytesIO(data)
    plan = _scan(f, CHUNK_BYTES, MAX_CHUNK_ROWS)
    fmt, mapping = check_format(fmt, "")
    layout = resolve(fmt, mapping, first_line(f), _header_cells(f))
    plan.header_lines = 1 if layout.header else 0
    out = _Filler(min(plan.lines + 1, max_rows), layout.alt_volume is not None)
    _checked_pass(f, layout, timezone, max_rows, plan, out, _Read())
    return out.bars()[0]


def _iso(ns: int) -> str:
    return pd.Timestamp(int(ns), tz="UTC").isoformat().replace("+00:00", "Z")
