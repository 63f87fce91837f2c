"""JOB_KIND_RULE_SWEEP: a sweep of a rule strategy's parameters (spec `hindsight.jobs.v1.RuleSweepSpec`).

Submission is services.results.rule_sweeps; the rows arrive through
ResultsService.CompleteSweep and end the job like a crossover sweep's
(services.results.sweeps: the run, `best`, the callback).
"""

from __future__ import annotations

from google.protobuf.json_format import MessageToDict, ParseDict
from hindsight.jobs.v1 import jobs_pb2
from sqlalchemy.orm import Session

from services.results import rule_sweeps, sweeps
from services.results.kinds import JobEnd, Submission
from services.results.market_store import MarketStore
from services.results.models import Job


class RuleSweepKind:
    """Results' handler of rule-strategy sweeps (services.results.kinds.KindHandler)."""

    kind = jobs_pb2.JOB_KIND_RULE_SWEEP
    name = "rule-sweep"
    spec_field = "rule_sweep"
    sharded = False

    def __init__(self, market: MarketStore) -> None:
        # Where the dataset's bars are read to plan the sweep.
        self.market = market

    def submit(self, session: Session, submission: Submission) -> Job:
        spec = MessageToDict(submission.spec, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        return rule_sweeps.submit(session, self.market, submission, spec)

    def describe(self, session: Session | None, job: Job, msg: jobs_pb2.Job) -> None:
        if job.sweep_spec is not None:
            ParseDict(job.sweep_spec, msg.rule_sweep, ignore_unknown_fields=True)

    def finish(self, session: Session, job: Job, state: str, error_message: str, ts: str) -> JobEnd:
        return sweeps.finish(session, job, state, error_message, ts)
