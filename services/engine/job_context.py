"""What a job's runner gets from the engine: results (with retries), the bars cache,
the shutdown flag, metrics, and the calls every kind makes (fail, progress)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging

import grpc
from hindsight.results.v1 import results_pb2, results_pb2_grpc
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

from services.engine.bars_cache import BarsCache
from services.engine.metrics import EngineMetrics
from services.engine.option_chains import ChainDayCache


class EngineShuttingDown(Exception):
    """Raised out of a runner so the bus hands the message back (nack + requeue)."""


log = logging.getLogger(__name__)

_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def is_transient(exc: BaseException) -> bool:
    """A failed call worth retrying: results unreachable or too slow right now."""
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() in _TRANSIENT


class JobContext:
    """The engine's side of a running job, shared by every job of a worker."""

    # (chunk, chunks) of the sweep grid this run covers: all of it here; a pair chunk's
    # shard context (services.engine.kinds.universe_sweep.ShardContext) names its part.
    pair_chunk: tuple[int, int] = (0, 1)

    def __init__(self, stub: results_pb2_grpc.ResultsServiceStub, rpc_timeout: float = 30.0,
                 sweep_statistics: bool = True, sweep_threads: int = 1, bar_cache_bytes: int = 512 * 2**20) -> None:
        self.stub = stub
        self.rpc_timeout = rpc_timeout
        # Sweeps compute their overfitting statistics (HINDSIGHT_SWEEP_STATISTICS).
        self.sweep_statistics = sweep_statistics
        # Sweep kernel threads per job (services.engine.service.sweep_threads).
        self.sweep_threads = max(1, sweep_threads)
        self.cache = BarsCache(bar_cache_bytes)
        # What days of option chains gave day-by-day runs (services.engine.option_chains).
        self.chain_cache = ChainDayCache()
        self.metrics = EngineMetrics()
        # Set on shutdown: a running job stops at its next progress point and its
        # message goes back to the queue for another replica (never acked unfinished).
        self.stopping = False

    async def call(self, method, request, timeout: float | None = None):
        """A unary call to results that waits out results being unreachable.

        The job's message stays unacked meanwhile, so a restart of results
        costs no delivery attempt; a shutdown of the engine hands it back.
        """
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_transient), wait=wait_exponential_jitter(multiplier=0.2, max=5), reraise=True
        ):
            with attempt:
                return await method(request, timeout=timeout or self.rpc_timeout)

    async def fail(self, job_id: str, message: str, shard_id: str = "") -> None:
        """End the job as failed with `message` (results ignores it for an ended job); with
        `shard_id`, that shard of it only (its kind decides what that does to the job)."""
        await self.call(self.stub.FailJob,
                        results_pb2.FailJobRequest(job_id=job_id, error_message=message, shard_id=shard_id))

    async def progress(self, job_id: str, percent: float, message: str) -> results_pb2.ReportProgressResponse:
        """Report progress; the answer says whether to stop (cancelled, failed, timed out)."""
        return await self.call(
            self.stub.ReportProgress, results_pb2.ReportProgressRequest(job_id=job_id, percent=percent, message=message)
        )

    def shutting_down(self, job_id: str) -> EngineShuttingDown:
        """The exception that hands the job's message back to the queue."""
        return EngineShuttingDown(f"engine shutting down; job {job_id} handed back to the queue")


class ThreadProgress:
    """Progress reports from a kernel's thread that never wait for results.

    ``report`` (called by the kernel between its chunks) sends a report and returns at
    once; while one is in flight the next is skipped, so a slow results costs the kernel
    nothing (a report is a database write at results: ~10 ms, 15 % of a 250,000-bar shard
    when the kernel waited for each). The answer of a report (stop: cancelled, failed, timed
    out) is read at the next call, so a stop takes effect one report later. ``settle``,
    after the kernel, waits for the report in flight, so that the runner's next report
    reaches results after it (a job's percent only moves forward)."""

    def __init__(self, ctx: JobContext, job_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self._ctx = ctx
        self._job_id = job_id
        self._loop = loop
        self._pending: concurrent.futures.Future[results_pb2.ReportProgressResponse] | None = None
        self.stop = False

    def report(self, percent: float, message: str) -> bool:
        """Send a report unless one is in flight; False once the job is to stop."""
        if self._ctx.stopping:
            return False
        pending = self._pending
        if pending is not None:
            if not pending.done():
                return not self.stop
            self._collect(pending)
        if self.stop:
            return False
        self._pending = asyncio.run_coroutine_threadsafe(self._ctx.progress(self._job_id, percent, message), self._loop)
        return True

    def _collect(self, fut: concurrent.futures.Future[results_pb2.ReportProgressResponse]) -> None:
        self._pending = None
        try:
            self.stop = self.stop or fut.result().stop
        except Exception:  # progress is advisory: losing one report must not kill the run
            log.warning("progress report failed", extra={"job_id": self._job_id}, exc_info=True)

    async def settle(self) -> None:
        """Wait for the report in flight (from the event loop, after the kernel)."""
        pending = self._pending
        if pending is not None:
            with contextlib.suppress(Exception):  # retrieved here, reported by _collect
                await asyncio.wrap_future(pending)
            self._collect(pending)
