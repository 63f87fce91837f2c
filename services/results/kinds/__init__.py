"""Job kinds as results sees them: one handler per kind, behind one protocol.

A kind is a `hindsight.jobs.v1.JobKind`, the spec message that travels in the
`spec` oneof of SubmitJobRequest and Job, and a handler here:

- `sweep.py`: JOB_KIND_SWEEP (SweepSpec; services.results.sweeps);
- `day_by_day.py`: JOB_KIND_DAY_BY_DAY (DayBacktestSpec; services.results.day_by_day);
- `walkforward.py`: JOB_KIND_WALK_FORWARD (WalkForwardSpec; services.results.walkforward).

`registry.py` is the one registry: it dispatches SubmitJob and StartJob, and the
job ends that are the same for every kind (cancel, engine failure, timeout,
dead letter), to the job's handler, and it is the one place where a JobKind
meets its public name (the API's job `kind`, the `jobs.kind` column). What
every kind shares (states, events, the outbox, progress, ending a job) is
services.results.jobs, a layer below: nothing there or in the kinds' own
modules imports this package.
"""

from __future__ import annotations

from typing import Protocol

from hindsight.jobs.v1 import jobs_pb2
from sqlalchemy.orm import Session

from services.results.jobs import JobEnd, Kind, Submission
from services.results.models import Job

__all__ = ["JobEnd", "KindHandler", "Submission"]


class KindHandler(Kind, Protocol):
    """One kind of job in results: `Kind` (kind, sharded, finish) and what its submission and
    description take."""

    # The kind's public name (API job "kind", `jobs.kind`, metrics label); unique.
    name: str
    # The field of the `spec` oneof (SubmitJobRequest, Job) that carries the kind's spec.
    spec_field: str

    def submit(self, session: Session, submission: Submission) -> Job:
        """Validate the spec and create the job: its row (and the kind's own rows), its
        first event and its JobMessage(s) in the outbox, in the caller's transaction."""
        ...

    def describe(self, session: Session | None, job: Job, msg: jobs_pb2.Job) -> None:
        """Put the job's spec on its Job message: what the job row holds, and with a
        session also what needs a read (for the engine and the submitter)."""
        ...


class ShardedKind(Protocol):
    """A kind whose JobMessages may name a shard (`JobMessage.shard_id`): its engines start,
    report and fail that shard, and the kind ends the job when its shards are done."""

    def start_shard(self, session: Session, job: Job, shard_id: str) -> bool:
        """An engine takes the shard of the running (locked) job; False: skip it (it ended)."""
        ...

    def shard_progress(self, session: Session, job_id: str, shard_id: str, percent: float) -> tuple[bool, str]:
        """The shard's own percent done; (stop, reason) like ReportProgress."""
        ...

    def fail_shard(self, session: Session, job_id: str, shard_id: str, error_message: str) -> Job:
        """The shard failed alone (the kind decides what that does to the job)."""
        ...
