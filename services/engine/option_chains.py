"""Days of an underlying's option chain as the engine gets them from results
(ResultsService.GetOptionChainDay through libs.option_chain_wire), for day-by-day runs with
option legs (services.engine.option_legs.DayChain).

A run reads each trading day once, when it reaches it, so a year never sits in memory:
- only the columns the legs use (no `oi`, `iv`), option_type dictionary-encoded, turned into
  arrays without a pandas frame or a string per row;
- the next days are read while the current one runs (services.engine.day_by_day.CHAIN_DAYS_AHEAD);
- what a day gave the run (its listing and the contracts the legs cut out, a few kB) is kept in
  the engine's ChainDayCache, per chain version, day and strategy window, so the same strategy
  run again reads no chain at all; a leg that asks a kept day for a contract it does not hold
  reads that contract's rows alone (the request's contract selection).
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import grpc
import numpy as np
import pyarrow as pa
from hindsight.results.v1 import results_pb2_grpc

from domain.option_chain import PUT
from libs.option_chain_wire import fetch_chain_table
from services.engine.day_by_day import NoChain
from services.engine.option_legs import ChainRows, ChainWindow, ContractBars, ContractKey, DayChain

# What a leg reads of a day: the contracts' keys and bars.
LEG_COLUMNS = ("timestamp", "expiry", "strike", "option_type", "open", "high", "low", "close", "volume")
DEFAULT_CACHE_BYTES = 256 * 2**20


def chain_rows(table: pa.Table) -> ChainRows:
    """Stored chain rows (LEG_COLUMNS; option_type as strings or dictionary-encoded) as arrays."""
    if table.num_rows == 0:
        empty = np.zeros(0)
        return ChainRows(np.zeros(0, np.int64), np.zeros(0, np.int64), empty, np.zeros(0, bool), (empty,) * 5)
    table = table.combine_chunks()
    kinds = table.column("option_type").chunk(0)
    if pa.types.is_dictionary(kinds.type):
        put = (np.asarray(kinds.dictionary.to_pylist(), dtype=object) == PUT)[kinds.indices.to_numpy()]
    else:
        put = np.asarray(kinds.to_numpy(zero_copy_only=False) == PUT)
    return ChainRows(
        table.column("timestamp").cast(pa.int64()).to_numpy(),
        table.column("expiry").cast(pa.int32()).to_numpy().astype(np.int64),
        table.column("strike").to_numpy(),
        put,
        tuple(table.column(c).to_numpy() for c in ("open", "high", "low", "close", "volume")),  # type: ignore[arg-type]
    )


@dataclass
class KeptDay:
    """What a day of a chain gave a window: its listing and the contracts cut out so far."""

    listed: dict[date, np.ndarray]
    known: dict[ContractKey, ContractBars | None] = field(default_factory=dict)

    def nbytes(self) -> int:
        size = 200 + sum(64 + a.nbytes for a in self.listed.values())
        for c in self.known.values():
            size += 200 + (0 if c is None else sum(a.nbytes for a in (c.ts, c.open, c.high, c.low, c.close, c.volume)))
        return size


CacheKey = tuple[str, int, date, ChainWindow]  # chain id, version, day, window


class ChainDayCache:
    """KeptDays of any chain version, least recently used first out, up to `max_bytes` (versions
    are immutable, so a kept day never goes stale). Shared by the engine's jobs (threads)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[CacheKey, tuple[KeptDay, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> KeptDay | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: CacheKey, kept: KeptDay) -> None:
        """Keep (or account again, once its run added contracts) a day."""
        size = kept.nbytes()
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            if size > self.max_bytes:
                return
            self._items[key] = (kept, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped


class ChainDays:
    """`run_day_by_day`'s chain_for for a job: DayChains of the tenant's chain on `underlying`,
    called from the run's worker thread; reads happen on the event loop `loop` (where the gRPC
    channel lives)."""

    def __init__(
        self,
        stub: results_pb2_grpc.ResultsServiceStub,
        tenant_id: str,
        underlying: str,
        loop: asyncio.AbstractEventLoop,
        cache: ChainDayCache,
        timeout: float = 60.0,
    ) -> None:
        self._stub, self._tenant, self._underlying, self._loop = stub, tenant_id, underlying, loop
        self._cache, self._timeout = cache, timeout
        self._chain: tuple[str, int] | None = None  # (chain id, version) this run reads
        self._ahead: dict[tuple[date, ChainWindow], Future[Any]] = {}  # days being read ahead
        self._last: tuple[CacheKey, KeptDay] | None = None

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _fetch(self, day: date, contracts: tuple[ContractKey, ...] = (), chain_only: bool = False) -> Any:
        assert self._chain is not None or chain_only
        try:
            return await fetch_chain_table(
                self._stub, self._tenant, day, underlying=self._underlying if self._chain is None else "",
                chain_id=self._chain[0] if self._chain is not None else "", columns=LEG_COLUMNS,
                contracts=contracts, chain_only=chain_only, timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NoChain(f"there is no option chain of {self._underlying} any more") from None
            raise

    def _resolve(self, day: date) -> tuple[str, int]:
        if self._chain is None:
            chain, _ = self._call(self._fetch(day, chain_only=True)).result()
            self._chain = (chain.chain_id, int(chain.version))
        return self._chain

    def day_chain(self, day: date, window: ChainWindow, coming: Sequence[date] = ()) -> DayChain:
        """The day's chain as `window` sees it; starts reading the `coming` days not kept."""
        chain_id, version = self._resolve(day)
        if self._last is not None:  # the previous day's run may have cut contracts out: its size changed
            self._cache.put(*self._last)
            self._last = None
        key = (chain_id, version, day, window)
        kept = self._cache.get(key)
        if kept is not None:
            chain = DayChain.from_rows(None, day, window, listed=kept.listed, known=kept.known, load=self._loader(day))
        else:
            future = self._ahead.pop((day, window), None) or self._call(self._fetch(day))
            got, table = future.result()
            chain = DayChain.from_rows(chain_rows(table), day, window)
            key = (got.chain_id, int(got.version), day, window)
            kept = KeptDay(chain.listed, chain.known)
        self._last = (key, kept)
        self._cache.put(key, kept)
        wanted = {(d, window) for d in coming if self._cache.get((chain_id, version, d, window)) is None}
        for stale in set(self._ahead) - wanted:  # not asked for any more: memory back
            self._ahead.pop(stale).cancel()
        for d in coming:
            if (d, window) in wanted and (d, window) not in self._ahead:
                self._ahead[(d, window)] = self._call(self._fetch(d))
        return chain

    def _loader(self, day: date) -> Callable[[ContractKey], ChainRows | None]:
        def load(key: ContractKey) -> ChainRows | None:
            _, table = self._call(self._fetch(day, contracts=(key,))).result()
            return chain_rows(table)

        return load

    def close(self) -> None:
        """At the run's end: account the last day's contracts; drop a read ahead nobody wants."""
        if self._last is not None:
            self._cache.put(*self._last)
            self._last = None
        for future in self._ahead.values():
            future.cancel()
        self._ahead.clear()
