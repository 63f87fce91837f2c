"""Walk-forward jobs in results on Postgres: submission (folds cut on the dataset, one
JobMessage per fold in the outbox, bad windows refused with nothing written), folds
completed concurrently by several engines (stored once each; the last one, only one,
completes the job), and the view's tenant scoping."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from hindsight.bus.v1 import bus_pb2
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2

from libs.bus import JOBS_DEAD_QUEUE, JOBS_QUEUE, Delivery

from .conftest import eventually
from .helpers import daily_csv, import_requests, sweep_spec

DAY = 86_400 * 10**9


async def _dataset(pg, tenant: str, ticker: str, n: int) -> None:
    async def gen():
        for r in import_requests(tenant, ticker, daily_csv(n)):
            yield r

    await pg.stub.ImportDataset(gen())


def _request(tenant: str, ticker: str, **windows) -> results_pb2.SubmitJobRequest:
    spec = jobs_pb2.WalkForwardSpec(sweep=sweep_spec(ticker, min_trades=10), train_bars=100, test_bars=50,
                                    step_bars=50, objective="score")
    for k, v in windows.items():
        setattr(spec, k, v)
    return results_pb2.SubmitJobRequest(tenant_id=tenant, job_kind=jobs_pb2.JOB_KIND_WALK_FORWARD,
                                        parameters_json="{}", walkforward=spec)


def _fold(k: int, growth: float) -> str:
    """A fold result as an engine reports it (services.engine.walkforward.run_fold's shape)."""
    start = 100 + 50 * k
    metrics = {"score": 1.0, "sharpe_ratio": 1.0, "sortino_ratio": 1.0, "total_return_pct": (growth - 1) * 100,
               "annualized_return": 10.0 * (k + 1), "max_drawdown_pct": -1.0, "win_rate_pct": 50.0,
               "profit_factor": 1.5, "total_trades": 12, "trades_per_month": 4.0, "avg_trade_duration": "2.0 days"}
    return json.dumps({
        "fold": k, "train_start": 50 * k, "train_end": start, "test_start": start, "test_end": start + 50,
        "train_start_ts": 50 * k * DAY, "train_end_ts": (start - 1) * DAY, "test_start_ts": start * DAY,
        "test_end_ts": (start + 49) * DAY, "parameters": {"fast_period": 10, "slow_period": 20},
        "in_sample": {**metrics, "annualized_return": 20.0}, "out_of_sample": metrics, "periods_per_year": 365,
        "oos": {"day_ts": [start * DAY, (start + 49) * DAY], "equity": [10_000.0, 10_000.0 * growth], "hold": [1.0, 1.1],
                "ntrades": 12, "nwins": 6, "gross_profit": 300.0, "gross_loss": -100.0, "duration_ns": 12 * DAY},
    })


async def test_submission_queues_one_message_per_fold_and_refuses_bad_windows(pg, pg_db):
    tenant, _ = pg_db.tenant()
    await _dataset(pg, tenant, "WF-PG", 300)
    before = pg_db.scalar("SELECT count(*) FROM outbox WHERE queue = :q", q=JOBS_QUEUE)
    for windows, message in [
        ({"train_bars": 260}, "longer than the data: train_bars + test_bars = 310 > 300 bars"),
        ({"train_bars": 0}, "train_bars: must be an integer from 2"),
        ({"step_bars": -1}, "step_bars: must be an integer from 1"),
        ({"objective": "luck"}, "objective: must be one of"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pg.stub.SubmitJob(_request(tenant, "WF-PG", **windows))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in err.value.details(), err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pg.stub.SubmitJob(_request(tenant, "NO-SUCH-WF"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert pg_db.scalar("SELECT count(*) FROM jobs WHERE tenant_id = :t", t=tenant) == 0
    assert pg_db.scalar("SELECT count(*) FROM walkforward_runs WHERE tenant_id = :t", t=tenant) == 0
    assert pg_db.scalar("SELECT count(*) FROM outbox WHERE queue = :q", q=JOBS_QUEUE) == before

    job = (await pg.stub.SubmitJob(_request(tenant, "WF-PG"))).job
    assert job.job_kind == jobs_pb2.JOB_KIND_WALK_FORWARD and job.walkforward.folds == (300 - 150) // 50 + 1 == 4
    assert job.walkforward.bars == 300 and job.walkforward.dataset_version_id

    def messages():
        found = [bus_pb2.JobMessage.FromString(b) for b in pg.bus.bodies(JOBS_QUEUE)]
        return [m for m in found if m.job_id == job.job_id]

    sent = await eventually(lambda: len(messages()) == 4 and messages())
    # A shard per fold, on the one shard mechanism (domain.shards, services.results.shards).
    assert sorted(m.shard_id for m in sent) == ["f0001", "f0002", "f0003", "f0004"]
    assert {m.fold_number for m in sent} == {0}
    assert [tuple(r) for r in pg_db.rows("SELECT shard_id, state FROM sweep_shards WHERE job_id = :j ORDER BY position",
                                         j=job.job_id)] == [(f"f000{k}", "queued") for k in range(1, 5)]
    assert {m.job_kind for m in sent} == {jobs_pb2.JOB_KIND_WALK_FORWARD}


async def test_folds_completed_at_once_complete_the_job_once(pg, pg_db):
    tenant, _ = pg_db.tenant()
    other, _ = pg_db.tenant()
    await _dataset(pg, tenant, "WF-PG", 300)
    job = (await pg.stub.SubmitJob(_request(tenant, "WF-PG"))).job
    # Before it runs, folds are refused: the job is not running.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pg.stub.CompleteWalkForwardFold(results_pb2.CompleteWalkForwardFoldRequest(
            job_id=job.job_id, fold_number=1, result_json=_fold(0, 1.1)))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    for _ in range(2):  # two shards start on two engines
        assert (await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))).proceed
    # A fold that is not this job's, or not a fold, is refused.
    for number, text in [(5, _fold(0, 1.1)), (1, _fold(2, 1.1)), (1, "{oops")]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pg.stub.CompleteWalkForwardFold(results_pb2.CompleteWalkForwardFoldRequest(
                job_id=job.job_id, fold_number=number, result_json=text))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    growth = [1.1, 0.9, 1.2, 1.05]
    # Every fold at once, two of them twice (redeliveries): one completion, folds stored once.
    calls = [pg.stub.CompleteWalkForwardFold(results_pb2.CompleteWalkForwardFoldRequest(
        job_id=job.job_id, fold_number=k + 1, result_json=_fold(k, g), execution_time_seconds=0.5))
        for k, g in [*enumerate(growth), (0, growth[0]), (3, growth[3])]]
    answers = await asyncio.gather(*calls)
    assert all(a.stored for a in answers)
    assert sum(a.completed for a in answers) == 1
    assert pg_db.scalar("SELECT count(*) FROM walkforward_folds WHERE job_id = :j", j=job.job_id) == 4
    assert pg_db.scalar("SELECT state FROM jobs WHERE job_id = :j", j=job.job_id) == "completed"
    assert pg_db.scalar("SELECT count(*) FROM job_events WHERE job_id = :j AND type = 'done'", j=job.job_id) == 1

    view = json.loads((await pg.stub.GetWalkForward(
        results_pb2.GetWalkForwardRequest(tenant_id=tenant, job_id=job.job_id))).walkforward_json)
    assert [f["fold"] for f in view["folds"]] == [0, 1, 2, 3]
    expected = 10_000.0
    for g in growth:
        expected *= g
    assert view["stitched"]["equity"][-1]["equity"] == pytest.approx(expected, rel=1e-12)
    assert view["stitched"]["metrics"]["total_return_pct"] == pytest.approx((expected / 10_000 - 1) * 100, rel=1e-12)
    # mean OOS CAGR (10, 20, 30, 40) / mean IS CAGR (20)
    assert view["walk_forward_efficiency"] == pytest.approx(25.0 / 20.0)
    assert view["folds"][1]["test_start_time"] == "1970-05-31T00:00:00Z"
    # Another tenant's id is not found, nor is a job of another kind.
    for t, j in [(other, job.job_id), (tenant, "walkforward_nope")]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pg.stub.GetWalkForward(results_pb2.GetWalkForwardRequest(tenant_id=t, job_id=j))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_folds_are_shards_stored_once_closed_by_a_cancel_and_a_dead_lettered_one_fails_the_job(pg, pg_db):
    """The shard mechanism of universe sweeps (services.results.shards) carries the folds."""
    tenant, _ = pg_db.tenant()
    await _dataset(pg, tenant, "WF-SH", 300)
    job = (await pg.stub.SubmitJob(_request(tenant, "WF-SH"))).job

    def shards() -> list[tuple]:
        return [tuple(r) for r in pg_db.rows("SELECT shard_id, state, attempts, bar_pairs_total FROM sweep_shards "
                                             "WHERE job_id = :j ORDER BY position", j=job.job_id)]

    # The work of a fold: its training window x the grid (8 pairs), plus its test window.
    assert [(s[0], s[3]) for s in shards()] == [(f"f000{k}", 8 * 100 + 50) for k in range(1, 5)]
    start = await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id="f0002"))
    assert start.proceed and start.job.state == jobs_pb2.JOB_STATE_RUNNING
    done = await pg.stub.CompleteWalkForwardFold(results_pb2.CompleteWalkForwardFoldRequest(
        job_id=job.job_id, fold_number=2, result_json=_fold(1, 1.1), execution_time_seconds=0.5))
    assert done.stored and not done.completed
    # Redelivered after an engine crash: not run again, and a second completion stores nothing.
    assert not (await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id="f0002"))).proceed
    again = await pg.stub.CompleteWalkForwardFold(results_pb2.CompleteWalkForwardFoldRequest(
        job_id=job.job_id, fold_number=2, result_json=_fold(1, 1.1)))
    assert again.stored and not again.completed
    assert pg_db.scalar("SELECT count(*) FROM walkforward_folds WHERE job_id = :j", j=job.job_id) == 1
    assert shards()[1][:3] == ("f0002", "completed", 1)
    # Progress: a fold done is its share of the job's bar-pairs, in the seed's event shape.
    event = pg_db.rows("SELECT data FROM job_events WHERE job_id = :j AND type = 'progress' ORDER BY seq DESC LIMIT 1",
                       j=job.job_id)[0][0]
    event = json.loads(event) if isinstance(event, str) else event
    assert set(event) == {"percent", "message", "timestamp"} and event["percent"] == 25 and \
        event["message"] == "Fold 1/4 done"

    await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id="f0001"))
    await pg.stub.CancelJob(results_pb2.CancelJobRequest(tenant_id=tenant, job_id=job.job_id))
    assert [s[1] for s in shards()] == ["cancelled", "completed", "cancelled", "cancelled"]
    assert not (await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id="f0003"))).proceed
    assert [s[2] for s in shards()] == [1, 1, 0, 0]

    # A fold whose message is dead-lettered fails the walk-forward (its curve needs every fold).
    other = (await pg.stub.SubmitJob(_request(tenant, "WF-SH"))).job
    body = bus_pb2.JobMessage(job_id=other.job_id, tenant_id=tenant, job_kind=jobs_pb2.JOB_KIND_WALK_FORWARD,
                              shard_id="f0003").SerializeToString()
    await pg.bus.consumers[JOBS_DEAD_QUEUE](Delivery(body=body, delivery_count=3))
    failed = (await pg.stub.GetJob(results_pb2.GetJobRequest(tenant_id=tenant, job_id=other.job_id))).job
    assert failed.state == jobs_pb2.JOB_STATE_FAILED and "could not be processed" in failed.error_message
    assert {r[0] for r in pg_db.rows("SELECT state FROM sweep_shards WHERE job_id = :j", j=other.job_id)} == {"failed"}
