"""Universe sweeps (issue 11) in results: one sweep over many tickers, sharded across engines.

A sweep whose SweepSpec names `tickers` (or a `universe`, resolved here inside the
submission's transaction) is one job of kind JOB_KIND_SWEEP with one shard per ticker:
a `sweep_shards` row and a JobMessage (`shard_id` "t0007" for tickers[7]) through the
outbox, the mechanism day-by-day ranges use (`jobs.queue_job(shards=...)`, `Kind.sharded`).
Any engine replica takes any shard.

Shard size: one ticker, all its pairs. The overfitting statistics (domain.overfitting:
PBO's CSCV, the DSR's trial variance) need every trial's daily returns of a ticker's grid
together, so a ticker's grid is not split; one ticker is what an engine must hold in
memory anyway (its bars), and the seed's largest grid (590 pairs) over a million bars is
about a second of kernel time: enough shards to spread 20+ tickers over any number of
replicas, few enough that the per-shard cost (a StartJob, a bars fetch, one
CompleteSweep) stays small.

Written once: the shard's rows, state and statistics are stored by the first
CompleteSweep naming it (under the job's row lock); a redelivered shard (an engine
killed after storing, before acking) finds its shard completed and stores nothing.
Progress is bar-pairs done over the job's total, summed over shards, each shard's count
only growing, so the job's percent never goes back when a shard reruns.

The job completes when every shard ended; a ticker without enough data fails alone (its
row keeps the seed's message), and the job fails only when every ticker failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain import universe as rules
from domain.overfitting import SweepStatistics, overfitting_view
from services.results import jobs, runs, sweeps
from services.results.datasets import resolve_dataset
from services.results.errors import InvalidArgument, NotFound
from services.results.jobs import Submission
from services.results.models import Job, SweepResult, SweepRun
from services.results.models_universes import SweepShard, Universe
from services.results.timefmt import rfc3339, utcnow

COMPLETED, FAILED, CANCELLED = jobs.COMPLETED, jobs.FAILED, jobs.CANCELLED
SHARD_ENDED = (COMPLETED, FAILED, CANCELLED)


def is_universe(spec: dict[str, Any]) -> bool:
    """A SweepSpec (as a dict) that names tickers or a universe rather than one ticker."""
    return bool(spec.get("tickers") or spec.get("universe"))


def shard_id(position: int) -> str:
    """The id of the shard of tickers[position]."""
    return f"t{position:04d}"


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


def submit(session: Session, submission: Submission, spec: dict[str, Any]) -> Job:
    """A queued universe sweep: the job, its (empty) sweep run, one shard row and one
    JobMessage per ticker, in the caller's transaction."""
    jobs.check_tenant(session, submission.tenant_id)
    tickers, name = resolve_tickers(session, submission.tenant_id, spec)
    # The grid's rules do not depend on the ticker: check them with the first.
    pairs = sweeps.validate_sweep_spec({**spec, "ticker": tickers[0]})
    spec = {**spec, "ticker": "", "tickers": tickers, "universe": name}
    bars = []
    for t in tickers:
        found = resolve_dataset(session, submission.tenant_id, t, str(spec.get("interval") or ""))
        bars.append(int(found.bars) if found is not None else 0)
    now = utcnow()
    job = jobs.queued_job(
        submission,
        job_id=sweeps.new_job_id(_slug_source(name), now),
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
            sweep_run_id=sweeps.new_sweep_run_id(), job_id=job.job_id, tenant_id=job.tenant_id, ticker="",
            strategy_type=str(spec.get("strategy_type") or "SMA"), min_trades=sweeps.sweep_spec_of(
                {**spec, "ticker": tickers[0]}).min_trades,
            total_combinations=0, execution_time_seconds=0.0, created_at=now, overfitting=None,
        )
    )
    for i, (ticker, n) in enumerate(zip(tickers, bars, strict=True)):
        session.add(
            SweepShard(
                job_id=job.job_id, shard_id=shard_id(i), position=i, ticker=ticker, state=jobs.QUEUED,
                error_message="", bars=n, bar_pairs_total=pairs * n, bar_pairs_done=0, attempts=0,
                total_results=0, best_result_id=None, buy_and_hold_return_pct=None, overfitting=None,
                engine_seconds=0.0, started_at=None, completed_at=None,
            )
        )
    jobs.append_queued_event(session, job)
    jobs.queue_job(session, job, submission, [{"shard_id": shard_id(i)} for i in range(len(tickers))])
    session.flush()
    return job


# ---------------------------------------------------------------- the engines' side


def run_of(session: Session, job_id: str) -> SweepRun:
    run = session.scalar(sa.select(SweepRun).where(SweepRun.job_id == job_id))
    if run is None:
        raise NotFound(f"job {job_id!r} is not a universe sweep")
    return run


def _shards(session: Session, job_id: str) -> list[SweepShard]:
    return list(session.scalars(sa.select(SweepShard).where(SweepShard.job_id == job_id).order_by(SweepShard.position)))


def _shard(session: Session, job: Job, sid: str) -> SweepShard:
    shard = session.get(SweepShard, (job.job_id, sid))
    if shard is None:
        raise InvalidArgument(f"job {job.job_id!r} has no shard {sid!r}")
    return shard


def has_shards(session: Session, job_id: str) -> bool:
    return session.scalar(sa.select(sa.func.count()).select_from(SweepShard).where(SweepShard.job_id == job_id)) != 0


def start_shard(session: Session, job: Job, sid: str) -> bool:
    """An engine takes a shard of a running job (locked by the caller): False when the
    shard already ended (a redelivery after its results were stored)."""
    shard = _shard(session, job, sid)
    if shard.state in SHARD_ENDED:
        return False
    shard.state = jobs.RUNNING
    shard.attempts += 1
    shard.started_at = shard.started_at or utcnow()
    return True


def _advance(session: Session, job: Job, shards: list[SweepShard] | None = None) -> None:
    """The job's percent from its shards' bar-pairs, as a progress event when it grew."""
    shards = shards if shards is not None else _shards(session, job.job_id)
    total = sum(s.bar_pairs_total for s in shards)
    done = sum(s.bar_pairs_total if s.state in SHARD_ENDED else min(s.bar_pairs_done, s.bar_pairs_total)
               for s in shards)
    ended = sum(1 for s in shards if s.state in SHARD_ENDED)
    value = jobs.percent(done / total * 100 if total else ended / max(1, len(shards)) * 100)
    if float(value) <= job.percent:
        return
    message = f"Processed {done:,}/{total:,} bar-pairs ({ended}/{len(shards)} tickers done)"
    job.percent = float(value)
    job.progress_message = message
    jobs.append_event(session, job, "progress", {"percent": value, "message": message,
                                                 "timestamp": rfc3339(utcnow())})


def shard_progress(session: Session, job_id: str, sid: str, percent_done: float) -> tuple[bool, str]:
    """A shard's own progress (0..100 of its bar-pairs); (stop, reason) like ReportProgress."""
    if not math.isfinite(percent_done):
        raise InvalidArgument("percent must be a number between 0 and 100")
    job = jobs.locked_job(session, job_id)
    if job.state != jobs.RUNNING:
        return jobs.stop_reason(job)
    shard = _shard(session, job, sid)
    if shard.state in SHARD_ENDED:
        return True, f"shard {sid} already {shard.state}"
    done = round(min(1.0, max(0.0, percent_done / 100.0)) * shard.bar_pairs_total)
    if done > shard.bar_pairs_done:
        shard.bar_pairs_done = done
        _advance(session, job)
    return False, ""


def _maybe_end(session: Session, job: Job) -> None:
    """End the job once every shard ended: completed when a ticker completed, else failed."""
    shards = _shards(session, job.job_id)
    if any(s.state not in SHARD_ENDED for s in shards):
        _advance(session, job, shards)
        return
    done = [s for s in shards if s.state == COMPLETED]
    if not done:
        reasons = [s.error_message for s in shards]
        message = reasons[0] if len(shards) == 1 else f"Every ticker failed ({len(shards)}); first: {reasons[0]}"
        jobs.end_job(session, job, FAILED, sweeps.finish, error_message=message)
        return
    run = run_of(session, job.job_id)
    now = utcnow()
    rows = session.scalar(sa.select(sa.func.count()).select_from(SweepResult).where(SweepResult.sweep_run_id == run.sweep_run_id)) or 0
    engine_seconds = math.fsum(s.engine_seconds for s in shards)
    run.total_combinations = int(rows)
    run.execution_time_seconds = engine_seconds
    started = job.started_at or job.created_at
    job.sweep_run_id = run.sweep_run_id
    job.metrics = {
        "duration_seconds": round((now - started).total_seconds(), 1),
        "combinations_tested": int(rows),
        "execution_time_seconds": round((now - job.created_at).total_seconds(), 1),
        "engine_seconds": round(engine_seconds, 3),
        "bars": sum(s.bars for s in done),
        "tickers": len(shards),
        "tickers_completed": len(done),
        "tickers_failed": len(shards) - len(done),
    }
    jobs.end_job(session, job, COMPLETED, sweeps.finish)


def complete_shard(
    session: Session, job_id: str, sid: str, rows: list[Any], execution_time_seconds: float, bars: int,
    statistics: SweepStatistics | None, buy_and_hold_return_pct: float | None,
) -> tuple[str, bool]:
    """Store one shard's rows, once (keyed by the shard); (sweep_run_id, stored) like CompleteSweep."""
    job = jobs.locked_job(session, job_id)
    run = run_of(session, job_id)
    if job.state in (FAILED, CANCELLED):
        return "", False
    shard = _shard(session, job, sid)
    if job.state == COMPLETED or shard.state == COMPLETED:
        return run.sweep_run_id, True  # a redelivered shard: its first completion was stored
    if shard.state in SHARD_ENDED or job.state != jobs.RUNNING:
        return "", False
    if any(r.ticker != shard.ticker for r in rows):
        raise InvalidArgument(f"shard {sid} holds the rows of {shard.ticker} only")
    if rows:
        session.execute(
            sa.insert(SweepResult),
            [{"sweep_run_id": run.sweep_run_id, **sweeps.row_values(r)} for r in rows],
        )
    where = [SweepResult.sweep_run_id == run.sweep_run_id, SweepResult.ticker == shard.ticker]
    best = session.scalars(sweeps.best_rows_query(run, where).limit(1)).first()
    shard.total_results = int(session.scalar(
        sa.select(sa.func.count()).select_from(SweepResult).where(*where, SweepResult.total_trades >= run.min_trades)
    ) or 0)
    shard.best_result_id = best.id if best is not None else None
    if statistics is not None:
        top = None
        if best is not None:  # the shard's rows were inserted in grid order: ids ascend with it
            ids = session.scalars(sa.select(SweepResult.id).where(*where).order_by(SweepResult.id)).all()
            top = ids.index(best.id) if best.id in ids else None
        shard.overfitting = overfitting_view(statistics, top)
    shard.state = COMPLETED
    shard.bars = int(bars)
    shard.bar_pairs_done = shard.bar_pairs_total
    shard.buy_and_hold_return_pct = runs.finite(buy_and_hold_return_pct)
    shard.engine_seconds = max(0.0, float(execution_time_seconds))
    shard.completed_at = utcnow()
    _maybe_end(session, job)
    return run.sweep_run_id, True


def fail_shard(session: Session, job_id: str, sid: str, error_message: str) -> Job:
    """One ticker failed (e.g. not enough data): its row keeps the message, the others go on."""
    job = jobs.locked_job(session, job_id)
    if job.state not in jobs.ACTIVE_STATES:
        return job
    shard = _shard(session, job, sid)
    if shard.state in SHARD_ENDED:
        return job
    shard.state = FAILED
    shard.error_message = error_message or "Shard failed"
    shard.completed_at = utcnow()
    _maybe_end(session, job)
    return job


def close_shards(session: Session, job: Job, state: str, error_message: str) -> None:
    """The job ended otherwise (cancelled, timed out, failed): its unfinished shards end with it."""
    for shard in _shards(session, job.job_id):
        if shard.state not in SHARD_ENDED:
            shard.state = CANCELLED if state == CANCELLED else FAILED
            shard.error_message = error_message
            shard.completed_at = shard.completed_at or utcnow()


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
    shards = _shards(session, run.job_id)
    if not shards:  # a seed-001 sweep of one ticker
        where = [SweepResult.sweep_run_id == run.sweep_run_id]
        best = session.scalars(sweeps.best_rows_query(run, where).limit(1)).first()
        count = session.scalar(sa.select(sa.func.count()).select_from(SweepResult)
                               .where(*where, SweepResult.total_trades >= run.min_trades)) or 0
        shard = SweepShard(job_id=job.job_id, shard_id="", position=0, ticker=run.ticker, state=job.state,
                           error_message=job.error_message, bars=int((job.metrics or {}).get("bars") or 0),
                           total_results=int(count), buy_and_hold_return_pct=None, overfitting=run.overfitting)
        return TickersView(run, job, "", [TickerView(shard, best)])
    ids = [s.best_result_id for s in shards if s.best_result_id is not None]
    best_by_id = {r.id: r for r in session.scalars(sa.select(SweepResult).where(SweepResult.id.in_(ids)))} if ids else {}
    views = [TickerView(s, best_by_id.get(s.best_result_id) if s.best_result_id is not None else None) for s in shards]
    return TickersView(run, job, str((job.sweep_spec or {}).get("universe") or ""), views)
