"""The one registry of job kinds in results.

Its handlers are listed once, in `build`; it is the one place where a JobKind
meets the kind's public name (handler.name: the `jobs.kind` column, the API's
job `kind`, the metrics label), and ResultsService dispatches SubmitJob,
StartJob and every job end that is the same for all kinds through it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2
from sqlalchemy.orm import Session

from domain.shards import SHARD_BAR_PAIRS
from libs.job_states import STATE_BY_NAME
from services.results import jobs, shards
from services.results.day_by_day import DayByDayConfig
from services.results.errors import FailedPrecondition, InvalidArgument
from services.results.kinds import KindHandler, ShardedKind
from services.results.kinds.day_by_day import DayByDayKind
from services.results.kinds.rule_sweep import RuleSweepKind
from services.results.kinds.sweep import SweepKind
from services.results.kinds.walkforward import WalkForwardKind
from services.results.market_store import MarketStore
from services.results.models import Job
from services.results.timefmt import rfc3339


def build(day_by_day: DayByDayConfig, market: MarketStore, shard_bar_pairs: int = SHARD_BAR_PAIRS) -> KindRegistry:
    """Every kind results knows. A new kind: its handler file in this package, and one line here."""
    return KindRegistry([
        SweepKind(shard_bar_pairs), DayByDayKind(day_by_day), RuleSweepKind(market), WalkForwardKind(),
    ])


def kind_label(kind: int) -> str:
    """A JobKind for messages: its proto name, or the number of one this build does not know."""
    try:
        return jobs_pb2.JobKind.Name(kind)
    except ValueError:
        return str(kind)


class KindRegistry:
    """The handlers of the job kinds, by JobKind and by public name."""

    def __init__(self, handlers: Iterable[KindHandler]) -> None:
        self._by_kind: dict[int, KindHandler] = {}
        self._by_name: dict[str, KindHandler] = {}
        for h in handlers:
            if h.kind == jobs_pb2.JOB_KIND_UNSPECIFIED or h.kind in self._by_kind or h.name in self._by_name:
                raise ValueError(f"job kind {kind_label(h.kind)} / {h.name!r} is unspecified or registered twice")
            self._by_kind[h.kind] = h
            self._by_name[h.name] = h

    @property
    def names(self) -> tuple[str, ...]:
        """The public names of every kind."""
        return tuple(self._by_name)

    def for_kind(self, kind: int) -> KindHandler:
        handler = self._by_kind.get(kind)
        if handler is None:
            raise InvalidArgument(f"unknown job kind {kind_label(kind)}")
        return handler

    def for_name(self, name: str) -> KindHandler | None:
        """The handler of the kind with this public name (None: no such kind)."""
        return self._by_name.get(name)

    def for_job(self, job: Job) -> KindHandler:
        """The handler of a stored job (by the kind's name in its row)."""
        handler = self.for_name(job.kind)
        if handler is None:
            raise FailedPrecondition(f"job {job.job_id!r} has a kind this service does not know: {job.kind!r}")
        return handler

    def for_request(self, request: results_pb2.SubmitJobRequest) -> KindHandler:
        """The handler of a SubmitJob request: its job_kind, else (clients before JobKind) its kind name."""
        if request.job_kind != jobs_pb2.JOB_KIND_UNSPECIFIED:
            return self.for_kind(request.job_kind)
        if request.kind:
            handler = self.for_name(request.kind)
            if handler is None:
                raise InvalidArgument(f"unknown job kind {request.kind!r} (expected one of {', '.join(self._by_name)})")
            return handler
        raise InvalidArgument("job_kind is required")

    def sharded(self, job: Job) -> ShardedKind:
        """The shard hooks of a job's kind (InvalidArgument: its messages never name a shard)."""
        handler = self.for_job(job)
        if not all(hasattr(handler, name) for name in ("start_shard", "shard_progress", "fail_shard")):
            raise InvalidArgument(f"jobs of kind {handler.name!r} have no shards")
        return handler  # type: ignore[return-value]

    def start_shard(self, session: Session, job: Job, shard_id: str) -> tuple[bool, Job]:
        """An engine takes one shard of `job` (locked): the job starts with its first shard;
        a shard already ended (redelivered after its results were stored) is skipped."""
        hooks = self.sharded(job)
        if job.state != jobs.RUNNING:
            proceed, job = jobs.start_job(session, self, job)
            if not proceed:
                return False, job
        return hooks.start_shard(session, job, shard_id), job

    def start_queued_shard(self, session: Session, job: Job, shard_id: str) -> bool:
        """An engine takes a queued shard of `job` read unlocked (services.results.shards.start_queued):
        False when the job is not running or the shard not queued (or not a shard row), for
        `start_shard`."""
        return job.state == jobs.RUNNING and shards.start_queued(session, job, shard_id)

    def job_proto(self, job: Job, session: Session | None = None) -> jobs_pb2.Job:
        """A job as the API shows it; with a session, its spec in full (`KindHandler.describe`)."""
        msg = jobs_pb2.Job(
            job_id=job.job_id,
            tenant_id=job.tenant_id,
            kind=job.kind,
            state=STATE_BY_NAME[job.state],
            parameters_json=json.dumps(job.parameters),
            webhook_url=job.webhook_url,
            created_at=rfc3339(job.created_at),
            started_at=rfc3339(job.started_at),
            completed_at=rfc3339(job.completed_at),
            error_message=job.error_message,
            percent=job.percent,
            progress_message=job.progress_message,
            sweep_run_id=job.sweep_run_id or "",
            timeout_seconds=job.timeout_seconds,
            combinations=job.combinations,
            metrics_json=json.dumps(job.metrics) if job.metrics is not None else "",
            estimated_duration_seconds=job.estimated_duration_seconds,
            trace_id=job.trace_id,
            notify_email=job.notify_email,
        )
        handler = self.for_name(job.kind)
        if handler is not None:
            msg.job_kind = handler.kind
            handler.describe(session, job, msg)
        return msg
