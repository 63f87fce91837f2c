"""JOB_KIND_SWEEP: a moving-average parameter sweep (seed 001; spec `hindsight.jobs.v1.SweepSpec`).

The sweep's rules and rows are services.results.sweeps; its results arrive
through ResultsService.CompleteSweep.
"""

from __future__ import annotations

from google.protobuf.json_format import MessageToDict, ParseDict
from hindsight.jobs.v1 import jobs_pb2
from sqlalchemy.orm import Session

from domain.shards import SHARD_BAR_PAIRS
from services.results import sweeps, universe_sweeps
from services.results.jobs import COMPLETED
from services.results.kinds import JobEnd, Submission
from services.results.models import Job


class SweepKind:
    """Results' handler of sweeps (services.results.kinds.KindHandler)."""

    kind = jobs_pb2.JOB_KIND_SWEEP
    # The seed's job type: what the API has always shown as the job's kind.
    name = "trading-sweep"
    spec_field = "sweep"
    # A sharded sweep's JobMessages name their shard (JobMessage.shard_id): see KindRegistry.start_shard.
    sharded = False

    def __init__(self, shard_bar_pairs: int = SHARD_BAR_PAIRS) -> None:
        # A ticker's pairs x bars above which its grid is split into pair chunks (domain.shards).
        self.shard_bar_pairs = shard_bar_pairs

    def submit(self, session: Session, submission: Submission) -> Job:
        spec = MessageToDict(submission.spec, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        if universe_sweeps.is_universe(spec):  # tickers or a universe: a shard per ticker or pair chunk
            return universe_sweeps.submit(session, submission, spec, shard_bar_pairs=self.shard_bar_pairs)
        pairs = sweeps.validate_sweep_spec(spec)
        bars = sweeps.bars_of(session, submission.tenant_id, spec)
        if universe_sweeps.chunk_count(spec, pairs, bars, self.shard_bar_pairs) > 1:  # one large grid: pair chunks
            return universe_sweeps.submit(session, submission, spec, shard_bar_pairs=self.shard_bar_pairs, single=True)
        return sweeps.submit(session, submission, spec, bars)

    def describe(self, session: Session | None, job: Job, msg: jobs_pb2.Job) -> None:
        if job.sweep_spec is not None:
            ParseDict(job.sweep_spec, msg.sweep, ignore_unknown_fields=True)

    def finish(self, session: Session, job: Job, state: str, error_message: str, ts: str) -> JobEnd:
        if state != COMPLETED:
            # Cancelled, timed out or failed: the shards not ended (if it has any) end with the job.
            universe_sweeps.close_shards(session, job, state, error_message)
        return sweeps.finish(session, job, state, error_message, ts)

    # A universe sweep's shards (services.results.universe_sweeps; kinds.ShardedKind).

    def start_shard(self, session: Session, job: Job, shard_id: str) -> bool:
        return universe_sweeps.start_shard(session, job, shard_id)

    def shard_progress(self, session: Session, job_id: str, shard_id: str, percent: float) -> tuple[bool, str]:
        return universe_sweeps.shard_progress(session, job_id, shard_id, percent)

    def fail_shard(self, session: Session, job_id: str, shard_id: str, error_message: str) -> Job:
        return universe_sweeps.fail_shard(session, job_id, shard_id, error_message)
