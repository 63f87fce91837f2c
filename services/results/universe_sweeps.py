"""Sharded sweeps (issue 11) in results: one sweep over many tickers, or over one large grid,
split into shards that any engine replica takes.

A sweep whose SweepSpec names `tickers` (or a `universe`, resolved here inside the
submission's transaction) is one job of kind JOB_KIND_SWEEP with at least one shard per
ticker, through the one shard mechanism (services.results.shards: a `sweep_shards` row
and a JobMessage with its `shard_id` each, through the outbox).

Shard size (domain.shards): a ticker whose pairs x bars are at most SHARD_BAR_PAIRS is one
shard ("t0007": tickers[7], its whole grid); a larger one is split into chunks of its
(fast, slow) pair list in grid order ("t0007c002of005"), each a few seconds of one core.
A single-ticker (seed-001) sweep that large is sharded the same way (`submit(single=True)`)
and keeps the seed's shape everywhere (its run's ticker, `best`, overfitting, callback);
a smaller one stays one message (services.results.sweeps).

The overfitting statistics need every trial of a ticker's grid together (PBO's CSCV, the
DSR's trial variance), and `best` breaks ties in grid order (the rows' ids): a chunk's
CompleteSweep is therefore kept whole on its shard row (`staged`: its rows, its trials'
moments and CSCV block sums) until the ticker's last chunk is in; then every chunk's rows
are stored in grid order and the statistics computed over the joined grid
(domain.overfitting.sweep_statistics), which is what one sweep of the whole grid gives,
row for row. The CSCV then runs in results, before that last chunk's transaction: O(C(S, S/2)
x pairs), about 0.1 s for 590 pairs, ~1 s for 5,000.

Written once: a shard's rows, state and statistics are stored by the first CompleteSweep
naming it; a redelivered shard (an engine killed after storing, before acking) finds its
shard completed and stores nothing. A whole ticker's shard stores under its own row's lock
(`store_shard`), then tells the job under the job's (`settle`), so replicas completing
other tickers of the job do not queue behind its insert; a pair chunk is stored (and
its ticker assembled, by its last chunk) under the locks of its ticker's shards' rows,
then tells the job the same way (`complete_shard`, `settle`).

The job completes when every shard ended; a ticker without enough data fails alone (its
row keeps the seed's message; a chunk failing fails its ticker's other chunks), and the
job fails only when every ticker failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import numpy as np
import sqlalchemy as sa
from hindsight.results.v1 import results_pb2
from sqlalchemy.orm import Session

from domain import universe as rules
from domain.market import normalize_ticker
from domain.overfitting import (
    BlockSums,
    SweepStatistics,
    TrialMoments,
    join_trials,
    overfitting_view,
    sweep_statistics,
)
from domain.shards import SHARD_BAR_PAIRS, chunk_bounds, pair_chunk_count, parse_ticker_shard, ticker_shard_id
from domain.sweep import CROSSOVER_TYPES
from services.results import jobs, runs, shards, sweeps
from services.results.datasets import resolve_datasets
from services.results.errors import InvalidArgument, NotFound
from services.results.jobs import Submission
from services.results.models import Job, SweepResult, SweepRun
from services.results.models_universes import SweepShard, Universe
from services.results.timefmt import utcnow

COMPLETED, FAILED, CANCELLED = jobs.COMPLETED, jobs.FAILED, jobs.CANCELLED
SHARD_ENDED = shards.ENDED


def is_universe(spec: dict[str, Any]) -> bool:
    """A SweepSpec (as a dict) that names tickers or a universe rather than one ticker."""
    return bool(spec.get("tickers") or spec.get("universe"))


def resolve_tickers(session: Session, tenant_id: str, spec: dict[str, Any]) -> tuple[list[str], str]:
    """(tickers in their stored spelling, universe name or "") of a universe sweep's spec;
    InvalidArgument for a bad choice, list or name, and for an unknown universe."""
    tickers, name = list(spec.get("tickers") or []), str(spec.get("universe") or "")
    ticker = str(spec.get("ticker") or "").strip()
    problems = rules.sweep_target_problems(ticker or None, tickers or None, name or None)
    if problems:
        raise InvalidArgument("; ".join(f"sweep.{p.field}: {p.message}" for p in problems))
    if name:
        row = session.get(Universe, (tenant_id, name))
        if row is None:
            raise InvalidArgument(f"sweep.universe: no universe named {name!r}")
        tickers = list(row.tickers)
        problems = rules.ticker_list_problems(tickers, "sweep.tickers")
        if problems:  # a stored universe was checked when saved; its rules may have changed since
            raise InvalidArgument("; ".join(f"{p.field}: {p.message}" for p in problems))
    return rules.normalize_tickers(tickers), name


def _slug_source(name: str) -> str:
    return name or "universe"


def chunk_count(spec: dict[str, Any], pairs: int, bars: int, shard_bar_pairs: int = SHARD_BAR_PAIRS) -> int:
    """Pair chunks of one ticker's grid (domain.shards); a crossover grid only (an RSI
    grid's combinations are one kernel pass each: one shard)."""
    if str(spec.get("strategy_type") or "SMA").upper() not in CROSSOVER_TYPES:
        return 1
    return pair_chunk_count(pairs, bars, shard_bar_pairs)


def submit(session: Session, submission: Submission, spec: dict[str, Any], *,
           shard_bar_pairs: int = SHARD_BAR_PAIRS, single: bool = False) -> Job:
    """A queued sharded sweep: the job, its (empty) sweep run, and its shards (a JobMessage
    each), in the caller's transaction. `single`: a seed-001 sweep of one `ticker` whose
    grid is large enough to be split into pair chunks."""
    jobs.check_tenant(session, submission.tenant_id)
    if single:
        pairs = sweeps.validate_sweep_spec(spec)
        tickers, name = [str(spec.get("ticker", ""))], ""
        min_trades = int(spec.get("min_trades", 0))  # as sweeps.complete_sweep stores it
    else:
        tickers, name = resolve_tickers(session, submission.tenant_id, spec)
        # The grid's rules do not depend on the ticker: check them with the first.
        pairs = sweeps.validate_sweep_spec({**spec, "ticker": tickers[0]})
        spec = {**spec, "ticker": "", "tickers": tickers, "universe": name}
        min_trades = sweeps.sweep_spec_of({**spec, "ticker": tickers[0]}).min_trades
    bars, versions = [], {}
    datasets = resolve_datasets(session, submission.tenant_id, tickers, str(spec.get("interval") or ""))
    for t in tickers:
        found = datasets[normalize_ticker(t)]
        bars.append(int(found.bars) if found is not None else 0)
        if found is not None and chunk_count(spec, pairs, bars[-1], shard_bar_pairs) > 1:
            versions[t] = found.version_id  # every chunk of the ticker runs on these bars
    if versions:
        spec = {**spec, "dataset_versions": versions}
    now = utcnow()
    job = jobs.queued_job(
        submission,
        job_id=sweeps.new_job_id(tickers[0] if single else _slug_source(name), now),
        combinations=pairs * len(tickers),
        estimated_duration_seconds=sum(sweeps.estimate_duration_seconds(pairs, b) for b in bars),
        now=now,
        bar_pairs=pairs * sum(bars),
        sweep_spec=spec,
    )
    session.add(job)
    session.flush()
    session.add(
        SweepRun(
            sweep_run_id=sweeps.new_sweep_run_id(), job_id=job.job_id, tenant_id=job.tenant_id,
            ticker=tickers[0] if single else "", strategy_type=str(spec.get("strategy_type") or "SMA"),
            min_trades=min_trades, total_combinations=0, execution_time_seconds=0.0, created_at=now, overfitting=None,
        )
    )
    rows = []
    for i, (ticker, n) in enumerate(zip(tickers, bars, strict=True)):
        count = chunk_count(spec, pairs, n, shard_bar_pairs)
        for c in range(count):
            lo, hi = chunk_bounds(pairs, c, count)
            rows.append(shards.new_shard(job, ticker_shard_id(i, c, count), i, ticker=ticker, bars=n,
                                         bar_pairs=(hi - lo) * n, chunk=c, chunks=count))
    jobs.append_queued_event(session, job)
    shards.queue(session, job, submission, rows)
    session.flush()
    return job


# ---------------------------------------------------------------- the engines' side


def run_of(session: Session, job_id: str) -> SweepRun:
    run = session.scalar(sa.select(SweepRun).where(SweepRun.job_id == job_id))
    if run is None:
        raise NotFound(f"job {job_id!r} is not a sharded sweep")
    return run


def start_shard(session: Session, job: Job, sid: str) -> bool:
    """An engine takes a shard of a running job (locked by the caller): False when the
    shard already ended (a redelivery after its results were stored). A redelivered shard
    whose rows were stored while its job was not told (`store_shard` or `complete_shard`,
    then no `settle`: results stopped between the two) tells it now."""
    started = shards.start(session, job, sid)
    if not started and job.state == jobs.RUNNING:
        _maybe_end(session, job)
    return started


def shard_progress(session: Session, job_id: str, sid: str, percent_done: float) -> tuple[bool, str]:
    """A shard's own progress (0..100 of its bar-pairs); (stop, reason) like ReportProgress."""
    return shards.progress(session, job_id, sid, percent_done)


@dataclass(frozen=True)
class Ticker:
    """One ticker of a sharded sweep: its shards (one, or its pair chunks in order)."""

    parts: list[SweepShard]

    @property
    def lead(self) -> SweepShard:
        """The shard that keeps the ticker's own outcome (its only one, or its chunk 0)."""
        return self.parts[0]

    @property
    def state(self) -> str:
        """Failed or cancelled when a part is; completed when every part is; else running
        once a part started, or queued."""
        states = [p.state for p in self.parts]
        for ended in (FAILED, CANCELLED):
            if ended in states:
                return ended
        if all(st == COMPLETED for st in states):
            return COMPLETED
        return jobs.RUNNING if any(st != jobs.QUEUED for st in states) else jobs.QUEUED

    @property
    def error_message(self) -> str:
        return next((p.error_message for p in self.parts if p.state in (FAILED, CANCELLED) and p.error_message), "")


def _tickers(all_shards: list[SweepShard]) -> list[Ticker]:
    return [Ticker(list(parts)) for _, parts in groupby(all_shards, key=lambda s: s.position)]


def _maybe_end(session: Session, job: Job) -> None:
    """End the job once every shard ended: completed when a ticker completed, else failed."""
    if not shards.all_ended(session, job.job_id):
        shards.advance(session, job)
        return
    # a universe's overfitting objects (12,870 logits each) stay in the database
    tickers = _tickers(shards.of_job(session, job.job_id, bulky=False))
    run = run_of(session, job.job_id)
    done = [t for t in tickers if t.state == COMPLETED]
    if not done:
        reasons = [t.error_message for t in tickers]
        message = reasons[0] if len(tickers) == 1 else f"Every ticker failed ({len(tickers)}); first: {reasons[0]}"
        jobs.end_job(session, job, FAILED, sweeps.finish, error_message=message)
        return
    now = utcnow()
    rows = session.scalar(sa.select(sa.func.count()).select_from(SweepResult).where(SweepResult.sweep_run_id == run.sweep_run_id)) or 0
    engine_seconds = math.fsum(p.engine_seconds for t in tickers for p in t.parts)
    run.total_combinations = int(rows)
    run.execution_time_seconds = engine_seconds
    started = job.started_at or job.created_at
    job.sweep_run_id = run.sweep_run_id
    job.metrics = {
        "duration_seconds": round((now - started).total_seconds(), 1),
        "combinations_tested": int(rows),
        "execution_time_seconds": round((now - job.created_at).total_seconds(), 1),
        "engine_seconds": round(engine_seconds, 3),
        "bars": sum(t.lead.bars for t in done),
    }
    if run.ticker:  # a single-ticker sweep: the seed's shape, its statistics the run's
        run.overfitting = tickers[0].lead.overfitting
    else:
        job.metrics.update({"tickers": len(tickers), "tickers_completed": len(done),
                            "tickers_failed": len(tickers) - len(done)})
    jobs.end_job(session, job, COMPLETED, sweeps.finish)


def _store_ticker(session: Session, run: SweepRun, lead: SweepShard, rows: list[Any],
                  statistics: SweepStatistics | None) -> None:
    """Insert a ticker's rows (its whole grid, in grid order) and keep its outcome on `lead`."""
    sweeps.insert_rows(session, run.sweep_run_id, rows)
    where = [SweepResult.sweep_run_id == run.sweep_run_id, SweepResult.ticker == lead.ticker]
    best = session.scalars(sweeps.best_rows_query(run, where).limit(1)).first()
    lead.total_results = int(session.scalar(
        sa.select(sa.func.count()).select_from(SweepResult).where(*where, SweepResult.total_trades >= run.min_trades)
    ) or 0)
    lead.best_result_id = best.id if best is not None else None
    if statistics is not None:
        top = None
        if best is not None:  # the ticker's rows were inserted in grid order: ids ascend with it
            ids = session.scalars(sa.select(SweepResult.id).where(*where).order_by(SweepResult.id)).all()
            top = ids.index(best.id) if best.id in ids else None
        lead.overfitting = overfitting_view(statistics, top)


def check_chunk_statistics(request: results_pb2.CompleteSweepRequest) -> None:
    """A pair chunk's statistics carry its trials' block sums (pbo_blocks x trials each)."""
    if not request.HasField("statistics"):
        return
    st = request.statistics
    n = len(request.results)
    if len(st.sharpe) != n or len(st.block_sums) != st.pbo_blocks * n or len(st.block_squares) != st.pbo_blocks * n:
        raise InvalidArgument("statistics: a pair chunk needs its trials' moments and block sums (pbo_blocks x trials)")


def joined_statistics(parts: list[results_pb2.CompleteSweepRequest]) -> SweepStatistics | None:
    """The statistics of a ticker's whole grid from its pair chunks' (in grid order): their
    trials' moments and block sums joined (domain.overfitting.join_trials), then
    domain.overfitting.sweep_statistics, as one sweep of the grid computes them. None when
    a chunk has none (statistics off); ValueError when they do not fit together."""
    if not parts or not all(p.HasField("statistics") for p in parts):
        return None
    pieces = []
    for p in parts:
        st = p.statistics
        moments = TrialMoments(np.array(st.sharpe, dtype=np.float64), np.array(st.skewness, dtype=np.float64),
                               np.array(st.kurtosis, dtype=np.float64), int(st.days))
        sums = BlockSums(np.array(st.block_sums, dtype=np.float64).reshape(st.pbo_blocks, -1),
                         np.array(st.block_squares, dtype=np.float64).reshape(st.pbo_blocks, -1), int(st.block_rows))
        pieces.append((moments, sums))
    moments, sums = join_trials(pieces)
    return sweep_statistics(moments, sums, int(parts[0].statistics.pbo_blocks))


def _rows_of(request: results_pb2.CompleteSweepRequest) -> list[sweeps.SweepRow]:
    return sweeps.rows_of(request.results)


@dataclass(frozen=True)
class JoinedStatistics:
    """A ticker's chunks (their shard ids and requests, in grid order) and its whole grid's
    statistics, computed before its last chunk's transaction from the chunks completed then
    and that last chunk's request."""

    parts: tuple[str, ...]
    requests: list[results_pb2.CompleteSweepRequest]
    statistics: SweepStatistics | None


def staged_parts(session: Session, job_id: str, sid: str) -> list[tuple[str, bytes]] | None:
    """(shard id, staged request) of the other chunks of `sid`'s ticker when every one of them
    has completed, read without a lock; None when `sid` is not a chunk or some are not in."""
    shard = session.get(SweepShard, (job_id, sid))
    if shard is None or shard.chunks <= 1 or shard.state in SHARD_ENDED:
        return None
    others = [p for p in shards.of_ticker(session, job_id, shard.position) if p.shard_id != sid]
    if not others or any(p.state != COMPLETED or p.staged is None for p in others):
        return None
    return [(p.shard_id, p.staged or b"") for p in others]


def join_ahead(sid: str, others: list[tuple[str, bytes]], request: results_pb2.CompleteSweepRequest) -> JoinedStatistics:
    """The ticker's chunks and the statistics of its whole grid if `sid` is its last chunk to
    come in, computed with no transaction open (the CSCV of a large grid takes seconds; the
    ticker's rows are then held only to store): `complete_shard` uses them when the same
    chunks are in."""
    parts = sorted([*others, (sid, b"")], key=lambda part: parse_ticker_shard(part[0])[1])  # grid order
    requests = [request if part_id == sid else results_pb2.CompleteSweepRequest.FromString(staged)
                for part_id, staged in parts]
    return JoinedStatistics(tuple(part_id for part_id, _ in parts), requests, _grid_statistics(requests))


def _grid_statistics(requests: list[results_pb2.CompleteSweepRequest]) -> SweepStatistics | None:
    """`joined_statistics`, None when the chunks' statistics do not fit together."""
    try:
        return joined_statistics(requests)
    except ValueError:
        return None


def is_pair_chunk(sid: str) -> bool:
    """Whether a shard id names a chunk of a ticker's pairs (domain.shards), not a whole ticker."""
    try:
        return parse_ticker_shard(sid)[2] > 1
    except ValueError:
        return False


def complete_shard(
    session: Session, job_id: str, sid: str, rows: list[Any], execution_time_seconds: float, bars: int,
    statistics: SweepStatistics | None, buy_and_hold_return_pct: float | None,
    request: results_pb2.CompleteSweepRequest | None = None, joined: JoinedStatistics | None = None,
) -> tuple[str, bool]:
    """Store one pair chunk's rows, once (keyed by the shard), under the locks of its ticker's
    shards' rows, not the job's; (sweep_run_id, stored) like CompleteSweep. A pair chunk is
    kept whole (`request`) until its ticker's last chunk is in: then the ticker's rows go in,
    in grid order, with the whole grid's statistics (`joined`'s when they were computed from
    the same chunks, else computed here). `settle` then tells the job, as after `store_shard`.

    Lock order: the ticker's shards' rows in chunk order (two chunks of one ticker completing
    at once take turns, and the second sees the first's), and no job row while they are held."""
    if not is_pair_chunk(sid):
        raise InvalidArgument(f"shard {sid} is a whole ticker's: `store_shard` stores it")
    if request is None:
        raise InvalidArgument(f"shard {sid} is a pair chunk: its request is kept until its ticker's last chunk")
    job = jobs.get_job_any(session, job_id)  # read, not locked (NOT_FOUND when unknown)
    if (ticker := shards.locked_ticker(session, job_id, sid)) is None:
        raise InvalidArgument(f"job {job_id!r} has no shard {sid!r}")
    shard, parts = ticker
    run = run_of(session, job_id)
    if (answer := _answered(job, run, shard, sid, rows, bars, buy_and_hold_return_pct)) is not None:
        return answer
    lo, hi = chunk_bounds(job.combinations // max(1, _ticker_count(session, job_id)), shard.chunk, shard.chunks)
    if len(rows) != hi - lo:
        raise InvalidArgument(f"shard {sid} holds {hi - lo} rows, not {len(rows)}")
    check_chunk_statistics(request)
    shard.staged = request.SerializeToString()
    shards.end(session, shard, COMPLETED, engine_seconds=execution_time_seconds)
    if all(p.state == COMPLETED for p in parts):
        _assemble(session, job, run, parts, joined)
    return run.sweep_run_id, True


def _answered(job: Job, run: SweepRun, shard: SweepShard, sid: str, rows: list[Any], bars: int,
              buy_and_hold_return_pct: float | None) -> tuple[str, bool] | None:
    """A completion's answer when it stores nothing (a job no longer running, a shard
    already completed or closed); None when it goes on (the shard's bars and buy-and-hold
    return kept)."""
    if job.state in (FAILED, CANCELLED):
        return "", False
    if job.state == COMPLETED or shard.state == COMPLETED:
        return run.sweep_run_id, True  # a redelivered shard: its first completion was stored
    if shard.state in SHARD_ENDED or job.state != jobs.RUNNING:
        return "", False
    if any(r.ticker != shard.ticker for r in rows):
        raise InvalidArgument(f"shard {sid} holds the rows of {shard.ticker} only")
    shard.bars = int(bars)
    shard.buy_and_hold_return_pct = runs.finite(buy_and_hold_return_pct)
    return None


def store_shard(
    session: Session, job_id: str, sid: str, rows: list[Any], execution_time_seconds: float, bars: int,
    statistics: SweepStatistics | None, buy_and_hold_return_pct: float | None,
) -> tuple[str, bool]:
    """A whole ticker's shard (not a pair chunk: `complete_shard`) stores its rows and
    completes under its own row's lock only, so that replicas storing other tickers of the
    job do not wait for one another; (sweep_run_id, stored) like CompleteSweep, once per
    shard. `settle` then tells the job, under its row's lock.

    Lock order: a shard's row, and no other while it is held; a cancel (the job's row,
    then its shards', `shards.close`) waits for it and sees the shard completed."""
    shard = shards.locked_shard(session, job_id, sid)
    job = jobs.get_job_any(session, job_id)  # read, not locked, once the shard is ours (NOT_FOUND when unknown)
    if shard is None:
        raise InvalidArgument(f"job {job_id!r} has no shard {sid!r}")
    if shard.chunks > 1:
        raise InvalidArgument(f"shard {sid} is a pair chunk: its request is kept until its ticker's last chunk")
    run = run_of(session, job_id)
    if (answer := _answered(job, run, shard, sid, rows, bars, buy_and_hold_return_pct)) is not None:
        return answer
    _store_ticker(session, run, shard, rows, statistics)
    shards.end(session, shard, COMPLETED, engine_seconds=execution_time_seconds)
    return run.sweep_run_id, True


def settle(session: Session, job_id: str) -> None:
    """After `store_shard` or `complete_shard`: the job's progress, or its end once every shard
    ended (its row locked)."""
    job = jobs.locked_job(session, job_id)
    if job.state == jobs.RUNNING:
        _maybe_end(session, job)


def _ticker_count(session: Session, job_id: str) -> int:
    return int(session.scalar(sa.select(sa.func.count(sa.distinct(SweepShard.position)))
                              .where(SweepShard.job_id == job_id)) or 0)


def _assemble(session: Session, job: Job, run: SweepRun, parts: list[SweepShard],
              joined: JoinedStatistics | None = None) -> None:
    """Every pair chunk of a ticker is in: its rows in grid order, its statistics, its outcome
    (`joined`'s requests and statistics when it saw the same chunks: a completed chunk's
    staged request never changes)."""
    if joined is not None and joined.parts == tuple(p.shard_id for p in parts):
        requests, statistics = joined.requests, joined.statistics
    else:
        requests = [results_pb2.CompleteSweepRequest.FromString(p.staged or b"") for p in parts]
        statistics = _grid_statistics(requests)
    rows = [row for r in requests for row in _rows_of(r)]
    lead = parts[0]
    _store_ticker(session, run, lead, rows, statistics)
    for p in parts:
        p.staged = None
    if run.ticker:  # a single-ticker sweep is also a saved run, as the unsharded one is
        sweeps.save_sweep_run(session, job, run.sweep_run_id, rows, math.fsum(p.engine_seconds for p in parts),
                              lead.bars, requests[-1].dataset_version_id)


def fail_shard(session: Session, job_id: str, sid: str, error_message: str) -> Job:
    """One ticker failed (e.g. not enough data): its row keeps the message, the others go on;
    a pair chunk failing fails its ticker's other chunks (the ticker's rows are never partial)."""
    job = jobs.locked_job(session, job_id)
    if job.state not in jobs.ACTIVE_STATES:
        return job
    # its ticker's rows locked (after the job's): a chunk of it may be completing meanwhile
    if (ticker := shards.locked_ticker(session, job_id, sid)) is None:
        raise InvalidArgument(f"job {job_id!r} has no shard {sid!r}")
    shard, parts = ticker
    if shard.state in SHARD_ENDED:
        return job
    shards.end(session, shard, FAILED, error_message=error_message)
    if shard.chunks > 1:
        for part in parts:
            if part is not shard:
                if part.state in SHARD_ENDED:
                    part.state = FAILED  # a chunk stored but not assembled: its ticker failed
                    part.error_message = shard.error_message
                else:
                    shards.end(session, part, FAILED, error_message=shard.error_message)
                part.staged = None
    _maybe_end(session, job)
    return job


def close_shards(session: Session, job: Job, state: str, error_message: str) -> None:
    """The job ended otherwise (cancelled, timed out, failed): its unfinished shards end with it."""
    shards.close(session, job, state, error_message)


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class TickerView:
    shard: SweepShard
    best: SweepResult | None


@dataclass(frozen=True)
class TickersView:
    run: SweepRun
    job: Job
    universe: str
    tickers: list[TickerView]


def find_run(session: Session, tenant_id: str, sweep_id: str) -> SweepRun:
    """A sweep run by its id or its job's id (NOT_FOUND when unknown or another tenant's)."""
    run = session.scalar(
        sa.select(SweepRun).where(SweepRun.tenant_id == tenant_id,
                                  sa.or_(SweepRun.sweep_run_id == sweep_id, SweepRun.job_id == sweep_id))
    )
    if run is None:
        raise NotFound(f"sweep {sweep_id!r} not found")
    return run


def tickers_view(session: Session, tenant_id: str, sweep_id: str) -> TickersView:
    """Each ticker of a sweep: its shard and best row (a one-ticker sweep: one entry from its run)."""
    run = find_run(session, tenant_id, sweep_id)
    job = session.get(Job, run.job_id)
    assert job is not None
    all_shards = shards.of_job(session, run.job_id)
    if not all_shards:  # a seed-001 sweep of one ticker, one message
        where = [SweepResult.sweep_run_id == run.sweep_run_id]
        best = session.scalars(sweeps.best_rows_query(run, where).limit(1)).first()
        count = session.scalar(sa.select(sa.func.count()).select_from(SweepResult)
                               .where(*where, SweepResult.total_trades >= run.min_trades)) or 0
        shard = SweepShard(job_id=job.job_id, shard_id="", position=0, ticker=run.ticker, state=job.state,
                           error_message=job.error_message, bars=int((job.metrics or {}).get("bars") or 0),
                           total_results=int(count), buy_and_hold_return_pct=None, overfitting=run.overfitting)
        return TickersView(run, job, "", [TickerView(shard, best)])
    tickers = _tickers(all_shards)
    ids = [t.lead.best_result_id for t in tickers if t.lead.best_result_id is not None]
    best_by_id = {r.id: r for r in session.scalars(sa.select(SweepResult).where(SweepResult.id.in_(ids)))} if ids else {}
    views = []
    for t in tickers:
        lead = t.lead
        shown = lead if len(t.parts) == 1 else SweepShard(
            job_id=lead.job_id, shard_id=lead.shard_id, position=lead.position, ticker=lead.ticker, state=t.state,
            error_message=t.error_message, bars=lead.bars, total_results=lead.total_results,
            buy_and_hold_return_pct=lead.buy_and_hold_return_pct, overfitting=lead.overfitting,
            best_result_id=lead.best_result_id)
        views.append(TickerView(shown, best_by_id.get(lead.best_result_id) if lead.best_result_id is not None else None))
    return TickersView(run, job, str((job.sweep_spec or {}).get("universe") or ""), views)
