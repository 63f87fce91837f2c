"""A sharded sweep's shards in the engine (issue 11): each JobMessage names one ticker
(`shard_id` "t0007": the spec's tickers[7]) or one pair chunk of its grid
("t0007c002of005", domain.shards); it runs as that ticker's own sweep, through the sweep
runner (services.engine.kinds.sweep), with a context whose reports name the shard:

- progress: the shard's own percent of its bar-pairs (results sums the job's);
- failure (not enough data, an engine error): that ticker fails alone;
- CompleteSweep: the ticker's rows (or the chunk's, with its trials' moments and CSCV
  block sums), keyed by the shard (stored once), with the ticker's buy-and-hold return
  over the same bars, cash, fill and costs.

Every message of a sharded sweep names its shard (standalone's requeue after a restart
too: one message per shard not ended).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
from hindsight.bus.v1 import bus_pb2
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2

from domain.metrics import finite
from domain.shards import parse_ticker_shard
from services.engine.bars import Bars
from services.engine.job_context import JobContext
from services.engine.sweep import run_one

log = logging.getLogger(__name__)


def buy_and_hold_pct(bars: Bars, spec: jobs_pb2.SweepSpec) -> float | None:
    """Buy-and-hold return of the bars, percent: long from the first fill to the end, with
    the sweep's cash, fill and costs (the benchmark of services.engine.backtest)."""
    rec = run_one(bars, want=np.ones(len(bars.close), dtype=np.int8), max_trades=0, fill=spec.fill or "next_open",
                  commission_pct=spec.commission_pct, slippage_pct=spec.slippage_pct,
                  initial_cash=spec.initial_cash or 10_000.0)
    cash = spec.initial_cash or 10_000.0
    return finite((float(rec.equity[-1]) / cash - 1.0) * 100.0)


class _RecordingCache:
    """The engine's bar cache, remembering the bars the shard's sweep ran on."""

    def __init__(self, cache: Any) -> None:
        self._cache = cache
        self.bars: Bars | None = None

    async def get(self, *args: Any, **kwargs: Any) -> Bars:
        self.bars = await self._cache.get(*args, **kwargs)
        return self.bars

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cache, name)


class ShardContext:
    """The JobContext of one shard: its reports name the shard (everything else is the engine's)."""

    def __init__(self, ctx: JobContext, shard_id: str, spec: jobs_pb2.SweepSpec, kernel: tuple[float, float],
                 pair_chunk: tuple[int, int] = (0, 1)) -> None:
        self._ctx = ctx
        self.shard_id = shard_id
        # The part of the ticker's grid this shard runs (JobContext.pair_chunk).
        self.pair_chunk = pair_chunk
        self._spec = spec
        self._kernel = kernel
        self.cache = _RecordingCache(ctx.cache)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    async def progress(self, job_id: str, percent: float, message: str) -> results_pb2.ReportProgressResponse:
        # The sweep runner maps its kernel's fraction of bars onto [start, end] of the
        # stream; the shard reports that fraction itself (0 before the kernel, 100 after).
        start, end = self._kernel
        fraction = min(1.0, max(0.0, (percent - start) / (end - start)))
        if fraction in (0.0, 1.0):
            # Before and after the kernel there is nothing to tell: the shard's start is its
            # StartJob and its end its CompleteSweep (a report is a write at results, ~10 ms
            # a shard could spend in its kernel; a stop comes with the kernel's first report).
            return results_pb2.ReportProgressResponse(stop=False)
        return await self._ctx.call(
            self._ctx.stub.ReportProgress,
            results_pb2.ReportProgressRequest(job_id=job_id, percent=fraction * 100.0, message=message,
                                              shard_id=self.shard_id),
        )

    async def fail(self, job_id: str, message: str, shard_id: str = "") -> None:
        await self._ctx.fail(job_id, message, shard_id=self.shard_id)

    async def call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        if isinstance(request, results_pb2.CompleteSweepRequest):
            request.shard_id = self.shard_id
            bars = self.cache.bars
            if bars is not None and len(bars.close) > 0:
                bh = await asyncio.to_thread(buy_and_hold_pct, bars, self._spec)
                if bh is not None:
                    request.buy_and_hold_return_pct = bh
        return await self._ctx.call(method, request, timeout=timeout)


async def run_shards(runner: Any, ctx: JobContext, job: jobs_pb2.Job, msg: bus_pb2.JobMessage,
                     kernel: tuple[float, float]) -> None:
    """Run the message's shard of a sharded sweep with `runner` (the sweep runner) as that
    ticker's own sweep, over its whole grid or the pair chunk the shard names
    (domain.shards). A single-ticker sweep large enough to be sharded has no `tickers`:
    its shards are of its `ticker`."""
    tickers = list(job.sweep.tickers) or [job.sweep.ticker]
    sid = msg.shard_id
    try:
        position, chunk, chunks = parse_ticker_shard(sid)
    except ValueError:
        position, chunk, chunks = -1, 0, 1
    if not 0 <= position < len(tickers):
        await ctx.fail(job.job_id, f"no ticker for shard {sid!r}", shard_id=sid)
        return
    one = jobs_pb2.Job()
    one.CopyFrom(job)
    one.sweep.ticker = tickers[position]
    del one.sweep.tickers[:]
    one.sweep.universe = ""
    log.info("sweep shard taken", extra={"job_id": job.job_id, "shard_id": sid, "ticker": tickers[position],
                                         "chunk": chunk, "chunks": chunks})
    await runner.run(ShardContext(ctx, sid, one.sweep, kernel, (chunk, chunks)), one, msg)
    log.info("sweep shard ended", extra={"job_id": job.job_id, "shard_id": sid})
