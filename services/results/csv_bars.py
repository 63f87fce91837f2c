"""Parse and validate an OHLCV CSV into bar arrays.

Rules (the API docs repeat them):
- a header row with `timestamp, open, high, low, close, volume` (any case, any
  order; `datetime` or `date` are accepted for `timestamp`; other columns are
  ignored);
- timestamps are ISO dates or date-times; naive ones are read in the dataset's
  timezone, ones with `Z` or an offset are honoured; all are stored as UTC ns;
- prices are positive numbers, volume a non-negative number, no NaN or inf;
  high >= low, high >= max(open, close), low <= min(open, close);
- timestamps strictly increasing (no duplicates);
- blank lines are skipped.

Every error names the row as a spreadsheet numbers it (the header is row 1)
and the first offending row is reported; a file over the row limit is refused
as such, whatever else is wrong with it.

A file is parsed in chunks of about CHUNK_BYTES of text (`parse_bars_file`, what
uploads use, from their spooled file): memory is the bars and one chunk, not the
file. A rule across a chunk boundary (order, duplicates) is checked against the
previous chunk's last bar, and row numbers count from the top of the file.
"""

from __future__ import annotations

import io
import re
import zoneinfo

import numpy as np
import pandas as pd

from services.results.bar_arrays import BarArrays
from services.results.errors import InvalidArgument

MAX_ROWS = 5_000_000
PRICE_COLUMNS = ("open", "high", "low", "close")
TIMESTAMP_ALIASES = ("timestamp", "datetime", "date")
# A time part followed by `Z` or a UTC offset: the timestamp carries its own zone.
_AWARE_RE = r"[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"
_FIELDS_RE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_TS_MIN = pd.Timestamp("1678-01-01", tz="UTC")
_TS_MAX = pd.Timestamp("2261-12-31", tz="UTC")


def check_timezone(name: str) -> str:
    """The IANA zone name, or InvalidArgument."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(
            f"unknown timezone {_quoted(name)} (expected an IANA name such as 'UTC' or 'America/New_York')"
        ) from None
    return name


def _fmt(x: float) -> str:
    return f"{x:.10g}"


MAX_SHOWN_CHARS = 40


def _quoted(value: str) -> str:
    """A cell's text for an error message, quoted and clipped: a 100 kB cell stays a short message."""
    if len(value) > MAX_SHOWN_CHARS:
        return repr(value[:MAX_SHOWN_CHARS]) + f"... ({len(value):,} characters)"
    return repr(value)


def _columns(df: pd.DataFrame) -> dict[str, str]:
    """Required name → actual column name in the file."""
    by_lower: dict[str, str] = {}
    for col in df.columns:
        by_lower.setdefault(str(col).strip().lower(), col)
    found = {}
    for alias in TIMESTAMP_ALIASES:
        if alias in by_lower:
            found["timestamp"] = by_lower[alias]
            break
    for name in (*PRICE_COLUMNS, "volume"):
        if name in by_lower:
            found[name] = by_lower[name]
    missing = [n for n in ("timestamp", *PRICE_COLUMNS, "volume") if n not in found]
    if missing:
        raise InvalidArgument(
            f"row 1: the header lacks column(s) {', '.join(missing)} "
            "(expected timestamp,open,high,low,close,volume)"
        )
    return found


def _parse_timestamps(raw: pd.Series, rows: np.ndarray, timezone: str) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """UTC ns per row, and (row, message) of the first bad timestamp of each kind."""
    text = raw.str.rstrip().reset_index(drop=True)
    fast = _parse_timestamps_fast(text, timezone)
    if fast is not None:
        return fast, []
    n = len(text)
    ns = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    out_of_range = np.zeros(n, dtype=bool)
    not_local = np.zeros(n, dtype=bool)
    aware = text.str.contains(_AWARE_RE, regex=True).to_numpy()

    def store(positions: np.ndarray, parsed: pd.Series) -> None:
        valid = parsed.notna().to_numpy()
        in_range = valid & ((parsed >= _TS_MIN) & (parsed <= _TS_MAX)).to_numpy()
        out_of_range[positions[valid & ~in_range]] = True
        if in_range.any():
            ns[positions[in_range]] = pd.DatetimeIndex(parsed[in_range]).as_unit("ns").asi8
            ok[positions[in_range]] = True

    if aware.any():
        positions = np.flatnonzero(aware)
        store(positions, pd.to_datetime(text[aware], format="ISO8601", errors="coerce", utc=True))
    if not aware.all():
        positions = np.flatnonzero(~aware)
        parsed = pd.to_datetime(text[~aware], format="ISO8601", errors="coerce")
        localized = parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
        not_local[positions[(localized.isna() & parsed.notna()).to_numpy()]] = True
        store(positions, localized.dt.tz_convert("UTC"))

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
            else f"timestamp {_quoted(value)} is not an ISO date or date-time (e.g. 2024-01-31 or 2024-01-31T09:15:00)"
        )
        problems.append((int(rows[j]), msg))
    return ns, problems


def _parse_timestamps_fast(text: pd.Series, timezone: str) -> np.ndarray | None:
    """All timestamps valid and all naive (or all with an offset): UTC ns; else None (the slow path finds the row)."""
    try:
        parsed = pd.to_datetime(text, format="ISO8601", errors="raise")
        if not isinstance(parsed.dtype, pd.DatetimeTZDtype):
            parsed = parsed.dt.tz_localize(timezone, ambiguous="raise", nonexistent="raise")
        parsed = parsed.dt.tz_convert("UTC")
        if parsed.isna().any() or (parsed < _TS_MIN).any() or (parsed > _TS_MAX).any():
            return None
        return pd.DatetimeIndex(parsed).as_unit("ns").asi8.copy()
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
        return None


def _parse_number(name: str, raw: pd.Series, rows: np.ndarray) -> tuple[np.ndarray, list[tuple[int, str]]]:
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
# the line breaks) and one chunk's parsing, whatever the file's size.

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

    @property
    def lines(self) -> int:
        return int(self.cum[-1])

    def rows_after(self, rows_read: int) -> int:
        line = rows_read + 1  # the header is line 0
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


class _Filler:
    """The bar arrays, preallocated and filled chunk by chunk (grown if the estimate was short)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.n = 0
        self.arrays = {c: np.empty(self.capacity, dtype=np.int64 if c == "ts" else np.float64) for c in _COLUMNS}

    def add(self, ts, o, h, lo, c, v) -> None:
        k = len(ts)
        if self.n + k > self.capacity:
            self.capacity = max(self.n + k, int(self.capacity * 1.5))
            for name, arr in self.arrays.items():
                grown = np.empty(self.capacity, dtype=arr.dtype)
                grown[: self.n] = arr[: self.n]
                self.arrays[name] = grown
        for name, values in zip(_COLUMNS, (ts, o, h, lo, c, v)):
            self.arrays[name][self.n : self.n + k] = values
        self.n += k

    def last(self) -> int:
        return int(self.arrays["ts"][self.n - 1])

    def bars(self) -> BarArrays:
        """The filled part: views when nearly full, else trimmed copies (the spare capacity freed)."""
        trim = self.n < 0.9 * self.capacity
        cols = {name: (arr[: self.n].copy() if trim else arr[: self.n]) for name, arr in self.arrays.items()}
        self.arrays = {}
        return BarArrays(**cols)


def _fast_pass(f, timezone: str, max_rows: int, plan: _Plan, out: _Filler) -> bool:
    """Parse a valid file into `out`; False at the first doubt (the checked pass then finds the row).

    Any irregularity (bad header, bad or missing value, a broken rule) gives up.
    """
    try:
        f.seek(0)
        header = pd.read_csv(f, nrows=0, encoding="utf-8-sig", skipinitialspace=True)
        cols = _columns(header)
        numeric = [cols[n] for n in (*PRICE_COLUMNS, "volume")]
        if len({*numeric, cols["timestamp"]}) != 6:
            return False
        f.seek(0)
        # No usecols: with it the parser would let rows with extra fields through.
        reader = pd.read_csv(
            f,
            dtype={cols["timestamp"]: str, **{c: np.float64 for c in numeric}},
            keep_default_na=False,
            na_values=[],
            skipinitialspace=True,
            encoding="utf-8-sig",
            engine="c",
            iterator=True,
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
            o, h, lo, c, v = (df[cols[n]].to_numpy(dtype=np.float64) for n in (*PRICE_COLUMNS, "volume"))
            if not all(np.isfinite(a).all() for a in (o, h, lo, c, v)):
                return False
            ts = _parse_timestamps_fast(df[cols["timestamp"]].astype(str).str.rstrip(), timezone)
            del df
            prev = (out.last(), 0) if out.n else None
            if ts is None or _bar_problem(ts, o, h, lo, c, v, None, prev) is not None:
                return False
            out.add(ts, o, h, lo, c, v)
    return out.n > 0


def _open_table(f):
    try:
        f.seek(0)
        return pd.read_csv(
            f,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            encoding="utf-8-sig",
            # Leading blanks go in the C parser (cheap); numbers tolerate trailing ones.
            skipinitialspace=True,
            engine="c",
            iterator=True,
        )
    except Exception as exc:
        _raise_read_error(exc)


def _next_table(reader, rows: int, max_rows: int) -> pd.DataFrame | None:
    try:
        return reader.get_chunk(rows)
    except StopIteration:
        return None
    except pd.errors.ParserError as exc:
        m = _FIELDS_RE.search(str(exc))
        if m and int(m.group(2)) > max_rows + 2:  # a broken line past the limit: the limit is the problem
            raise InvalidArgument(f"the CSV file has more than {max_rows:,} data rows (the limit per import)") from None
        _raise_read_error(exc)
    except Exception as exc:
        _raise_read_error(exc)


def _raise_read_error(exc: Exception):
    if isinstance(exc, UnicodeDecodeError):
        raise InvalidArgument("the CSV file is not UTF-8 text") from None
    if isinstance(exc, pd.errors.EmptyDataError):
        raise InvalidArgument(EMPTY_MESSAGE) from None
    if isinstance(exc, pd.errors.ParserError):
        m = _FIELDS_RE.search(str(exc))
        if m:
            expected, line, saw = m.groups()
            raise InvalidArgument(f"row {line}: expected {expected} fields like the header, saw {saw}") from None
        raise InvalidArgument(f"the CSV file cannot be parsed: {str(exc).strip()}") from None
    raise exc


def _checked_pass(f, timezone: str, max_rows: int, plan: _Plan, out: _Filler) -> None:
    """Every value read as text and checked, chunk by chunk, into `out`; raises InvalidArgument
    naming the first bad row (problems are reported in the order of the file)."""
    reader = _open_table(f)
    cols: dict[str, str] | None = None
    lines_read = 0
    last_row = 1  # the spreadsheet row of the last bar added
    with reader:
        while True:
            df = _next_table(reader, plan.rows_after(lines_read), max_rows)
            if df is None:
                break
            if cols is None:
                cols = _columns(df)
            if len(df) == 0:
                break
            # Spreadsheet row numbers: header is row 1, first data row is row 2.
            rows_all = np.arange(lines_read + 2, lines_read + 2 + len(df), dtype=np.int64)
            lines_read += len(df)
            blank = np.logical_and.reduce([(df[c].to_numpy() == "") for c in cols.values()])
            df = df[~blank]
            rows = rows_all[~blank]
            # A file over the row limit is refused as such, whatever else is wrong with it.
            too_many = out.n + len(df) > max_rows
            if not too_many:
                try:
                    _check_chunk(df, rows, cols, timezone, out, (out.last(), last_row) if out.n else None)
                except InvalidArgument:
                    left = max_rows - out.n - len(df)
                    if not (plan.lines > max_rows and _more_rows_than(reader, plan, lines_read, cols, left, max_rows)):
                        raise
                    too_many = True
            if too_many:
                raise InvalidArgument(f"the CSV file has more than {max_rows:,} data rows (the limit per import)")
            if len(rows):
                last_row = int(rows[-1])
    if cols is None:  # the reader had nothing, not even a header (white space is refused before)
        raise InvalidArgument(EMPTY_MESSAGE)
    if out.n == 0:
        raise InvalidArgument("the CSV file has a header but no data rows")


def _more_rows_than(reader, plan: _Plan, lines_read: int, cols: dict[str, str], limit: int, max_rows: int) -> bool:
    """Whether the rest of the file has more than `limit` data rows (blank ones not counted)."""
    count = 0
    while count <= limit:
        try:
            df = _next_table(reader, plan.rows_after(lines_read), max_rows)
        except InvalidArgument as exc:  # a broken line past the limit says so; another is not a count
            return str(exc).startswith("the CSV file has more than")
        if df is None:
            return False
        if len(df) == 0:
            return False
        lines_read += len(df)
        count += int((~np.logical_and.reduce([(df[c].to_numpy() == "") for c in cols.values()])).sum())
    return True


def _check_chunk(df: pd.DataFrame, rows: np.ndarray, cols: dict[str, str], timezone: str, out: _Filler,
                 prev: tuple[int, int] | None) -> None:
    if len(df) == 0:
        return
    problems: list[tuple[int, str]] = []
    ts, p = _parse_timestamps(df[cols["timestamp"]].astype(str), rows, timezone)
    problems += p
    values = {}
    for name in (*PRICE_COLUMNS, "volume"):
        values[name], p = _parse_number(name, df[cols[name]].astype(str), rows)
        problems += p
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
    out.add(ts, o, h, lo, c, v)


def parse_bars_file(
    f,
    timezone: str = "UTC",
    max_rows: int | None = None,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    max_chunk_rows: int = MAX_CHUNK_ROWS,
) -> BarArrays:
    """The bars of a CSV in a seekable binary file, or InvalidArgument naming the first bad row.

    The file is read in chunks of about `chunk_bytes` of text (at most `max_chunk_rows`
    rows): memory is the bars (48 bytes each) plus one chunk's parsing, not the file.
    """
    timezone = check_timezone(timezone or "UTC")
    max_rows = MAX_ROWS if max_rows is None else max_rows
    plan = _scan(f, chunk_bytes, max_chunk_rows)
    capacity = min(plan.lines + 1, max_rows)
    out = _Filler(capacity)
    if _fast_pass(f, timezone, max_rows, plan, out):
        return out.bars()
    out = _Filler(capacity)
    _checked_pass(f, timezone, max_rows, plan, out)
    return out.bars()


def parse_bars_csv(data: bytes | bytearray, timezone: str = "UTC", max_rows: int | None = None, **chunking) -> BarArrays:
    """The bars of a CSV file's bytes, or InvalidArgument naming the first bad row."""
    return parse_bars_file(io.BytesIO(data), timezone, max_rows, **chunking)


def _parse_checked(data: bytes | bytearray, timezone: str, max_rows: int) -> BarArrays:
    """The checked reader alone (tests): every value read as text and checked."""
    f = io.BytesIO(data)
    plan = _scan(f, CHUNK_BYTES, MAX_CHUNK_ROWS)
    out = _Filler(min(plan.lines + 1, max_rows))
    _checked_pass(f, timezone, max_rows, plan, out)
    return out.bars()


def _iso(ns: int) -> str:
    return pd.Timestamp(int(ns), tz="UTC").isoformat().replace("+00:00", "Z")
