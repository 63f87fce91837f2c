"""Universe sweeps at results (issue 11), through the real gRPC server on Postgres and SQLite:
one shard per ticker, each stored once (a redelivered completion stores nothing), progress
in bar-pairs that never goes back, a ticker failing alone, the job failing only when every
ticker fails, a cancel closing the shards not started."""

from __future__ import annotations

import asyncio
import json

import grpc
import psycopg
import pytest
from hindsight.bus.v1 import bus_pb2
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2

from libs.bus import JOBS_DEAD_QUEUE, JOBS_QUEUE, Delivery
from services.results import sweeps, universe_sweeps

from .conftest import eventually
from .helpers import daily_csv, import_requests, job_row_held, result_row, sweep_spec

PAIRS = 8  # fast 10..20, slow 20..30, step 5


async def _import(running, tenant: str, ticker: str, bars: int) -> None:
    async def gen():
        for r in import_requests(tenant, ticker, daily_csv(bars)):
            yield r

    await running.stub.ImportDataset(gen())


def universe_request(tenant: str, tickers: list[str]) -> results_pb2.SubmitJobRequest:
    spec = sweep_spec("")
    spec.tickers.extend(tickers)
    return results_pb2.SubmitJobRequest(
        tenant_id=tenant, job_kind=jobs_pb2.JOB_KIND_SWEEP, sweep=spec,
        parameters_json=json.dumps({"tickers": tickers, "fast_range": [10, 20], "slow_range": [20, 30], "step": 5}),
    )


def grid_rows(ticker: str) -> list[results_pb2.SweepResult]:
    pairs = [(f, s) for f in (10, 15, 20) for s in (20, 25, 30) if f < s]
    return [result_row(f, s, float(i), 60, ticker=ticker) for i, (f, s) in enumerate(pairs)]


def queued_shards(running, job_id: str) -> list[str]:
    """The shard ids of the JobMessages published for a job, in the order they went out."""
    messages = [bus_pb2.JobMessage.FromString(b) for b in running.bus.bodies(JOBS_QUEUE)]
    return [m.shard_id for m in messages if m.job_id == job_id]


def percents(db, job_id: str) -> list[float]:
    return [float(json.loads(r[0])["percent"]) if isinstance(r[0], str) else float(r[0]["percent"])
            for r in db.rows("SELECT data FROM job_events WHERE job_id = :j AND type = 'progress' ORDER BY seq", j=job_id)]


@pytest.mark.asyncio
async def test_shards_are_stored_once_and_the_job_ends_with_the_last(backend):
    running, db = backend
    tenant, _ = db.tenant()
    await _import(running, tenant, "AAA", 300)
    await _import(running, tenant, "BBB", 100)
    job = (await running.stub.SubmitJob(universe_request(tenant, ["aaa", "BBB", "NONE"]))).job
    assert job.combinations == 3 * PAIRS and list(job.sweep.tickers) == ["AAA", "BBB", "NONE"]
    # One JobMessage per ticker, each naming its shard.
    assert await eventually(lambda: sorted(queued_shards(running, job.job_id)) == ["t0000", "t0001", "t0002"])

    start = await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id="t0000"))
    assert start.proceed and start.job.state == jobs_pb2.JOB_STATE_RUNNING
    # Progress: bar-pairs of the shard over the job's (300 + 100 + 0 bars) x 8 pairs.
    for pct in (50.0, 20.0):  # a rerun after a crash reports less: ignored
        stop = await running.stub.ReportProgress(
            results_pb2.ReportProgressRequest(job_id=job.job_id, percent=pct, message="x", shard_id="t0000"))
        assert not stop.stop
    assert percents(db, job.job_id)[-1] == 37.5  # 150 of 400 bars' worth

    done = await running.stub.CompleteSweep(results_pb2.CompleteSweepRequest(
        job_id=job.job_id, shard_id="t0000", results=grid_rows("AAA"), bars=300, buy_and_hold_return_pct=12.5))
    assert done.stored and done.sweep_run_id
    # Redelivered after a crash: its StartJob says skip, a second completion stores nothing.
    again = await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id="t0000"))
    assert not again.proceed
    twice = await running.stub.CompleteSweep(results_pb2.CompleteSweepRequest(
        job_id=job.job_id, shard_id="t0000", results=grid_rows("AAA"), bars=300))
    assert twice.stored and twice.sweep_run_id == done.sweep_run_id
    assert db.scalar("SELECT count(*) FROM sweep_results WHERE sweep_run_id = :r", r=done.sweep_run_id) == PAIRS
    # A shard's rows are its ticker's only.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id="t0001"))
        await running.stub.CompleteSweep(results_pb2.CompleteSweepRequest(
            job_id=job.job_id, shard_id="t0001", results=grid_rows("AAA"), bars=100))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A shard the job does not have, and a job that does not exist: refused, nothing stored.
    for job_id, sid, code in ((job.job_id, "t0009", grpc.StatusCode.INVALID_ARGUMENT),
                              ("no-such-job", "t0000", grpc.StatusCode.NOT_FOUND)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await running.stub.CompleteSweep(results_pb2.CompleteSweepRequest(
                job_id=job_id, shard_id=sid, results=grid_rows("AAA"), bars=300))
        assert err.value.code() == code, (sid, err.value.details())
    assert db.scalar("SELECT count(*) FROM sweep_results WHERE sweep_run_id = :r", r=done.sweep_run_id) == PAIRS

    await running.stub.CompleteSweep(results_pb2.CompleteSweepRequest(
        job_id=job.job_id, shard_id="t0001", results=grid_rows("BBB"), bars=100))
    assert (await running.stub.GetJob(results_pb2.GetJobRequest(tenant_id=tenant, job_id=job.job_id))).job.state == \
        jobs_pb2.JOB_STATE_RUNNING
    await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id="t0002"))
    await running.stub.FailJob(results_pb2.FailJobRequest(
        job_id=job.job_id, shard_id="t0002", error_message="Insufficient historical data for ticker NONE"))
    ended = (await running.stub.GetJob(results_pb2.GetJobRequest(tenant_id=tenant, job_id=job.job_id))).job
    assert ended.state == jobs_pb2.JOB_STATE_COMPLETED and ended.sweep_run_id == done.sweep_run_id
    assert json.loads(ended.metrics_json)["combinations_tested"] == 2 * PAIRS
    seen = percents(db, job.job_id)
    assert seen == sorted(seen)

    view = await running.stub.GetSweepTickers(results_pb2.GetSweepTickersRequest(tenant_id=tenant, sweep_id=job.job_id))
    assert [(t.ticker, t.state, t.error_message) for t in view.tickers] == [
        ("AAA", "completed", ""), ("BBB", "completed", ""),
        ("NONE", "failed", "Insufficient historical data for ticker NONE")]
    assert view.tickers[0].best.score == PAIRS - 1 and view.tickers[0].buy_and_hold_return_pct == 12.5
    assert not view.tickers[2].HasField("best")
    best = await running.stub.GetSweepBest(results_pb2.GetSweepBestRequest(tenant_id=tenant, sweep_run_id=done.sweep_run_id))
    assert best.total_results == 2 * PAIRS and best.ticker == "" and not best.HasField("overfitting")
    one = await running.stub.GetSweepBest(
        results_pb2.GetSweepBestRequest(tenant_id=tenant, sweep_run_id=done.sweep_run_id, ticker="bbb"))
    assert one.ticker == "BBB" and {r.ticker for r in one.results} == {"BBB"} and one.total_results == PAIRS


@pytest.mark.asyncio
async def test_shards_are_queued_largest_first(backend):
    # the replicas end a job together when its longest tickers run first
    running, db = backend
    tenant, _ = db.tenant()
    await _import(running, tenant, "AAA", 300)
    await _import(running, tenant, "BBB", 100)
    await _import(running, tenant, "CCC", 200)
    job = (await running.stub.SubmitJob(universe_request(tenant, ["BBB", "NONE", "aaa", "CCC"]))).job
    # AAA (t0002, 300 bars), CCC (t0003, 200), BBB (t0000, 100), NONE (t0001, no bars)
    assert await eventually(lambda: queued_shards(running, job.job_id) == ["t0002", "t0003", "t0000", "t0001"])


@pytest.mark.asyncio
async def test_every_ticker_failing_fails_the_job_and_a_cancel_closes_the_rest(backend):
    running, db = backend
    tenant, _ = db.tenant()
    job = (await running.stub.SubmitJob(universe_request(tenant, ["X1", "X2"]))).job
    for sid, ticker in (("t0000", "X1"), ("t0001", "X2")):
        await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id=sid))
        await running.stub.FailJob(results_pb2.FailJobRequest(
            job_id=job.job_id, shard_id=sid, error_message=f"Insufficient historical data for ticker {ticker}"))
    failed = (await running.stub.GetJob(results_pb2.GetJobRequest(tenant_id=tenant, job_id=job.job_id))).job
    assert failed.state == jobs_pb2.JOB_STATE_FAILED
    assert failed.error_message == "Every ticker failed (2); first: Insufficient historical data for ticker X1"

    job = (await running.stub.SubmitJob(universe_request(tenant, ["Y1", "Y2", "Y3"]))).job
    assert (await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id="t0000"))).proceed
    await running.stub.CancelJob(results_pb2.CancelJobRequest(tenant_id=tenant, job_id=job.job_id))
    stop = await running.stub.ReportProgress(
        results_pb2.ReportProgressRequest(job_id=job.job_id, percent=10, message="x", shard_id="t0000"))
    assert stop.stop and stop.reason == "job cancelled"
    late = await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id="t0001"))
    assert not late.proceed
    states = db.rows("SELECT shard_id, state, started_at IS NULL FROM sweep_shards WHERE job_id = :j ORDER BY shard_id",
                     j=job.job_id)
    assert [tuple(r) for r in states] == [("t0000", "cancelled", False), ("t0001", "cancelled", True),
                                         ("t0002", "cancelled", True)]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("tickers", "universe", "ticker", "message"),
    [
        ([], "nope", "", "no universe named 'nope'"),
        (["A", "a"], "", "", "A is already"),
        (["A"], "", "B", "give one of ticker, tickers or universe"),
        (["A"], "u1", "", "not tickers and universe"),
        ([f"T{i}" for i in range(501)], "", "", "at most 500"),
    ],
)
async def test_bad_universe_requests_store_nothing(backend, tickers, universe, ticker, message):
    running, db = backend
    tenant, _ = db.tenant()
    before = db.scalar("SELECT count(*) FROM jobs"), db.scalar("SELECT count(*) FROM outbox")
    spec = sweep_spec(ticker)
    spec.tickers.extend(tickers)
    spec.universe = universe
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await running.stub.SubmitJob(results_pb2.SubmitJobRequest(tenant_id=tenant, job_kind=jobs_pb2.JOB_KIND_SWEEP,
                                                                  sweep=spec))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in err.value.details()
    assert (db.scalar("SELECT count(*) FROM jobs"), db.scalar("SELECT count(*) FROM outbox")) == before


@pytest.mark.asyncio
async def test_a_dead_lettered_shard_fails_its_ticker_only(pg, pg_db):
    tenant, _ = pg_db.tenant()
    job = (await pg.stub.SubmitJob(universe_request(tenant, ["D1", "D2"]))).job
    handler = pg.bus.consumers[JOBS_DEAD_QUEUE]
    body = bus_pb2.JobMessage(job_id=job.job_id, tenant_id=tenant, job_kind=jobs_pb2.JOB_KIND_SWEEP,
                              shard_id="t0001").SerializeToString()
    await handler(Delivery(body=body, delivery_count=3))
    got = (await pg.stub.GetJob(results_pb2.GetJobRequest(tenant_id=tenant, job_id=job.job_id))).job
    assert got.state == jobs_pb2.JOB_STATE_QUEUED  # D1 may still run
    view = await pg.stub.GetSweepTickers(results_pb2.GetSweepTickersRequest(tenant_id=tenant, sweep_id=job.job_id))
    assert [(t.ticker, t.state) for t in view.tickers] == [("D1", "queued"), ("D2", "failed")]
    assert view.tickers[1].error_message.startswith("Shard could not be processed after")
    await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id="t0000"))
    await pg.stub.CompleteSweep(results_pb2.CompleteSweepRequest(
        job_id=job.job_id, shard_id="t0000", results=grid_rows("D1"), bars=10))
    got = (await pg.stub.GetJob(results_pb2.GetJobRequest(tenant_id=tenant, job_id=job.job_id))).job
    assert got.state == jobs_pb2.JOB_STATE_COMPLETED


async def _running(pg, pg_db, tickers: list[str], started: list[str]) -> tuple[str, jobs_pb2.Job]:
    """(tenant, job) of a universe sweep of `tickers` (300 daily bars each) whose shards
    `started` an engine took."""
    tenant, _ = pg_db.tenant()
    for t in tickers:
        await _import(pg, tenant, t, 300)
    job = (await pg.stub.SubmitJob(universe_request(tenant, tickers))).job
    for sid in started:
        assert (await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id=sid))).proceed
    return tenant, job


@pytest.mark.asyncio
async def test_shards_reporting_at_once_number_their_events_in_turn(pg, pg_db):
    # Two engines' shards report progress on one job at the same moment: every report is
    # answered and the events number 1, 2, 3... (The race that gave two events one number
    # is reproduced step by step in test_jobs.py: this one catches it about every other run.)
    _, job = await _running(pg, pg_db, ["AAA", "BBB"], ["t0000", "t0001"])

    async def report(sid: str, pct: float) -> bool:
        return (await pg.stub.ReportProgress(results_pb2.ReportProgressRequest(
            job_id=job.job_id, percent=pct, message="x", shard_id=sid))).stop

    for step in range(1, 21):
        answers = await asyncio.gather(*(report(sid, step * 4.0) for sid in ("t0000", "t0001") for _ in range(2)))
        assert not any(answers)
    seqs = [r[0] for r in pg_db.rows("SELECT seq FROM job_events WHERE job_id = :j ORDER BY seq", j=job.job_id)]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 3
    # a report that found the job's row taken added no event; the next one that grows counts it
    assert percents(pg_db, job.job_id) == sorted(percents(pg_db, job.job_id))
    await report("t0000", 84.0)
    assert percents(pg_db, job.job_id)[-1] == 82.0


@pytest.mark.asyncio
async def test_a_shard_report_does_not_wait_for_the_job_row(pg, pg_db, results_pg_url):
    # Another transaction holds the job's row (a replica's completion, say): a shard's
    # report is still answered at once, its count stored; its event comes with the next.
    _, job = await _running(pg, pg_db, ["AAA", "BBB"], ["t0000", "t0001"])
    events = len(percents(pg_db, job.job_id))
    with job_row_held(results_pg_url, job.job_id):
        answer = await pg.stub.ReportProgress(results_pb2.ReportProgressRequest(
            job_id=job.job_id, percent=50.0, message="x", shard_id="t0000"), timeout=5)
        assert not answer.stop
    done = pg_db.rows("SELECT shard_id, bar_pairs_done FROM sweep_shards WHERE job_id = :j ORDER BY shard_id",
                      j=job.job_id)
    assert [(r[0], r[1]) for r in done] == [("t0000", 150 * PAIRS), ("t0001", 0)]
    assert len(percents(pg_db, job.job_id)) == events  # no event while the row was taken
    await pg.stub.ReportProgress(results_pb2.ReportProgressRequest(
        job_id=job.job_id, percent=50.0, message="x", shard_id="t0001"))
    assert percents(pg_db, job.job_id)[-1] == 50.0  # both shards' halves


@pytest.mark.asyncio
async def test_a_queued_shard_starts_while_another_holds_the_job_row(pg, pg_db, results_pg_url):
    # A replica's completion holds the job's row: another replica still takes its next
    # shard at once (its own row is locked, not the job's); a restart's event still waits.
    tenant, job = await _running(pg, pg_db, ["AAA", "BBB", "CCC"], ["t0000"])
    with job_row_held(results_pg_url, job.job_id):
        started = await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id="t0001"), timeout=5)
        assert started.proceed and list(started.job.sweep.tickers) == ["AAA", "BBB", "CCC"]
        with pytest.raises(grpc.aio.AioRpcError) as waited:  # t0000 again: a restart, under the job's lock
            await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id="t0000"), timeout=1)
        assert waited.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    rows = pg_db.rows("SELECT shard_id, state, attempts FROM sweep_shards WHERE job_id = :j ORDER BY shard_id",
                      j=job.job_id)
    assert [(r[0], r[1]) for r in rows][:2] == [("t0000", "running"), ("t0001", "running")]
    # after a cancel, a queued shard does not start
    await pg.stub.CancelJob(results_pb2.CancelJobRequest(tenant_id=tenant, job_id=job.job_id))
    assert not (await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id="t0002"))).proceed


def _shard_states(db, job_id: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in db.rows(
        "SELECT shard_id, state FROM sweep_shards WHERE job_id = :j ORDER BY shard_id", j=job_id)]


def _rows_of(db, job_id: str, ticker: str) -> int:
    return db.scalar("SELECT count(*) FROM sweep_results r JOIN sweep_runs u ON u.sweep_run_id = r.sweep_run_id "
                     "WHERE u.job_id = :j AND r.ticker = :t", j=job_id, t=ticker)


@pytest.mark.asyncio
async def test_a_ticker_stores_its_rows_while_another_holds_the_job_row(pg, pg_db, results_pg_url):
    # Another replica's completion holds the job's row: a whole ticker's rows still go in
    # under its own shard's lock; only telling the job (its progress, its end) waits.
    _, job = await _running(pg, pg_db, ["AAA", "BBB"], ["t0000", "t0001"])
    with job_row_held(results_pg_url, job.job_id):
        call = asyncio.ensure_future(pg.stub.CompleteSweep(results_pb2.CompleteSweepRequest(
            job_id=job.job_id, shard_id="t0000", results=grid_rows("AAA"), bars=300), timeout=10))
        await eventually(lambda: ("t0000", "completed") in _shard_states(pg_db, job.job_id))
        assert _rows_of(pg_db, job.job_id, "AAA") == PAIRS
        await asyncio.sleep(0.3)
        assert not call.done()  # the job's progress waits for its row
    done = await call
    assert done.stored and done.sweep_run_id
    assert percents(pg_db, job.job_id)[-1] == 50.0
    await pg.stub.CompleteSweep(results_pb2.CompleteSweepRequest(
        job_id=job.job_id, shard_id="t0001", results=grid_rows("BBB"), bars=300))
    assert pg_db.scalar("SELECT state FROM jobs WHERE job_id = :j", j=job.job_id) == "completed"


@pytest.mark.asyncio
async def test_a_ticker_stored_before_its_job_was_told_tells_it_when_redelivered(pg, pg_db, pg_engine):
    # Results stopped between storing a ticker (its shard's transaction) and telling the job:
    # the redelivered message's StartJob finds the shard completed and ends the job.
    from sqlalchemy.orm import Session

    _, job = await _running(pg, pg_db, ["AAA"], ["t0000"])
    with Session(pg_engine) as s, s.begin():
        run_id, stored = universe_sweeps.store_shard(
            s, job.job_id, "t0000", sweeps.rows_of(grid_rows("AAA")), 0.1, 300, None, None)
    assert stored and run_id
    assert pg_db.scalar("SELECT state FROM jobs WHERE job_id = :j", j=job.job_id) == "running"
    again = await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id="t0000"))
    assert not again.proceed
    assert pg_db.scalar("SELECT state FROM jobs WHERE job_id = :j", j=job.job_id) == "completed"
    assert _rows_of(pg_db, job.job_id, "AAA") == PAIRS


@pytest.mark.asyncio
async def test_a_cancel_waits_for_a_ticker_being_stored_and_keeps_it_completed(pg, pg_db, results_pg_url):
    # A ticker's completion holds its shard's row (not the job's): a cancel meanwhile waits
    # for it, then closes the other shards and leaves that one completed.
    tenant, job = await _running(pg, pg_db, ["AAA", "BBB"], ["t0000", "t0001"])
    with psycopg.connect(results_pg_url) as holder:
        holder.execute("SELECT 1 FROM sweep_shards WHERE job_id = %s AND shard_id = 't0000' FOR UPDATE",
                       (job.job_id,))
        cancel = asyncio.ensure_future(pg.stub.CancelJob(
            results_pb2.CancelJobRequest(tenant_id=tenant, job_id=job.job_id), timeout=10))
        await asyncio.sleep(0.5)
        assert not cancel.done()
        holder.execute("UPDATE sweep_shards SET state = 'completed' WHERE job_id = %s AND shard_id = 't0000'",
                       (job.job_id,))
        holder.commit()
    await cancel
    assert _shard_states(pg_db, job.job_id) == [("t0000", "completed"), ("t0001", "cancelled")]
