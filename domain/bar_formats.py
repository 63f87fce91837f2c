"""Bar file formats of a dataset import: the names of the formats, the columns of each, the
`columns=` mapping, and which format a file's first line looks like.

Each format is defined here once; results reads files by these definitions
(services/results/csv_bars.py), the gateway and the CLI offer the same names, and the
README's "Bring your own data" describes them. Plain Python: no pandas, no I/O.

- ``generic`` (the default): a header row naming the fields ``timestamp, open, high, low,
  close, volume`` in any case and order (``datetime``, ``date`` or ``time`` for the
  timestamp); ISO dates or date-times, or Unix times; other columns ignored. TradingView's
  "Export chart data" (``time,open,high,low,close,Volume``, ISO or Unix times) is one of
  these. ``columns=field:Column,...`` names the columns of any other header.
- ``yahoo``: Yahoo Finance's CSV download, ``Date,Open,High,Low,Close,Adj Close,Volume``
  (``Datetime`` with a UTC offset for intraday bars); ``Close`` is the close, ``Adj Close``
  is not used; rows holding ``null`` (days without a quote) are dropped and counted.
- ``binance``: Binance klines files (data.binance.vision): 12 columns, no header (some
  futures files have one), the open time in Unix milliseconds, or microseconds (spot files
  from 2025 on), UTC.
- ``metatrader``: MetaTrader's "Export bars": MT5 tab-separated with a header
  ``<DATE> <TIME> <OPEN> <HIGH> <LOW> <CLOSE> <TICKVOL> <VOL> <SPREAD>`` (``<TIME>`` may
  be absent: the bars are then dates), MT4 comma-separated without a header
  (``2024.01.02,09:30,open,high,low,close,volume``); dates ``YYYY.MM.DD``, broker server
  time without a zone (read in the dataset's timezone); the volume is ``<VOL>`` unless it
  is all zero (forex), then ``<TICKVOL>``.
"""

from __future__ import annotations

import re
from typing import Final

FIELDS: Final[tuple[str, ...]] = ("timestamp", "open", "high", "low", "close", "volume")
FORMATS: Final[tuple[str, ...]] = ("generic", "yahoo", "binance", "metatrader")
DEFAULT_FORMAT: Final = "generic"
FORMAT_TITLES: Final[dict[str, str]] = {
    "generic": "generic CSV (timestamp,open,high,low,close,volume)",
    "yahoo": "Yahoo Finance CSV",
    "binance": "Binance klines CSV",
    "metatrader": "MetaTrader export",
}

# generic: the names each field is found by (any case; the first present wins).
GENERIC_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "timestamp": ("timestamp", "datetime", "date", "time"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume",),
}

# yahoo: the header of a download (`Adj Close` is there but not used).
YAHOO_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "timestamp": ("Date", "Datetime"),
    "open": ("Open",),
    "high": ("High",),
    "low": ("Low",),
    "close": ("Close",),
    "volume": ("Volume",),
}
YAHOO_ADJ_CLOSE: Final = "Adj Close"
# What Yahoo writes in every value cell of a day without a quote.
YAHOO_NULL: Final = "null"

# binance: the 12 columns of a klines file, in order, as Binance's documentation names them.
BINANCE_COLUMNS: Final[tuple[str, ...]] = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_asset_volume",
    "number_of_trades",
    "taker_buy_base_asset_volume",
    "taker_buy_quote_asset_volume",
    "ignore",
)
BINANCE_FIELDS: Final[dict[str, str]] = {
    "timestamp": "open_time",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
}

# metatrader: MT5's header (tab-separated), and MT4's columns (comma-separated, no header).
MT_DATE, MT_TIME, MT_VOL, MT_TICKVOL = "<DATE>", "<TIME>", "<VOL>", "<TICKVOL>"
MT5_COLUMNS: Final[tuple[str, ...]] = (
    MT_DATE, MT_TIME, "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>", MT_TICKVOL, MT_VOL, "<SPREAD>"
)
MT4_COLUMNS: Final[tuple[str, ...]] = (MT_DATE, MT_TIME, "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>", MT_TICKVOL)
MT_FIELDS: Final[dict[str, str]] = {"open": "<OPEN>", "high": "<HIGH>", "low": "<LOW>", "close": "<CLOSE>"}

# Unix times: a timestamp of 9 to 19 digits alone. Its unit follows from its size, so that
# seconds, milliseconds, microseconds and nanoseconds since 1973 all read right (Binance
# spot files changed from milliseconds to microseconds in 2025, within the same columns).
EPOCH_DIGITS: Final = r"\d{9,19}"
EPOCH_UNITS: Final[tuple[tuple[int, str, int], ...]] = (
    # (values below this, unit, nanoseconds per unit)
    (10**11, "seconds", 1_000_000_000),
    (10**14, "milliseconds", 1_000_000),
    (10**17, "microseconds", 1_000),
    (10**19, "nanoseconds", 1),
)


class FormatError(ValueError):
    """An import's format or column mapping is not usable; the message says why."""


def check_import(fmt: str, columns: str) -> tuple[str, dict[str, str]]:
    """The format (empty: generic) and the parsed `columns=` mapping of an import, or FormatError."""
    fmt = (fmt or DEFAULT_FORMAT).strip().lower()
    if fmt not in FORMATS:
        raise FormatError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    mapping = parse_columns(columns) if columns and columns.strip() else {}
    if mapping and fmt != "generic":
        raise FormatError(
            f"columns= names the columns of a generic file; a {FORMAT_TITLES[fmt]} has its own "
            "(leave format out, or give format=generic)"
        )
    return fmt, mapping


def parse_columns(text: str) -> dict[str, str]:
    """`timestamp:Date,close:Last,...` as {field: column}, or FormatError.

    Fields are any of FIELDS (any case), each at most once; a column is the rest of the
    entry after the first `:`, surrounding blanks removed (matched against the header in
    any case). Fields left out are found by their usual names.
    """
    mapping: dict[str, str] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        field, sep, column = entry.partition(":")
        field, column = field.strip().lower(), column.strip()
        if not sep or not column:
            raise FormatError(f"columns: {entry.strip()!r} is not field:column (e.g. timestamp:Date,close:Last)")
        if field not in FIELDS:
            raise FormatError(f"columns: unknown field {field!r} (fields are {', '.join(FIELDS)})")
        if field in mapping:
            raise FormatError(f"columns: {field} is mapped twice")
        mapping[field] = column
    if not mapping:
        raise FormatError("columns: no field:column entries (e.g. timestamp:Date,close:Last)")
    return mapping


def epoch_unit(value: int) -> tuple[str, int]:
    """(unit name, nanoseconds per unit) of a Unix time of 9 to 19 digits, by its size."""
    for below, unit, ns in EPOCH_UNITS:
        if value < below:
            return unit, ns
    return EPOCH_UNITS[-1][1], EPOCH_UNITS[-1][2]


_MT_DATE_RE: Final = re.compile(r"\d{4}\.\d{2}\.\d{2}")
_EPOCH_RE: Final = re.compile(EPOCH_DIGITS)


def detect_format(first_line: str) -> str | None:
    """The format a file's first line looks like (its header, or its first row when it has
    none), or None: for messages that say which format to give."""
    line = first_line.lstrip("\ufeff").strip()
    if not line:
        return None
    if line.upper().startswith(MT_DATE):
        return "metatrader"
    cells = [c.strip().strip('"') for c in line.split(",")]
    if _MT_DATE_RE.fullmatch(cells[0]):
        return "metatrader"
    if len(cells) == len(BINANCE_COLUMNS) and (_EPOCH_RE.fullmatch(cells[0]) or cells[0].lower() == "open_time"):
        return "binance"
    names = {c.lower() for c in cells}
    if YAHOO_ADJ_CLOSE.lower() in names:
        return "yahoo"
    if all(any(n in names for n in GENERIC_NAMES[f]) for f in FIELDS):
        return "generic"
    return None


def format_hint(first_line: str, given: str) -> str:
    """`; it looks like a … (format=…)` when the first line matches another format than `given`, else ""."""
    seen = detect_format(first_line)
    if seen is None or seen == given:
        return ""
    return f"; it looks like a {FORMAT_TITLES[seen]}: import it with format={seen}"
