"""A sweep's overfitting statistics in results: stored with the run, PSR and DSR of the first
row of `best`, shown by GetSweepBest, carried by the completion's callback payload."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
from hindsight.bus.v1 import bus_pb2
from hindsight.results.v1 import results_pb2

from domain import overfitting as of
from libs.bus import JOB_EVENTS_QUEUE

from .conftest import eventually
from .helpers import result_row, submit_request

ROWS = [  # grid order; best: (10, 25) first (score 2.5), (15, 20) has the top score but too few trades
    result_row(10, 20, 1.0, 60),
    result_row(10, 25, 2.5, 80),
    result_row(10, 30, None, 90),
    result_row(15, 20, 3.0, 10),
    result_row(15, 25, -1.0, 50),
]


def _statistics(returns: np.ndarray, blocks: int = 4) -> tuple[of.SweepStatistics, results_pb2.SweepStatistics]:
    st = of.sweep_statistics(of.returns_moments(returns), of.block_sums(returns, blocks), blocks)
    msg = results_pb2.SweepStatistics(trials=st.trials, days=st.days, pbo_blocks=blocks, reason=st.reason or "")
    for name in ("sharpe_variance", "expected_max_sharpe", "pbo"):
        if getattr(st, name) is not None:
            setattr(msg, name, getattr(st, name))
    msg.logits.extend(st.logits or [])
    if st.moments is not None:
        msg.sharpe.extend(st.moments.sharpe.tolist())
        msg.skewness.extend(st.moments.skewness.tolist())
        msg.kurtosis.extend(st.moments.kurtosis.tolist())
    return st, msg


async def _complete(running, tenant, rows, statistics=None, min_trades=50):
    req = submit_request(tenant)
    req.sweep.min_trades = min_trades
    job = (await running.stub.SubmitJob(req)).job
    await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))
    done = await running.stub.CompleteSweep(
        results_pb2.CompleteSweepRequest(job_id=job.job_id, results=rows, execution_time_seconds=0.5,
                                         statistics=statistics)
    )
    return job, done.sweep_run_id


def _ended_payload(bus, job_id: str) -> dict | None:
    for body in bus.bodies(JOB_EVENTS_QUEUE):
        msg = bus_pb2.JobEndedMessage.FromString(body)
        if msg.job_id == job_id:
            return json.loads(msg.payload_json)
    return None


@pytest.mark.asyncio
async def test_best_shows_the_statistics_of_its_first_row(backend) -> None:
    running, db = backend
    tenant, _ = db.tenant()
    returns = np.random.default_rng(4).normal(0.0004, 0.01, (203, len(ROWS)))
    st, msg = _statistics(returns)
    job, run_id = await _complete(running, tenant, ROWS, msg)
    best = await running.stub.GetSweepBest(results_pb2.GetSweepBestRequest(tenant_id=tenant, sweep_run_id=run_id))
    assert (best.results[0].fast_period, best.results[0].slow_period) == (10, 25)
    o = best.overfitting
    assert (o.trials, o.days, o.pbo_blocks, o.reason) == (5, 203, 4, "")
    want = of.overfitting_view(st, 1)  # (10, 25) is the second combination of the grid
    assert o.probabilistic_sharpe_ratio == pytest.approx(want["probabilistic_sharpe_ratio"], rel=1e-12)
    assert o.deflated_sharpe_ratio == pytest.approx(want["deflated_sharpe_ratio"], rel=1e-12)
    assert o.expected_max_sharpe == st.expected_max_sharpe and o.pbo == st.pbo
    assert list(o.logits) == st.logits and len(o.logits) == 6
    assert o.sharpe_variance == st.sharpe_variance

    payload = await eventually(lambda: _ended_payload(running.bus, job.job_id))
    assert list(payload) == ["event_type", "job_id", "sweep_run_id", "status", "ticker", "result_data", "timestamp"]
    data = payload["result_data"]
    assert data["deflated_sharpe_ratio"] == pytest.approx(want["deflated_sharpe_ratio"], rel=1e-12)
    assert data["pbo"] == st.pbo


@pytest.mark.asyncio
async def test_without_a_top_result_psr_and_dsr_are_null_with_a_reason(pg, pg_db) -> None:
    tenant, _ = pg_db.tenant()
    rows = [result_row(10, 20, 1.0, 12), result_row(10, 25, 2.0, 11)]
    _, msg = _statistics(np.random.default_rng(1).normal(0, 0.01, (64, 2)))
    _, run_id = await _complete(pg, tenant, rows, msg)
    o = (await pg.stub.GetSweepBest(results_pb2.GetSweepBestRequest(tenant_id=tenant, sweep_run_id=run_id))).overfitting
    assert o.HasField("pbo") and not o.HasField("deflated_sharpe_ratio") and not o.HasField("probabilistic_sharpe_ratio")
    assert "min_trades" in o.reason


@pytest.mark.asyncio
async def test_statistics_null_for_too_few_days_and_absent_when_not_computed(pg, pg_db) -> None:
    tenant, _ = pg_db.tenant()
    _, msg = _statistics(np.random.default_rng(2).normal(0, 0.01, (7, len(ROWS))))  # T < 2S = 8
    job, run_id = await _complete(pg, tenant, ROWS, msg)
    o = (await pg.stub.GetSweepBest(results_pb2.GetSweepBestRequest(tenant_id=tenant, sweep_run_id=run_id))).overfitting
    assert o.trials == 5 and o.days == 7 and not o.HasField("pbo") and not o.logits
    assert not o.HasField("deflated_sharpe_ratio") and "8" in o.reason
    payload = await eventually(lambda: _ended_payload(pg.bus, job.job_id))
    assert payload["result_data"]["pbo"] is None and payload["result_data"]["deflated_sharpe_ratio"] is None

    _, run_id = await _complete(pg, tenant, ROWS)  # an engine that sent none
    best = await pg.stub.GetSweepBest(results_pb2.GetSweepBestRequest(tenant_id=tenant, sweep_run_id=run_id))
    assert not best.HasField("overfitting")


@pytest.mark.asyncio
async def test_statistics_that_do_not_match_the_rows_are_refused(pg, pg_db) -> None:
    tenant, _ = pg_db.tenant()
    _, msg = _statistics(np.random.default_rng(3).normal(0, 0.01, (64, 3)))  # 3 trials for 5 rows
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _complete(pg, tenant, ROWS, msg)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.asyncio
@pytest.mark.parametrize("blocks", [2, 5, 18])
async def test_a_sweep_with_bad_pbo_blocks_is_not_queued(pg, pg_db, blocks: int) -> None:
    tenant, _ = pg_db.tenant()
    req = submit_request(tenant)
    req.sweep.pbo_blocks = blocks
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pg.stub.SubmitJob(req)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "pbo_blocks" in err.value.details()
    assert pg_db.scalar("SELECT count(*) FROM jobs WHERE tenant_id = :t", t=tenant) == 0
