"""How a file of each import format is read: its separator, whether its first line is a
header, which columns make each field, what is left out. The formats themselves are defined
in domain/bar_formats.py; csv_bars.py reads a file by the `Layout` found here.

A layout is found from the file's first line (and, for formats with a header, the header's
cells as the CSV reader splits them), before any data row is read: a format whose columns
are absent is refused at once, naming the columns it expected, and the format the first
line looks like when that is another one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from domain import bar_formats as bf
from services.results.errors import InvalidArgument

MAX_SHOWN_COLUMNS = 20
MAX_SHOWN_CHARS = 40


def quoted(value: str) -> str:
    """A cell's text for an error message, quoted and clipped: a 100 kB cell stays a short message."""
    if len(value) > MAX_SHOWN_CHARS:
        return repr(value[:MAX_SHOWN_CHARS]) + f"... ({len(value):,} characters)"
    return repr(value)


@dataclass
class Layout:
    """How to read one file: what the reader is given and which column is which field."""

    format: str
    sep: str = ","
    # The first line is a header (else it is the first data row).
    header: bool = True
    # Column names given to the reader: a file without a header, or one whose header is replaced.
    names: tuple[str, ...] | None = None
    # The column(s) that make the timestamp: one, or MetaTrader's date and time.
    timestamp: tuple[str, ...] = ()
    # open, high, low, close, volume -> column.
    fields: dict[str, str] = field(default_factory=dict)
    # MetaTrader: the volume used when the `volume` column is all zero.
    alt_volume: str | None = None
    # Yahoo: rows with `null` in a value cell are dropped (and counted).
    null_rows: bool = False
    # Columns of the file not used.
    dropped: tuple[str, ...] = ()

    @property
    def first_row(self) -> int:
        """The row number (as a spreadsheet counts, from 1) of the first data row."""
        return 2 if self.header else 1

    def value_columns(self) -> list[str]:
        """Every column read as a number (the alternative volume included)."""
        cols = [self.fields[f] for f in ("open", "high", "low", "close", "volume")]
        return cols + ([self.alt_volume] if self.alt_volume else [])

    def timestamp_text(self, df: pd.DataFrame) -> pd.Series:
        """The timestamps of a chunk as text the timestamp parser reads (ISO or Unix time)."""
        if self.format != "metatrader":
            return df[self.timestamp[0]].astype(str)
        # 2024.01.02 [09:30[:00]] -> 2024-01-02 [09:30[:00]]
        text = df[self.timestamp[0]].astype(str).str.strip().str.replace(".", "-", regex=False)
        if len(self.timestamp) > 1:
            text = text + " " + df[self.timestamp[1]].astype(str).str.strip()
        return text

    def columns(self, used_alt: bool) -> dict[str, str]:
        """field -> the column (or columns) of the file it came from, for the import's answer."""
        out = {"timestamp": " ".join(self.timestamp)}
        for name in ("open", "high", "low", "close", "volume"):
            out[name] = self.fields[name]
        if used_alt and self.alt_volume:
            out["volume"] = self.alt_volume
        return out

    def dropped_columns(self, used_alt: bool) -> list[str]:
        dropped = list(self.dropped)
        if self.alt_volume:
            unused = self.fields["volume"] if used_alt else self.alt_volume
            dropped.append(unused)
        return dropped


def first_line(f) -> str:
    """The first line of a UTF-8 file (at most 64 kB of it), BOM and line break removed; the file is rewound."""
    f.seek(0)
    raw = f.readline(64 * 1024)
    f.seek(0)
    return raw.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")


def resolve(fmt: str, mapping: dict[str, str], line: str, header_cells) -> Layout:
    """The layout of a file of format `fmt` whose first line is `line`.

    `header_cells(sep)` gives the header's cells as the CSV reader splits them (called
    only for formats with a header). InvalidArgument when the file is not of the format.
    """
    if fmt == "binance":
        return _binance(line)
    if fmt == "metatrader":
        return _metatrader(line, header_cells)
    header = [str(c) for c in header_cells(",")]
    if fmt == "yahoo":
        return _yahoo(header, line)
    return _generic(header, mapping, line)


def _by_lower(header: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for col in header:
        out.setdefault(col.strip().lower(), col)
    return out


def _shown(header: list[str]) -> str:
    cells = [quoted(c) for c in header[:MAX_SHOWN_COLUMNS]]
    more = f" and {len(header) - MAX_SHOWN_COLUMNS} more" if len(header) > MAX_SHOWN_COLUMNS else ""
    return ", ".join(cells) + more


def _generic(header: list[str], mapping: dict[str, str], line: str) -> Layout:
    by_lower = _by_lower(header)
    found: dict[str, str] = {}
    for name, column in mapping.items():
        actual = by_lower.get(column.strip().lower())
        if actual is None:
            raise InvalidArgument(
                f"row 1: columns= maps {name} to {quoted(column)}, which the header does not have "
                f"(its columns: {_shown(header)})"
            )
        found[name] = actual
    for name in bf.FIELDS:
        if name not in found:
            actual = next((by_lower[n] for n in bf.GENERIC_NAMES[name] if n in by_lower), None)
            if actual is not None:
                found[name] = actual
    missing = [n for n in bf.FIELDS if n not in found]
    if missing:
        how = "name them with columns=field:Column" if mapping else "or name its columns with columns=field:Column"
        raise InvalidArgument(
            f"row 1: the header lacks column(s) {', '.join(missing)} "
            f"(expected timestamp,open,high,low,close,volume, {how}){bf.format_hint(line, 'generic')}"
        )
    return _named("generic", header, found)


def _yahoo(header: list[str], line: str) -> Layout:
    by_lower = _by_lower(header)
    found: dict[str, str] = {}
    for name, names in bf.YAHOO_NAMES.items():
        actual = next((by_lower[n.lower()] for n in names if n.lower() in by_lower), None)
        if actual is not None:
            found[name] = actual
    missing = [" or ".join(bf.YAHOO_NAMES[n]) for n in bf.FIELDS if n not in found]
    if missing:
        raise InvalidArgument(
            f"row 1: not a Yahoo Finance CSV: the header lacks {', '.join(missing)} "
            f"(expected Date,Open,High,Low,Close,Adj Close,Volume){bf.format_hint(line, 'yahoo')}"
        )
    layout = _named("yahoo", header, found)
    layout.null_rows = True
    return layout


def _named(fmt: str, header: list[str], found: dict[str, str]) -> Layout:
    used = set(found.values())
    return Layout(
        format=fmt,
        timestamp=(found["timestamp"],),
        fields={n: found[n] for n in bf.FIELDS if n != "timestamp"},
        dropped=tuple(c for c in header if c not in used),
    )


_EPOCH_RE = re.compile(bf.EPOCH_DIGITS)


def _binance(line: str) -> Layout:
    cells = [c.strip() for c in line.split(",")]
    expected = len(bf.BINANCE_COLUMNS)
    if len(cells) != expected or not (_EPOCH_RE.fullmatch(cells[0]) or cells[0].lower() == "open_time"):
        seen = f"{len(cells)} column(s)" if len(cells) != expected else f"a first cell {quoted(cells[0])}"
        raise InvalidArgument(
            f"row 1: not a Binance klines CSV: expected {expected} columns ({', '.join(bf.BINANCE_COLUMNS)}) "
            f"starting with the open time in Unix milliseconds or microseconds, saw {seen}"
            f"{bf.format_hint(line, 'binance')}"
        )
    return Layout(
        format="binance",
        header=not _EPOCH_RE.fullmatch(cells[0]),  # futures files have a header row, spot files none
        names=bf.BINANCE_COLUMNS,
        timestamp=(bf.BINANCE_FIELDS["timestamp"],),
        fields={n: c for n, c in bf.BINANCE_FIELDS.items() if n != "timestamp"},
        dropped=tuple(c for c in bf.BINANCE_COLUMNS if c not in bf.BINANCE_FIELDS.values()),
    )


_MT_DATE_RE = re.compile(r"\d{4}\.\d{2}\.\d{2}")


def _metatrader(line: str, header_cells) -> Layout:
    sep = "\t" if "\t" in line else ","
    expected = (
        "row 1: not a MetaTrader export: expected MT5's header "
        f"{' '.join(bf.MT5_COLUMNS)} (tab-separated) or MT4's rows 2024.01.02,09:30,open,high,low,close,volume"
    )
    if line.lstrip().upper().startswith(bf.MT_DATE):  # MT5, with a header
        header = [str(c).strip() for c in header_cells(sep)]
        by_upper = {c.upper(): c for c in header}
        needed = [bf.MT_DATE, *bf.MT_FIELDS.values()]
        missing = [c for c in needed if c not in by_upper]
        if missing or not (bf.MT_VOL in by_upper or bf.MT_TICKVOL in by_upper):
            lacks = ", ".join(missing + ([] if bf.MT_VOL in by_upper or bf.MT_TICKVOL in by_upper
                                           else [f"{bf.MT_TICKVOL} or {bf.MT_VOL}"]))
            raise InvalidArgument(f"{expected}; the header lacks {lacks}")
        timestamp = (by_upper[bf.MT_DATE],) + ((by_upper[bf.MT_TIME],) if bf.MT_TIME in by_upper else ())
        fields = {n: by_upper[c] for n, c in bf.MT_FIELDS.items()}
        vol, tick = by_upper.get(bf.MT_VOL), by_upper.get(bf.MT_TICKVOL)
        fields["volume"] = vol or tick or ""  # one of them is there (checked above)
        alt = tick if vol and tick else None
        used = {*timestamp, *fields.values(), *([alt] if alt else [])}
        return Layout(format="metatrader", sep=sep, timestamp=timestamp, fields=fields, alt_volume=alt,
                      dropped=tuple(c for c in header if c not in used))
    cells = [c.strip() for c in line.split(",")]
    if _MT_DATE_RE.fullmatch(cells[0]) and len(cells) == len(bf.MT4_COLUMNS):  # MT4, no header
        return Layout(
            format="metatrader",
            header=False,
            names=bf.MT4_COLUMNS,
            timestamp=bf.MT4_COLUMNS[:2],
            fields={**bf.MT_FIELDS, "volume": bf.MT_TICKVOL},
        )
    raise InvalidArgument(f"{expected}; the first line is {quoted(line)}{bf.format_hint(line, 'metatrader')}")
