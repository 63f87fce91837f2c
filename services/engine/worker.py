"""The engine's job consumer: takes JobMessages off the bus, runs them, reports to results.

A message is acked only after its outcome (results or failure) is committed in
results; if results cannot be reached the handler raises, the message goes
back to the queue, and after the delivery limit it is dead-lettered (results
then fails the job visibly).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

import grpc
import numpy as np
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter
from hindsight.bus.v1 import bus_pb2
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2, results_pb2_grpc

from libs import telemetry
from libs.bus import JOBS_QUEUE, Bus, Consumer, Delivery
from domain.sweep import sweep_combos
from services.engine.bars import Bars
from services.engine.metrics import EngineMetrics

log = logging.getLogger(__name__)

# The percent range of the stream that the kernel's bar progress maps onto.
_KERNEL_START, _KERNEL_END = 5.0, 95.0


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


def insufficient_data(ticker: str) -> str:
    """The seed's failure message for a ticker without (enough) bars."""
    return f"Insufficient historical data for ticker {ticker}"


class EngineShuttingDown(Exception):
    """Raised out of a handler so the bus hands the message back (nack + requeue)."""


_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() in _TRANSIENT


class EngineWorker:
    """Runs jobs from the bus; one at a time per worker (prefetch 1)."""

    def __init__(self, stub: results_pb2_grpc.ResultsServiceStub, bus: Bus, rpc_timeout: float = 30.0) -> None:
        self.stub = stub
        self.bus = bus
        self.rpc_timeout = rpc_timeout
        self.cache = BarsCache()
        self.jobs_run = 0
        self.consumer: Consumer | None = None
        # Set on shutdown: a running sweep stops at its next progress point and its
        # message goes back to the queue for another replica (never acked unfinished).
        self.stopping = False
        # DayBacktestService stub of results (set by the wiring) for day-by-day jobs.
        self.day_stub = None
        self.metrics = EngineMetrics()

    async def start(self) -> None:
        self.consumer = await self.bus.consume(JOBS_QUEUE, self.handle, prefetch=1)

    async def stop(self) -> None:
        """Stop taking jobs; a running sweep is interrupted and its message handed back."""
        self.stopping = True
        if self.consumer is not None:
            await self.consumer.cancel()

    async def call(self, method, request, timeout: float | None = None):
        """A unary call to results that waits out results being unreachable.

        The job's message stays unacked meanwhile, so a restart of results
        costs no delivery attempt; a shutdown of the engine hands it back.
        """
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_is_transient), wait=wait_exponential_jitter(multiplier=0.2, max=5), reraise=True
        ):
            with attempt:
                return await method(request, timeout=timeout or self.rpc_timeout)

    async def handle(self, delivery: Delivery) -> None:
        msg = bus_pb2.JobMessage.FromString(delivery.body)
        telemetry.annotate(job_id=msg.job_id)  # on the consume span and every log line of this job
        started = await self.call(self.stub.StartJob, results_pb2.StartJobRequest(job_id=msg.job_id))
        if not started.proceed:
            log.info("job not runnable any more; skipping", extra={"job_id": msg.job_id})
            return
        job = started.job
        try:
            if job.kind == "trading-sweep":
                await self._run_sweep(job)
            elif job.kind == "day-backtest":
                from services.engine.daybyday_job import run_day_backtest_job

                await run_day_backtest_job(self, job, msg)
            else:
                await self._fail(job.job_id, f"Unknown job kind {job.kind!r}")
        except EngineShuttingDown:
            raise
        except grpc.aio.AioRpcError:
            # results refused a call for good (not transient): the message goes back and,
            # after the delivery limit, to the dead-letter queue, where results fails the job.
            raise
        except Exception as exc:  # a bug or bad data: fail the job visibly rather than loop
            log.exception("job failed", extra={"job_id": job.job_id})
            await self._fail(job.job_id, f"Engine error: {exc}")
        self.jobs_run += 1

    async def _fail(self, job_id: str, message: str) -> None:
        await self.call(self.stub.FailJob, results_pb2.FailJobRequest(job_id=job_id, error_message=message))

    async def _progress(self, job_id: str, percent: float, message: str) -> results_pb2.ReportProgressResponse:
        return await self.call(
            self.stub.ReportProgress, results_pb2.ReportProgressRequest(job_id=job_id, percent=percent, message=message)
        )

    async def _run_sweep(self, job: jobs_pb2.Job) -> None:
        from services.engine.sweep import SweepCancelled, run_sweep

        spec = job.sweep
        combos = sweep_combos(spec.fast_min, spec.fast_max, spec.slow_min, spec.slow_max, spec.step)
        if (await self._progress(job.job_id, 1.0, "Loading historical data")).stop:
            return
        resolved = await self.call(
            self.stub.ResolveDataset,
            results_pb2.ResolveDatasetRequest(tenant_id=job.tenant_id, ticker=spec.ticker, interval=spec.interval),
        )
        if not resolved.found:
            await self._fail(job.job_id, insufficient_data(spec.ticker))
            return
        bars = await self.cache.get(self.stub, resolved.dataset, resolved.version_id)
        longest = max(s for _, s in combos) if combos else 0
        # The slow average needs `longest` bars, and a signal needs a next bar to fill on.
        if len(bars.close) < longest + 2:
            await self._fail(job.job_id, insufficient_data(spec.ticker))
            return

        loop = asyncio.get_running_loop()
        n_combos, n_bars = len(combos), len(bars.close)

        def on_progress(fraction: float) -> bool:
            if self.stopping:
                return False
            # Called from the kernel's thread between chunks; a few times a second at most.
            pct = _KERNEL_START + (_KERNEL_END - _KERNEL_START) * fraction
            done = int(round(fraction * n_combos * n_bars / max(n_bars, 1)))
            text = f"Processing {min(done, n_combos)}/{n_combos} combinations ({fraction * 100:.0f}% of {n_bars} bars)"
            fut = asyncio.run_coroutine_threadsafe(self._progress(job.job_id, pct, text), loop)
            try:
                return not fut.result(timeout=self.rpc_timeout).stop
            except Exception:
                fut.cancel()
                # Progress is advisory; losing one report must not kill the run.
                log.warning("progress report failed", extra={"job_id": job.job_id}, exc_info=True)
                return True

        t0 = time.perf_counter()
        try:
            rows = await asyncio.to_thread(
                run_sweep,
                bars,
                spec.strategy_type or "SMA",
                combos,
                direction=spec.direction or "long",
                fill=spec.fill or "next_open",
                commission_pct=spec.commission_pct,
                slippage_pct=spec.slippage_pct,
                initial_cash=spec.initial_cash or 10_000.0,
                progress=on_progress,
            )
        except SweepCancelled:
            if self.stopping:
                raise EngineShuttingDown(f"engine shutting down; job {job.job_id} handed back to the queue")
            log.info("sweep stopped on request", extra={"job_id": job.job_id})
            return
        elapsed = time.perf_counter() - t0
        self.metrics.observe_sweep(n_combos, n_bars, elapsed)
        await self._progress(job.job_id, 98.0, "Storing results")
        results = [
            results_pb2.SweepResult(ticker=spec.ticker, strategy_type=spec.strategy_type or "SMA", **_clean(row))
            for row in rows
        ]
        await self.call(
            self.stub.CompleteSweep,
            results_pb2.CompleteSweepRequest(
                job_id=job.job_id, results=results, execution_time_seconds=elapsed, bars=n_bars,
                dataset_version_id=resolved.version_id,
            ),
            timeout=max(self.rpc_timeout, 60.0),
        )
        log.info(
            "sweep done",
            extra={"job_id": job.job_id, "combos": n_combos, "bars": n_bars, "seconds": round(elapsed, 3)},
        )


def _clean(row: dict) -> dict:
    """Drop None values so proto3 `optional` fields stay unset (→ JSON null)."""
    return {k: v for k, v in row.items() if v is not None}
