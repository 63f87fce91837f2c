"""The notifier's consumers: job-ended events in, one attempt per delivery task.

- `hindsight.job-events` (JobEndedMessage): results records the event and
  creates its deliveries, queuing each one's first task (RecordEvent is
  idempotent per event id, so a redelivered event changes nothing).
- `hindsight.notify.deliveries` (DeliveryTask): claim the attempt at results,
  make it (webhook POST or email), report the outcome. Results then queues the
  retry through the broker's delay queue, or ends the delivery (dead-lettering
  it when it failed). Nothing here sleeps: waiting is the broker's job.
- `hindsight.notify.attempt-records` (FinishAttemptRequest): outcomes that
  could not be reported because results was unreachable, reported later, so a
  receiver that already got its webhook is not sent it again.

When results is unreachable, a message is put back with a growing delay
(1 s, 2 s, ... 60 s) instead of failing, so it never reaches a dead-letter
queue for a reason that passes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import grpc
from google.protobuf.json_format import MessageToDict
from hindsight.bus.v1 import bus_pb2
from hindsight.notify.v1 import notify_pb2, notify_pb2_grpc
from hindsight.results.v1 import results_pb2, results_pb2_grpc

from libs import telemetry
from libs.bus import JOB_EVENTS_QUEUE, NOTIFY_QUEUE, Bus, Consumer, Delivery
from services.notifier.attempt import DELIVERED, PERMANENT, AttemptResult
from services.notifier.mail import EmailSender, JobSummary
from services.notifier.metrics import NotifierMetrics
from services.notifier.payloads import callback_body, event_type
from services.notifier.retry import RetryPolicy
from services.notifier.webhook import WebhookSender

log = logging.getLogger(__name__)

NOTIFY_RECORDS_QUEUE = "hindsight.notify.attempt-records"
REQUEUE_HEADER = "x-hindsight-requeues"
MAX_REQUEUE_DELAY = 60.0
# A claim outlives the attempt's own timeout by this much (then another notifier may take over).
LEASE_MARGIN_SECONDS = 10.0
TOP_RESULTS = 10
# Results is down or restarting: worth trying again.
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _rfc3339_ms(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _parse_time(text: str, default: datetime) -> datetime:
    try:
        return datetime.fromisoformat(text) if text else default
    except ValueError:
        return default


class NotifierWorker:
    """Consumes the notifier's queues; all state lives at results."""

    def __init__(
        self,
        bus: Bus,
        channel: grpc.aio.Channel,
        webhooks: WebhookSender,
        emails: EmailSender,
        policy: RetryPolicy,
        metrics: NotifierMetrics,
        *,
        rpc_timeout: float = 10.0,
        concurrency: int = 8,
        rng: random.Random | None = None,
    ) -> None:
        self.bus = bus
        self.notifications = notify_pb2_grpc.NotificationsServiceStub(channel)
        self.results = results_pb2_grpc.ResultsServiceStub(channel)
        self.webhooks = webhooks
        self.emails = emails
        self.policy = policy
        self.metrics = metrics
        self.rpc_timeout = rpc_timeout
        self.concurrency = max(1, concurrency)
        self.rng = rng or random.Random()
        self._consumers: list[Consumer] = []
        self._inflight: set[asyncio.Task] = set()

    async def start(self) -> None:
        consume = self.bus.consume
        self._consumers.append(await consume(NOTIFY_RECORDS_QUEUE, self._tracked(self.on_record), prefetch=4))
        self._consumers.append(await consume(NOTIFY_QUEUE, self._tracked(self.on_task), prefetch=self.concurrency))
        self._consumers.append(await consume(JOB_EVENTS_QUEUE, self._tracked(self.on_job_ended), prefetch=4))

    def _tracked(self, handler: Callable[[Delivery], Awaitable[None]]) -> Callable[[Delivery], Awaitable[None]]:
        async def run(d: Delivery) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._inflight.add(task)
            try:
                await handler(d)
            finally:
                self._inflight.discard(task)

        return run

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop taking messages; attempts in flight finish and report (bounded by their own timeouts)."""
        while self._consumers:
            await self._consumers.pop().cancel()
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=timeout)

    async def _requeue(self, queue: str, d: Delivery, why: str) -> None:
        """Put the message back after a growing delay (results unreachable)."""
        n = int(d.headers.get(REQUEUE_HEADER, 0) or 0) + 1
        delay = min(2.0 ** (n - 1), MAX_REQUEUE_DELAY)
        log.warning("results unavailable (%s); message back on %s in %.0fs", why, queue, delay)
        await self.bus.publish(queue, d.body, {REQUEUE_HEADER: n}, delay_seconds=delay)

    # ------------------------------------------------------------ job-ended events

    async def on_job_ended(self, d: Delivery) -> None:
        try:
            event = bus_pb2.JobEndedMessage.FromString(d.body)
        except Exception:
            log.error("job event is not a JobEndedMessage; dropped")
            return
        telemetry.annotate(job_id=event.job_id)
        try:
            resp = await self.notifications.RecordEvent(
                notify_pb2.RecordEventRequest(event=event), timeout=self.rpc_timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in TRANSIENT_CODES:
                await self._requeue(JOB_EVENTS_QUEUE, d, exc.code().name)
                return
            log.error("job event refused by results: %s %s", exc.code().name, exc.details(),
                      extra={"job_id": event.job_id, "event_id": event.event_id})
            return
        if resp.created:
            self.metrics.events.inc()
            log.info("job event taken", extra={"job_id": event.job_id, "event_id": event.event_id,
                                               "deliveries": len(resp.deliveries)})

    # ------------------------------------------------------------ delivery attempts

    def lease_seconds(self, channel: str) -> float:
        timeout = self.emails.timeout_seconds if channel == "email" else self.webhooks.timeout_seconds
        return timeout + LEASE_MARGIN_SECONDS

    async def _job_summary(self, event: bus_pb2.JobEndedMessage) -> JobSummary:
        """What the email says about the job (raises AioRpcError when results is unreachable)."""
        payload_status = "completed" if event.status == "completed" else "failed"
        try:
            job = (await self.results.GetJob(
                results_pb2.GetJobRequest(tenant_id=event.tenant_id, job_id=event.job_id), timeout=self.rpc_timeout
            )).job
        except grpc.aio.AioRpcError as exc:
            if exc.code() in TRANSIENT_CODES:
                raise
            return JobSummary(job_id=event.job_id, status=payload_status)
        try:
            parameters = json.loads(job.parameters_json) if job.parameters_json else {}
        except json.JSONDecodeError:
            parameters = {}
        rows: list[dict] = []
        total = 0
        if job.sweep_run_id:
            try:
                best = await self.results.GetSweepBest(
                    results_pb2.GetSweepBestRequest(
                        tenant_id=event.tenant_id, sweep_run_id=job.sweep_run_id, limit=TOP_RESULTS
                    ),
                    timeout=self.rpc_timeout,
                )
                rows = [MessageToDict(r, preserving_proto_field_name=True) for r in best.results]
                total = best.total_results
            except grpc.aio.AioRpcError as exc:
                if exc.code() in TRANSIENT_CODES:
                    raise
        return JobSummary(
            job_id=job.job_id,
            status=payload_status,
            kind=job.job_kind,
            parameters=parameters if isinstance(parameters, dict) else {},
            results=rows,
            sweep_run_id=job.sweep_run_id,
            ticker=job.sweep.ticker if job.HasField("sweep") else "",
            error_message=job.error_message,
            total_results=total,
        )

    async def on_task(self, d: Delivery) -> None:
        try:
            task = notify_pb2.DeliveryTask.FromString(d.body)
        except Exception:
            log.error("delivery task is not a DeliveryTask; dropped")
            return
        telemetry.annotate(job_id=task.event.job_id)
        summary = None
        try:
            if task.channel == "email":
                summary = await self._job_summary(task.event)
            claim = await self.notifications.BeginAttempt(
                notify_pb2.BeginAttemptRequest(
                    delivery_id=task.delivery_id, task_id=task.task_id, lease_seconds=self.lease_seconds(task.channel)
                ),
                timeout=self.rpc_timeout,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in TRANSIENT_CODES:
                await self._requeue(NOTIFY_QUEUE, d, exc.code().name)
                return
            log.error("delivery task refused by results: %s %s", exc.code().name, exc.details(),
                      extra={"delivery_id": task.delivery_id})
            return
        if not claim.proceed:
            if claim.reason == "busy":
                # Another attempt holds it (or held it and died): look again when its claim lapses.
                await self.bus.publish(NOTIFY_QUEUE, d.body, {}, delay_seconds=max(0.5, claim.retry_after_seconds))
            return

        started = _utcnow()
        etype = event_type(task.event)
        if task.channel == "email":
            assert summary is not None
            url = "mailto:" + task.target
            result = await self.emails.send(self.emails.message(task.event, summary, task.target))
        else:
            url = task.target
            body = callback_body(task.event)
            # The POST's own span: its context is the `traceparent` the receiver gets.
            attempt = {"hindsight.attempt": claim.attempt}
            with telemetry.http_client_span("POST", url, name="webhook POST", **attempt) as s:
                headers = self.webhooks.request_headers(
                    body, claim.webhook_secret, task.event.event_id, etype, task.delivery_id, claim.attempt
                )
                result = await self.webhooks.send(url, body, headers)
                telemetry.end_http_span(s, result.status_code, result.error)
        outcome, delay, error = self._decide(result, claim, started)
        self.metrics.attempts.labels(channel=task.channel, result=outcome).inc()
        self.metrics.latency.labels(channel=task.channel).observe(result.latency_ms / 1000)
        log.info(
            "delivery attempt",
            extra={
                "delivery_id": task.delivery_id, "job_id": task.event.job_id, "event_id": task.event.event_id,
                "channel": task.channel, "attempt": claim.attempt, "outcome": outcome,
                "status_code": result.status_code, "error": error, "detail": result.detail or None,
                "latency_ms": round(result.latency_ms, 1),
                "retry_in_seconds": round(delay, 3) if delay is not None else None,
            },
        )
        request = notify_pb2.FinishAttemptRequest(
            delivery_id=task.delivery_id,
            task_id=task.task_id,
            attempt=claim.attempt,
            outcome=outcome,
            status_code=result.status_code or 0,
            error=error,
            latency_ms=result.latency_ms,
            started_at=_rfc3339_ms(started),
            retry_after_seconds=delay or 0.0,
            url=url,
        )
        await self._finish(request, task.channel)

    def _decide(self, result: AttemptResult, claim, started: datetime) -> tuple[str, float | None, str]:
        """(outcome, retry delay, error) of an attempt."""
        if result.kind == DELIVERED:
            return "delivered", None, ""
        if result.kind == PERMANENT:
            return "failed", None, result.error
        created = _parse_time(claim.delivery_created_at, started)
        delay = self.policy.next_delay(claim.attempt, created, _utcnow(), result.retry_after, self.rng)
        if delay is None:
            return "failed", None, f"{result.error} (gave up after {claim.attempt} attempts)"
        return "retry", delay, result.error

    async def _finish(self, request: notify_pb2.FinishAttemptRequest, channel: str) -> None:
        try:
            resp = await self.notifications.FinishAttempt(request, timeout=self.rpc_timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in TRANSIENT_CODES:
                log.error("attempt outcome refused by results: %s %s", exc.code().name, exc.details())
                return
            # Keep the outcome on the broker until results takes it: the attempt is not made again.
            log.warning("results unavailable; attempt outcome queued", extra={"delivery_id": request.delivery_id})
            await self.bus.publish(NOTIFY_RECORDS_QUEUE, request.SerializeToString(), {"x-hindsight-channel": channel})
            return
        self._count_end(resp, request.outcome, channel)

    def _count_end(self, resp: notify_pb2.FinishAttemptResponse, outcome: str, channel: str) -> None:
        if not resp.recorded or outcome == "retry":
            return
        self.metrics.deliveries.labels(channel=channel, outcome=outcome).inc()
        if outcome == "failed":
            self.metrics.dead_lettered.labels(channel=channel).inc()

    async def on_record(self, d: Delivery) -> None:
        try:
            request = notify_pb2.FinishAttemptRequest.FromString(d.body)
        except Exception:
            log.error("attempt record is not a FinishAttemptRequest; dropped")
            return
        try:
            resp = await self.notifications.FinishAttempt(request, timeout=self.rpc_timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in TRANSIENT_CODES:
                await self._requeue(NOTIFY_RECORDS_QUEUE, d, exc.code().name)
                return
            log.error("attempt outcome refused by results: %s %s", exc.code().name, exc.details())
            return
        self._count_end(resp, request.outcome, str(d.headers.get("x-hindsight-channel", "webhook")))
