"""Terminal output: aligned tables and a one-line progress bar."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

# (header, key or function of the row, digits of floats)
Column = tuple[str, "str | Callable[[dict[str, Any]], Any]", int]


def fmt_num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], out: TextIO = sys.stdout) -> None:
    """Rows as columns separated by two spaces; numeric columns right-aligned."""
    if not rows:
        print("(none)", file=out)
        return
    numeric = [True] * len(columns)
    cells: list[list[str]] = []
    for row in rows:
        line = []
        for i, (_, key, digits) in enumerate(columns):
            value = key(row) if callable(key) else row.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                numeric[i] = False
            line.append(fmt_num(value, digits))
        cells.append(line)
    heads = [c[0] for c in columns]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(heads)]

    def render(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    print(render(heads), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for line in cells:
        print(render(line), file=out)


def kv(pairs: Sequence[tuple[str, Any]], out: TextIO = sys.stdout) -> None:
    width = max((len(k) for k, _ in pairs), default=0)
    for k, v in pairs:
        print(f"{k.ljust(width)}  {fmt_num(v)}", file=out)


class ProgressBar:
    """`[##########----------]  50.0 %  message` redrawn in place on a terminal."""

    def __init__(self, out: TextIO, label: str = "") -> None:
        self.out = out
        self.label = label
        self.shown = False

    def update(self, percent: float, message: str = "") -> None:
        cols = shutil.get_terminal_size((80, 24)).columns
        width = max(10, min(40, cols - 40))
        p = max(0.0, min(100.0, float(percent)))
        filled = round(width * p / 100)
        text = f"{self.label}[{'#' * filled}{'-' * (width - filled)}] {p:5.1f} %  {message}"
        self.out.write("\r" + text[: cols - 1].ljust(cols - 1))
        self.out.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.out.write("\n")
            self.out.flush()
            self.shown = False
