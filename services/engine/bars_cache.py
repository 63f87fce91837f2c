"""Bars of datasets as the engine gets them from results, cached per dataset version."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

import numpy as np
from hindsight.results.v1 import results_pb2, results_pb2_grpc

from services.engine.bars import Bars


class BarsCache:
    """Bars per dataset version, kept in memory (versions are immutable)."""

    def __init__(self, max_versions: int = 8) -> None:
        self._items: OrderedDict[str, Bars] = OrderedDict()
        self._max = max_versions
        self._lock = asyncio.Lock()

    async def get(self, stub: results_pb2_grpc.ResultsServiceStub, dataset: results_pb2.Dataset, version_id: str) -> Bars:
        async with self._lock:
            if version_id in self._items:
                self._items.move_to_end(version_id)
                return self._items[version_id]
            cols: dict[str, list[bytes]] = {k: [] for k in ("ts", "open", "high", "low", "close", "volume")}
            async for chunk in stub.GetBars(results_pb2.GetBarsRequest(version_id=version_id)):
                for k in cols:
                    cols[k].append(getattr(chunk, k))
            arrays = {
                k: np.frombuffer(b"".join(v), dtype="<i8" if k == "ts" else "<f8").copy() for k, v in cols.items()
            }
            bars = Bars(
                ts=arrays["ts"],
                open=arrays["open"],
                high=arrays["high"],
                low=arrays["low"],
                close=arrays["close"],
                volume=arrays["volume"],
                timezone=dataset.timezone or "UTC",
                calendar=dataset.calendar or "continuous",
            )
            self._items[version_id] = bars
            while len(self._items) > self._max:
                self._items.popitem(last=False)
            return bars
