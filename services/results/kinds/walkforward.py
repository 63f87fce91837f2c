"""JOB_KIND_WALK_FORWARD: a walk-forward optimization of a sweep (spec `hindsight.jobs.v1.WalkForwardSpec`).

Its rules are domain.walkforward, its rows and view services.results.walkforward. One
job is one shard per fold (services.results.shards, as a universe sweep's tickers: a
`sweep_shards` row and a JobMessage with its `shard_id` "f0003"): any engine replica
takes any fold and reports it with ResultsService.CompleteWalkForwardFold; the last
fold's shard to end completes the job.
"""

from __future__ import annotations

from google.protobuf.json_format import MessageToDict, ParseDict
from hindsight.jobs.v1 import jobs_pb2
from sqlalchemy.orm import Session

from services.results import walkforward
from services.results.kinds import JobEnd, Submission
from services.results.models import Job


class WalkForwardKind:
    """Results' handler of walk-forward optimizations (services.results.kinds.KindHandler)."""

    kind = jobs_pb2.JOB_KIND_WALK_FORWARD
    # The API's job kind.
    name = "walk-forward-optimization"
    spec_field = "walkforward"
    sharded = True

    def submit(self, session: Session, submission: Submission) -> Job:
        spec = MessageToDict(submission.spec, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        return walkforward.submit(session, submission, spec)

    def describe(self, session: Session | None, job: Job, msg: jobs_pb2.Job) -> None:
        # The spec lives in the run's own row: only with a session (the engine, the submitter).
        if session is not None:
            ParseDict(walkforward.run_of(session, job.job_id).spec, msg.walkforward, ignore_unknown_fields=True)

    def finish(self, session: Session, job: Job, state: str, error_message: str, ts: str) -> JobEnd:
        return walkforward.finish(session, job, state, error_message, ts)

    # Its folds are shards (kinds.ShardedKind).

    def start_shard(self, session: Session, job: Job, shard_id: str) -> bool:
        return walkforward.start_fold(session, job, shard_id)

    def shard_progress(self, session: Session, job_id: str, shard_id: str, percent: float) -> tuple[bool, str]:
        return walkforward.fold_progress(session, job_id, shard_id, percent)

    def fail_shard(self, session: Session, job_id: str, shard_id: str, error_message: str) -> Job:
        return walkforward.fail_fold(session, job_id, shard_id, error_message)
