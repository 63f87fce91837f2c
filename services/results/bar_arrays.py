"""OHLCV bars as NumPy arrays, and their stored form (one compressed .npz blob)."""

from __future__ import annotations

import io
import zipfile
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

    def to_npz(self) -> bytes:
        """What `np.savez_compressed` writes (a deflated zip of .npy files), at zlib level 1:
        about 9x faster than its level 6 for a 15% larger blob, which matters for 5M-row imports."""
        return write_npz({c: getattr(self, c) for c in COLUMNS})

    def encode(self) -> EncodedBars:
        """The stored form with what a dataset version records beside it."""
        return EncodedBars.of({c: getattr(self, c) for c in COLUMNS})

    @classmethod
    def from_npz(cls, blob: bytes) -> BarArrays:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            return cls(**{c: z[c] for c in COLUMNS})

    def chunks(self, size: int):
        """Slices of at most `size` bars, as (ts, open, high, low, close, volume) little-endian bytes."""
        n = len(self)
        for start in range(0, n, size):
            stop = min(start + size, n)
            yield tuple(
                np.ascontiguousarray(getattr(self, c)[start:stop], dtype="<i8" if c == "ts" else "<f8").tobytes()
                for c in COLUMNS
            )


# Bytes handed to the compressor at a time.
_WRITE_BLOCK = 1024 * 1024


def write_npz(columns: dict[str, np.ndarray], *, consume: bool = False) -> bytes:
    """The columns as a deflated zip of .npy files (level 1), written straight from the arrays'
    memory. `consume`: each column is removed from `columns` once written, so that when the
    caller holds no other reference the arrays are freed while the blob grows."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for c in COLUMNS:
            arr = np.ascontiguousarray(columns.pop(c) if consume else columns[c], dtype="<i8" if c == "ts" else "<f8")
            with zf.open(c + ".npy", "w", force_zip64=True) as f:
                # As np.lib.format.write_array does, without its 16 MB staging copies.
                np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(arr))
                data = memoryview(arr).cast("B")
                for start in range(0, len(data), _WRITE_BLOCK):
                    f.write(data[start : start + _WRITE_BLOCK])
                data.release()
            del arr
    return buf.getvalue()


@dataclass(frozen=True)
class EncodedBars:
    """Bars already in their stored form (`BarArrays.to_npz`): an import frees the arrays
    before the database write, which then holds only this blob."""

    n: int
    first_ts: int
    last_ts: int
    npz: bytes

    def __len__(self) -> int:
        return self.n

    @classmethod
    def of(cls, columns: dict[str, np.ndarray], *, consume: bool = False) -> EncodedBars:
        """`columns` (COLUMNS → arrays) encoded; `consume`: emptied on the way (see write_npz)."""
        ts = columns["ts"]
        n = int(ts.shape[0])
        first, last = (int(ts[0]), int(ts[-1])) if n else (0, 0)
        del ts
        return cls(n=n, first_ts=first, last_ts=last, npz=write_npz(columns, consume=consume))
