"""Walk-forward optimizations in results: submission (the folds cut on the dataset's bars,
a shard and a JobMessage per fold, services.results.shards), the engine's folds, the
stitched result, the job's end and the API's view.

The rules (windows, folds, the stitched curve, the efficiency) are domain.walkforward;
every function takes a `Session` inside the caller's transaction; the lifecycle is
services.results.jobs, and services.results.kinds.walkforward makes this the handler of
JOB_KIND_WALK_FORWARD.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.shards import fold_shard_id
from domain.walkforward import (
    OutOfSample,
    Windows,
    efficiency,
    fold_count,
    folds_problems,
    stitch,
    strategy_problem,
    target_problem,
)
from services.results import jobs, shards, sweeps
from services.results.datasets import resolve_dataset
from services.results.errors import FailedPrecondition, InvalidArgument, NotFound
from services.results.jobs import JobEnd, Submission
from services.results.models import Job
from services.results.models_universes import SweepShard
from services.results.models_walkforward import WalkForwardFold, WalkForwardRun
from services.results.timefmt import rfc3339, utcnow

# The parts of a fold's result the API shows (the rest feeds the stitched curve).
_FOLD_FIELDS = ("fold", "train_start", "train_end", "test_start", "test_end", "parameters", "in_sample",
                "out_of_sample")


def new_job_id(ticker: str, now: datetime) -> str:
    """`walkforward_20250127_103045_btcusd_ab12cd`."""
    slug = re.sub(r"[^a-z0-9]", "", ticker.lower())[:32]
    return f"walkforward_{now.strftime('%Y%m%d_%H%M%S')}_{slug}_{secrets.token_hex(3)}"


def windows_of(spec: dict[str, Any]) -> Windows:
    """The domain's windows of a stored WalkForwardSpec (proto defaults: 0 and "")."""
    return Windows(
        train_bars=int(spec.get("train_bars") or 0),
        test_bars=int(spec.get("test_bars") or 0),
        step_bars=int(spec.get("step_bars") or 0),
        anchored=bool(spec.get("anchored", False)),
        objective=str(spec.get("objective") or "score"),
    )


def submit(session: Session, submission: Submission, spec: dict[str, Any]) -> Job:
    """Check the sweep and the windows (against the dataset's bars), then insert the queued
    job, its run row, its first event and one JobMessage per fold."""
    jobs.check_tenant(session, submission.tenant_id)
    sweep = dict(spec.get("sweep") or {})
    combinations = sweeps.validate_sweep_spec(sweep)
    for problem in (target_problem(sweep.get("tickers"), sweep.get("universe")),
                    strategy_problem(str(sweep.get("strategy_type") or "SMA"))):
        if problem is not None:
            raise InvalidArgument(f"{problem.field}: {problem.message}")
    windows = windows_of(spec)
    found = resolve_dataset(session, submission.tenant_id, str(sweep.get("ticker", "")), str(sweep.get("interval") or ""))
    if found is None:
        raise InvalidArgument(f"no dataset for ticker {sweep.get('ticker')!r}: upload its bars before a walk-forward")
    problems = folds_problems(found.bars, windows)
    if problems:
        raise InvalidArgument("; ".join(f"{p.field}: {p.message}" for p in problems))
    n_folds = fold_count(found.bars, windows)
    now = utcnow()
    stored = {**spec, "sweep": sweep, "folds": n_folds, "bars": found.bars, "dataset_version_id": found.version_id,
              "objective": windows.objective}
    # The work: every training window's bars x the grid (a test window is one combination).
    train = [windows.train_bars + (k * windows.step_bars if windows.anchored else 0) for k in range(n_folds)]
    bar_pairs = combinations * sum(train) + n_folds * windows.test_bars
    job = jobs.queued_job(
        submission,
        job_id=new_job_id(str(sweep.get("ticker", "")), now),
        combinations=combinations,
        estimated_duration_seconds=sweeps.estimate_duration_seconds(combinations, bar_pairs // max(combinations, 1)),
        now=now,
        bar_pairs=bar_pairs,
    )
    session.add(job)
    session.flush()
    session.add(WalkForwardRun(job_id=job.job_id, tenant_id=job.tenant_id, spec=stored, folds=n_folds, result=None,
                               created_at=now))
    jobs.append_queued_event(session, job)
    # Folds are independent: a shard each (services.results.shards), any engine replica takes any.
    ticker = str(sweep.get("ticker", ""))
    shards.queue(session, job, submission, [
        shards.new_shard(job, fold_shard_id(k + 1), k, ticker=ticker, bars=train[k] + windows.test_bars,
                         bar_pairs=combinations * train[k] + windows.test_bars)
        for k in range(n_folds)
    ])
    session.flush()
    return job


def run_of(session: Session, job_id: str) -> WalkForwardRun:
    run = session.get(WalkForwardRun, job_id)
    if run is None:
        raise NotFound(f"walk-forward {job_id!r} not found")
    return run


def _stored_folds(session: Session, job_id: str) -> list[WalkForwardFold]:
    return list(session.scalars(sa.select(WalkForwardFold).where(WalkForwardFold.job_id == job_id)
                                .order_by(WalkForwardFold.fold)))


def _check_fold(result: Any, fold: int) -> dict[str, Any]:
    if not isinstance(result, dict) or result.get("fold") != fold or not isinstance(result.get("oos"), dict):
        raise InvalidArgument(f"fold {fold + 1}: not a fold result of this walk-forward")
    return result


def fold_message(done: int, total: int, ended: int, count: int) -> str:
    """A walk-forward's progress message (shards.Describe): its folds done."""
    return f"Fold {ended}/{count} done"


def complete_fold(session: Session, job_id: str, fold_number: int, result_json: str,
                  seconds: float) -> tuple[bool, bool]:
    """Store a fold an engine finished; (stored, job completed). The fold is a shard
    (services.results.shards): stored once (a redelivery stores nothing), and the last
    fold's shard to end computes the stitched curve and completes the job, once."""
    job = jobs.locked_job(session, job_id)
    if job.state == jobs.COMPLETED:
        return True, False
    if job.state in (jobs.FAILED, jobs.CANCELLED):
        return False, False
    if job.state != jobs.RUNNING:
        raise FailedPrecondition(f"job {job_id!r} is {job.state}, not running")
    run = run_of(session, job_id)
    if not 1 <= fold_number <= run.folds:
        raise InvalidArgument(f"fold_number must be from 1 to {run.folds}")
    try:
        result = json.loads(result_json)
    except ValueError as exc:
        raise InvalidArgument("result_json is not JSON") from exc
    result = _check_fold(result, fold_number - 1)
    # A job queued before folds were shards has none: its folds are counted instead.
    shard = session.get(SweepShard, (job_id, fold_shard_id(fold_number)))
    if shard is not None and shard.state in shards.ENDED:
        return shard.state == jobs.COMPLETED, False  # a redelivered fold: its first completion was stored
    if session.get(WalkForwardFold, (job_id, fold_number - 1)) is None:
        session.add(WalkForwardFold(job_id=job_id, fold=fold_number - 1, result=result,
                                    execution_time_seconds=float(seconds), created_at=utcnow()))
        session.flush()
    if shard is not None:
        shards.end(session, shard, jobs.COMPLETED, engine_seconds=seconds)
        last = shards.all_ended(session, job_id)
    else:
        last = len(_stored_folds(session, job_id)) >= run.folds
    if not last:
        if shard is not None:
            shards.advance(session, job, fold_message)
        else:
            done = len(_stored_folds(session, job_id))
            p = jobs.percent(100.0 * done / run.folds)
            job.percent = float(p)
            job.progress_message = fold_message(0, 0, done, run.folds)
            jobs.append_event(session, job, "progress",
                              {"percent": p, "message": job.progress_message, "timestamp": rfc3339(utcnow())})
        return True, False
    stored = _stored_folds(session, job_id)
    run.result = _stitched(run, [f.result for f in stored])
    now = utcnow()
    job.metrics = {
        "duration_seconds": round((now - (job.started_at or job.created_at)).total_seconds(), 1),
        "folds": run.folds,
        "combinations_tested": job.combinations * run.folds,
        "engine_seconds": round(math.fsum(f.execution_time_seconds for f in stored), 3),
        "walk_forward_efficiency": run.result["walk_forward_efficiency"],
    }
    jobs.end_job(session, job, jobs.COMPLETED, finish)
    return True, True


def start_fold(session: Session, job: Job, shard_id: str) -> bool:
    """An engine takes a fold's shard (shards.start)."""
    return shards.start(session, job, shard_id)


def fold_progress(session: Session, job_id: str, shard_id: str, percent: float) -> tuple[bool, str]:
    """A fold's own progress (0..100 of its bar-pairs), the job's in folds done (shards.progress)."""
    return shards.progress(session, job_id, shard_id, percent, fold_message)


def fail_fold(session: Session, job_id: str, shard_id: str, error_message: str) -> Job:
    """A fold failed for good (its message dead-lettered): the walk-forward fails, as it
    does when its engine reports a fold's error (its curve needs every fold)."""
    job = jobs.locked_job(session, job_id)
    if job.state in jobs.ACTIVE_STATES:
        jobs.end_job(session, job, jobs.FAILED, finish, error_message=error_message or "Fold failed")
    return job


def _stitched(run: WalkForwardRun, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The stitched out-of-sample curve and the efficiency of a run's folds (in fold order)."""
    sweep = run.spec.get("sweep") or {}
    cash = float(sweep.get("initial_cash") or 10_000.0)
    windows = [
        OutOfSample(day_ts=r["oos"]["day_ts"], equity=r["oos"]["equity"], hold=r["oos"]["hold"],
                   ntrades=r["oos"]["ntrades"], nwins=r["oos"]["nwins"], gross_profit=r["oos"]["gross_profit"],
                   gross_loss=r["oos"]["gross_loss"], duration_ns=r["oos"]["duration_ns"])
        for r in results
    ]
    periods_per_year = float(results[0].get("periods_per_year") or 365) if results else 365.0
    curve = stitch(windows, cash, periods_per_year)
    pairs = [((r.get("in_sample") or {}).get("annualized_return"), (r.get("out_of_sample") or {}).get("annualized_return"))
             for r in results if r.get("parameters")]
    return {"stitched": curve, "walk_forward_efficiency": efficiency(pairs)}


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fold_view(result: dict[str, Any]) -> dict[str, Any]:
    """A stored fold as the API shows it."""
    out = {name: result.get(name) for name in _FOLD_FIELDS}
    for name in ("train_start", "train_end", "test_start", "test_end"):
        # The bounds' bars (the end's is the window's last bar; `*_end` itself is exclusive).
        out[f"{name}_time"] = _iso(int(result[f"{name}_ts"]))
    return out


def view(session: Session, tenant_id: str, job_id: str) -> dict[str, Any]:
    """`GET /api/v1/walkforward/{job_id}`: the spec, the folds stored so far and, once
    complete, the stitched out-of-sample curve and the walk-forward efficiency."""
    job = jobs.get_job(session, tenant_id, job_id)
    run = session.get(WalkForwardRun, job_id)
    if run is None:
        raise NotFound(f"walk-forward {job_id!r} not found")
    spec = run.spec
    sweep = spec.get("sweep") or {}
    stored = _stored_folds(session, job_id)
    result = run.result or {}
    curve = result.get("stitched")
    stitched = None
    if curve is not None:
        stitched = {
            "equity": [{"timestamp": _iso(p["ts"]), "equity": p["equity"], "buy_and_hold": p["buy_and_hold"]}
                       for p in curve["equity"]],
            "metrics": curve["metrics"],
        }
    return {
        "job_id": job.job_id,
        "status": job.state,
        "error_message": job.error_message or None,
        "ticker": sweep.get("ticker", ""),
        "interval": sweep.get("interval") or "",
        "strategy_type": sweep.get("strategy_type") or "SMA",
        "min_trades": int(sweep.get("min_trades") or 0),
        "train_bars": int(spec.get("train_bars") or 0),
        "test_bars": int(spec.get("test_bars") or 0),
        "step_bars": int(spec.get("step_bars") or 0),
        "anchored": bool(spec.get("anchored", False)),
        "objective": spec.get("objective") or "score",
        "bars": int(spec.get("bars") or 0),
        "combinations": job.combinations,
        "folds_total": run.folds,
        "folds_completed": len(stored),
        "folds": [fold_view(f.result) for f in stored],
        "stitched": stitched,
        "walk_forward_efficiency": result.get("walk_forward_efficiency"),
        "created_at": rfc3339(job.created_at),
        "completed_at": rfc3339(job.completed_at) or None,
    }


def finish(session: Session, job: Job, state: str, error_message: str, ts: str) -> JobEnd:
    """A walk-forward's final event and its callback (`walkforward.completed` / `walkforward.failed`);
    ended otherwise than completed, its folds not ended end with it (none starts afterwards)."""
    if state != jobs.COMPLETED:
        shards.close(session, job, state, error_message)
    run = session.get(WalkForwardRun, job.job_id)
    ticker = str(((run.spec if run is not None else {}).get("sweep") or {}).get("ticker", ""))
    if state == jobs.COMPLETED:
        wfe = ((run.result if run is not None else None) or {}).get("walk_forward_efficiency")
        event_type = "walkforward.completed"
        payload = {
            "event_type": event_type, "job_id": job.job_id, "status": state, "ticker": ticker,
            "result_data": {"folds": run.folds if run is not None else 0, "walk_forward_efficiency": wfe,
                            "completed_at": ts},
            "timestamp": ts,
        }
        event = {"done": True, "status": state, "job_id": job.job_id, "walk_forward_efficiency": wfe, "timestamp": ts}
        return JobEnd(event, event_type, payload)
    event_type = "walkforward.failed"
    payload = {"event_type": event_type, "job_id": job.job_id, "status": state, "ticker": ticker,
               "error_message": error_message, "timestamp": ts}
    event = {"error": True, "message": error_message, "status": state, "timestamp": ts}
    return JobEnd(event, event_type, payload)
