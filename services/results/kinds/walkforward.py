"""JOB_KIND_WALK_FORWARD: a walk-forward optimization of a sweep (spec `hindsight.jobs.v1.WalkForwardSpec`).

Its rules are domain.walkforward, its rows and view services.results.walkforward. One
job is one JobMessage per fold (shards, like a day-by-day range): any engine replica
takes any fold and reports it with ResultsService.CompleteWalkForwardFold; the last
fold in completes the job.
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
