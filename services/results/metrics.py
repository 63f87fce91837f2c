"""Prometheus metrics of the results service, in a registry of its own.

Two kinds:
- what this replica saw happen: jobs that ended (seed 001's
  `pipeline_trading_sweep_jobs_completed_total` and
  `pipeline_trading_sweep_duration_seconds` for sweeps, `hindsight_jobs_ended_total`
  for every kind), observed once the transaction that ended the job committed;
- what the database holds, read every `refresh_seconds` and shortly after a job
  ends (at most once per `settle_seconds`), by a background task (never while
  Prometheus scrapes): the queue depth, active jobs by state and the bytes of
  day-by-day artifacts stored — the same on every replica, so aggregate them
  with `max`, not `sum` — and the best Sharpe ratio of each sweep this replica
  completed (read from its stored results).

Labels take values from closed sets only (end states, job kinds, strategy types):
never a ticker, tenant or id, which would show tenants' data to whoever reads the
metrics and let anyone grow the series without bound (issue 12).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy.orm import Session

from services.results.db import wait_any
from services.results.models import Job, SweepResult, SweepRun
from services.results.models_day_by_day import DayByDayBacktest, DayByDayBacktestDay

log = logging.getLogger(__name__)

# Seed 001's buckets (10 s .. 30 min), with finer ones in front for small sweeps and an hour at the end.
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# States the jobs gauge reports (ended jobs are counted by hindsight_jobs_ended_total instead:
# counting them in the database would read an ever-growing table).
ACTIVE_STATES = ("queued", "running")
# Strategy types a sweep label may name; anything else is counted as "other".
STRATEGY_TYPES = frozenset({"SMA", "EMA", "MACD"})
# Session.info keys of the jobs (and among them the sweeps) a transaction ended (read after its commit).
ENDED_KEY = "jobs_ended"
SWEEPS_ENDED_KEY = "sweeps_ended"


@dataclass(frozen=True)
class EndedJob:
    """A job that a transaction moved to an end state."""

    kind: str
    state: str


@dataclass(frozen=True)
class EndedSweep:
    """A sweep that a transaction moved to an end state (seed 001's metrics)."""

    state: str
    seconds: float
    sweep_run_id: str


def _seconds(start: datetime | None, end: datetime | None) -> float:
    if start is None or end is None:
        return 0.0
    # SQLite hands back naive datetimes (UTC); Postgres aware ones.
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return max(0.0, (end - start).total_seconds())


def note_job_ended(session: Session, job: Job, state: str) -> None:
    """Note on the session that `job` ended (counted once the transaction commits)."""
    session.info.setdefault(ENDED_KEY, []).append(EndedJob(job.kind, state))


def note_sweep_ended(session: Session, job: Job, state: str, sweep_run_id: str = "") -> None:
    """Note on the session that the sweep `job` ended (seed 001's metrics, counted once the transaction commits)."""
    ended = EndedSweep(state, _seconds(job.created_at, job.completed_at), sweep_run_id or "")
    session.info.setdefault(SWEEPS_ENDED_KEY, []).append(ended)


def strategy_label(strategy_type: str | None) -> str:
    """A strategy type as a label value: one of STRATEGY_TYPES (empty: SMA, the default) or "other"."""
    value = (strategy_type or "SMA").upper()
    return value if value in STRATEGY_TYPES else "other"


class ResultsMetrics:
    """The results service's collectors, and the task that refreshes the database gauges."""

    def __init__(
        self, refresh_seconds: float = 10.0, settle_seconds: float = 1.0, kind_names: Iterable[str] = ()
    ) -> None:
        self.refresh_seconds = refresh_seconds
        # The kinds the jobs gauge always reports (0 when none is active).
        self.kind_names = tuple(kind_names)
        # After a job ended, refresh this much later (one read for a burst of endings).
        self.settle_seconds = settle_seconds
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sweeps_completed = Counter(
            "pipeline_trading_sweep_jobs_completed_total",
            "Total completed trading sweeps (status: completed, failed, cancelled)",
            ["status"],
            registry=r,
        )
        self.sweep_duration = Histogram(
            "pipeline_trading_sweep_duration_seconds",
            "Trading sweep job duration, from submission to its end",
            ["status"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.jobs_ended = Counter(
            "hindsight_jobs_ended_total", "Jobs that ended, by kind and end state", ["kind", "state"], registry=r
        )
        self.queue_depth = Gauge("hindsight_job_queue_depth", "Jobs waiting to run (state queued, all kinds)", registry=r)
        self.jobs = Gauge("hindsight_jobs", "Active jobs (queued, running) by kind and state", ["kind", "state"],
                          registry=r)
        self.artifact_bytes = Gauge(
            "hindsight_artifact_bytes", "Bytes of day-by-day artifacts stored (not yet expired or cleared)", registry=r
        )
        self.best_sharpe = Gauge(
            "hindsight_sweep_best_sharpe_ratio",
            "Best Sharpe ratio among the combinations with at least min_trades trades, of the latest sweep "
            "per strategy type (any tenant, any ticker)",
            ["strategy_type"],
            registry=r,
        )
        self.refresh_failures = Counter(
            "hindsight_metrics_refresh_failures_total", "Failed reads of the database gauges", registry=r
        )
        self._db: Any = None
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._loop_ref: asyncio.AbstractEventLoop | None = None
        self._new_runs: list[str] = []
        self._kinds_seen: set[tuple[str, str]] = set()

    # ------------------------------------------------------------ what this replica saw

    def on_commit(self, info: dict) -> None:
        """Commit hook of the database (any thread): count the jobs the transaction ended."""
        ended_jobs = info.get(ENDED_KEY, ())
        if ended_jobs and self._loop_ref is not None and not self._loop_ref.is_closed():
            self._loop_ref.call_soon_threadsafe(self._wake.set)
        for ended in ended_jobs:
            self.jobs_ended.labels(kind=ended.kind, state=ended.state).inc()
        for sweep in info.get(SWEEPS_ENDED_KEY, ()):
            self.sweeps_completed.labels(status=sweep.state).inc()
            self.sweep_duration.labels(status=sweep.state).observe(sweep.seconds)
            if sweep.sweep_run_id:
                self._new_runs.append(sweep.sweep_run_id)

    # ------------------------------------------------------------ what the database holds

    def read_gauges(self, session: Session, run_ids: list[str]) -> tuple[dict, int, list[tuple[str, float]]]:
        """(active jobs by (kind, state), artifact bytes, [(strategy type, best sharpe)] of `run_ids`, oldest first)."""
        counts = {
            (kind, state): int(n)
            for kind, state, n in session.execute(
                sa.select(Job.kind, Job.state, sa.func.count())
                .where(Job.state.in_(ACTIVE_STATES))  # ix_jobs_state_deadline
                .group_by(Job.kind, Job.state)
            )
        }
        # A newer run of a strategy rewrites the same day files: count each day's directory once.
        per_day = (
            sa.select(sa.func.max(DayByDayBacktestDay.file_bytes).label("b"))
            .join(DayByDayBacktest, DayByDayBacktest.job_id == DayByDayBacktestDay.job_id)
            .where(DayByDayBacktest.artifacts_cleared_at.is_(None))
            .group_by(
                DayByDayBacktest.tenant_id, DayByDayBacktest.user_id, DayByDayBacktest.strategy_id, DayByDayBacktestDay.date
            )
            .subquery()
        )
        artifact_bytes = int(session.scalar(sa.select(sa.func.coalesce(sa.func.sum(per_day.c.b), 0))) or 0)
        best: list[tuple[str, float]] = []
        if run_ids:
            rows = session.execute(
                sa.select(SweepRun.strategy_type, sa.func.max(SweepResult.sharpe_ratio))
                .join(SweepResult, SweepResult.sweep_run_id == SweepRun.sweep_run_id)
                .where(SweepRun.sweep_run_id.in_(run_ids), SweepResult.total_trades >= SweepRun.min_trades)
                .group_by(SweepRun.sweep_run_id, SweepRun.strategy_type, SweepRun.created_at)
                .order_by(SweepRun.created_at)
            )
            best = [(s, float(v)) for s, v in rows if v is not None]
        return counts, artifact_bytes, best

    async def refresh(self) -> None:
        """Read the database gauges now."""
        runs, self._new_runs = self._new_runs, []

        def read() -> tuple[dict, int, list[tuple[str, float]]]:
            with self._db.read() as s:
                return self.read_gauges(s, runs)

        try:
            counts, artifact_bytes, best = await self._db.run(read)
        except Exception:
            self._new_runs = runs + self._new_runs
            raise
        self.queue_depth.set(sum(n for (_, state), n in counts.items() if state == "queued"))
        kinds = {kind for kind, _ in counts} | {kind for kind, _ in self._kinds_seen} | set(self.kind_names)
        for kind in kinds:
            for state in ACTIVE_STATES:
                self.jobs.labels(kind=kind, state=state).set(counts.get((kind, state), 0))
                self._kinds_seen.add((kind, state))
        self.artifact_bytes.set(artifact_bytes)
        for strategy, sharpe in best:  # oldest first: the latest sweep wins
            self.best_sharpe.labels(strategy_type=strategy_label(strategy)).set(sharpe)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                await self.refresh()
            except Exception:  # the database is down: the gauges keep their last values
                self.refresh_failures.inc()
                log.warning("metrics refresh failed", exc_info=True)
            await self._sleep(self.refresh_seconds, self._wake)
            if self._wake.is_set():
                await self._sleep(self.settle_seconds)

    async def _sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Up to `seconds`; less on stop (or when `wake` is set)."""
        await wait_any(self._stopping, *([wake] if wake is not None else []), timeout=seconds)

    def start(self, db: Any) -> None:
        """Count ended jobs of `db` and refresh its gauges every `refresh_seconds` (from now)."""
        self._db = db
        self._loop_ref = asyncio.get_running_loop()
        db.commit_hooks.append(self.on_commit)
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name="results-metrics")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._db is not None and self.on_commit in self._db.commit_hooks:
            self._db.commit_hooks.remove(self.on_commit)
