"""Bars of datasets as the engine gets them from results, cached per dataset version.

The cache holds at most HINDSIGHT_BAR_CACHE_MB of bars (48 bytes a bar: six 8-byte
columns), least recently used first out. A dataset larger than the whole cache is
handed to its job and not kept, so an engine's memory is the bars its running jobs use
plus at most the cache, whatever the number of datasets or tickers it has seen.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

import numpy as np
from hindsight.results.v1 import results_pb2, results_pb2_grpc

from domain.market import BAR_PRICE_COLUMNS
from services.engine.bars import Bars

# What a crossover or RSI sweep reads of its bars (besides ts): fills at opens or closes,
# indicators of closes. Half of the six columns to read, decode and send.
SWEEP_COLUMNS = ("open", "close")
_ALL = frozenset(BAR_PRICE_COLUMNS)


def nbytes(bars: Bars) -> int:
    """The memory of a dataset's bars (its arrays)."""
    return sum(a.nbytes for a in (bars.ts, *(getattr(bars, c) for c in BAR_PRICE_COLUMNS)) if a is not None)


def _held(bars: Bars) -> frozenset[str]:
    return frozenset(c for c in _ALL if getattr(bars, c) is not None)


class BarsCache:
    """Bars per dataset version, kept in memory (versions are immutable), up to `max_bytes`.

    `get(..., columns=SWEEP_COLUMNS)` fetches and keeps only those columns (and ts); a later
    `get` that needs more fetches the version again, whole, and keeps that instead."""

    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        self._items: OrderedDict[str, Bars] = OrderedDict()
        self.max_bytes = max_bytes
        self.bytes = 0
        self._lock = asyncio.Lock()

    async def get(self, stub: results_pb2_grpc.ResultsServiceStub, dataset: results_pb2.Dataset, version_id: str,
                  columns: tuple[str, ...] | None = None) -> Bars:
        wanted = _ALL if columns is None else frozenset(columns) | {"open", "close"}  # a Bars always has them
        async with self._lock:
            if version_id in self._items and wanted <= _held(self._items[version_id]):
                self._items.move_to_end(version_id)
                return self._items[version_id]
            names = ("ts", *(c for c in BAR_PRICE_COLUMNS if c in wanted))
            cols: dict[str, list[bytes]] = {k: [] for k in names}
            request = results_pb2.GetBarsRequest(version_id=version_id,
                                                 columns=[] if wanted == _ALL else list(names[1:]))
            async for chunk in stub.GetBars(request):
                for k in cols:
                    cols[k].append(getattr(chunk, k))
            arrays = {
                k: np.frombuffer(b"".join(v), dtype="<i8" if k == "ts" else "<f8").copy() for k, v in cols.items()
            }
            bars = Bars(
                ts=arrays["ts"],
                **{c: arrays.get(c) for c in BAR_PRICE_COLUMNS},
                timezone=dataset.timezone or "UTC",
                calendar=dataset.calendar or "continuous",
            )
            old = self._items.pop(version_id, None)
            if old is not None:  # fewer columns than now needed: replaced
                self.bytes -= nbytes(old)
            size = nbytes(bars)
            if size > self.max_bytes:  # larger than the whole cache: this job's alone
                return bars
            while self._items and self.bytes + size > self.max_bytes:
                self.bytes -= nbytes(self._items.popitem(last=False)[1])
            self._items[version_id] = bars
            self.bytes += size
            return bars
