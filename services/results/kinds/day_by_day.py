"""JOB_KIND_DAY_BY_DAY: a rule strategy run day by day (seeds 002 and 004; spec
`hindsight.backtest.v1.DayBacktestSpec`).

Its rules, rows and artifacts are services.results.day_by_day; the engine sends
its days and its end through DayBacktestService (services.results.day_by_day_servicer).
A long range is several JobMessages (shards) of one job.
"""

from __future__ import annotations

from google.protobuf.json_format import MessageToDict, ParseDict
from hindsight.backtest.v1 import backtest_pb2
from hindsight.jobs.v1 import jobs_pb2
from sqlalchemy.orm import Session

from services.results import day_by_day
from services.results.day_by_day import DayByDayConfig
from services.results.kinds import JobEnd, Submission
from services.results.models import Job


def spec_to_proto(spec: dict) -> backtest_pb2.DayBacktestSpec:
    """A run's spec (`day_by_day.spec_of`) as its message."""
    return ParseDict(spec, backtest_pb2.DayBacktestSpec(), ignore_unknown_fields=True)


class DayByDayKind:
    """Results' handler of day-by-day backtests (services.results.kinds.KindHandler)."""

    kind = jobs_pb2.JOB_KIND_DAY_BY_DAY
    # What the API has always shown as these jobs' kind.
    name = "day-backtest"
    spec_field = "day_backtest"
    sharded = True

    def __init__(self, config: DayByDayConfig) -> None:
        self.config = config

    def submit(self, session: Session, submission: Submission) -> Job:
        spec = MessageToDict(submission.spec, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        return day_by_day.submit(session, self.config, submission, spec)

    def describe(self, session: Session | None, job: Job, msg: jobs_pb2.Job) -> None:
        # The spec lives in the run's own row: only with a session (the engine, the submitter).
        if session is not None:
            msg.day_backtest.CopyFrom(spec_to_proto(day_by_day.spec_of(day_by_day.run_of(session, job.job_id))))

    def finish(self, session: Session, job: Job, state: str, error_message: str, ts: str) -> JobEnd:
        return day_by_day.finish(session, job, state, error_message, ts)
