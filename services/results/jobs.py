"""The job lifecycle every kind shares: the state machine, the event log and the messages it emits.

Every function takes a `Session` inside the caller's transaction; a state
change, its final event and its outbox message are written together. Job rows
are locked (`SELECT ... FOR NO KEY UPDATE`) before a change, so concurrent
requests on one job (engine progress, a user's cancel, the timeout watchdog,
another replica) apply one after the other. NO KEY: a job's key never changes,
and the lock then leaves alone the key-share locks that Postgres' foreign-key
checks take, so a transaction writing a shard's row (whose foreign key names the
job) never waits for the job's row.

What a kind adds (its spec, its rows, its final event and notification) comes
from its handler (services.results.kinds, a layer above this module): the
functions that end a job of any kind take the registry (`KindLookup`), a kind's
own code passes its `finish`.

Job event payloads are the seed's SSE shapes:
- progress `{"percent": 42.5, "message": "...", "timestamp": "...Z"}`
- done `{"done": true, "status": "completed", ..., "timestamp"}` (the kind adds its fields)
- error `{"error": true, "message": "...", "status": "failed"|"cancelled", "timestamp"}`
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from google.protobuf.message import Message
from hindsight.bus.v1 import bus_pb2
from hindsight.jobs.v1 import jobs_pb2
from sqlalchemy.orm import Session

from libs.bus import JOB_EVENTS_QUEUE, JOBS_QUEUE
from services.results.db import mark_job_event_added, mark_outbox_added
from services.results.errors import FailedPrecondition, InvalidArgument, NotFound
from services.results.keys import tenant_exists
from services.results.metrics import note_job_ended
from services.results.models import Job, JobEvent, OutboxMessage
from services.results.models_universes import SweepShard
from services.results.timefmt import rfc3339, utcnow
from services.results.trace_context import trace_headers

QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = "queued", "running", "completed", "failed", "cancelled"
ACTIVE_STATES = (QUEUED, RUNNING)
ENDED_STATES = (COMPLETED, FAILED, CANCELLED)
TERMINAL_EVENT_TYPES = ("done", "error")
CANCELLED_MESSAGE = "Job cancelled"
QUEUED_MESSAGE = "Job queued"
log = logging.getLogger(__name__)


# ---------------------------------------------------------------- what a kind gives the lifecycle


@dataclass(frozen=True)
class Submission:
    """A SubmitJob request, checked for what every kind shares, on its way to the kind's handler."""

    tenant_id: str
    kind: jobs_pb2.JobKind.ValueType
    # The handler's public name: what the job row stores as its kind.
    kind_name: str
    # The kind's spec message (the request's field `KindHandler.spec_field`).
    spec: Message
    parameters: Any
    webhook_url: str
    notify_email: str
    timeout_seconds: int
    trace_id: str
    # Trace headers of the submitting call, for the job's queue messages.
    headers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobEnd:
    """What a kind says when one of its jobs ends (completed, failed or cancelled)."""

    # Data of the stream's final event (type "done" when completed, else "error").
    event: dict[str, Any]
    # Type of the job-ended notification (sweep.completed, backtest.failed, ...).
    event_type: str
    # The notification's payload: the webhook body, in the seed's callback shape.
    payload: dict[str, Any]


# A kind's `finish`: (session, job, end state, error message, end time RFC 3339) -> JobEnd.
Finish = Callable[[Session, Job, str, str, str], JobEnd]


class Kind(Protocol):
    """What the lifecycle needs of a job's kind (services.results.kinds.KindHandler is one)."""

    kind: jobs_pb2.JobKind.ValueType
    # Whether one job may be several JobMessages (shards): a StartJob of a running job is
    # then another shard starting, not a restart after a crash.
    sharded: bool

    def finish(self, session: Session, job: Job, state: str, error_message: str, ts: str) -> JobEnd:
        """The kind's part of ending a job (`end_job` calls it with the row locked and its
        state set): its own bookkeeping, the final event and the notification."""
        ...


class KindLookup(Protocol):
    """The registry of kinds (services.results.kinds.registry), as the lifecycle needs it."""

    def for_job(self, job: Job) -> Kind:
        """The kind of a stored job."""
        ...


# ---------------------------------------------------------------- helpers


def percent(value: float) -> float | int:
    """0..100 with one decimal; whole numbers as ints (`50`, not `50.0`, like the seed)."""
    p = round(min(100.0, max(0.0, float(value))), 1)
    return int(p) if p.is_integer() else p


def add_outbox(session: Session, queue: str, body: bytes, headers: dict[str, Any] | None = None) -> None:
    """Queue a broker message to be published by the relay once this transaction commits.

    It keeps the trace context of the call that wrote it (when tracing is on), so the
    relay's publish and its consumer join that call's trace.
    """
    headers = {**trace_headers(), **(headers or {})}
    session.add(OutboxMessage(queue=queue, body=body, headers=headers, created_at=utcnow(), sent_at=None))
    mark_outbox_added(session)


def append_event(session: Session, job: Job, type_: str, data: dict[str, Any]) -> JobEvent:
    """Append the job's next event (the job row must be locked by this transaction)."""
    job.last_event_seq += 1
    event = JobEvent(job_id=job.job_id, seq=job.last_event_seq, type=type_, data=data, created_at=utcnow())
    session.add(event)
    mark_job_event_added(session, job.job_id)
    return event


def locked_job(session: Session, job_id: str, tenant_id: str | None = None) -> Job:
    """The job's row, locked until the transaction ends (NOT_FOUND when unknown, or another tenant's).

    Its attributes are read again under the lock, even when the session already holds the
    row (read before, unlocked): what another transaction committed meanwhile (the last
    event's seq, the state) must not be overwritten with the older values."""
    q = _for_update(job_id, skip_locked=False)
    if tenant_id is not None:
        q = q.where(Job.tenant_id == tenant_id)
    job = session.scalar(q)
    if job is None:
        raise NotFound(f"job {job_id!r} not found")
    return job


def locked_job_if_free(session: Session, job_id: str) -> Job | None:
    """The job's row, locked until the transaction ends, if no other transaction holds it
    now (None then, or when unknown); on SQLite, where writes take turns, always locked."""
    return session.scalar(_for_update(job_id, skip_locked=True))


def _for_update(job_id: str, *, skip_locked: bool) -> sa.Select[tuple[Job]]:
    return (sa.select(Job).where(Job.job_id == job_id).with_for_update(skip_locked=skip_locked, key_share=True)
            .execution_options(populate_existing=True))


def job_message(job: Job, kind: jobs_pb2.JobKind.ValueType, **shard: Any) -> bytes:
    """The JobMessage that asks an engine to run `job` (or the shard of it that `shard` names)."""
    return bus_pb2.JobMessage(job_id=job.job_id, tenant_id=job.tenant_id, job_kind=kind, **shard).SerializeToString()


def end_job(session: Session, job: Job, state: str, finish: Finish, *, error_message: str = "") -> None:
    """Move an active job to an end state: row, final event (from the kind's `finish`) and
    JobEnded outbox message together."""
    now = utcnow()
    job.state = state
    job.completed_at = now
    if state == COMPLETED:
        job.percent = 100.0
        job.progress_message = "Completed"
    else:
        job.error_message = error_message
    end = finish(session, job, state, error_message, rfc3339(now))
    append_event(session, job, "done" if state == COMPLETED else "error", end.event)
    ended = bus_pb2.JobEndedMessage(
        job_id=job.job_id,
        tenant_id=job.tenant_id,
        status=state,
        event_type=end.event_type,
        payload_json=json.dumps(end.payload),
        webhook_url=job.webhook_url,
        event_id=str(uuid.uuid4()),
    )
    # add_outbox attaches the trace context of the call that ended the job (engine, user, watchdog).
    add_outbox(session, JOB_EVENTS_QUEUE, ended.SerializeToString())
    note_job_ended(session, job, state)


# ---------------------------------------------------------------- user side


def check_tenant(session: Session, tenant_id: str) -> None:
    if not tenant_exists(session, tenant_id):
        raise NotFound(f"tenant {tenant_id!r} not found")


def queued_job(
    submission: Submission,
    *,
    job_id: str,
    combinations: int,
    estimated_duration_seconds: int,
    now: datetime,
    bar_pairs: int = 0,
    sweep_spec: dict[str, Any] | None = None,
) -> Job:
    """A new job's row, queued at `now` (the caller adds it, then its first event and
    messages: `append_queued_event`, `queue_job`)."""
    return Job(
        job_id=job_id,
        tenant_id=submission.tenant_id,
        kind=submission.kind_name,
        state=QUEUED,
        parameters=submission.parameters,
        sweep_spec=sweep_spec,
        webhook_url=submission.webhook_url,
        notify_email=submission.notify_email,
        timeout_seconds=submission.timeout_seconds,
        created_at=now,
        deadline_at=now + timedelta(seconds=submission.timeout_seconds),
        started_at=None,
        completed_at=None,
        error_message="",
        percent=0.0,
        progress_message=QUEUED_MESSAGE,
        sweep_run_id=None,
        combinations=combinations,
        estimated_duration_seconds=estimated_duration_seconds,
        bar_pairs=bar_pairs,
        metrics=None,
        trace_id=submission.trace_id,
        last_event_seq=0,
    )


def append_queued_event(session: Session, job: Job) -> None:
    """A new job's first event: queued, at its creation time."""
    append_event(session, job, "progress", {"percent": 0, "message": QUEUED_MESSAGE, "timestamp": rfc3339(job.created_at)})


def queue_job(session: Session, job: Job, submission: Submission, shards: list[dict[str, Any]] | None = None) -> None:
    """The job's JobMessages in the outbox: one, or one per shard (JobMessage fields naming it)."""
    for shard in shards or [{}]:
        add_outbox(session, JOBS_QUEUE, job_message(job, submission.kind, **shard), submission.headers)


def get_job(session: Session, tenant_id: str, job_id: str) -> Job:
    job = session.scalar(sa.select(Job).where(Job.job_id == job_id, Job.tenant_id == tenant_id))
    if job is None:
        raise NotFound(f"job {job_id!r} not found")
    return job


def get_job_any(session: Session, job_id: str) -> Job:
    """A job of any tenant (the engines' side)."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id!r} not found")
    return job


def list_jobs(session: Session, tenant_id: str, limit: int, offset: int, state: str | None) -> tuple[list[Job], int]:
    where = [Job.tenant_id == tenant_id]
    if state:
        where.append(Job.state == state)
    total = session.scalar(sa.select(sa.func.count()).select_from(Job).where(*where)) or 0
    rows = session.scalars(
        sa.select(Job).where(*where).order_by(Job.created_at.desc(), Job.job_id.desc()).limit(limit).offset(offset)
    )
    return list(rows), int(total)


def cancel_job(session: Session, kinds: KindLookup, tenant_id: str, job_id: str) -> Job:
    job = locked_job(session, job_id, tenant_id)
    if job.state not in ACTIVE_STATES:
        raise FailedPrecondition(f"job already {job.state}")
    end_job(session, job, CANCELLED, kinds.for_job(job).finish, error_message=CANCELLED_MESSAGE)
    return job


def events_after(session: Session, job_id: str, after_seq: int, limit: int = 500) -> list[JobEvent]:
    return list(
        session.scalars(
            sa.select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > after_seq).order_by(JobEvent.seq).limit(limit)
        )
    )


# ---------------------------------------------------------------- engine side


def start_job(session: Session, kinds: KindLookup, job: Job) -> tuple[bool, Job]:
    """Queued → running (or running again after an engine crash); False for ended jobs.
    `job` is locked by the caller's transaction (`locked_job`)."""
    if job.state not in ACTIVE_STATES:
        return False, job
    if job.state == RUNNING and kinds.for_job(job).sharded:
        return True, job  # another shard of a job that is already running
    now = utcnow()
    message = "Job started" if job.state == QUEUED else "Job restarted after an interruption"
    job.state = RUNNING
    # A redelivery keeps the first start: the job's run time counts from there.
    job.started_at = job.started_at or now
    job.progress_message = message
    append_event(session, job, "progress", {"percent": percent(job.percent), "message": message, "timestamp": rfc3339(now)})
    return True, job


def report_progress(session: Session, job_id: str, percent_done: float, message: str) -> tuple[bool, str]:
    """Record progress of a running job; (stop, reason) tells the engine whether to give up."""
    if not math.isfinite(percent_done):
        raise InvalidArgument("percent must be a number between 0 and 100")
    job = locked_job(session, job_id)
    if job.state == RUNNING:
        p = percent(percent_done)
        job.percent = float(p)
        job.progress_message = message
        append_event(session, job, "progress", {"percent": p, "message": message, "timestamp": rfc3339(utcnow())})
        return False, ""
    return stop_reason(job)


def stop_reason(job: Job) -> tuple[bool, str]:
    """(stop, reason) for an engine working on `job` that is not running (False for a queued one)."""
    if job.state in (QUEUED, RUNNING):
        return False, ""
    if job.state == CANCELLED:
        return True, "job cancelled"
    if job.state == FAILED:
        return True, f"job failed: {job.error_message}"
    return True, "job already completed"


def fail_job(session: Session, kinds: KindLookup, job_id: str, error_message: str) -> Job:
    """Running/queued → failed; an ended job is returned unchanged."""
    job = locked_job(session, job_id)
    if job.state in ACTIVE_STATES:
        end_job(session, job, FAILED, kinds.for_job(job).finish, error_message=error_message or "Job failed")
    return job


# ---------------------------------------------------------------- supervision


def overdue_job_ids(session: Session, now: datetime, limit: int = 100) -> list[str]:
    return list(
        session.scalars(
            sa.select(Job.job_id)
            .where(Job.state.in_(ACTIVE_STATES), Job.deadline_at < now)
            .order_by(Job.deadline_at)
            .limit(limit)
        )
    )


def time_out_job(session: Session, kinds: KindLookup, job_id: str, now: datetime) -> bool:
    """Fail an active job whose deadline passed; False when it ended meanwhile."""
    job = locked_job(session, job_id)
    if job.state not in ACTIVE_STATES or job.deadline_at >= now:
        return False
    timeout = job.timeout_seconds
    message = f"Job timed out after {timeout} second{'' if timeout == 1 else 's'}"
    end_job(session, job, FAILED, kinds.for_job(job).finish, error_message=message)
    return True


def fail_dead_lettered(session: Session, kinds: KindLookup, job_id: str, attempts: int) -> bool:
    """Fail a job whose message exhausted its deliveries; False when unknown or already ended."""
    try:
        job = locked_job(session, job_id)
    except NotFound:
        return False
    if job.state not in ACTIVE_STATES:
        return False
    message = f"Job could not be processed after {attempts} attempts"
    end_job(session, job, FAILED, kinds.for_job(job).finish, error_message=message)
    return True


def fail_dead_lettered_shard(session: Session, kinds: KindLookup, job_id: str, shard_id: str, attempts: int) -> bool:
    """A shard whose message exhausted its deliveries: its kind's `fail_shard` decides (a
    universe sweep's ticker fails alone, a walk-forward's fold fails the job); a kind without
    shards fails the job. False when unknown or ended."""
    try:
        job = locked_job(session, job_id)
    except NotFound:
        return False
    if job.state not in ACTIVE_STATES:
        return False
    fail_shard = getattr(kinds.for_job(job), "fail_shard", None)
    message = f"Shard could not be processed after {attempts} attempts"
    if fail_shard is None:
        end_job(session, job, FAILED, kinds.for_job(job).finish, error_message=message)
    else:
        fail_shard(session, job_id, shard_id, message)
    return True


def prune_sent_outbox(session: Session, older_than: datetime) -> int:
    """Delete outbox rows published before `older_than` (they are only kept for inspection)."""
    result = session.execute(
        sa.delete(OutboxMessage).where(OutboxMessage.sent_at.is_not(None), OutboxMessage.sent_at < older_than)
    )
    return int(result.rowcount or 0)


def requeue_active_jobs(session: Session, kinds: KindLookup) -> int:
    """Standalone restart: the in-memory queue is gone, so queue a JobMessage again for every
    active job (one per shard not ended, for a sharded job).

    Unsent job messages are marked sent first so each job is queued once.
    """
    now = utcnow()
    session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.queue == JOBS_QUEUE, OutboxMessage.sent_at.is_(None))
        .values(sent_at=now)
    )
    jobs = list(session.scalars(sa.select(Job).where(Job.state.in_(ACTIVE_STATES)).order_by(Job.created_at)))
    for job in jobs:
        # A sharded job (services.results.shards): one message per shard not ended yet.
        pending = session.scalars(
            sa.select(SweepShard.shard_id).where(SweepShard.job_id == job.job_id, SweepShard.state.not_in(ENDED_STATES))
            .order_by(SweepShard.position, SweepShard.chunk)
        ).all()
        for shard in [{"shard_id": sid} for sid in pending] or [{}]:
            add_outbox(session, JOBS_QUEUE, job_message(job, kinds.for_job(job).kind, **shard), {})
    return len(jobs)
