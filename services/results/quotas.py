"""Fair tenants (issue 12): what one tenant may queue and run at once, so no tenant's work
keeps another's waiting.

Two places apply the limits, both inside the caller's transaction and after locking the
tenant's row, so concurrent submissions and starts of one tenant count one after the other:
- at submission (`check_submission`): a tenant's unfinished jobs (queued or running) and
  their queued bar-pairs (a sweep's combinations × bars; a day-by-day run's bars) are
  bounded; past either limit the job is refused with TooManyRequests (the API's 429 and
  Retry-After) and nothing is stored. The requested `timeout_seconds` is bounded by the
  operator's maximum (InvalidArgument, a 400).
- when an engine takes a job (`start_delay`): a tenant runs at most `max_running` jobs at
  once. A job beyond it stays queued and the engine offers its message again after a
  short delay, taking the next message meanwhile: another tenant's job in the queue
  behind it starts at once on a free engine slot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.sweep import TIMEOUT_SECONDS_MIN
from libs.settings import Settings
from services.results.errors import InvalidArgument, TooManyRequests
from services.results.jobs import ACTIVE_STATES, RUNNING
from services.results.models import Job, Tenant
from services.results.timefmt import utcnow

# Bounds of the Retry-After of a refused submission (seconds).
RETRY_AFTER_MIN, RETRY_AFTER_MAX = 1, 3600


@dataclass(frozen=True)
class TenantLimits:
    """The operator's limits per tenant. Their defaults and meanings live in one place,
    libs.settings (HINDSIGHT_TENANT_*, HINDSIGHT_MAX_TIMEOUT_SECONDS); `of` reads them."""

    max_running: int
    max_active: int
    max_queued_bar_pairs: int
    max_timeout_seconds: int
    # How long a job held back by its tenant's running limit waits before it is offered again.
    wait_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> TenantLimits:
        return cls(
            max_running=settings.hindsight_tenant_max_running_jobs,
            max_active=settings.hindsight_tenant_max_active_jobs,
            max_queued_bar_pairs=settings.hindsight_tenant_max_queued_bar_pairs,
            max_timeout_seconds=settings.hindsight_max_timeout_seconds,
            wait_seconds=settings.hindsight_tenant_wait_seconds,
        )


def lock_tenant(session: Session, tenant_id: str) -> None:
    """Serialise this tenant's submissions and starts until the transaction ends."""
    session.execute(sa.select(Tenant.tenant_id).where(Tenant.tenant_id == tenant_id).with_for_update())


def check_timeout(timeout_seconds: int, limits: TenantLimits) -> None:
    """A job's `timeout_seconds`, for every kind: positive, and at most the operator's maximum
    (itself at most the domain's TIMEOUT_SECONDS_MAX: libs.settings)."""
    if timeout_seconds < TIMEOUT_SECONDS_MIN:
        raise InvalidArgument("timeout_seconds must be positive")
    if timeout_seconds > limits.max_timeout_seconds:
        raise InvalidArgument(
            f"timeout_seconds must be at most {limits.max_timeout_seconds} (this server's maximum)"
        )


def _remaining_seconds(estimate: int, started_at: datetime | None, now: datetime) -> float:
    """What is left of a job's estimated run time (its whole estimate while queued)."""
    if started_at is None:
        return float(estimate or 1)
    return max(1.0, float(estimate or 1) - (now - started_at).total_seconds())


def _retry_after(seconds: float) -> int:
    return int(min(RETRY_AFTER_MAX, max(RETRY_AFTER_MIN, math.ceil(seconds))))


def check_submission(session: Session, job: Job, limits: TenantLimits) -> None:
    """Refuse `job` (added to the session, not yet committed) when its tenant's unfinished
    work, with it, passes the limits. The caller's transaction is rolled back on the raise."""
    lock_tenant(session, job.tenant_id)
    # (estimate, started_at, bar_pairs) of the tenant's other unfinished jobs, oldest first.
    others = session.execute(
        sa.select(Job.estimated_duration_seconds, Job.started_at, Job.bar_pairs)
        .where(Job.tenant_id == job.tenant_id, Job.state.in_(ACTIVE_STATES), Job.job_id != job.job_id)
        .order_by(Job.created_at, Job.job_id)
    ).all()
    now = utcnow()
    if len(others) + 1 > limits.max_active:
        # A slot frees when the first of them ends.
        wait = min(_remaining_seconds(est, started, now) for est, started, _ in others)
        raise TooManyRequests(
            f"too many unfinished jobs: at most {limits.max_active} queued or running per tenant; "
            "retry when one has ended",
            retry_after_seconds=_retry_after(wait),
        )
    queued = sum(int(pairs or 0) for _, _, pairs in others)
    if queued + int(job.bar_pairs or 0) > limits.max_queued_bar_pairs:
        if int(job.bar_pairs or 0) > limits.max_queued_bar_pairs:
            raise InvalidArgument(
                f"this job is {job.bar_pairs:,} bar-pairs (combinations × bars); a tenant may queue at most "
                f"{limits.max_queued_bar_pairs:,}: narrow the ranges, raise the step or use fewer bars"
            )
        # Enough of the queue has drained when the jobs ahead of the overflow have ended.
        need = queued + int(job.bar_pairs) - limits.max_queued_bar_pairs
        wait, freed = 0.0, 0
        for est, started, pairs in others:
            wait += _remaining_seconds(est, started, now)
            freed += int(pairs or 0)
            if freed >= need:
                break
        raise TooManyRequests(
            f"too much queued work: {queued:,} bar-pairs queued or running, and this job adds "
            f"{job.bar_pairs:,}; a tenant may have at most {limits.max_queued_bar_pairs:,}",
            retry_after_seconds=_retry_after(wait),
        )


def start_delay(session: Session, job: Job, limits: TenantLimits) -> float:
    """0 when the queued `job` may start now; else the seconds its message should wait
    before it is offered again (its tenant already runs `max_running` other jobs)."""
    lock_tenant(session, job.tenant_id)
    running = session.scalar(
        sa.select(sa.func.count())
        .select_from(Job)
        .where(Job.tenant_id == job.tenant_id, Job.state == RUNNING, Job.job_id != job.job_id)
    ) or 0
    return 0.0 if running < limits.max_running else float(limits.wait_seconds)
