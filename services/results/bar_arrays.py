"""OHLCV bars as NumPy arrays (their stored form is Parquet in the market store: market_store.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLUMNS = ("ts", "open", "high", "low", "close", "volume")


@dataclass(frozen=True, eq=False)
class BarArrays:
    """`ts`: int64 ns since the epoch (UTC), strictly increasing; the rest float64."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def chunks(self, size: int):
        """Slices of at most `size` bars, as (ts, open, high, low, close, volume) little-endian bytes."""
        n = len(self)
        for start in range(0, n, size):
            stop = min(start + size, n)
            yield tuple(
                np.ascontiguousarray(getattr(self, c)[start:stop], dtype="<i8" if c == "ts" else "<f8").tobytes()
                for c in COLUMNS
            )
