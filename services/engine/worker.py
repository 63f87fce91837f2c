"""The engine's job consumer: takes JobMessages off the bus, runs them, reports to results.

A message is acked only after its outcome (results or failure) is committed in
results; if results cannot be reached the handler raises, the message goes
back to the queue, and after the delivery limit it is dead-lettered (results
then fails the job visibly). The job's kind, as results' StartJob answers it,
picks its runner (services.engine.kinds).
"""

from __future__ import annotations

import logging

import grpc
from hindsight.bus.v1 import bus_pb2
from hindsight.results.v1 import results_pb2

from libs import telemetry
from libs.bus import JOBS_QUEUE, Bus, Consumer, Delivery
from services.engine.job_context import EngineShuttingDown, JobContext
from services.engine.kinds.registry import KindRunners
from services.engine.metrics import EngineMetrics

log = logging.getLogger(__name__)


class EngineWorker:
    """Runs jobs from the bus, up to `concurrency` at once (the bus's prefetch).

    A job whose tenant already runs as many jobs as it may (results' StartJob answers
    `retry_after_seconds`) is not run: its message is published again with that delay
    and this one acked, so the next message (another tenant's job) takes the slot.
    """

    def __init__(self, context: JobContext, bus: Bus, runners: KindRunners, *, concurrency: int = 1) -> None:
        self.context = context
        self.bus = bus
        self.runners = runners
        self.concurrency = max(1, concurrency)
        self.jobs_run = 0
        self.jobs_deferred = 0
        self.consumer: Consumer | None = None

    @property
    def metrics(self) -> EngineMetrics:
        return self.context.metrics

    async def start(self) -> None:
        self.consumer = await self.bus.consume(JOBS_QUEUE, self.handle, prefetch=self.concurrency)

    async def stop(self) -> None:
        """Stop taking jobs; a running job is interrupted and its message handed back."""
        self.context.stopping = True
        if self.consumer is not None:
            await self.consumer.cancel()

    async def handle(self, delivery: Delivery) -> None:
        ctx = self.context
        msg = bus_pb2.JobMessage.FromString(delivery.body)
        telemetry.annotate(job_id=msg.job_id)  # on the consume span and every log line of this job
        started = await ctx.call(ctx.stub.StartJob, results_pb2.StartJobRequest(job_id=msg.job_id, shard_id=msg.shard_id))
        if not started.proceed:
            if started.retry_after_seconds > 0:
                await self.defer(delivery, started.retry_after_seconds)
                return
            log.info("job not runnable any more; skipping", extra={"job_id": msg.job_id})
            return
        job = started.job
        runner = self.runners.get(job.job_kind)
        try:
            if runner is None:
                await ctx.fail(job.job_id, f"Unknown job kind {job.kind!r}")
            else:
                await runner.run(ctx, job, msg)
        except EngineShuttingDown:
            raise
        except grpc.aio.AioRpcError:
            # results refused a call for good (not transient): the message goes back and,
            # after the delivery limit, to the dead-letter queue, where results fails the job.
            raise
        except Exception as exc:  # a bug or bad data: fail the job visibly rather than loop
            log.exception("job failed", extra={"job_id": job.job_id})
            await ctx.fail(job.job_id, f"Engine error: {exc}", shard_id=msg.shard_id)
        self.jobs_run += 1

    async def defer(self, delivery: Delivery, seconds: float) -> None:
        """Queue the message again, reaching the engines after `seconds` (its tenant is at its
        running limit). Returning acks this delivery; if the publish fails the handler raises
        and the message goes back to the queue as it is."""
        headers = {k: v for k, v in delivery.headers.items() if not str(k).startswith("x-")}
        await self.bus.publish(JOBS_QUEUE, delivery.body, headers, delay_seconds=seconds)
        self.jobs_deferred += 1
        self.metrics.job_deferred()
        log.debug("job deferred: its tenant runs enough jobs already", extra={"seconds": seconds})
