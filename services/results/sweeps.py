"""Reading a stored sweep run: the best combinations (the seed's `/sweeps/{id}/best`)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.results.errors import NotFound
from services.results.models import SweepResult, SweepRun


@dataclass(frozen=True)
class SweepBest:
    """The best rows of a run and the counts around them."""

    run: SweepRun
    rows: list[SweepResult]
    # Rows with total_trades >= min_trades (after the ticker filter).
    total_results: int
    # Rows left out for having fewer than min_trades trades (after the ticker filter).
    excluded_below_min_trades: int


def sweep_best(session: Session, tenant_id: str, sweep_run_id: str, ticker: str, limit: int) -> SweepBest:
    """Qualifying rows by score, best first (undefined scores last)."""
    run = session.scalar(
        sa.select(SweepRun).where(SweepRun.sweep_run_id == sweep_run_id, SweepRun.tenant_id == tenant_id)
    )
    if run is None:
        raise NotFound(f"sweep run {sweep_run_id!r} not found")
    where = [SweepResult.sweep_run_id == sweep_run_id]
    if ticker:
        where.append(sa.func.upper(SweepResult.ticker) == ticker.strip().upper())
    qualifies = SweepResult.total_trades >= run.min_trades
    counts = session.execute(
        sa.select(
            sa.func.count().filter(qualifies),
            sa.func.count().filter(sa.not_(qualifies)),
        ).where(*where)
    ).one()
    rows = session.scalars(
        sa.select(SweepResult)
        .where(*where, qualifies)
        .order_by(SweepResult.score.desc().nulls_last(), SweepResult.id)
        .limit(limit)
    )
    return SweepBest(run, list(rows), int(counts[0] or 0), int(counts[1] or 0))
