"""Jobs: submission, the state machine, the event log and the messages they emit.

Every function takes a `Session` inside the caller's transaction; a state
change, its final event and its outbox message are written together. Job rows
are locked (`SELECT ... FOR UPDATE`) before a change, so concurrent requests
on one job (engine progress, a user's cancel, the timeout watchdog, another
replica) apply one after the other.

Job event payloads are the seed's SSE shapes:
- progress `{"percent": 42.5, "message": "...", "timestamp": "...Z"}`
- done `{"done": true, "status": "completed", "sweep_run_id": "...", "timestamp"}`
- error `{"error": true, "message": "...", "status": "failed"|"cancelled", "timestamp"}`
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from hindsight.bus.v1 import bus_pb2
from sqlalchemy.orm import Session

from libs.bus import JOB_EVENTS_QUEUE, JOBS_QUEUE
from libs.metric_fields import SWEEP_OPTIONAL_METRICS
from libs.sweep_grid import sweep_combos
from services.results import runs
from services.results.db import mark_job_event_added, mark_outbox_added
from services.results.errors import FailedPrecondition, InvalidArgument, NotFound
from services.results.keys import tenant_exists
from services.results.metrics import note_job_ended
from services.results.models import Job, JobEvent, OutboxMessage, SweepResult, SweepRun
from services.results.timefmt import rfc3339, utcnow
from services.results.trace_context import trace_headers

QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = "queued", "running", "completed", "failed", "cancelled"
ACTIVE_STATES = (QUEUED, RUNNING)
ENDED_STATES = (COMPLETED, FAILED, CANCELLED)
TERMINAL_EVENT_TYPES = ("done", "error")
SWEEP_KIND = "trading-sweep"
# Day-by-day rule-strategy backtests (seeds 002 and 004; services.results.daybyday).
DAY_BACKTEST_KIND = "day-backtest"
INTERVALS = ("1m", "5m", "15m", "1h", "1d")
CANCELLED_MESSAGE = "Job cancelled"
QUEUED_MESSAGE = "Job queued"
_RUN_ID_ALPHABET = string.ascii_lowercase + string.digits
log = logging.getLogger(__name__)


# ---------------------------------------------------------------- helpers


def _percent(value: float) -> float | int:
    """0..100 with one decimal; whole numbers as ints (`50`, not `50.0`, like the seed)."""
    p = round(min(100.0, max(0.0, float(value))), 1)
    return int(p) if p.is_integer() else p


def new_job_id(kind: str, ticker: str, now: datetime) -> str:
    """`sweep_20250127_103045_btcusd_ab12cd` (the seed's id plus 6 random hex chars)."""
    prefix = "sweep" if kind == SWEEP_KIND else (re.sub(r"[^a-z0-9]", "", kind.lower()) or "job")
    slug = re.sub(r"[^a-z0-9]", "", ticker.lower())
    return f"{prefix}_{now.strftime('%Y%m%d_%H%M%S')}_{slug}_{secrets.token_hex(3)}"


def new_sweep_run_id() -> str:
    """`run_` + 12 random lowercase alphanumerics (the seed's `run_abc123xyz789`)."""
    return "run_" + "".join(secrets.choice(_RUN_ID_ALPHABET) for _ in range(12))


# Bar-pairs per second the estimate assumes: well under the kernel's ~500 M/s on one
# core, to leave room for a loaded machine, progress reports and storing the results.
ESTIMATE_BAR_PAIRS_PER_SECOND = 100e6


def estimate_duration_seconds(combinations: int, bars: int) -> int:
    """Rough run time shown at submission: 1 s to start and load the bars, plus the
    fused sweep over bars × combinations; 1 s when there are no bars (the job fails fast)."""
    if bars <= 0:
        return 1
    return max(1, math.ceil(1 + bars / 1e6 + combinations * bars / ESTIMATE_BAR_PAIRS_PER_SECOND))


def _bars_of(session: Session, tenant_id: str, spec: dict[str, Any]) -> int:
    """Bars of the dataset the sweep will run on (0 when there is none yet)."""
    from services.results.datasets import resolve_dataset

    found = resolve_dataset(session, tenant_id, str(spec.get("ticker", "")), str(spec.get("interval") or ""))
    return int(found.bars) if found is not None else 0


def validate_sweep_spec(spec: dict[str, Any]) -> int:
    """Check a sweep spec (a SweepSpec as a dict); returns the number of combinations."""
    ticker = str(spec.get("ticker", "")).strip()
    if not ticker:
        raise InvalidArgument("sweep.ticker is required")
    if len(ticker) > 32 or not re.search(r"[A-Za-z0-9]", ticker):
        raise InvalidArgument(f"sweep.ticker {ticker!r} must be 1-32 characters with a letter or digit")
    if spec.get("interval") and spec["interval"] not in INTERVALS:
        raise InvalidArgument(f"sweep.interval must be one of {', '.join(INTERVALS)} (or empty), not {spec['interval']!r}")
    step = int(spec.get("step", 0))
    if step < 1:
        raise InvalidArgument("sweep.step must be at least 1")
    fmin, fmax, smin, smax = (int(spec.get(k, 0)) for k in ("fast_min", "fast_max", "slow_min", "slow_max"))
    if fmin < 1 or smin < 1:
        raise InvalidArgument("sweep periods must be at least 1")
    if fmin > fmax or smin > smax:
        raise InvalidArgument("sweep ranges must have min <= max")
    if int(spec.get("min_trades", 0)) < 0:
        raise InvalidArgument("sweep.min_trades must not be negative")
    combos = len(sweep_combos(fmin, fmax, smin, smax, step))
    if combos == 0:
        raise InvalidArgument("the sweep has no (fast, slow) combination with fast < slow")
    return combos


def add_outbox(session: Session, queue: str, body: bytes, headers: dict[str, Any] | None = None) -> None:
    """Queue a broker message to be published by the relay once this transaction commits.

    It keeps the trace context of the call that wrote it (when tracing is on), so the
    relay's publish and its consumer join that call's trace.
    """
    headers = {**trace_headers(), **(headers or {})}
    session.add(OutboxMessage(queue=queue, body=body, headers=headers, created_at=utcnow(), sent_at=None))
    mark_outbox_added(session)


def append_event(session: Session, job: Job, type_: str, data: dict[str, Any]) -> JobEvent:
    """Append the job's next event (the job row must be locked by this transaction)."""
    job.last_event_seq += 1
    event = JobEvent(job_id=job.job_id, seq=job.last_event_seq, type=type_, data=data, created_at=utcnow())
    session.add(event)
    mark_job_event_added(session, job.job_id)
    return event


def _locked_job(session: Session, job_id: str, tenant_id: str | None = None) -> Job:
    q = sa.select(Job).where(Job.job_id == job_id).with_for_update()
    if tenant_id is not None:
        q = q.where(Job.tenant_id == tenant_id)
    job = session.scalar(q)
    if job is None:
        raise NotFound(f"job {job_id!r} not found")
    return job


def job_message(job: Job) -> bytes:
    return bus_pb2.JobMessage(job_id=job.job_id, tenant_id=job.tenant_id, kind=job.kind).SerializeToString()


def _ticker(job: Job) -> str:
    return str((job.sweep_spec or {}).get("ticker", "") or (job.parameters or {}).get("ticker", ""))


def _end(
    session: Session,
    job: Job,
    state: str,
    *,
    error_message: str = "",
    sweep_run_id: str = "",
    execution_time_seconds: float = 0.0,
    total_combinations: int = 0,
) -> None:
    """Move an active job to an end state: row, final event and JobEnded outbox message together."""
    now = utcnow()
    job.state = state
    job.completed_at = now
    ts = rfc3339(now)
    ticker = _ticker(job)
    payload: dict[str, Any]
    if state == COMPLETED:
        job.percent = 100.0
        job.progress_message = "Completed"
    else:
        job.error_message = error_message
    if job.kind == DAY_BACKTEST_KIND:
        # Day-by-day backtests have the seed-002 stream's final events and backtest.* callbacks.
        from services.results import daybyday

        event, event_type, payload = daybyday.job_end(session, job, state, error_message, ts)
        append_event(session, job, "done" if state == COMPLETED else "error", event)
    elif state == COMPLETED:
        append_event(session, job, "done", {"done": True, "status": COMPLETED, "sweep_run_id": sweep_run_id, "timestamp": ts})
        event_type = "sweep.completed"
        payload = {
            "event_type": event_type,
            "job_id": job.job_id,
            "sweep_run_id": sweep_run_id,
            "status": COMPLETED,
            "ticker": ticker,
            "result_data": {
                "sweep_run_id": sweep_run_id,
                "total_combinations": total_combinations,
                "execution_time_seconds": execution_time_seconds,
                "completed_at": ts,
            },
            "timestamp": ts,
        }
    else:
        append_event(session, job, "error", {"error": True, "message": error_message, "status": state, "timestamp": ts})
        event_type = "sweep.failed"
        payload = {
            "event_type": event_type,
            "job_id": job.job_id,
            "status": state,
            "ticker": ticker,
            "error_message": error_message,
            "timestamp": ts,
        }
    ended = bus_pb2.JobEndedMessage(
        job_id=job.job_id,
        tenant_id=job.tenant_id,
        status=state,
        event_type=event_type,
        payload_json=json.dumps(payload),
        webhook_url=job.webhook_url,
        event_id=str(uuid.uuid4()),
    )
    # add_outbox attaches the trace context of the call that ended the job (engine, user, watchdog).
    add_outbox(session, JOB_EVENTS_QUEUE, ended.SerializeToString())
    note_job_ended(session, job, state, sweep_run_id)


# ---------------------------------------------------------------- user side


def submit_job(
    session: Session,
    *,
    tenant_id: str,
    kind: str,
    parameters: Any,
    sweep_spec: dict[str, Any],
    webhook_url: str,
    notify_email: str,
    timeout_seconds: int,
    trace_id: str,
    headers: dict[str, Any],
) -> Job:
    """Insert a queued job, its first event and its JobMessage (outbox) in the caller's transaction."""
    if not tenant_exists(session, tenant_id):
        raise NotFound(f"tenant {tenant_id!r} not found")
    combinations = validate_sweep_spec(sweep_spec)
    if timeout_seconds < 1:
        raise InvalidArgument("timeout_seconds must be positive")
    now = utcnow()
    job = queued_job(
        job_id=new_job_id(kind, str(sweep_spec["ticker"]), now),
        tenant_id=tenant_id,
        kind=kind,
        parameters=parameters,
        sweep_spec=sweep_spec,
        webhook_url=webhook_url,
        notify_email=notify_email,
        timeout_seconds=timeout_seconds,
        trace_id=trace_id,
        combinations=combinations,
        estimated_duration_seconds=estimate_duration_seconds(combinations, _bars_of(session, tenant_id, sweep_spec)),
        now=now,
    )
    session.add(job)
    append_queued_event(session, job)
    add_outbox(session, JOBS_QUEUE, job_message(job), headers)
    session.flush()
    return job


def queued_job(
    *,
    job_id: str,
    tenant_id: str,
    kind: str,
    parameters: Any,
    sweep_spec: dict[str, Any] | None,
    webhook_url: str,
    notify_email: str,
    timeout_seconds: int,
    trace_id: str,
    combinations: int,
    estimated_duration_seconds: int,
    now: datetime,
) -> Job:
    """A new job's row, queued at `now` (the caller adds it, then its first event: `append_queued_event`)."""
    return Job(
        job_id=job_id,
        tenant_id=tenant_id,
        kind=kind,
        state=QUEUED,
        parameters=parameters,
        sweep_spec=sweep_spec,
        webhook_url=webhook_url,
        notify_email=notify_email,
        timeout_seconds=timeout_seconds,
        created_at=now,
        deadline_at=now + timedelta(seconds=timeout_seconds),
        started_at=None,
        completed_at=None,
        error_message="",
        percent=0.0,
        progress_message=QUEUED_MESSAGE,
        sweep_run_id=None,
        combinations=combinations,
        estimated_duration_seconds=estimated_duration_seconds,
        metrics=None,
        trace_id=trace_id,
        last_event_seq=0,
    )


def append_queued_event(session: Session, job: Job) -> None:
    """A new job's first event: queued, at its creation time."""
    append_event(session, job, "progress", {"percent": 0, "message": QUEUED_MESSAGE, "timestamp": rfc3339(job.created_at)})


def get_job(session: Session, tenant_id: str, job_id: str) -> Job:
    job = session.scalar(sa.select(Job).where(Job.job_id == job_id, Job.tenant_id == tenant_id))
    if job is None:
        raise NotFound(f"job {job_id!r} not found")
    return job


def list_jobs(session: Session, tenant_id: str, limit: int, offset: int, state: str | None) -> tuple[list[Job], int]:
    where = [Job.tenant_id == tenant_id]
    if state:
        where.append(Job.state == state)
    total = session.scalar(sa.select(sa.func.count()).select_from(Job).where(*where)) or 0
    rows = session.scalars(
        sa.select(Job).where(*where).order_by(Job.created_at.desc(), Job.job_id.desc()).limit(limit).offset(offset)
    )
    return list(rows), int(total)


def cancel_job(session: Session, tenant_id: str, job_id: str) -> Job:
    job = _locked_job(session, job_id, tenant_id)
    if job.state not in ACTIVE_STATES:
        raise FailedPrecondition(f"job already {job.state}")
    _end(session, job, CANCELLED, error_message=CANCELLED_MESSAGE)
    return job


def events_after(session: Session, job_id: str, after_seq: int, limit: int = 500) -> list[JobEvent]:
    return list(
        session.scalars(
            sa.select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > after_seq).order_by(JobEvent.seq).limit(limit)
        )
    )


# ---------------------------------------------------------------- engine side


def start_job(session: Session, job_id: str) -> tuple[bool, Job]:
    """Queued → running (or running again after an engine crash); False for ended jobs."""
    job = _locked_job(session, job_id)
    if job.state not in ACTIVE_STATES:
        return False, job
    if job.state == RUNNING and job.kind == DAY_BACKTEST_KIND:
        return True, job  # another shard of a day-by-day job that is already running
    now = utcnow()
    message = "Job started" if job.state == QUEUED else "Job restarted after an interruption"
    job.state = RUNNING
    # A redelivery keeps the first start: the job's run time counts from there.
    job.started_at = job.started_at or now
    job.progress_message = message
    append_event(session, job, "progress", {"percent": _percent(job.percent), "message": message, "timestamp": rfc3339(now)})
    return True, job


def report_progress(session: Session, job_id: str, percent: float, message: str) -> tuple[bool, str]:
    """Record progress of a running job; (stop, reason) tells the engine whether to give up."""
    if not math.isfinite(percent):
        raise InvalidArgument("percent must be a number between 0 and 100")
    job = _locked_job(session, job_id)
    if job.state == RUNNING:
        p = _percent(percent)
        job.percent = float(p)
        job.progress_message = message
        append_event(session, job, "progress", {"percent": p, "message": message, "timestamp": rfc3339(utcnow())})
        return False, ""
    if job.state == QUEUED:
        return False, ""
    if job.state == CANCELLED:
        return True, "job cancelled"
    if job.state == FAILED:
        return True, f"job failed: {job.error_message}"
    return True, "job already completed"


@dataclass(frozen=True)
class SweepRow:
    """One combo's metrics as the engine reports them (None: undefined)."""

    ticker: str
    strategy_type: str
    fast_period: int
    slow_period: int
    total_trades: int
    avg_trade_duration: str
    metrics: dict[str, float | None]


def complete_sweep(
    session: Session,
    job_id: str,
    rows: list[SweepRow],
    execution_time_seconds: float,
    bars: int,
    dataset_version_id: str = "",
) -> tuple[str, bool]:
    """Store a sweep's results, save the sweep as a run, and complete its job; (sweep_run_id, stored)."""
    job = _locked_job(session, job_id)
    if job.state == COMPLETED:
        # A redelivered completion: the first one was stored.
        return job.sweep_run_id or "", True
    if job.state in (FAILED, CANCELLED):
        return "", False
    if job.state != RUNNING:
        raise FailedPrecondition(f"job {job_id!r} is {job.state}, not running")
    spec = job.sweep_spec or {}
    now = utcnow()
    run_id = new_sweep_run_id()
    session.add(
        SweepRun(
            sweep_run_id=run_id,
            job_id=job.job_id,
            tenant_id=job.tenant_id,
            ticker=str(spec.get("ticker", "")),
            strategy_type=str(spec.get("strategy_type") or "SMA"),
            min_trades=int(spec.get("min_trades", 0)),
            total_combinations=len(rows),
            execution_time_seconds=float(execution_time_seconds),
            created_at=now,
        )
    )
    session.flush()
    if rows:
        session.execute(
            sa.insert(SweepResult),
            [
                {
                    "sweep_run_id": run_id,
                    "ticker": r.ticker,
                    "strategy_type": r.strategy_type,
                    "fast_period": r.fast_period,
                    "slow_period": r.slow_period,
                    "total_trades": r.total_trades,
                    "avg_trade_duration": r.avg_trade_duration,
                    **{k: runs.finite(r.metrics.get(k)) for k in SWEEP_OPTIONAL_METRICS},
                }
                for r in rows
            ],
        )
    _save_sweep_run(session, job, run_id, rows, execution_time_seconds, bars, dataset_version_id)
    started = job.started_at or job.created_at
    # The seed's callback reports execution_time_seconds as the job's wall time from
    # submission to completion (its example: queued 10:30:45, done 10:32:52 → 127);
    # the engine's own compute time is kept beside it as engine_seconds.
    wall_seconds = round((now - job.created_at).total_seconds(), 1)
    job.sweep_run_id = run_id
    job.metrics = {
        "duration_seconds": round((now - started).total_seconds(), 1),
        "combinations_tested": len(rows),
        "execution_time_seconds": wall_seconds,
        "engine_seconds": round(float(execution_time_seconds), 3),
        "bars": int(bars),
    }
    _end(
        session,
        job,
        COMPLETED,
        sweep_run_id=run_id,
        execution_time_seconds=wall_seconds,
        total_combinations=len(rows),
    )
    return run_id, True


def _save_sweep_run(session: Session, job: Job, sweep_run_id: str, rows: list[SweepRow], seconds: float, bars: int,
                    dataset_version_id: str) -> None:
    """Every sweep is also a saved run (services.results.runs); recording it never fails the sweep."""
    try:
        with session.begin_nested():
            runs.record_sweep_run(session, job, sweep_run_id, rows, float(seconds), int(bars), dataset_version_id)
    except Exception:  # a bug in the run record must not lose the sweep's results
        log.exception("could not save the sweep as a run", extra={"job_id": job.job_id, "sweep_run_id": sweep_run_id})


def fail_job(session: Session, job_id: str, error_message: str) -> Job:
    """Running/queued → failed; an ended job is returned unchanged."""
    job = _locked_job(session, job_id)
    if job.state in ACTIVE_STATES:
        _end(session, job, FAILED, error_message=error_message or "Job failed")
    return job


# ---------------------------------------------------------------- supervision


def overdue_job_ids(session: Session, now: datetime, limit: int = 100) -> list[str]:
    return list(
        session.scalars(
            sa.select(Job.job_id)
            .where(Job.state.in_(ACTIVE_STATES), Job.deadline_at < now)
            .order_by(Job.deadline_at)
            .limit(limit)
        )
    )


def time_out_job(session: Session, job_id: str, now: datetime) -> bool:
    """Fail an active job whose deadline passed; False when it ended meanwhile."""
    job = _locked_job(session, job_id)
    if job.state not in ACTIVE_STATES or job.deadline_at >= now:
        return False
    _end(session, job, FAILED, error_message=f"Job timed out after {job.timeout_seconds} second{'' if job.timeout_seconds == 1 else 's'}")
    return True


def fail_dead_lettered(session: Session, job_id: str, attempts: int) -> bool:
    """Fail a job whose message exhausted its deliveries; False when unknown or already ended."""
    try:
        job = _locked_job(session, job_id)
    except NotFound:
        return False
    if job.state not in ACTIVE_STATES:
        return False
    _end(session, job, FAILED, error_message=f"Job could not be processed after {attempts} attempts")
    return True


def prune_sent_outbox(session: Session, older_than: datetime) -> int:
    """Delete outbox rows published before `older_than` (they are only kept for inspection)."""
    result = session.execute(
        sa.delete(OutboxMessage).where(OutboxMessage.sent_at.is_not(None), OutboxMessage.sent_at < older_than)
    )
    return int(result.rowcount or 0)


def requeue_active_jobs(session: Session) -> int:
    """Standalone restart: the in-memory queue is gone, so queue a JobMessage again for every active job.

    Unsent job messages are marked sent first so each job is queued once.
    """
    now = utcnow()
    session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.queue == JOBS_QUEUE, OutboxMessage.sent_at.is_(None))
        .values(sent_at=now)
    )
    jobs = list(session.scalars(sa.select(Job).where(Job.state.in_(ACTIVE_STATES)).order_by(Job.created_at)))
    for job in jobs:
        add_outbox(session, JOBS_QUEUE, job_message(job), {})
    return len(jobs)
