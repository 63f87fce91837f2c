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
and the first offending row is reported.
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


def _read_table(data: bytes | bytearray, max_rows: int) -> pd.DataFrame:
    if not data or data.isspace():
        raise InvalidArgument("the CSV file is empty (expected a header row: timestamp,open,high,low,close,volume)")
    try:
        return pd.read_csv(
            io.BytesIO(data),
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            encoding="utf-8-sig",
            # Leading blanks go in the C parser (cheap); numbers tolerate trailing ones.
            skipinitialspace=True,
            nrows=max_rows + 1,
            engine="c",
        )
    except UnicodeDecodeError:
        raise InvalidArgument("the CSV file is not UTF-8 text") from None
    except pd.errors.EmptyDataError:
        raise InvalidArgument("the CSV file is empty (expected a header row: timestamp,open,high,low,close,volume)") from None
    except pd.errors.ParserError as exc:
        m = _FIELDS_RE.search(str(exc))
        if m:
            expected, line, saw = m.groups()
            raise InvalidArgument(f"row {line}: expected {expected} fields like the header, saw {saw}") from None
        raise InvalidArgument(f"the CSV file cannot be parsed: {str(exc).strip()}") from None


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


def _bar_problem(ts: np.ndarray, o, h, lo, c, v, rows: np.ndarray | None) -> tuple[int, str] | None:
    """(index, message) of the first row breaking a bar rule, or None.

    `rows` (spreadsheet row numbers) is only used to word the message.
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
    if len(ts) > 1:
        prev = np.concatenate(([np.iinfo(np.int64).min], ts[:-1]))
        prev_row = (lambda j: rows[j - 1]) if rows is not None else (lambda j: j + 1)
        checks.append((ts == prev, lambda j: f"duplicate timestamp {_iso(ts[j])} (same as row {prev_row(j)})"))
        checks.append(
            (
                ts < prev,
                lambda j: f"timestamp {_iso(ts[j])} is earlier than row {prev_row(j)}'s ({_iso(ts[j - 1])}); "
                "rows must be sorted oldest first",
            )
        )
    found = [(j, describe) for mask, describe in checks if (j := _first(mask)) is not None]
    if not found:
        return None
    j, describe = min(found, key=lambda x: x[0])
    return j, describe(j)


def _parse_fast(data: bytes | bytearray, timezone: str, max_rows: int) -> BarArrays | None:
    """A valid file, parsed by the C parser straight into floats; None at the first doubt.

    Any irregularity (bad header, bad or missing value, a broken rule) sends the
    file to the checked parser, which finds the row and words the error.
    """
    try:
        header = pd.read_csv(io.BytesIO(data), nrows=0, encoding="utf-8-sig", skipinitialspace=True)
        cols = _columns(header)
        numeric = [cols[n] for n in (*PRICE_COLUMNS, "volume")]
        if len({*numeric, cols["timestamp"]}) != 6:
            return None
        # No usecols: with it the parser would let rows with extra fields through.
        df = pd.read_csv(
            io.BytesIO(data),
            dtype={cols["timestamp"]: str, **{c: np.float64 for c in numeric}},
            keep_default_na=False,
            na_values=[],
            skipinitialspace=True,
            encoding="utf-8-sig",
            nrows=max_rows + 1,
            engine="c",
        )
    except Exception:
        return None
    if len(df) == 0 or len(df) > max_rows:
        return None
    o, h, lo, c, v = (df[cols[n]].to_numpy(dtype=np.float64) for n in (*PRICE_COLUMNS, "volume"))
    if not all(np.isfinite(a).all() for a in (o, h, lo, c, v)):
        return None
    ts = _parse_timestamps_fast(df[cols["timestamp"]].astype(str).str.rstrip(), timezone)
    if ts is None or _bar_problem(ts, o, h, lo, c, v, None) is not None:
        return None
    return BarArrays(ts=ts, open=o, high=h, low=lo, close=c, volume=v)


def _parse_checked(data: bytes | bytearray, timezone: str, max_rows: int) -> BarArrays:
    """Every value read as text and checked; raises InvalidArgument naming the first bad row."""
    df = _read_table(data, max_rows)
    cols = _columns(df)
    # Spreadsheet row numbers: header is row 1, first data row is row 2.
    rows_all = np.arange(2, len(df) + 2, dtype=np.int64)
    blank = np.logical_and.reduce([(df[c].to_numpy() == "") for c in cols.values()])
    df = df[~blank]
    rows = rows_all[~blank]
    if len(df) == 0:
        raise InvalidArgument("the CSV file has a header but no data rows")
    if len(df) > max_rows:
        raise InvalidArgument(f"the CSV file has more than {max_rows:,} data rows (the limit per import)")

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
    problem = _bar_problem(ts[:k], o[:k], h[:k], lo[:k], c[:k], v[:k], rows[:k])
    if problem is not None:
        j, msg = problem
        raise InvalidArgument(f"row {rows[j]}: {msg}")
    if problems:
        raise InvalidArgument(f"row {first_row}: {first_msg}")
    return BarArrays(ts=ts, open=o, high=h, low=lo, close=c, volume=v)


def parse_bars_csv(data: bytes | bytearray, timezone: str = "UTC", max_rows: int | None = None) -> BarArrays:
    """The bars of a CSV file, or InvalidArgument naming the first bad row."""
    timezone = check_timezone(timezone or "UTC")
    max_rows = MAX_ROWS if max_rows is None else max_rows
    if not data or data.isspace():
        raise InvalidArgument("the CSV file is empty (expected a header row: timestamp,open,high,low,close,volume)")
    bars = _parse_fast(data, timezone, max_rows)
    if bars is not None:
        return bars
    return _parse_checked(data, timezone, max_rows)


def _iso(ns: int) -> str:
    return pd.Timestamp(int(ns), tz="UTC").isoformat().replace("+00:00", "Z")
