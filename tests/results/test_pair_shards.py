"""Pair-chunk shards at results (issue 11, domain.shards), through the real gRPC server:
a ticker whose pairs x bars exceed the shard size is split into chunks of its pair list,
and what results stores from the chunks (rows, `best`, its overfitting statistics, the
saved run, the job's metrics) equals what it stores from one unsharded sweep of the grid.
The chunks' rows and statistics are the engine's own (services.engine.sweep), so the
statistics joined in results are tested against the engine's whole-grid ones.

Also: a chunk redelivered stores nothing twice, a chunk failing fails its ticker whole
(no partial rows), progress is bar-pairs and monotone, a cancel closes the chunks not
started, and standalone's requeue after a restart sends one message per chunk not ended.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pandas as pd
import pytest
from google.protobuf.json_format import MessageToDict
from hindsight.bus.v1 import bus_pb2
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2

from domain.shards import chunk_bounds
from domain.sweep import sweep_combos
from libs.bus import JOBS_QUEUE, Delivery, InProcessBus
from services.engine.bars import Bars
from services.engine.kinds.sweep import _clean, statistics_message
from services.engine.sweep import run_sweep_with_statistics
from services.results import universe_sweeps

from .conftest import RecordingBus, eventually, pg_settings, sqlite_settings
from .helpers import daily_csv, import_requests, job_row_free, job_row_held, sweep_spec

GRID = {"fast_min": 3, "fast_max": 30, "slow_min": 10, "slow_max": 70, "step": 3, "min_trades": 10}
COMBOS = sweep_combos(3, 30, 10, 70, 3)
N_BARS = 400
# 400 bars x len(COMBOS) pairs over this: 5 chunks.
SHARD_BAR_PAIRS = N_BARS * len(COMBOS) // 5 + 1
CHUNKS = 5
BLOCKS = 8


def _bars() -> Bars:
    rng = np.random.default_rng(11)
    ts = pd.Timestamp("2020-01-01", tz="UTC").value + np.arange(N_BARS, dtype=np.int64) * 86_400_000_000_000
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, N_BARS)))
    open_ = close * np.exp(rng.normal(0, 0.003, N_BARS))
    return Bars(ts=ts, open=open_, close=close, high=np.maximum(open_, close) * 1.01,
                low=np.minimum(open_, close) * 0.99, volume=np.full(N_BARS, 1000.0))


def _request(job_id: str, ticker: str, combos, *, shard_id: str = "", chunk: bool = False) -> results_pb2.CompleteSweepRequest:
    """What the engine's sweep runner sends for `combos` (services.engine.kinds.sweep)."""
    outcome = run_sweep_with_statistics(_bars(), "SMA", combos, pbo_blocks=BLOCKS, threads=1, cscv=not chunk)
    return results_pb2.CompleteSweepRequest(
        job_id=job_id, shard_id=shard_id, bars=N_BARS, execution_time_seconds=0.5,
        results=[results_pb2.SweepResult(ticker=ticker, strategy_type="SMA", **_clean(row)) for row in outcome.rows],
        statistics=statistics_message(outcome.statistics, outcome.block_sums), buy_and_hold_return_pct=3.0,
    )


async def _import(running, tenant: str, ticker: str) -> None:
    async def gen():
        for r in import_requests(tenant, ticker, daily_csv(N_BARS)):
            yield r

    await running.stub.ImportDataset(gen())


def _single(tenant: str, ticker: str) -> results_pb2.SubmitJobRequest:
    return results_pb2.SubmitJobRequest(
        tenant_id=tenant, job_kind=jobs_pb2.JOB_KIND_SWEEP, sweep=sweep_spec(ticker, pbo_blocks=BLOCKS, **GRID),
        parameters_json=json.dumps({"ticker": ticker}))


def _universe(tenant: str, tickers: list[str]) -> results_pb2.SubmitJobRequest:
    spec = sweep_spec("", pbo_blocks=BLOCKS, **GRID)
    spec.tickers.extend(tickers)
    return results_pb2.SubmitJobRequest(tenant_id=tenant, job_kind=jobs_pb2.JOB_KIND_SWEEP, sweep=spec,
                                        parameters_json=json.dumps({"tickers": tickers}))


def _shards(db, job_id: str) -> list:
    return db.rows("SELECT shard_id, position, chunk, chunks, state, bar_pairs_total, attempts, staged "
                   "FROM sweep_shards WHERE job_id = :j ORDER BY position, chunk", j=job_id)


def _percents(db, job_id: str) -> list[float]:
    return [float((json.loads(r[0]) if isinstance(r[0], str) else r[0])["percent"])
            for r in db.rows("SELECT data FROM job_events WHERE job_id = :j AND type = 'progress' ORDER BY seq", j=job_id)]


async def _job(running, tenant: str, job_id: str) -> jobs_pb2.Job:
    return (await running.stub.GetJob(results_pb2.GetJobRequest(tenant_id=tenant, job_id=job_id))).job


async def _best(running, tenant: str, run_id: str, ticker: str = "") -> dict:
    best = await running.stub.GetSweepBest(results_pb2.GetSweepBestRequest(
        tenant_id=tenant, sweep_run_id=run_id, ticker=ticker, limit=1000))
    out = MessageToDict(best, preserving_proto_field_name=True)
    out.pop("sweep_run_id", None)
    return out


@pytest.mark.asyncio
async def test_a_large_single_sweep_in_pair_chunks_equals_the_unsharded_sweep(services, results_pg_url, pg_db):
    whole = await services.start(pg_settings(results_pg_url), RecordingBus())
    chunked = await services.start(pg_settings(results_pg_url, hindsight_shard_bar_pairs=SHARD_BAR_PAIRS),
                                   RecordingBus())
    tenant, _ = pg_db.tenant()
    await _import(whole, tenant, "BIG")

    # The unsharded sweep: one message, one CompleteSweep of the whole grid.
    one = (await whole.stub.SubmitJob(_single(tenant, "BIG"))).job
    assert pg_db.scalar("SELECT count(*) FROM sweep_shards WHERE job_id = :j", j=one.job_id) == 0
    await whole.stub.StartJob(results_pb2.StartJobRequest(job_id=one.job_id))
    done = await whole.stub.CompleteSweep(_request(one.job_id, "BIG", COMBOS))
    assert done.stored

    # The same sweep past the shard size: pair chunks, completed out of order.
    job = (await chunked.stub.SubmitJob(_single(tenant, "BIG"))).job
    assert job.combinations == len(COMBOS) and job.sweep.ticker == "BIG" and not job.sweep.tickers
    rows = _shards(pg_db, job.job_id)
    assert [r.shard_id for r in rows] == [f"t0000c{c:03d}of{CHUNKS:03d}" for c in range(CHUNKS)]
    assert sum(r.bar_pairs_total for r in rows) == len(COMBOS) * N_BARS
    messages = [bus_pb2.JobMessage.FromString(bytes(r.body))
                for r in pg_db.rows("SELECT body FROM outbox WHERE queue = :q", q=JOBS_QUEUE)]
    assert sorted(m.shard_id for m in messages if m.job_id == job.job_id) == [r.shard_id for r in rows]

    order = [3, 0, 4, 1, 2]
    for k, c in enumerate(order):
        sid = rows[c].shard_id
        started = await chunked.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id=sid))
        assert started.proceed
        # Every chunk runs on the dataset version the grid was split on.
        assert list(started.job.sweep.dataset_versions) == ["BIG"] and started.job.sweep.dataset_versions["BIG"]
        await chunked.stub.ReportProgress(results_pb2.ReportProgressRequest(
            job_id=job.job_id, shard_id=sid, percent=50.0, message="x"))
        lo, hi = chunk_bounds(len(COMBOS), c, CHUNKS)
        stored = await chunked.stub.CompleteSweep(_request(job.job_id, "BIG", COMBOS[lo:hi], shard_id=sid, chunk=True))
        assert stored.stored
        if k == 0:  # a chunk redelivered after an engine crash: skipped, and storing it again stores nothing
            again = await chunked.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id=sid))
            assert not again.proceed
            twice = await chunked.stub.CompleteSweep(
                _request(job.job_id, "BIG", COMBOS[lo:hi], shard_id=sid, chunk=True))
            assert twice.stored and twice.sweep_run_id == stored.sweep_run_id
        if k < CHUNKS - 1:  # the ticker's rows go in at once, in grid order, with its last chunk
            assert pg_db.scalar("SELECT count(*) FROM sweep_results WHERE sweep_run_id = :r", r=stored.sweep_run_id) == 0
            assert (await _job(chunked, tenant, job.job_id)).state == jobs_pb2.JOB_STATE_RUNNING
    ended = await _job(chunked, tenant, job.job_id)
    assert ended.state == jobs_pb2.JOB_STATE_COMPLETED
    seen = _percents(pg_db, job.job_id)
    assert seen == sorted(seen) and seen[-1] > 50

    mine, theirs = await _best(chunked, tenant, ended.sweep_run_id), await _best(whole, tenant, done.sweep_run_id)
    assert mine["results"] and mine["results"] == theirs["results"]
    assert mine["overfitting"]["pbo"] is not None and mine["overfitting"] == theirs["overfitting"]
    assert {k: v for k, v in mine.items() if k not in ("results", "overfitting", "job_id")} == \
        {k: v for k, v in theirs.items() if k not in ("results", "overfitting", "job_id")}
    metrics, expected = json.loads(ended.metrics_json), json.loads((await _job(whole, tenant, one.job_id)).metrics_json)
    assert metrics["combinations_tested"] == expected["combinations_tested"] == len(COMBOS)
    assert metrics["bars"] == expected["bars"] and "tickers" not in metrics
    # Every chunk's staged request is dropped once the ticker's rows are in.
    assert all(r.staged is None and r.state == "completed" for r in _shards(pg_db, job.job_id))
    # The saved run of the sweep (seed 003's /runs) as the unsharded sweep's.
    saved = pg_db.rows("SELECT parameters, metrics FROM strategy_runs WHERE sweep_run_id IN (:a, :b) "
                       "ORDER BY sweep_run_id = :a", a=ended.sweep_run_id, b=done.sweep_run_id)
    assert len(saved) == 2 and saved[0] == saved[1]


@pytest.mark.asyncio
async def test_a_chunk_failing_fails_its_ticker_whole_and_the_job_completes(services, results_pg_url, pg_db):
    running = await services.start(pg_settings(results_pg_url, hindsight_shard_bar_pairs=SHARD_BAR_PAIRS),
                                   RecordingBus())
    tenant, _ = pg_db.tenant()
    await _import(running, tenant, "AAA")
    await _import(running, tenant, "BBB")
    job = (await running.stub.SubmitJob(_universe(tenant, ["AAA", "BBB", "NONE"]))).job
    rows = _shards(pg_db, job.job_id)
    # Two tickers with bars, in chunks; NONE has no bars (0 bar-pairs): one shard.
    assert [(r.position, r.chunks) for r in rows] == [(0, CHUNKS)] * CHUNKS + [(1, CHUNKS)] * CHUNKS + [(2, 1)]
    for r in rows[:CHUNKS]:
        await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id=r.shard_id))
        lo, hi = chunk_bounds(len(COMBOS), r.chunk, CHUNKS)
        await running.stub.CompleteSweep(_request(job.job_id, "AAA", COMBOS[lo:hi], shard_id=r.shard_id, chunk=True))
    # BBB: two chunks stored, then one fails (an engine error): the ticker fails whole.
    bbb = rows[CHUNKS:2 * CHUNKS]
    for r in bbb[:2]:
        await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id=r.shard_id))
        lo, hi = chunk_bounds(len(COMBOS), r.chunk, CHUNKS)
        await running.stub.CompleteSweep(_request(job.job_id, "BBB", COMBOS[lo:hi], shard_id=r.shard_id, chunk=True))
    await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id=bbb[2].shard_id))
    await running.stub.FailJob(results_pb2.FailJobRequest(job_id=job.job_id, shard_id=bbb[2].shard_id,
                                                          error_message="Engine error: boom"))
    # The other BBB chunks are not run any more; a late completion of one stores nothing.
    late = await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id=bbb[3].shard_id))
    assert not late.proceed
    assert (await _job(running, tenant, job.job_id)).state == jobs_pb2.JOB_STATE_RUNNING
    await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id=rows[-1].shard_id))
    await running.stub.FailJob(results_pb2.FailJobRequest(job_id=job.job_id, shard_id=rows[-1].shard_id,
                                                          error_message="Insufficient historical data for ticker NONE"))
    ended = await _job(running, tenant, job.job_id)
    assert ended.state == jobs_pb2.JOB_STATE_COMPLETED
    metrics = json.loads(ended.metrics_json)
    assert (metrics["tickers"], metrics["tickers_completed"], metrics["combinations_tested"]) == (3, 1, len(COMBOS))
    view = await running.stub.GetSweepTickers(results_pb2.GetSweepTickersRequest(tenant_id=tenant, sweep_id=job.job_id))
    assert [(t.ticker, t.state, t.error_message) for t in view.tickers] == [
        ("AAA", "completed", ""), ("BBB", "failed", "Engine error: boom"),
        ("NONE", "failed", "Insufficient historical data for ticker NONE")]
    assert view.tickers[0].HasField("best") and view.tickers[0].overfitting.HasField("pbo")
    # `best` of the chunked ticker: the whole grid's statistics (kept on its chunk 0).
    one = await running.stub.GetSweepBest(results_pb2.GetSweepBestRequest(
        tenant_id=tenant, sweep_run_id=ended.sweep_run_id, ticker="AAA"))
    assert one.overfitting == view.tickers[0].overfitting and one.overfitting.trials == len(COMBOS)
    assert one.total_results + one.excluded_below_min_trades == len(COMBOS)
    assert pg_db.scalar("SELECT count(*) FROM sweep_results WHERE sweep_run_id = :r AND ticker = 'BBB'",
                        r=ended.sweep_run_id) == 0
    assert all(r.staged is None for r in _shards(pg_db, job.job_id))
    seen = _percents(pg_db, job.job_id)
    assert seen == sorted(seen)


async def _chunked(services, results_pg_url, pg_db, ticker: str):
    """(results splitting into CHUNKS pair chunks, tenant, job of a single-ticker sweep of
    `ticker`, its shard rows)."""
    running = await services.start(pg_settings(results_pg_url, hindsight_shard_bar_pairs=SHARD_BAR_PAIRS),
                                   RecordingBus())
    tenant, _ = pg_db.tenant()
    await _import(running, tenant, ticker)
    job = (await running.stub.SubmitJob(_single(tenant, ticker))).job
    return running, tenant, job, _shards(pg_db, job.job_id)


@pytest.mark.asyncio
async def test_a_cancel_closes_the_chunks_not_started(services, results_pg_url, pg_db):
    running, tenant, job, rows = await _chunked(services, results_pg_url, pg_db, "CCC")
    await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id=rows[0].shard_id))
    await running.stub.CancelJob(results_pb2.CancelJobRequest(tenant_id=tenant, job_id=job.job_id))
    # A running chunk is told to stop at its next progress step; the others never start.
    stop = await running.stub.ReportProgress(results_pb2.ReportProgressRequest(
        job_id=job.job_id, shard_id=rows[0].shard_id, percent=10.0, message="x"))
    assert stop.stop
    for r in rows[1:]:
        assert not (await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id,
                                                                            shard_id=r.shard_id))).proceed
    assert {r.state for r in _shards(pg_db, job.job_id)} == {"cancelled"}
    assert [r.attempts for r in _shards(pg_db, job.job_id)] == [1] + [0] * (CHUNKS - 1)


@pytest.mark.asyncio
async def test_standalone_restart_requeues_one_message_per_chunk_not_ended(services, tmp_path):
    data_dir = tmp_path / "data"
    settings = sqlite_settings(data_dir, hindsight_shard_bar_pairs=SHARD_BAR_PAIRS)
    bus1 = InProcessBus()
    first = await services.start(settings, bus1)
    tenant = "dev"
    await _import(first, tenant, "DDD")
    job = (await first.stub.SubmitJob(_single(tenant, "DDD"))).job
    sid = "t0000c001of005"
    await first.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id=sid))
    lo, hi = chunk_bounds(len(COMBOS), 1, CHUNKS)
    await first.stub.CompleteSweep(_request(job.job_id, "DDD", COMBOS[lo:hi], shard_id=sid, chunk=True))
    await services.stop(first)
    await bus1.close()

    bus2 = InProcessBus()
    seen: list[str] = []

    async def engine(d: Delivery) -> None:
        msg = bus_pb2.JobMessage.FromString(d.body)
        if msg.job_id == job.job_id:
            seen.append(msg.shard_id)

    await bus2.consume(JOBS_QUEUE, engine)
    second = await services.start(settings, bus2)
    for _ in range(100):
        if len(seen) >= CHUNKS - 1:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert sorted(seen) == [f"t0000c{c:03d}of005" for c in (0, 2, 3, 4)]
    await services.stop(second)
    await bus2.close()


@pytest.mark.asyncio
async def test_the_whole_grids_statistics_are_computed_with_the_job_row_free(services, results_pg_url, pg_db,
                                                                             monkeypatch):
    # The CSCV of a ticker's joined grid takes seconds for large grids: its last chunk's
    # completion computes it before it locks the job's row (other replicas' completions and
    # a cancel would wait on that row meanwhile), and stores what it computed.
    chunked, tenant, job, rows = await _chunked(services, results_pg_url, pg_db, "FREE")
    row_free: list[bool] = []
    joined = universe_sweeps.joined_statistics

    def watched(parts):
        row_free.append(job_row_free(results_pg_url, job.job_id))
        return joined(parts)

    monkeypatch.setattr(universe_sweeps, "joined_statistics", watched)
    for c in range(CHUNKS):
        sid = rows[c].shard_id
        assert (await chunked.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id=sid))).proceed
        lo, hi = chunk_bounds(len(COMBOS), c, CHUNKS)
        assert (await chunked.stub.CompleteSweep(
            _request(job.job_id, "FREE", COMBOS[lo:hi], shard_id=sid, chunk=True))).stored
    ended = await _job(chunked, tenant, job.job_id)
    assert ended.state == jobs_pb2.JOB_STATE_COMPLETED
    assert row_free == [True]  # once, for the last chunk, with nobody holding the job's row
    best = await _best(chunked, tenant, ended.sweep_run_id)
    assert best["overfitting"]["pbo"] is not None


@pytest.mark.asyncio
async def test_a_tickers_chunks_are_stored_and_assembled_while_another_holds_the_job_row(
        services, results_pg_url, pg_db):
    # Another replica's completion holds the job's row: pair chunks still go in, and the last
    # one assembles its ticker, under the ticker's shards' rows; only telling the job waits.
    chunked, tenant, job, rows = await _chunked(services, results_pg_url, pg_db, "HELD")
    for c in range(CHUNKS):
        sid = rows[c].shard_id
        assert (await chunked.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id, shard_id=sid))).proceed
    calls = []
    with job_row_held(results_pg_url, job.job_id):
        for c in range(CHUNKS):
            lo, hi = chunk_bounds(len(COMBOS), c, CHUNKS)
            calls.append(asyncio.ensure_future(chunked.stub.CompleteSweep(
                _request(job.job_id, "HELD", COMBOS[lo:hi], shard_id=rows[c].shard_id, chunk=True), timeout=20)))
            await eventually(lambda c=c: _shards(pg_db, job.job_id)[c].state == "completed")
        assert pg_db.scalar("SELECT count(*) FROM sweep_results r JOIN sweep_runs u ON u.sweep_run_id = r.sweep_run_id "
                            "WHERE u.job_id = :j", j=job.job_id) == len(COMBOS)
        assert all(r.staged is None for r in _shards(pg_db, job.job_id))
        await asyncio.sleep(0.3)
        assert not any(call.done() for call in calls)  # the job's progress and end wait for its row
    assert all([(await call).stored for call in calls])
    ended = await _job(chunked, tenant, job.job_id)
    assert ended.state == jobs_pb2.JOB_STATE_COMPLETED
    best = await _best(chunked, tenant, ended.sweep_run_id)
    assert len(best["results"]) > 0 and best["overfitting"]["pbo"] is not None
