"""OHLCV bars as NumPy arrays (their stored form is Parquet in the market store: market_store.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from domain.market import BAR_PRICE_COLUMNS

COLUMNS = ("ts", *BAR_PRICE_COLUMNS)


@dataclass(frozen=True, eq=False)
class BarArrays:
    """`ts`: int64 ns since the epoch (UTC), strictly increasing; the rest float64 (None: a
    column not read, `datasets.read_version_bars`' `columns`)."""

    ts: np.ndarray
    open: np.ndarray | None
    high: np.ndarray | None
    low: np.ndarray | None
    close: np.ndarray | None
    volume: np.ndarray | None

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def chunks(self, size: int):
        """Slices of at most `size` bars, as {column: little-endian bytes} of the columns held."""
        n = len(self)
        held = [(c, getattr(self, c)) for c in COLUMNS if getattr(self, c) is not None]
        for start in range(0, n, size):
            stop = min(start + size, n)
            yield {c: np.ascontiguousarray(a[start:stop], dtype="<i8" if c == "ts" else "<f8").tobytes()
                   for c, a in held}
