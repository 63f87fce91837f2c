"""Job kinds as results sees them: one handler per kind, behind one protocol.

A kind is a `hindsight.jobs.v1.JobKind`, the spec message that travels in the
`spec` oneof of SubmitJobRequest and Job, and a handler here:

- `sweep.py`: JOB_KIND_SWEEP (SweepSpec; services.results.sweeps);
- `day_by_day.py`: JOB_KIND_DAY_BY_DAY (DayBacktestSpec; services.results.day_by_day).

`registry.py` is the one registry: it dispatches SubmitJob and StartJob, and the
job ends that are the same for every kind (cancel, engine failure, timeout,
dead letter), to the job's handler, and it is the one place where a JobKind
meets its public name (the API's job `kind`, the `jobs.kind` column). What
every kind shares (states, events, the outbox, progress) is services.results.jobs.
This module imports nothing that imports it back: handlers and jobs both use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf.message import Message
from hindsight.jobs.v1 import jobs_pb2
from sqlalchemy.orm import Session

from services.results.models import Job


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


class KindHandler(Protocol):
    """One kind of job in results."""

    # The kind, and its public name (API job "kind", `jobs.kind`, metrics label); both unique.
    kind: jobs_pb2.JobKind.ValueType
    name: str
    # The field of the `spec` oneof (SubmitJobRequest, Job) that carries the kind's spec.
    spec_field: str
    # Whether one job may be several JobMessages (shards): a StartJob of a running job is
    # then another shard starting, not a restart after a crash.
    sharded: bool

    def submit(self, session: Session, submission: Submission) -> Job:
        """Validate the spec and create the job: its row (and the kind's own rows), its
        first event and its JobMessage(s) in the outbox, in the caller's transaction."""
        ...

    def describe(self, session: Session | None, job: Job, msg: jobs_pb2.Job) -> None:
        """Put the job's spec on its Job message: what the job row holds, and with a
        session also what needs a read (for the engine and the submitter)."""
        ...

    def finish(self, session: Session, job: Job, state: str, error_message: str, ts: str) -> JobEnd:
        """The kind's part of ending a job (`jobs.end_job` calls it with the row locked and
        its state set): its own bookkeeping, the final event and the notification."""
        ...


class KindLookup(Protocol):
    """The registry, as the lifecycle in services.results.jobs needs it."""

    def for_job(self, job: Job) -> KindHandler:
        """The handler of a stored job's kind."""
        ...
