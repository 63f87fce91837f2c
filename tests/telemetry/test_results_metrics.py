"""The results service's metrics against a real (SQLite) database: what a committed
job end counts, and what the database gauges read — artifact bytes counted once
per day directory, cleared runs left out, the best Sharpe ratio among the
combinations with enough trades."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from prometheus_client import generate_latest

from services.results.db import Database, sqlite_url
from services.results.metrics import ResultsMetrics, note_job_ended, note_sweep_ended
from services.results.models import Job, SweepResult, SweepRun, Tenant
from services.results.models_day_by_day import DayByDayBacktest, DayByDayBacktestDay
from services.results.timefmt import utcnow


@pytest.fixture
def db(tmp_path):
    d = Database(sqlite_url(tmp_path))
    d.migrate()
    with d.write() as s:
        s.add(Tenant(tenant_id="t", created_at=utcnow()))
    yield d
    d.close()


def _job(job_id: str, state: str, kind: str = "trading-sweep", seconds: float = 0.0) -> Job:
    now = utcnow()
    return Job(job_id=job_id, tenant_id="t", kind=kind, state=state, parameters={}, sweep_spec={"ticker": "AAA"},
               timeout_seconds=60, created_at=now - timedelta(seconds=seconds), deadline_at=now + timedelta(hours=1),
               started_at=None, completed_at=now if state not in ("queued", "running") else None,
               sweep_run_id=None, combinations=1, estimated_duration_seconds=1, metrics=None)


def _day_run(s, job_id: str, strategy: str, days: dict[str, int], cleared: bool = False) -> None:
    now = utcnow()
    s.add(_job(job_id, "completed", kind="day-backtest"))
    s.flush()
    s.add(DayByDayBacktest(
        job_id=job_id, tenant_id="t", user_id="u1", strategy_id=strategy, strategy_name="s",
        backtest_id=f"{strategy}_x", start_date="2024-01-01", end_date="2024-01-31", ticker="AAA", interval="1m",
        dataset_version_id="v", initial_capital=1.0, slippage_pct=0.0, commission_pct=0.0, strategy_definition={},
        total_days=len(days), summary=None, created_at=now, expires_at=now + timedelta(hours=12),
        artifacts_cleared_at=now if cleared else None, active_key=None,
    ))
    s.flush()
    for n, (date, size) in enumerate(days.items()):
        s.add(DayByDayBacktestDay(job_id=job_id, date=date, day_number=n + 1, positions=0, pnl=0.0, winning_trades=0,
                             losing_trades=0, largest_win=0.0, largest_loss=0.0, summary={}, file_bytes=size))


def test_database_gauges(db):
    strategy, other = str(uuid.uuid4()), str(uuid.uuid4())
    with db.write() as s:
        s.add_all([_job("q1", "queued"), _job("q2", "queued"), _job("r1", "running"), _job("c1", "completed")])
        # Two runs of one strategy write the same day directories: each day counts once (the larger file).
        _day_run(s, "d1", strategy, {"2024-01-02": 100, "2024-01-03": 200})
        _day_run(s, "d2", strategy, {"2024-01-03": 250})
        _day_run(s, "d3", other, {"2024-01-02": 1000}, cleared=True)  # expired: its files are gone
        s.add(SweepRun(sweep_run_id="run_a", job_id="c1", tenant_id="t", ticker="AAA", strategy_type="EMA",
                       min_trades=10, total_combinations=3, execution_time_seconds=1.0, created_at=utcnow()))
        s.flush()
        for i, (sharpe, trades) in enumerate([(3.0, 5), (1.5, 12), (1.2, 40)]):  # 3.0 has too few trades
            s.add(SweepResult(sweep_run_id="run_a", ticker="AAA", strategy_type="EMA", fast_period=i + 1,
                              slow_period=20, score=sharpe, sharpe_ratio=sharpe, total_trades=trades))
    metrics = ResultsMetrics()
    with db.read() as s:
        counts, artifact_bytes, best = metrics.read_gauges(s, ["run_a"])
    assert counts == {("trading-sweep", "queued"): 2, ("trading-sweep", "running"): 1}
    assert artifact_bytes == 100 + 250
    assert best == [("EMA", 1.5)]  # by strategy type: no ticker (a tenant's data) in a label


async def test_a_committed_job_end_is_counted_once_and_refreshes_the_gauges(db):
    metrics = ResultsMetrics(refresh_seconds=60, settle_seconds=0.01)
    metrics.start(db)
    try:
        with db.write() as s:
            job = _job("sweep_x", "completed", seconds=42.0)
            s.add(job)
            s.flush()
            note_job_ended(s, job, "completed")
            note_sweep_ended(s, job, "completed")
        try:
            with db.write() as s:
                job = _job("sweep_y", "failed")
                s.add(job)
                note_job_ended(s, job, "failed")
                note_sweep_ended(s, job, "failed")
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        await metrics.refresh()
    finally:
        await metrics.stop()
    text = generate_latest(metrics.registry).decode()
    assert 'pipeline_trading_sweep_jobs_completed_total{status="completed"} 1.0' in text
    assert 'pipeline_trading_sweep_jobs_completed_total{status="failed"' not in text  # never committed
    assert 'pipeline_trading_sweep_duration_seconds_bucket{le="60.0",status="completed"} 1.0' in text
    assert 'pipeline_trading_sweep_duration_seconds_bucket{le="30.0",status="completed"} 0.0' in text
    assert 'hindsight_jobs_ended_total{kind="trading-sweep",state="completed"} 1.0' in text
    assert "hindsight_job_queue_depth 0.0" in text
    assert db.commit_hooks == []
