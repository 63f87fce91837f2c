"""Strategies and day-by-day backtests in results (real gRPC server, Postgres and SQLite):
validation that stores nothing, the engine's StoreDays/Complete flow, events, the
one-running-job-per-user rule, replacement, clear, cleanup, tenant isolation, and
the artifact store's path safety."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path

import grpc
import pytest
from hindsight.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from hindsight.bus.v1 import bus_pb2
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2
from sqlalchemy.orm import Session

from domain.rules.strategy import validate_definition
from libs.bus import JOB_EVENTS_QUEUE, JOBS_QUEUE
from services.results import datasets
from services.results.artifacts import ArtifactStore
from services.results.errors import InvalidArgument
from services.results.models_day_by_day import Strategy as StrategyRow
from services.results.timefmt import utcnow

STRATEGY = {
    "name": "RSI reversal",
    "dataset": {"ticker": "DEMO-MINUTE", "interval": "1m"},
    "session": {"square_off": "15:15"},
    "entries": [{"id": "entry-1", "condition": "RSI(14) < 30", "stop_loss": {"percent": 0.5}, "max_reentries": 1}],
    "exits": [{"id": "exit-1", "condition": "RSI(14) > 70"}],
}


def stubs(running):
    return (
        backtest_pb2_grpc.StrategiesServiceStub(running._channel),
        backtest_pb2_grpc.DayBacktestServiceStub(running._channel),
    )


def tenant_with_demo(running, peek) -> str:
    tenant, _ = peek.tenant()
    with Session(peek.engine) as s, s.begin():
        datasets.ensure_demo_datasets(s, running.handle.servicer.market, tenant, only_if_none=True)
    return tenant


async def code_of(coro) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await coro
    return err.value.code()


def submit(tenant, strategy_id, user_id="", start="2024-01-01", end="2024-01-05", **over):
    spec = backtest_pb2.DayBacktestSpec(strategy_id=strategy_id, user_id=user_id, start_date=start, end_date=end, **over)
    return results_pb2.SubmitJobRequest(
        tenant_id=tenant, job_kind=jobs_pb2.JOB_KIND_DAY_BY_DAY, parameters_json="{}", day_backtest=spec
    )


def day(date: str, n: int, positions: int = 1, pnl: float = 10.0) -> backtest_pb2.DayArtifacts:
    files = [
        backtest_pb2.DayFile(name=name, data=gzip.compress(json.dumps({"date": date, "file": name}).encode()))
        for name in ("trades_daily.json.gz", "diagnostics_export.json.gz", "positions.json.gz")
    ]
    summary = {"total_trades": positions, "total_pnl": f"{pnl:.2f}", "winning_trades": positions, "losing_trades": 0,
               "win_rate": "100.00"}
    return backtest_pb2.DayArtifacts(date=date, day_number=n, summary_json=json.dumps(summary), positions=positions,
                                     pnl=pnl, winning_trades=positions, largest_win=pnl, files=files)


async def test_strategy_crud_validation_and_isolation(backend):
    running, peek = backend
    strategies, _ = stubs(running)
    alpha, beta = tenant_with_demo(running, peek), tenant_with_demo(running, peek)
    created = (await strategies.CreateStrategy(backtest_pb2.CreateStrategyRequest(
        tenant_id=alpha, definition_json=json.dumps(STRATEGY)))).strategy
    assert uuid.UUID(created.strategy_id) and created.name == "RSI reversal"
    got = (await strategies.GetStrategy(backtest_pb2.GetStrategyRequest(tenant_id=alpha, strategy_id=created.strategy_id))).strategy
    assert json.loads(got.definition_json)["entries"][0]["stop_loss"] == {"type": "percent", "value": 0.5}
    # Another tenant's id is NOT_FOUND, for every verb.
    assert await code_of(strategies.GetStrategy(backtest_pb2.GetStrategyRequest(
        tenant_id=beta, strategy_id=created.strategy_id))) == grpc.StatusCode.NOT_FOUND
    assert await code_of(strategies.DeleteStrategy(backtest_pb2.DeleteStrategyRequest(
        tenant_id=beta, strategy_id=created.strategy_id))) == grpc.StatusCode.NOT_FOUND
    # PUT under a client's own UUID creates; the same UUID in another tenant is another strategy.
    own = "5708424d-5962-4629-978c-05b3a174e104"
    for tenant in (alpha, beta):
        put = await strategies.PutStrategy(backtest_pb2.PutStrategyRequest(
            tenant_id=tenant, strategy_id=own, definition_json=json.dumps(STRATEGY)))
        assert put.created and put.strategy.strategy_id == own
    put = await strategies.PutStrategy(backtest_pb2.PutStrategyRequest(
        tenant_id=alpha, strategy_id=own, definition_json=json.dumps({**STRATEGY, "name": "renamed"})))
    assert not put.created and put.strategy.name == "renamed"
    listing = await strategies.ListStrategies(backtest_pb2.ListStrategiesRequest(tenant_id=alpha))
    assert listing.total == 2
    # Invalid definitions: every problem listed, with the condition's position; nothing stored.
    bad = {**STRATEGY, "entries": [{"condition": "RSI(14) >> 30", "side": "up"}]}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await strategies.CreateStrategy(backtest_pb2.CreateStrategyRequest(tenant_id=alpha, definition_json=json.dumps(bad)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    errors = json.loads(err.value.details())["errors"]
    assert {"field": "entries[0].condition", "message": "unexpected '>'", "position": 9} in errors
    assert await code_of(strategies.PutStrategy(backtest_pb2.PutStrategyRequest(
        tenant_id=alpha, strategy_id="../../etc", definition_json=json.dumps(STRATEGY)))) == grpc.StatusCode.INVALID_ARGUMENT
    assert (await strategies.ListStrategies(backtest_pb2.ListStrategiesRequest(tenant_id=alpha))).total == 2
    await strategies.DeleteStrategy(backtest_pb2.DeleteStrategyRequest(tenant_id=alpha, strategy_id=own))
    assert (await strategies.ListStrategies(backtest_pb2.ListStrategiesRequest(tenant_id=alpha))).total == 1


async def _strategy(running, tenant, definition=STRATEGY) -> str:
    strategies, _ = stubs(running)
    resp = await strategies.CreateStrategy(backtest_pb2.CreateStrategyRequest(tenant_id=tenant, definition_json=json.dumps(definition)))
    return resp.strategy.strategy_id


async def test_bad_submissions_store_nothing(backend):
    running, peek = backend
    tenant = tenant_with_demo(running, peek)
    sid = await _strategy(running, tenant)
    # Option legs on an underlying without an option chain (issue 15).
    straddle = {**STRATEGY, "entries": [
        {"id": f"entry-{t.lower()}", "condition": "time >= 09:20", "side": "sell", "quantity": 50,
         "instrument": {"type": "option", "option_type": t, "strike": "ATM", "expiry": "current_week"},
         "stop_loss": {"type": "percent", "value": 30}} for t in ("CE", "PE")], "exits": []}
    # Refused when stored: the tenant has no chain of DEMO-MINUTE here.
    strategies, _ = stubs(running)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await strategies.CreateStrategy(backtest_pb2.CreateStrategyRequest(tenant_id=tenant,
                                                                            definition_json=json.dumps(straddle)))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    problems = json.loads(refused.value.details())["errors"]
    assert [e["field"] for e in problems] == ["entries[0].instrument", "entries[1].instrument"]
    assert "no option chain of DEMO-MINUTE" in problems[0]["message"]
    assert peek.scalar("SELECT count(*) FROM strategies WHERE tenant_id = :t AND strategy_id != :sid", t=tenant, sid=sid) == 0
    # One stored while a chain existed (since deleted) is refused at submission.
    legs_sid = str(uuid.uuid4())
    with Session(peek.engine) as s, s.begin():
        now = utcnow()
        s.add(StrategyRow(tenant_id=tenant, strategy_id=legs_sid, name="straddle", definition=validate_definition(straddle),
                          created_at=now, updated_at=now))
    before_jobs = peek.scalar("SELECT count(*) FROM jobs")
    before_outbox = peek.scalar("SELECT count(*) FROM outbox")
    cases = [
        (submit(tenant, "not-a-uuid"), grpc.StatusCode.INVALID_ARGUMENT),
        (submit(tenant, str(uuid.uuid4())), grpc.StatusCode.NOT_FOUND),
        (submit(tenant, sid, start="2024-01-05", end="2024-01-01"), grpc.StatusCode.INVALID_ARGUMENT),
        (submit(tenant, sid, start="2024-02-30"), grpc.StatusCode.INVALID_ARGUMENT),
        (submit(tenant, sid, start="01-01-2024"), grpc.StatusCode.INVALID_ARGUMENT),
        (submit(tenant, sid, user_id="../x"), grpc.StatusCode.INVALID_ARGUMENT),
        (submit(tenant, sid, user_id="a/b"), grpc.StatusCode.INVALID_ARGUMENT),
        (submit(tenant, sid, start="2023-01-01", end="2023-01-31"), grpc.StatusCode.INVALID_ARGUMENT),  # no bars
        (submit(tenant, sid, start="2024-01-06", end="2024-01-07"), grpc.StatusCode.INVALID_ARGUMENT),  # a weekend
        (submit(tenant, sid, initial_capital=-5), grpc.StatusCode.INVALID_ARGUMENT),
        (submit(tenant, sid, slippage_pct=float("nan")), grpc.StatusCode.INVALID_ARGUMENT),
        (submit(tenant, legs_sid), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for request, code in cases:
        assert await code_of(running.stub.SubmitJob(request)) == code, request
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await running.stub.SubmitJob(submit(tenant, legs_sid))
    assert "no option chain of DEMO-MINUTE" in (err.value.details() or "")
    assert peek.scalar("SELECT count(*) FROM jobs") == before_jobs
    assert peek.scalar("SELECT count(*) FROM outbox") == before_outbox
    assert peek.scalar("SELECT count(*) FROM day_backtests") == 0


async def test_engine_flow_events_and_replacement(backend):
    running, peek = backend
    _, days = stubs(running)
    # Test-side writes first: on SQLite they would race the service's own writes.
    tenant, tenant2 = tenant_with_demo(running, peek), tenant_with_demo(running, peek)
    sid = await _strategy(running, tenant)
    job = (await running.stub.SubmitJob(submit(tenant, sid, user_id="user_123"))).job
    assert job.kind == "day-backtest" and job.job_id.startswith("bt_")
    assert job.day_backtest.total_days == 5 and job.day_backtest.backtest_id == f"{sid}_2024-01-01_2024-01-05"
    assert running.bus.bodies(JOBS_QUEUE) or peek.scalar("SELECT count(*) FROM outbox WHERE queue = :q", q=JOBS_QUEUE)
    # One queued or running job per user: 409's gRPC form, nothing stored.
    assert await code_of(running.stub.SubmitJob(submit(tenant, sid, user_id="user_123"))) == grpc.StatusCode.FAILED_PRECONDITION
    assert peek.scalar("SELECT count(*) FROM day_backtests") == 1
    other_user = (await running.stub.SubmitJob(submit(tenant, sid, user_id="user_456"))).job  # another user may run

    started = await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))
    assert started.proceed and started.job.day_backtest.ticker == "DEMO-MINUTE"
    assert json.loads(started.job.day_backtest.strategy_json)["name"] == "RSI reversal"
    resp = await days.StoreDays(backtest_pb2.StoreDaysRequest(job_id=job.job_id, days=[day("2024-01-01", 1), day("2024-01-02", 2, 0, 0.0)]))
    assert not resp.stop
    status = await days.GetBacktestStatus(backtest_pb2.GetBacktestStatusRequest(tenant_id=tenant, job_id=job.job_id))
    assert (status.status, status.completed_days, status.total_days, status.current_date, status.percentage) == (
        "running", 2, 5, "2024-01-02", 40.0)
    assert status.estimated_completion
    # Outside the range, unknown file names: refused.
    assert await code_of(days.StoreDays(backtest_pb2.StoreDaysRequest(job_id=job.job_id, days=[day("2024-02-01", 9)]))) == grpc.StatusCode.INVALID_ARGUMENT
    bad = day("2024-01-03", 3)
    bad.files[0].name = "../../x.gz"
    assert await code_of(days.StoreDays(backtest_pb2.StoreDaysRequest(job_id=job.job_id, days=[bad]))) == grpc.StatusCode.INVALID_ARGUMENT
    # Redelivered days are replaced, not announced twice.
    await days.StoreDays(backtest_pb2.StoreDaysRequest(job_id=job.job_id, days=[day("2024-01-02", 2, 2, -4.0)]))
    await days.StoreDays(backtest_pb2.StoreDaysRequest(job_id=job.job_id, days=[day(d, i) for i, d in
                                                                                ((3, "2024-01-03"), (4, "2024-01-04"), (5, "2024-01-05"))]))
    done = await days.CompleteDayBacktest(backtest_pb2.CompleteDayBacktestRequest(job_id=job.job_id, execution_time_seconds=0.1, bars=1875, whole_range=True))
    assert done.stored
    events = []
    async for item in running.stub.StreamJobEvents(results_pb2.StreamJobEventsRequest(tenant_id=tenant, job_id=job.job_id)):
        events.append((item.event.type, json.loads(item.event.data_json)))
    names = [d.get("event") for _, d in events if "event" in d]
    assert names == ["day_started", "day_completed"] * 5 + ["backtest_completed"]
    final = events[-1][1]
    assert events[-1][0] == "done" and final["done"] is True
    assert final["data"]["overall_summary"] == {"total_days": 5, "total_trades": 6, "total_pnl": "36.00",
                                                "win_rate": "100.00", "largest_win": "10.00", "largest_loss": "0.00"}
    completed = [d["data"] for _, d in events if d.get("event") == "day_completed"]
    assert completed[1]["has_detail_data"] is False and completed[0]["summary"]["total_pnl"] == "10.00"
    # The notifier's message: backtest.completed in the sweeps' callback style.
    ended = [bus_pb2.JobEndedMessage.FromString(b) for b in running.bus.bodies(JOB_EVENTS_QUEUE)]
    ended += [bus_pb2.JobEndedMessage.FromString(r[0]) for r in peek.rows(
        "SELECT body FROM outbox WHERE queue = :q", q=JOB_EVENTS_QUEUE)]
    mine = [m for m in ended if m.job_id == job.job_id]
    assert mine and mine[0].event_type == "backtest.completed" and mine[0].status == "completed"
    payload = json.loads(mine[0].payload_json)
    assert payload["event_type"] == "backtest.completed" and payload["result_data"]["overall_summary"]["total_trades"] == 6

    meta = await days.GetBacktestMetadata(backtest_pb2.GetBacktestMetadataRequest(tenant_id=tenant, user_id="user_123", strategy_id=sid))
    assert meta.status == "completed" and [d.date for d in meta.days] == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    assert meta.days[1].positions == 2 and meta.days[1].pnl == -4.0 and meta.days[0].file_size_kb > 0
    files = await days.GetDayFiles(backtest_pb2.GetDayFilesRequest(tenant_id=tenant, user_id="user_123", strategy_id=sid,
                                                                    date="2024-01-03", names=["positions.json.gz"]))
    assert json.loads(gzip.decompress(files.files[0].data)) == {"date": "2024-01-03", "file": "positions.json.gz"}
    # A foreign user id or another tenant sees nothing.
    for request in (
        backtest_pb2.GetDayFilesRequest(tenant_id=tenant, user_id="user_999", strategy_id=sid, date="2024-01-03"),
        backtest_pb2.GetDayFilesRequest(tenant_id=tenant2, user_id="user_123", strategy_id=sid, date="2024-01-03"),
        backtest_pb2.GetDayFilesRequest(tenant_id=tenant2, job_id=job.job_id, date="2024-01-03"),
        backtest_pb2.GetDayFilesRequest(tenant_id=tenant, user_id="user_123", strategy_id=sid, date="2024-01-06"),
    ):
        assert await code_of(days.GetDayFiles(request)) == grpc.StatusCode.NOT_FOUND
    assert await code_of(days.GetBacktestStatus(backtest_pb2.GetBacktestStatusRequest(tenant_id=tenant2, job_id=job.job_id))) == grpc.StatusCode.NOT_FOUND
    assert await code_of(days.FindBacktest(backtest_pb2.FindBacktestRequest(tenant_id=tenant2, backtest_id=job.day_backtest.backtest_id))) == grpc.StatusCode.NOT_FOUND
    assert await code_of(days.GetDayFiles(backtest_pb2.GetDayFilesRequest(
        tenant_id=tenant, user_id="user_123", strategy_id=sid, date="../../../etc"))) == grpc.StatusCode.INVALID_ARGUMENT

    # A new run of the same user and strategy replaces the previous files.
    root = Path(running.settings.artifact_root())
    assert (root / tenant / "user_123" / sid / "2024-01-03" / "positions.json.gz").exists()
    again = (await running.stub.SubmitJob(submit(tenant, sid, user_id="user_123", start="2024-01-08", end="2024-01-09"))).job
    assert not (root / tenant / "user_123" / sid).exists()
    meta = await days.GetBacktestMetadata(backtest_pb2.GetBacktestMetadataRequest(tenant_id=tenant, user_id="user_123", strategy_id=sid))
    assert meta.job_id == again.job_id and meta.status == "queued" and not meta.days
    assert other_user.job_id != again.job_id


async def test_cancel_stops_the_engine_between_days_and_clear(backend):
    running, peek = backend
    _, days = stubs(running)
    tenant = tenant_with_demo(running, peek)
    sid = await _strategy(running, tenant)
    job = (await running.stub.SubmitJob(submit(tenant, sid))).job  # seed 002: no user
    await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))
    await days.StoreDays(backtest_pb2.StoreDaysRequest(job_id=job.job_id, days=[day("2024-01-01", 1)]))
    # Seed 002: one running job per strategy.
    assert await code_of(running.stub.SubmitJob(submit(tenant, sid))) == grpc.StatusCode.FAILED_PRECONDITION
    await running.stub.CancelJob(results_pb2.CancelJobRequest(tenant_id=tenant, job_id=job.job_id))
    resp = await days.StoreDays(backtest_pb2.StoreDaysRequest(job_id=job.job_id, days=[day("2024-01-02", 2)]))
    assert resp.stop and "cancelled" in resp.reason
    root = Path(running.settings.artifact_root()) / tenant / "_" / sid
    assert (root / "2024-01-01").exists() and not (root / "2024-01-02").exists()
    events = [json.loads(i.event.data_json) async for i in running.stub.StreamJobEvents(
        results_pb2.StreamJobEventsRequest(tenant_id=tenant, job_id=job.job_id))]
    assert events[-1]["event"] == "error" and events[-1]["data"] == {"date": "2024-01-01", "error": "Job cancelled"}
    assert not (await days.CompleteDayBacktest(backtest_pb2.CompleteDayBacktestRequest(job_id=job.job_id, whole_range=True))).stored

    # Seed 004: clear cancels the user's running job and deletes the files.
    job2 = (await running.stub.SubmitJob(submit(tenant, sid, user_id="u1"))).job
    await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job2.job_id))
    await days.StoreDays(backtest_pb2.StoreDaysRequest(job_id=job2.job_id, days=[day("2024-01-01", 1), day("2024-01-02", 2)]))
    cleared = await days.ClearBacktestData(backtest_pb2.ClearBacktestDataRequest(tenant_id=tenant, user_id="u1", strategy_id=sid))
    assert cleared.deleted_files == 6 and cleared.freed_bytes > 0
    got = await running.stub.GetJob(results_pb2.GetJobRequest(tenant_id=tenant, job_id=job2.job_id))
    assert got.job.state == 5  # cancelled
    assert await code_of(days.GetBacktestMetadata(backtest_pb2.GetBacktestMetadataRequest(
        tenant_id=tenant, user_id="u1", strategy_id=sid))) == grpc.StatusCode.NOT_FOUND
    # The user may run again at once.
    await running.stub.SubmitJob(submit(tenant, sid, user_id="u1"))


async def test_cleanup_deletes_only_old_finished_runs(backend):
    running, peek = backend
    _, days = stubs(running)
    tenant, other = tenant_with_demo(running, peek), tenant_with_demo(running, peek)
    sid = await _strategy(running, tenant)
    job = (await running.stub.SubmitJob(submit(tenant, sid, user_id="u1"))).job
    await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))
    await days.StoreDays(backtest_pb2.StoreDaysRequest(job_id=job.job_id, days=[day("2024-01-01", 1)]))
    # Running: never cleaned.
    r = await days.RunCleanup(backtest_pb2.RunCleanupRequest(tenant_id=tenant, ttl_hours=0))
    assert r.deleted_strategies == 0
    await days.CompleteDayBacktest(backtest_pb2.CompleteDayBacktestRequest(job_id=job.job_id, whole_range=True))
    r = await days.RunCleanup(backtest_pb2.RunCleanupRequest(tenant_id=tenant, ttl_hours=12))
    assert r.deleted_strategies == 0 and r.cutoff_time.endswith("Z")
    # Another tenant's cleanup leaves these alone.
    assert (await days.RunCleanup(backtest_pb2.RunCleanupRequest(tenant_id=other, ttl_hours=0))).deleted_strategies == 0
    r = await days.RunCleanup(backtest_pb2.RunCleanupRequest(tenant_id=tenant, ttl_hours=0))
    assert r.deleted_strategies == 1 and r.freed_bytes > 0
    assert not (Path(running.settings.artifact_root()) / tenant / "u1" / sid).exists()
    status = await days.GetCleanupStatus(backtest_pb2.GetCleanupStatusRequest(tenant_id=tenant))
    assert status.cleanup_enabled and status.ttl_hours == 12


def test_artifact_store_builds_paths_only_from_valid_ids(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    sid = str(uuid.uuid4())
    ok = store.day_dir("dev", "user_1", sid, "2024-01-02")
    assert ok == (tmp_path / "store" / "dev" / "user_1" / sid / "2024-01-02").resolve()
    assert store.day_dir("dev", "", sid, "2024-01-02").parent.parent.name == "_"
    for tenant, user, strategy, date in [
        ("dev", "..", sid, "2024-01-02"),
        ("dev", "../x", sid, "2024-01-02"),
        ("dev", "a/b", sid, "2024-01-02"),
        ("dev", "a%2Fb", sid, "2024-01-02"),
        ("dev", "_", sid, "2024-01-02"),
        ("dev", "u", "../" + sid, "2024-01-02"),
        ("dev", "u", sid.upper() + "x", "2024-01-02"),
        ("dev", "u", sid, "../../etc"),
        ("dev", "u", sid, "2024-13-01"),
        ("dev", "u", sid, "02-01-2024"),
        ("../dev", "u", sid, "2024-01-02"),
        ("/abs", "u", sid, "2024-01-02"),
    ]:
        with pytest.raises(InvalidArgument):
            store.day_dir(tenant, user, strategy, date)
    with pytest.raises(InvalidArgument):
        store.write_day("dev", "u", sid, "2024-01-02", [("../evil.gz", b"x")])
    assert store.write_day("dev", "u", sid, "2024-01-02", [("positions.json.gz", b"abc")]) == 3
    assert store.read("dev", "u", sid, "2024-01-02", "positions.json.gz") == b"abc"
    assert not list((tmp_path / "store").rglob("*.tmp"))
    removed = store.delete_strategy("dev", "u", sid)
    assert (removed.files, removed.bytes) == (1, 3) and not (tmp_path / "store" / "dev").exists()


async def test_long_ranges_are_split_into_shards_any_engine_may_run(services, tmp_path):
    """hindsight_day_shard_days=2: five days become three JobMessages (2 + 2 + 1 days, with
    their offsets); the job completes only when the last shard's days are stored."""
    from services.results.db import make_engine, sqlite_url

    from .conftest import DbPeek, RecordingBus, sqlite_settings

    running = await services.start(sqlite_settings(tmp_path / "data", hindsight_day_shard_days=2), RecordingBus())
    engine = make_engine(sqlite_url(tmp_path / "data"))
    try:
        peek = DbPeek(engine)
        _, days = stubs(running)
        tenant = tenant_with_demo(running, peek)
        sid = await _strategy(running, tenant)
        job = (await running.stub.SubmitJob(submit(tenant, sid, user_id="u1"))).job
        messages = [bus_pb2.JobMessage.FromString(r[0]) for r in peek.rows(
            "SELECT body FROM outbox WHERE queue = :q ORDER BY id", q=JOBS_QUEUE)]
        shards = [(m.day_start, m.day_end, m.day_offset) for m in messages if m.job_id == job.job_id]
        assert shards == [("2024-01-01", "2024-01-02", 0), ("2024-01-03", "2024-01-04", 2), ("2024-01-05", "2024-01-05", 4)]
        for _ in shards:  # every shard's engine starts the job; it starts once
            assert (await running.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))).proceed
        assert peek.scalar("SELECT count(*) FROM job_events WHERE job_id = :j", j=job.job_id) == 2  # queued, started
        await days.StoreDays(backtest_pb2.StoreDaysRequest(job_id=job.job_id, days=[day("2024-01-05", 5)]))
        r = await days.CompleteDayBacktest(backtest_pb2.CompleteDayBacktestRequest(job_id=job.job_id, execution_time_seconds=0.5))
        assert r.stored and not r.completed
        await days.StoreDays(backtest_pb2.StoreDaysRequest(job_id=job.job_id, days=[day("2024-01-01", 1), day("2024-01-02", 2)]))
        assert not (await days.CompleteDayBacktest(backtest_pb2.CompleteDayBacktestRequest(job_id=job.job_id))).completed
        await days.StoreDays(backtest_pb2.StoreDaysRequest(job_id=job.job_id, days=[day("2024-01-03", 3), day("2024-01-04", 4)]))
        r = await days.CompleteDayBacktest(backtest_pb2.CompleteDayBacktestRequest(job_id=job.job_id, execution_time_seconds=0.25))
        assert r.stored and r.completed
        got = (await running.stub.GetJob(results_pb2.GetJobRequest(tenant_id=tenant, job_id=job.job_id))).job
        assert got.state == 3 and json.loads(got.metrics_json)["shards"] == 3
        assert json.loads(got.metrics_json)["execution_time_seconds"] == 0.75
        events = [json.loads(i.event.data_json) async for i in running.stub.StreamJobEvents(
            results_pb2.StreamJobEventsRequest(tenant_id=tenant, job_id=job.job_id))]
        assert [e["data"]["day_number"] for e in events if e.get("event") == "day_completed"] == [5, 1, 2, 3, 4]
        assert events[-1]["event"] == "backtest_completed" and events[-1]["data"]["overall_summary"]["total_trades"] == 5
    finally:
        engine.dispose()
