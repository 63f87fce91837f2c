"""GetSweepBest: score order (nulls last), min_trades exclusion and counts, ticker filter, limit."""

from __future__ import annotations

import grpc
import pytest
from hindsight.results.v1 import results_pb2

from .helpers import result_row, submit_request


async def _completed_sweep(running, tenant, rows, min_trades=50):
    req = submit_request(tenant)
    req.sweep.min_trades = min_trades
    job = (await running.stub.SubmitJob(req)).job
    await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))
    done = await running.stub.CompleteSweep(
        results_pb2.CompleteSweepRequest(job_id=job.job_id, results=rows, execution_time_seconds=0.5)
    )
    return job, done.sweep_run_id


ROWS = [
    result_row(10, 20, 1.0, 60),
    result_row(10, 25, 2.5, 80),
    result_row(10, 30, None, 90),  # undefined score: last
    result_row(15, 20, 3.0, 10),  # below min_trades: excluded even with the best score
    result_row(15, 25, -1.0, 50),  # exactly min_trades: qualifies
    result_row(15, 30, 2.0, 49),  # below
    result_row(20, 25, 0.5, 55, ticker="ETH-USD"),
]


@pytest.mark.asyncio
async def test_best_sorting_counts_filter_and_limit(backend):
    running, db = backend
    tenant, _ = db.tenant()
    job, run_id = await _completed_sweep(running, tenant, ROWS)

    best = await running.stub.GetSweepBest(results_pb2.GetSweepBestRequest(tenant_id=tenant, sweep_run_id=run_id))
    assert best.sweep_run_id == run_id and best.job_id == job.job_id
    assert best.ticker == "BTC-USD" and best.min_trades == 50
    assert [(r.fast_period, r.slow_period) for r in best.results] == [(10, 25), (10, 20), (20, 25), (15, 25), (10, 30)]
    assert best.total_results == 5 and best.excluded_below_min_trades == 2
    top = best.results[0]
    assert top.HasField("score") and top.score == 2.5 and top.sharpe_ratio == 1.5
    assert not top.HasField("sortino_ratio")  # undefined stays unset (JSON null)
    assert top.avg_trade_duration == "5.2 days" and top.total_trades == 80
    assert not best.results[-1].HasField("score")

    limited = await running.stub.GetSweepBest(
        results_pb2.GetSweepBestRequest(tenant_id=tenant, sweep_run_id=run_id, limit=2)
    )
    assert [r.score for r in limited.results] == [2.5, 1.0] and limited.total_results == 5

    eth = await running.stub.GetSweepBest(
        results_pb2.GetSweepBestRequest(tenant_id=tenant, sweep_run_id=run_id, ticker="eth-usd")
    )
    assert [(r.ticker, r.fast_period) for r in eth.results] == [("ETH-USD", 20)]
    assert eth.total_results == 1 and eth.excluded_below_min_trades == 0

    for bad in (0 - 1, 1001):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await running.stub.GetSweepBest(
                results_pb2.GetSweepBestRequest(tenant_id=tenant, sweep_run_id=run_id, limit=bad)
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.asyncio
async def test_best_of_unknown_or_foreign_run_is_not_found(pg, pg_db):
    owner, _ = pg_db.tenant()
    other, _ = pg_db.tenant()
    _, run_id = await _completed_sweep(pg, owner, ROWS[:2])
    for tenant, rid in ((other, run_id), (owner, "run_doesnotexist")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pg.stub.GetSweepBest(results_pb2.GetSweepBestRequest(tenant_id=tenant, sweep_run_id=rid))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.asyncio
async def test_non_finite_metrics_are_stored_as_null(pg, pg_db):
    tenant, _ = pg_db.tenant()
    row = result_row(10, 20, float("nan"), 60)
    row.profit_factor = float("inf")
    _, run_id = await _completed_sweep(pg, tenant, [row], min_trades=0)
    best = await pg.stub.GetSweepBest(results_pb2.GetSweepBestRequest(tenant_id=tenant, sweep_run_id=run_id))
    assert not best.results[0].HasField("score") and not best.results[0].HasField("profit_factor")
