"""Shards of a job (issue 11): one job, several JobMessages that any engine replica takes.

One mechanism for every kind that splits its work into parts known at submission (a
universe sweep's tickers and their pair chunks, a walk-forward's folds; domain.shards
names them):

- one table, `sweep_shards` (services.results.models_universes.SweepShard): a row per
  shard with its state, attempts, bar-pairs and times, keyed by (job_id, shard_id);
- one message field, JobMessage.shard_id: a message per shard through the outbox
  (`queue`), and standalone's requeue after a restart sends one per shard not ended
  (services.results.jobs.requeue_active_jobs);
- one start (`start`: a shard already ended is not run again, so a redelivery after an
  engine crash stores nothing twice), one progress rule (`progress`, `advance`: the
  job's percent is bar-pairs done over the total, each shard's count only growing, so
  the percent never goes back when a shard reruns), one end (`end`: under the job's row
  lock, so exactly one call sees the last shard end and completes the job), and one close
  (`close`: the job ended otherwise, its shards not ended end with it).

What a shard's results are, and what its end means for the job (a ticker fails alone, a
fold failing fails the job), is its kind's (services.results.universe_sweeps,
services.results.walkforward). Every function runs inside the caller's transaction with
the job's row locked (services.results.jobs.locked_job), but `progress`, which locks it
only if it is free.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session, defer

from domain.shards import parse_fold_shard
from services.results import jobs
from services.results.errors import InvalidArgument
from services.results.jobs import Submission
from services.results.models import Job
from services.results.models_universes import SweepShard
from services.results.timefmt import rfc3339, utcnow

ENDED = jobs.ENDED_STATES


def new_shard(job: Job, shard_id: str, position: int, *, ticker: str = "", bars: int = 0, bar_pairs: int = 0,
              chunk: int = 0, chunks: int = 1) -> SweepShard:
    """A queued shard's row (`queue` adds it with its message)."""
    return SweepShard(
        job_id=job.job_id, shard_id=shard_id, position=position, chunk=chunk, chunks=chunks, ticker=ticker,
        state=jobs.QUEUED, error_message="", bars=int(bars), bar_pairs_total=int(bar_pairs), bar_pairs_done=0,
        attempts=0, total_results=0, best_result_id=None, buy_and_hold_return_pct=None, overfitting=None,
        engine_seconds=0.0, started_at=None, completed_at=None, staged=None,
    )


def queue(session: Session, job: Job, submission: Submission, shards: list[SweepShard]) -> None:
    """The job's shards and one JobMessage each (shard_id), in the caller's transaction. The
    messages go out largest shard first (most bar-pairs; ties in the shards' order): the
    replicas then end the job together, rather than one of them finishing a long ticker
    alone after the others ran out of work (longest processing time first)."""
    session.add_all(shards)
    largest_first = sorted(shards, key=lambda s: -s.bar_pairs_total)  # stable: ties keep their order
    jobs.queue_job(session, job, submission, [{"shard_id": s.shard_id} for s in largest_first])


def of_job(session: Session, job_id: str, bulky: bool = True, lock: bool = False) -> list[SweepShard]:
    """Every shard of a job, by position, then chunk (`bulky` False: without their
    overfitting objects and staged requests, read only if touched, in this session;
    `lock`: their rows locked until the transaction ends, and read again under the lock)."""
    query = sa.select(SweepShard).where(SweepShard.job_id == job_id).order_by(SweepShard.position, SweepShard.chunk)
    if not bulky:
        query = query.options(defer(SweepShard.overfitting), defer(SweepShard.staged))
    return list(session.scalars(_locked(query) if lock else query))


def _locked(query: sa.Select[tuple[SweepShard]]) -> sa.Select[tuple[SweepShard]]:
    """`query`'s rows locked until the transaction ends, and read again under the lock."""
    return query.with_for_update().execution_options(populate_existing=True)


def exists(session: Session, job_id: str) -> bool:
    """Whether the job is sharded this way (jobs queued before its kind was may not be)."""
    return session.scalar(sa.select(sa.func.count()).select_from(SweepShard).where(SweepShard.job_id == job_id)) != 0


def get(session: Session, job: Job, shard_id: str) -> SweepShard:
    shard = session.get(SweepShard, (job.job_id, shard_id))
    if shard is None:
        raise InvalidArgument(f"job {job.job_id!r} has no shard {shard_id!r}")
    return shard


def start(session: Session, job: Job, shard_id: str) -> bool:
    """An engine takes a shard of a running job: False when the shard already ended (a
    redelivery after its results were stored, or a shard closed with its job)."""
    shard = get(session, job, shard_id)
    if shard.state in ENDED:
        return False
    if shard.state == jobs.RUNNING:  # taken before and never ended: the engine that had it went away
        message = f"{label(shard)} restarted after an interruption"
        jobs.append_event(session, job, "progress",
                          {"percent": jobs.percent(job.percent), "message": message, "timestamp": rfc3339(utcnow())})
    _take(shard)
    return True


def _take(shard: SweepShard) -> None:
    shard.state = jobs.RUNNING
    shard.attempts += 1
    shard.started_at = shard.started_at or utcnow()


def locked_shard(session: Session, job_id: str, shard_id: str) -> SweepShard | None:
    """A shard's row, locked until the transaction ends, read again under the lock."""
    return session.scalar(_locked(
        sa.select(SweepShard).where(SweepShard.job_id == job_id, SweepShard.shard_id == shard_id)))


def of_ticker(session: Session, job_id: str, position: int, lock: bool = False) -> list[SweepShard]:
    """The shards of one ticker of a job (its pair chunks), in grid order (`lock`: their rows
    locked in that order until the transaction ends, and read again under the lock)."""
    query = (sa.select(SweepShard).where(SweepShard.job_id == job_id, SweepShard.position == position)
             .order_by(SweepShard.chunk))
    return list(session.scalars(_locked(query) if lock else query))


def locked_ticker(session: Session, job_id: str, shard_id: str) -> tuple[SweepShard, list[SweepShard]] | None:
    """A shard and every shard of its ticker (its pair chunks, in grid order), their rows
    locked in that order and read again; None when the job has no such shard."""
    found = session.get(SweepShard, (job_id, shard_id))
    if found is None:
        return None
    parts = of_ticker(session, job_id, found.position, lock=True)
    return next(p for p in parts if p.shard_id == shard_id), parts


def start_queued(session: Session, job: Job, shard_id: str) -> bool:
    """An engine takes a shard not taken before, of a job already running, without the job's
    row lock (`job` read unlocked): the shard's own row is locked, and the job's row stays
    free for the other replicas' completions. False when the shard is not queued (ended,
    or a restart, whose event needs the job's row): the caller takes the locked `start`."""
    shard = locked_shard(session, job.job_id, shard_id)
    if shard is None or shard.state != jobs.QUEUED:
        return False
    _take(shard)
    return True


def label(shard: SweepShard) -> str:
    """How the job's events name a shard: a fold, a ticker, or a chunk of a ticker's pairs."""
    try:
        return f"Fold {parse_fold_shard(shard.shard_id)}"
    except ValueError:
        pass  # a ticker's shard
    name = shard.ticker or "The sweep"
    if shard.chunks > 1:
        return f"{name} (pairs, part {shard.chunk + 1}/{shard.chunks})"
    return name


# A kind's progress message from (bar-pairs done, their total, shards ended, shards).
Describe = Callable[[int, int, int, int], str]


def bar_pairs_message(done: int, total: int, ended: int, count: int) -> str:
    return f"Processed {done:,}/{total:,} bar-pairs ({ended}/{count} shards done)"


def advance(session: Session, job: Job, describe: Describe = bar_pairs_message) -> None:
    """The job's percent from its shards' bar-pairs (an ended shard counts whole), as a
    progress event in the seed's shape when it grew."""
    ended = SweepShard.state.in_(ENDED)
    total, done, n_ended, n = session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(SweepShard.bar_pairs_total), 0),
            sa.func.coalesce(sa.func.sum(sa.case((ended, SweepShard.bar_pairs_total), else_=SweepShard.bar_pairs_done)), 0),
            sa.func.count().filter(ended),
            sa.func.count(),
        ).where(SweepShard.job_id == job.job_id)
    ).one()
    total, done, n_ended, n = int(total), int(done), int(n_ended), int(n)
    value = jobs.percent(done / total * 100 if total else n_ended / max(1, n) * 100)
    if float(value) <= job.percent:
        return
    message = describe(done, total, n_ended, n)
    job.percent = float(value)
    job.progress_message = message
    jobs.append_event(session, job, "progress", {"percent": value, "message": message, "timestamp": rfc3339(utcnow())})


def progress(session: Session, job_id: str, shard_id: str, percent_done: float,
             describe: Describe = bar_pairs_message) -> tuple[bool, str]:
    """A shard's own progress (0..100 of its bar-pairs); (stop, reason) like ReportProgress.

    Unlike the other rules here it does not wait for the job's row lock: the shard's
    count is its own row's (locked), and the job's progress event is appended only when
    the job's row is free at that moment (SKIP LOCKED). The shards of other replicas
    then never queue behind one another's reports and completions on the job's row; a
    report that finds it taken still counts, in the next event (the percent is the sum
    of the shards' counts)."""
    if not math.isfinite(percent_done):
        raise InvalidArgument("percent must be a number between 0 and 100")
    job = jobs.get_job_any(session, job_id)
    if job.state != jobs.RUNNING:
        return jobs.stop_reason(job)
    shard = locked_shard(session, job_id, shard_id)
    if shard is None:
        raise InvalidArgument(f"job {job_id!r} has no shard {shard_id!r}")
    if shard.state in ENDED:
        return True, f"shard {shard_id} already {shard.state}"
    done = round(min(1.0, max(0.0, percent_done / 100.0)) * shard.bar_pairs_total)
    if done > shard.bar_pairs_done:
        shard.bar_pairs_done = done
        session.flush()
        locked = jobs.locked_job_if_free(session, job_id)
        if locked is not None and locked.state == jobs.RUNNING:
            advance(session, locked, describe)
    return False, ""


def end(session: Session, shard: SweepShard, state: str, *, error_message: str = "", engine_seconds: float = 0.0) -> None:
    """A shard ends (completed or failed), once: the caller checked it had not."""
    assert state in ENDED and shard.state not in ENDED
    shard.state = state
    if state == jobs.COMPLETED:
        shard.bar_pairs_done = shard.bar_pairs_total
        shard.engine_seconds = max(0.0, float(engine_seconds))
    else:
        shard.error_message = error_message or "Shard failed"
    shard.completed_at = utcnow()


def all_ended(session: Session, job_id: str) -> bool:
    """Every shard of the job ended: the caller (holding the job's row lock, so only one
    caller ever sees it first) ends the job."""
    session.flush()
    return not session.scalar(
        sa.select(sa.func.count()).select_from(SweepShard)
        .where(SweepShard.job_id == job_id, SweepShard.state.not_in(ENDED))
    )


def close(session: Session, job: Job, state: str, error_message: str) -> None:
    """The job ended otherwise (cancelled, timed out, failed): its shards not ended end with
    it, so none starts afterwards. Their rows are locked and read again: a ticker's shard
    stores its rows under its own row's lock only (universe_sweeps.store_shard), and one
    that did so meanwhile stays completed, as does a pair chunk (its ticker's rows locked,
    `universe_sweeps.complete_shard`). Rows are locked in (ticker, chunk) order, as
    every transaction that locks several does."""
    for shard in of_job(session, job.job_id, bulky=False, lock=True):  # not the tickers' overfitting objects
        if shard.state not in ENDED:
            shard.state = jobs.CANCELLED if state == jobs.CANCELLED else jobs.FAILED
            shard.error_message = error_message
            shard.completed_at = shard.completed_at or utcnow()
            shard.staged = None

