"""Notifications: tenant settings, job-ended events, deliveries and their attempts.

Every function takes a `Session` inside the caller's transaction. The
notifier drives a delivery through three calls, each one transaction:

1. `record_event` (once per event id): stores the event, creates one delivery
   per target (the job's own webhook URL / email, else the tenant's defaults)
   and writes each delivery's first task to the outbox, so a task exists iff
   the delivery was committed.
2. `begin_attempt`: only the delivery's current task (`task_id`) may attempt
   it, and only one at a time (a lease, which lapses if the notifier dies
   mid-attempt). A duplicate task is dropped; a task whose delivery ended is
   dropped. The attempt is recorded (outcome `started`) before anything is
   sent, so an attempt cut off by a crash of the notifier or the broker still
   shows: the next claim of the delivery marks it `interrupted` (and lists show
   a `started` attempt whose lease lapsed as `interrupted` until then).
3. `finish_attempt`: records the attempt's outcome; on `retry` draws a new task token
   and writes the next task to the outbox with a delay header (the relay
   publishes it into the broker's delay queue), on `failed` writes the task
   to the dead-letter queue, on `delivered` ends the delivery. Recording the
   outcome and scheduling what follows commit together, so a crash between
   the two cannot lose a retry or schedule one twice.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from hindsight.bus.v1 import bus_pb2
from hindsight.notify.v1 import notify_pb2
from sqlalchemy.orm import Session

from libs.bus import JOB_EVENTS_QUEUE, NOTIFY_DEAD_QUEUE, NOTIFY_QUEUE
from services.results.background import DELAY_HEADER
from services.results.db import mark_outbox_added
from services.results.errors import FailedPrecondition, InvalidArgument, NotFound
from services.results.jobs import ENDED_STATES, add_outbox
from services.results.keys import tenant_exists
from services.results.models import Job, OutboxMessage
from services.results.models_notifications import Delivery, DeliveryAttempt, NotificationEvent, NotificationSettings
from services.results.timefmt import utcnow

log = logging.getLogger(__name__)

WEBHOOK, EMAIL = "webhook", "email"
CHANNELS = (WEBHOOK, EMAIL)
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
RETRY = "retry"
OUTCOMES = (DELIVERED, RETRY, FAILED)
# An attempt in progress, and one that never finished (its notifier or the broker died mid-attempt).
STARTED, INTERRUPTED = "started", "interrupted"
INTERRUPTED_ERROR = "interrupted: the attempt did not finish (the notifier or the broker stopped)"
MIN_SECRET_LENGTH, MAX_SECRET_LENGTH = 16, 128
MAX_TARGET_LENGTH = 2048
MAX_ERROR_LENGTH = 2000
# Longest claim an attempt may take, and longest retry delay results accepts.
MAX_LEASE_SECONDS = 600.0
MAX_RETRY_SECONDS = 2 * 86400.0


def new_secret() -> str:
    """A webhook signing secret: `whsec_` + 43 url-safe characters (256 bits)."""
    return "whsec_" + secrets.token_urlsafe(32)


def new_delivery_id() -> str:
    return "dlv_" + secrets.token_hex(10)


def new_task_id() -> str:
    return secrets.token_hex(16)


def rfc3339_ms(dt: datetime | None) -> str:
    """`2025-01-27T10:32:52.123Z` (attempt times need better than seconds); empty for None."""
    if dt is None:
        return ""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_time(text: str, default: datetime) -> datetime:
    """An RFC 3339 time from the notifier; `default` when empty or unreadable."""
    if not text:
        return default
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return default
    return dt if dt.tzinfo is not None else default


# ---------------------------------------------------------------- settings


def tenant_settings(session: Session, tenant_id: str) -> NotificationSettings:
    """The tenant's settings row, created (with a new signing secret) on first use."""
    row = session.get(NotificationSettings, tenant_id)
    if row is not None:
        return row
    if not tenant_exists(session, tenant_id):
        raise NotFound(f"tenant {tenant_id!r} not found")
    now = utcnow()
    row = NotificationSettings(
        tenant_id=tenant_id, webhook_url="", webhook_secret=new_secret(), notify_email="", created_at=now, updated_at=now
    )
    session.add(row)
    session.flush()
    return row


def update_settings(
    session: Session, tenant_id: str, *, webhook_url: str, notify_email: str, webhook_secret: str, rotate_secret: bool
) -> NotificationSettings:
    """Replace the defaults; the secret changes only when given or rotated (URL/email checks are the gateway's)."""
    if len(webhook_url) > MAX_TARGET_LENGTH or len(notify_email) > MAX_TARGET_LENGTH:
        raise InvalidArgument("webhook_url and notify_email must be at most 2048 characters")
    if webhook_secret and not MIN_SECRET_LENGTH <= len(webhook_secret) <= MAX_SECRET_LENGTH:
        raise InvalidArgument(f"webhook_secret must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters")
    if webhook_secret and rotate_secret:
        raise InvalidArgument("give webhook_secret or rotate_secret, not both")
    row = tenant_settings(session, tenant_id)
    row.webhook_url = webhook_url
    row.notify_email = notify_email
    if webhook_secret:
        row.webhook_secret = webhook_secret
    elif rotate_secret:
        row.webhook_secret = new_secret()
    row.updated_at = utcnow()
    return row


# ---------------------------------------------------------------- events and deliveries


def event_message(event: NotificationEvent) -> bus_pb2.JobEndedMessage:
    """The stored event as the broker message it came from."""
    return bus_pb2.JobEndedMessage(
        job_id=event.job_id,
        tenant_id=event.tenant_id,
        status=event.status,
        event_type=event.event_type,
        payload_json=json.dumps(event.payload),
        webhook_url=event.webhook_url,
        event_id=event.event_id,
    )


def _targets(session: Session, event: NotificationEvent, channel: str = "") -> list[tuple[str, str]]:
    """(channel, target) pairs of an event: the job's own URL/email, else the tenant's defaults."""
    job = session.get(Job, event.job_id)
    defaults = tenant_settings(session, event.tenant_id)
    webhook = event.webhook_url or defaults.webhook_url
    email = (job.notify_email if job is not None else "") or defaults.notify_email
    out = []
    if webhook and channel in ("", WEBHOOK):
        out.append((WEBHOOK, webhook))
    if email and channel in ("", EMAIL):
        out.append((EMAIL, email))
    return out


def _queue_task(session: Session, delivery: Delivery, event: bus_pb2.JobEndedMessage, delay_seconds: float = 0.0) -> None:
    """Write the delivery's current task to the outbox (published after commit, maybe delayed)."""
    task = notify_pb2.DeliveryTask(
        delivery_id=delivery.delivery_id,
        task_id=delivery.task_id,
        attempt=delivery.attempts + 1,
        channel=delivery.channel,
        target=delivery.target,
        event=event,
    )
    headers: dict[str, Any] = {}
    if delay_seconds > 0:
        headers[DELAY_HEADER] = round(float(delay_seconds), 3)
    add_outbox(session, NOTIFY_QUEUE, task.SerializeToString(), headers)


def _create_deliveries(
    session: Session, event: NotificationEvent, targets: list[tuple[str, str]], *, redelivery: bool
) -> list[Delivery]:
    now = utcnow()
    message = event_message(event)
    created = []
    for channel, target in targets:
        d = Delivery(
            delivery_id=new_delivery_id(),
            event_id=event.event_id,
            job_id=event.job_id,
            tenant_id=event.tenant_id,
            channel=channel,
            target=target,
            state=PENDING,
            attempts=0,
            redelivery=redelivery,
            task_id=new_task_id(),
            lease_until=None,
            next_attempt_at=now,
            created_at=now,
            completed_at=None,
        )
        session.add(d)
        _queue_task(session, d, message)
        created.append(d)
    session.flush()
    return created


# Oldest first; of one moment, webhook before email.
_DELIVERY_ORDER = (Delivery.created_at, Delivery.channel.desc(), Delivery.delivery_id)


def event_deliveries(session: Session, event_id: str) -> list[Delivery]:
    return list(session.scalars(sa.select(Delivery).where(Delivery.event_id == event_id).order_by(*_DELIVERY_ORDER)))


def record_event(session: Session, msg: bus_pb2.JobEndedMessage) -> tuple[list[Delivery], bool]:
    """Store a job-ended event and queue a delivery per target; a known event id changes nothing."""
    if not msg.event_id or not msg.job_id or not msg.tenant_id:
        raise InvalidArgument("event_id, job_id and tenant_id are required")
    existing = session.get(NotificationEvent, msg.event_id)
    if existing is not None:
        return event_deliveries(session, existing.event_id), False
    if session.get(Job, msg.job_id) is None:
        # The job was deleted before its event was processed: nothing to announce.
        raise NotFound(f"job {msg.job_id!r} not found")
    try:
        payload = json.loads(msg.payload_json) if msg.payload_json else {}
    except json.JSONDecodeError:
        raise InvalidArgument("payload_json is not valid JSON") from None
    if not isinstance(payload, dict):
        raise InvalidArgument("payload_json must be a JSON object")
    event = NotificationEvent(
        event_id=msg.event_id,
        job_id=msg.job_id,
        tenant_id=msg.tenant_id,
        event_type=msg.event_type,
        status=msg.status,
        payload=payload,
        webhook_url=msg.webhook_url,
        created_at=utcnow(),
    )
    session.add(event)
    session.flush()
    _create_deliveries(session, event, _targets(session, event), redelivery=False)
    return event_deliveries(session, event.event_id), True


@dataclass(frozen=True)
class AttemptClaim:
    """What begin_attempt decided."""

    proceed: bool
    reason: str = ""
    retry_after_seconds: float = 0.0
    attempt: int = 0
    webhook_secret: str = ""
    delivery_created_at: datetime | None = None


def _locked_delivery(session: Session, delivery_id: str) -> Delivery | None:
    return session.scalar(sa.select(Delivery).where(Delivery.delivery_id == delivery_id).with_for_update())


def begin_attempt(session: Session, delivery_id: str, task_id: str, lease_seconds: float) -> AttemptClaim:
    """Claim the attempt of task `task_id`, unless the delivery ended, the task is stale or another attempt runs."""
    d = _locked_delivery(session, delivery_id)
    if d is None:
        return AttemptClaim(False, "unknown")
    if d.state != PENDING:
        return AttemptClaim(False, "done")
    if d.task_id != task_id:
        return AttemptClaim(False, "stale")
    now = utcnow()
    if d.lease_until is not None and d.lease_until > now:
        return AttemptClaim(False, "busy", retry_after_seconds=(d.lease_until - now).total_seconds())
    cut_off = _attempt_row(session, d.delivery_id, d.attempts + 1)
    if cut_off is not None:
        # Claimed before, never finished: its notifier (or the broker) died mid-attempt.
        cut_off.outcome = INTERRUPTED
        cut_off.error = INTERRUPTED_ERROR
        d.attempts += 1
    d.lease_until = now + timedelta(seconds=min(max(lease_seconds, 1.0), MAX_LEASE_SECONDS))
    attempt = d.attempts + 1
    session.add(
        DeliveryAttempt(
            delivery_id=d.delivery_id,
            attempt=attempt,
            started_at=now,
            url=attempt_url(d),
            status_code=None,
            error="",
            latency_ms=0.0,
            outcome=STARTED,
        )
    )
    secret = tenant_settings(session, d.tenant_id).webhook_secret if d.channel == WEBHOOK else ""
    return AttemptClaim(True, attempt=attempt, webhook_secret=secret, delivery_created_at=d.created_at)


def attempt_url(d: Delivery) -> str:
    """Where an attempt of `d` goes: the URL, or mailto:address."""
    return d.target if d.channel == WEBHOOK else "mailto:" + d.target


def _attempt_row(session: Session, delivery_id: str, attempt: int) -> DeliveryAttempt | None:
    return session.scalar(
        sa.select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id, DeliveryAttempt.attempt == attempt)
    )


def shown_outcome(a: DeliveryAttempt, d: Delivery, now: datetime) -> str:
    """An attempt's outcome as lists show it: a `started` one whose claim lapsed was interrupted."""
    if a.outcome == STARTED and a.attempt == d.attempts + 1 and d.lease_until is not None and d.lease_until > now:
        return STARTED
    return INTERRUPTED if a.outcome == STARTED else a.outcome


@dataclass(frozen=True)
class AttemptOutcome:
    """An attempt as the notifier reports it."""

    delivery_id: str
    task_id: str
    attempt: int
    outcome: str
    status_code: int | None
    error: str
    latency_ms: float
    started_at: datetime
    retry_after_seconds: float
    url: str


def finish_attempt(session: Session, a: AttemptOutcome) -> tuple[bool, str]:
    """Record an attempt and do what follows it; (recorded, delivery state)."""
    if a.outcome not in OUTCOMES:
        raise InvalidArgument(f"outcome must be one of {', '.join(OUTCOMES)}")
    d = _locked_delivery(session, a.delivery_id)
    if d is None:
        raise NotFound(f"delivery {a.delivery_id!r} not found")
    if d.state != PENDING or d.task_id != a.task_id or a.attempt != d.attempts + 1:
        return False, d.state  # recorded before (a retried call) or superseded
    now = utcnow()
    row = _attempt_row(session, d.delivery_id, a.attempt)  # recorded `started` by begin_attempt
    if row is None:  # claimed by a results version that did not record started attempts
        row = DeliveryAttempt(delivery_id=d.delivery_id, attempt=a.attempt)
        session.add(row)
    row.started_at = a.started_at
    row.url = a.url[:MAX_TARGET_LENGTH + 16] or attempt_url(d)
    row.status_code = a.status_code
    row.error = a.error[:MAX_ERROR_LENGTH]
    row.latency_ms = max(0.0, float(a.latency_ms))
    row.outcome = a.outcome
    d.attempts = a.attempt
    d.lease_until = None
    event = session.get(NotificationEvent, d.event_id)
    assert event is not None  # deliveries cascade with their event
    if a.outcome == RETRY:
        delay = min(max(0.0, a.retry_after_seconds), MAX_RETRY_SECONDS)
        d.task_id = new_task_id()
        d.next_attempt_at = now + timedelta(seconds=delay)
        _queue_task(session, d, event_message(event), delay)
    else:
        d.state = a.outcome
        d.completed_at = now
        d.next_attempt_at = None
        if a.outcome == FAILED:
            # The undeliverable event, with its task, goes to the dead-letter queue for operators.
            task = notify_pb2.DeliveryTask(
                delivery_id=d.delivery_id,
                task_id=d.task_id,
                attempt=a.attempt,
                channel=d.channel,
                target=d.target,
                event=event_message(event),
            )
            add_outbox(
                session,
                NOTIFY_DEAD_QUEUE,
                task.SerializeToString(),
                {"x-hindsight-error": a.error[:500], "x-hindsight-attempts": a.attempt},
            )
    return True, d.state


# ---------------------------------------------------------------- the API's views


def job_event(session: Session, tenant_id: str, job_id: str) -> tuple[Job, NotificationEvent | None]:
    """The tenant's job and its final event (None until the notifier recorded it)."""
    job = session.scalar(sa.select(Job).where(Job.job_id == job_id, Job.tenant_id == tenant_id))
    if job is None:
        raise NotFound(f"job {job_id!r} not found")
    event = session.scalar(
        sa.select(NotificationEvent)
        .where(NotificationEvent.job_id == job_id)
        .order_by(NotificationEvent.created_at.desc())
        .limit(1)
    )
    return job, event


def list_deliveries(
    session: Session, tenant_id: str, job_id: str
) -> tuple[NotificationEvent | None, list[tuple[Delivery, list[DeliveryAttempt]]]]:
    """A job's deliveries, oldest first, each with its attempts."""
    _, event = job_event(session, tenant_id, job_id)
    deliveries = list(
        session.scalars(
            sa.select(Delivery).where(Delivery.job_id == job_id).order_by(*_DELIVERY_ORDER)
        )
    )
    by_delivery: dict[str, list[DeliveryAttempt]] = {d.delivery_id: [] for d in deliveries}
    if deliveries:
        for a in session.scalars(
            sa.select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_(list(by_delivery)))
            .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.attempt)
        ):
            by_delivery[a.delivery_id].append(a)
    return event, [(d, by_delivery[d.delivery_id]) for d in deliveries]


def redeliver(session: Session, tenant_id: str, job_id: str, channel: str) -> tuple[NotificationEvent, list[Delivery]]:
    """New deliveries of the job's final event (same event id) to its current targets."""
    if channel not in ("", *CHANNELS):
        raise InvalidArgument(f"channel must be one of {', '.join(CHANNELS)} (or empty for all)")
    job, event = job_event(session, tenant_id, job_id)
    if event is None:
        if job.state not in ENDED_STATES:
            raise FailedPrecondition(f"job {job_id} has not ended yet: there is no final event to send")
        raise FailedPrecondition(f"the final event of job {job_id} has not been processed yet; retry shortly")
    targets = _targets(session, event, channel)
    if not targets:
        what = {"webhook": "webhook URL", "email": "email address"}.get(channel, "webhook URL or email address")
        raise FailedPrecondition(f"job {job_id} has no {what}, and the tenant has no default one")
    return event, _create_deliveries(session, event, targets, redelivery=True)


# ---------------------------------------------------------------- standalone restart


def requeue_pending(session: Session) -> int:
    """Standalone restart: the in-memory bus lost every task, so queue each pending delivery's task again.

    A new token per delivery makes any task of the previous process stale.
    """
    now = utcnow()
    pending = list(session.scalars(sa.select(Delivery).where(Delivery.state == PENDING).order_by(Delivery.created_at)))
    events: dict[str, bus_pb2.JobEndedMessage] = {}
    for d in pending:
        if d.event_id not in events:
            event = session.get(NotificationEvent, d.event_id)
            assert event is not None
            events[d.event_id] = event_message(event)
        d.task_id = new_task_id()
        d.lease_until = None
        due = d.next_attempt_at or now
        _queue_task(session, d, events[d.event_id], max(0.0, (due - now).total_seconds()))
    return len(pending)


def resend_unrecorded_events(session: Session, since: datetime, limit: int = 10_000) -> int:
    """Standalone restart: job-ended events published (to the lost in-memory queue) but never
    recorded by the notifier are marked unsent, so the relay publishes them again."""
    rows = list(
        session.execute(
            sa.select(OutboxMessage.id, OutboxMessage.body)
            .where(
                OutboxMessage.queue == JOB_EVENTS_QUEUE,
                OutboxMessage.sent_at.is_not(None),
                OutboxMessage.created_at >= since,
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
    )
    by_event: dict[str, int] = {}
    for row_id, body in rows:
        try:
            by_event[bus_pb2.JobEndedMessage.FromString(body).event_id] = row_id
        except Exception:
            log.debug("outbox row %s is not a JobEndedMessage", row_id)
    if not by_event:
        return 0
    known = set(
        session.scalars(sa.select(NotificationEvent.event_id).where(NotificationEvent.event_id.in_(list(by_event))))
    )
    ids = [row_id for event_id, row_id in by_event.items() if event_id not in known]
    if ids:
        session.execute(sa.update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(sent_at=None))
        mark_outbox_added(session)
    return len(ids)
