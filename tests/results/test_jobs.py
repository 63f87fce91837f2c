"""Jobs: submission (transactional outbox), the state machine, timeouts, listing."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime

import grpc
import pytest
from hindsight.bus.v1 import bus_pb2
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2

from libs.bus import JOB_EVENTS_QUEUE, JOBS_DEAD_QUEUE, JOBS_QUEUE, Delivery
from libs.job_states import STATE_NAMES
from services.results import jobs as jobs_module

from .conftest import RecordingBus, eventually, pg_settings
from .helpers import result_row, submit_request

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


async def _submit(running, tenant, **over) -> jobs_pb2.Job:
    return (await running.stub.SubmitJob(submit_request(tenant, **over))).job


def _ended_messages(bus: RecordingBus, job_id: str) -> list[bus_pb2.JobEndedMessage]:
    msgs = [bus_pb2.JobEndedMessage.FromString(b) for b in bus.bodies(JOB_EVENTS_QUEUE)]
    return [m for m in msgs if m.job_id == job_id]


@pytest.mark.asyncio
async def test_submit_stores_job_event_and_outbox_row_and_relays(pg, pg_db):
    tenant, _ = pg_db.tenant()
    job = await _submit(pg, tenant, ticker="BTC-USD")
    assert re.fullmatch(r"sweep_\d{8}_\d{6}_btcusd_[0-9a-f]{6}", job.job_id)
    assert job.state == jobs_pb2.JOB_STATE_QUEUED
    assert job.combinations == 8  # the seed's example grid
    assert job.estimated_duration_seconds >= 1
    assert job.timeout_seconds == 3600
    assert RFC3339.match(job.created_at) and job.started_at == ""
    assert job.sweep.ticker == "BTC-USD" and job.sweep.step == 5
    assert json.loads(job.parameters_json)["fast_range"] == [10, 20]

    events = pg_db.rows("SELECT seq, type, data FROM job_events WHERE job_id = :j", j=job.job_id)
    assert [(e.seq, e.type) for e in events] == [(1, "progress")]
    data = events[0].data
    assert data["percent"] == 0 and data["message"] == "Job queued" and RFC3339.match(data["timestamp"])

    # The outbox row is relayed to the bus and marked sent.
    await eventually(lambda: any(bus_pb2.JobMessage.FromString(b).job_id == job.job_id for b in pg.bus.bodies(JOBS_QUEUE)))
    msg = next(m for m in map(bus_pb2.JobMessage.FromString, pg.bus.bodies(JOBS_QUEUE)) if m.job_id == job.job_id)
    assert (msg.tenant_id, msg.job_kind) == (tenant, jobs_pb2.JOB_KIND_SWEEP)
    await eventually(
        lambda: pg_db.scalar(
            "SELECT count(*) FROM outbox WHERE queue = :q AND sent_at IS NOT NULL AND position(:j in encode(body, 'escape')) > 0",
            q=JOBS_QUEUE,
            j=job.job_id,
        )
        == 1
    )


@pytest.mark.asyncio
async def test_submit_is_one_transaction(pg, pg_db, monkeypatch):
    tenant, _ = pg_db.tenant()

    def broken_outbox(*args, **kwargs):
        raise RuntimeError("outbox insert failed")

    monkeypatch.setattr(jobs_module, "add_outbox", broken_outbox)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _submit(pg, tenant)
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "Traceback" not in (err.value.details() or "")
    assert pg_db.scalar("SELECT count(*) FROM jobs WHERE tenant_id = :t", t=tenant) == 0
    assert pg_db.scalar("SELECT count(*) FROM job_events e JOIN jobs j USING (job_id) WHERE j.tenant_id = :t", t=tenant) == 0


@pytest.mark.asyncio
async def test_submit_with_bus_disconnected_is_unavailable_and_stores_nothing(pg, pg_db):
    tenant, _ = pg_db.tenant()
    outbox_before = pg_db.scalar("SELECT count(*) FROM outbox")
    pg.bus.connected = False
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _submit(pg, tenant)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert err.value.details() == "job queue unavailable"
    assert pg_db.scalar("SELECT count(*) FROM jobs WHERE tenant_id = :t", t=tenant) == 0
    assert pg_db.scalar("SELECT count(*) FROM outbox") == outbox_before


@pytest.mark.asyncio
async def test_submit_validation(pg, pg_db):
    tenant, _ = pg_db.tenant()
    bad = [
        results_pb2.SubmitJobRequest(tenant_id=tenant, job_kind=jobs_pb2.JOB_KIND_SWEEP),  # no sweep spec
        submit_request(tenant, sweep=jobs_pb2.SweepSpec(ticker="X", fast_min=10, fast_max=20, slow_min=20, slow_max=30)),
        submit_request(tenant, sweep=jobs_pb2.SweepSpec(ticker="X", fast_min=30, fast_max=40, slow_min=10, slow_max=20, step=1)),
        submit_request(tenant, parameters_json="{not json"),
        submit_request(tenant, timeout_seconds=-1),
    ]
    for req in bad:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pg.stub.SubmitJob(req)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, req
    assert pg_db.scalar("SELECT count(*) FROM jobs WHERE tenant_id = :t", t=tenant) == 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pg.stub.SubmitJob(submit_request("no-such-tenant"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.asyncio
async def test_submit_names_its_kind_with_job_kind(pg, pg_db):
    tenant, _ = pg_db.tenant()
    refused = {
        "job_kind is required": submit_request(tenant, job_kind=jobs_pb2.JOB_KIND_UNSPECIFIED),
        "unknown job kind 99": submit_request(tenant, job_kind=99),
        "unknown job kind 'no-such-kind' (expected one of trading-sweep, day-backtest, rule-sweep, "
        "walk-forward-optimization)": submit_request(tenant, job_kind=jobs_pb2.JOB_KIND_UNSPECIFIED, kind="no-such-kind"),
        # The spec must be the kind's own.
        "day_backtest spec is required for kind 'day-backtest'": submit_request(
            tenant, job_kind=jobs_pb2.JOB_KIND_DAY_BY_DAY
        ),
    }
    for message, req in refused.items():
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pg.stub.SubmitJob(req)
        assert (err.value.code(), err.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, message)
    assert pg_db.scalar("SELECT count(*) FROM jobs WHERE tenant_id = :t", t=tenant) == 0
    # The kind comes back as its enum and, for the API, as the name it has always had.
    job = (await pg.stub.SubmitJob(submit_request(tenant))).job
    assert (job.job_kind, job.kind, job.WhichOneof("spec")) == (jobs_pb2.JOB_KIND_SWEEP, "trading-sweep", "sweep")
    assert pg_db.scalar("SELECT kind FROM jobs WHERE job_id = :j", j=job.job_id) == "trading-sweep"
    # A client from before JobKind names the kind by that name (deprecated field).
    legacy = (await pg.stub.SubmitJob(
        submit_request(tenant, job_kind=jobs_pb2.JOB_KIND_UNSPECIFIED, kind="trading-sweep"))).job
    assert (legacy.job_kind, legacy.kind) == (jobs_pb2.JOB_KIND_SWEEP, "trading-sweep")
    listed = (await pg.stub.ListJobs(results_pb2.ListJobsRequest(tenant_id=tenant))).jobs
    assert {(j.job_kind, j.kind) for j in listed} == {(jobs_pb2.JOB_KIND_SWEEP, "trading-sweep")}


@pytest.mark.asyncio
async def test_lifecycle_start_progress_complete(pg, pg_db):
    tenant, _ = pg_db.tenant()
    job = await _submit(pg, tenant, timeout_seconds=600)
    assert job.timeout_seconds == 600

    started = await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))
    assert started.proceed and started.job.state == jobs_pb2.JOB_STATE_RUNNING
    assert started.job.sweep.fast_min == 10 and RFC3339.match(started.job.started_at)

    resp = await pg.stub.ReportProgress(results_pb2.ReportProgressRequest(job_id=job.job_id, percent=42.46, message="Processing 4/8"))
    assert not resp.stop
    got = (await pg.stub.GetJob(results_pb2.GetJobRequest(tenant_id=tenant, job_id=job.job_id))).job
    assert got.percent == 42.5 and got.progress_message == "Processing 4/8"

    rows = [result_row(10, 20, 1.0, 60), result_row(15, 30, 2.5, 80), result_row(20, 25, None, 5)]
    done = await pg.stub.CompleteSweep(
        results_pb2.CompleteSweepRequest(job_id=job.job_id, results=rows, execution_time_seconds=1.25, bars=2000)
    )
    assert done.stored and re.fullmatch(r"run_[a-z0-9]{12}", done.sweep_run_id)

    got = (await pg.stub.GetJob(results_pb2.GetJobRequest(tenant_id=tenant, job_id=job.job_id))).job
    assert got.state == jobs_pb2.JOB_STATE_COMPLETED and got.sweep_run_id == done.sweep_run_id
    assert RFC3339.match(got.completed_at)
    metrics = json.loads(got.metrics_json)
    assert metrics["combinations_tested"] == 3 and metrics["engine_seconds"] == 1.25
    assert isinstance(metrics["duration_seconds"], float)
    # The seed's execution_time_seconds is the wall time from submission to completion.
    wall = (datetime.fromisoformat(got.completed_at.replace("Z", "+00:00"))
            - datetime.fromisoformat(got.created_at.replace("Z", "+00:00"))).total_seconds()
    assert abs(metrics["execution_time_seconds"] - wall) <= 1.0 and metrics["execution_time_seconds"] >= metrics["duration_seconds"]

    events = pg_db.rows("SELECT seq, type, data FROM job_events WHERE job_id = :j ORDER BY seq", j=job.job_id)
    assert [e.type for e in events] == ["progress", "progress", "progress", "done"]
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert events[2].data["percent"] == 42.5
    final = events[-1].data
    assert final["done"] is True and final["status"] == "completed" and final["sweep_run_id"] == done.sweep_run_id

    # Sweep results stored with the seed's columns.
    assert pg_db.scalar("SELECT count(*) FROM sweep_results WHERE sweep_run_id = :r", r=done.sweep_run_id) == 3

    # The JobEnded message carries the seed's callback payload.
    await eventually(lambda: _ended_messages(pg.bus, job.job_id))
    (ended,) = _ended_messages(pg.bus, job.job_id)
    assert (ended.status, ended.event_type, ended.tenant_id) == ("completed", "sweep.completed", tenant)
    assert ended.webhook_url == "http://webhook-receiver:3000/webhook/sweep-callback" and ended.event_id
    payload = json.loads(ended.payload_json)
    assert list(payload) == ["event_type", "job_id", "sweep_run_id", "status", "ticker", "result_data", "timestamp"]
    assert payload["result_data"]["total_combinations"] == 3
    assert payload["result_data"]["sweep_run_id"] == done.sweep_run_id
    assert payload["result_data"]["execution_time_seconds"] == metrics["execution_time_seconds"]
    assert RFC3339.match(payload["result_data"]["completed_at"]) and payload["ticker"] == "BTC-USD"

    # A redelivered completion is idempotent.
    again = await pg.stub.CompleteSweep(results_pb2.CompleteSweepRequest(job_id=job.job_id, results=rows))
    assert again.stored and again.sweep_run_id == done.sweep_run_id
    assert pg_db.scalar("SELECT count(*) FROM sweep_runs WHERE job_id = :j", j=job.job_id) == 1

    # An ended job is not started again; progress is told to stop.
    assert not (await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))).proceed
    assert (await pg.stub.ReportProgress(results_pb2.ReportProgressRequest(job_id=job.job_id, percent=1))).stop


@pytest.mark.asyncio
async def test_redelivered_start_of_running_job_proceeds(pg, pg_db):
    tenant, _ = pg_db.tenant()
    job = await _submit(pg, tenant)
    first = await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))
    second = await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))
    assert first.proceed and second.proceed
    assert second.job.state == jobs_pb2.JOB_STATE_RUNNING and second.job.started_at == first.job.started_at


@pytest.mark.asyncio
async def test_cancel_then_complete_is_not_stored(pg, pg_db):
    tenant, _ = pg_db.tenant()
    job = await _submit(pg, tenant)
    await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))
    cancelled = (await pg.stub.CancelJob(results_pb2.CancelJobRequest(tenant_id=tenant, job_id=job.job_id))).job
    assert cancelled.state == jobs_pb2.JOB_STATE_CANCELLED and cancelled.error_message == "Job cancelled"

    progress = await pg.stub.ReportProgress(results_pb2.ReportProgressRequest(job_id=job.job_id, percent=50, message="x"))
    assert progress.stop and "cancel" in progress.reason

    done = await pg.stub.CompleteSweep(
        results_pb2.CompleteSweepRequest(job_id=job.job_id, results=[result_row(10, 20, 1.0, 60)])
    )
    assert not done.stored and done.sweep_run_id == ""
    assert pg_db.scalar("SELECT count(*) FROM sweep_runs WHERE job_id = :j", j=job.job_id) == 0

    events = pg_db.rows("SELECT type, data FROM job_events WHERE job_id = :j ORDER BY seq", j=job.job_id)
    assert events[-1].type == "error"
    assert events[-1].data["error"] is True
    assert events[-1].data["message"] == "Job cancelled" and events[-1].data["status"] == "cancelled"
    assert sum(e.type == "progress" and e.data["message"] == "x" for e in events) == 0

    await eventually(lambda: _ended_messages(pg.bus, job.job_id))
    (ended,) = _ended_messages(pg.bus, job.job_id)
    payload = json.loads(ended.payload_json)
    assert (ended.status, ended.event_type) == ("cancelled", "sweep.failed")
    assert payload["status"] == "cancelled" and payload["error_message"] == "Job cancelled"
    assert list(payload) == ["event_type", "job_id", "status", "ticker", "error_message", "timestamp"]

    # Cancelling again, or starting: refused / skipped.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pg.stub.CancelJob(results_pb2.CancelJobRequest(tenant_id=tenant, job_id=job.job_id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details() == "job already cancelled"
    assert not (await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))).proceed


@pytest.mark.asyncio
async def test_cancel_queued_job(pg, pg_db):
    tenant, _ = pg_db.tenant()
    job = await _submit(pg, tenant)
    cancelled = (await pg.stub.CancelJob(results_pb2.CancelJobRequest(tenant_id=tenant, job_id=job.job_id))).job
    assert cancelled.state == jobs_pb2.JOB_STATE_CANCELLED
    assert not (await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))).proceed


@pytest.mark.asyncio
async def test_fail_job(pg, pg_db):
    tenant, _ = pg_db.tenant()
    job = await _submit(pg, tenant)
    await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))
    msg = "Insufficient historical data for ticker BTC-USD"
    failed = (await pg.stub.FailJob(results_pb2.FailJobRequest(job_id=job.job_id, error_message=msg))).job
    assert failed.state == jobs_pb2.JOB_STATE_FAILED and failed.error_message == msg
    progress = await pg.stub.ReportProgress(results_pb2.ReportProgressRequest(job_id=job.job_id, percent=50))
    assert progress.stop
    events = pg_db.rows("SELECT type, data FROM job_events WHERE job_id = :j ORDER BY seq", j=job.job_id)
    assert events[-1].type == "error" and events[-1].data["message"] == msg and events[-1].data["status"] == "failed"
    await eventually(lambda: _ended_messages(pg.bus, job.job_id))
    payload = json.loads(_ended_messages(pg.bus, job.job_id)[0].payload_json)
    assert payload == {
        "event_type": "sweep.failed",
        "job_id": job.job_id,
        "status": "failed",
        "ticker": "BTC-USD",
        "error_message": msg,
        "timestamp": payload["timestamp"],
    }
    # Failing again changes nothing.
    again = (await pg.stub.FailJob(results_pb2.FailJobRequest(job_id=job.job_id, error_message="other"))).job
    assert again.error_message == msg
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pg.stub.FailJob(results_pb2.FailJobRequest(job_id="sweep_nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.asyncio
async def test_complete_of_a_queued_job_is_refused(pg, pg_db):
    tenant, _ = pg_db.tenant()
    job = await _submit(pg, tenant)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pg.stub.CompleteSweep(results_pb2.CompleteSweepRequest(job_id=job.job_id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.asyncio
async def test_timeout_watchdog_fails_overdue_jobs(pg, pg_db):
    tenant, _ = pg_db.tenant()
    queued = await _submit(pg, tenant, timeout_seconds=1)
    running = await _submit(pg, tenant, timeout_seconds=1)
    await pg.stub.StartJob(results_pb2.StartJobRequest(job_id=running.job_id))
    keeps = await _submit(pg, tenant, timeout_seconds=600)

    async def state(job_id):
        return (await pg.stub.GetJob(results_pb2.GetJobRequest(tenant_id=tenant, job_id=job_id))).job

    for job in (queued, running):
        got = await eventually(
            lambda job=job: _failed(state(job.job_id)),
            timeout=6,
        )
        assert got.error_message == "Job timed out after 1 second"
    assert (await state(keeps.job_id)).state == jobs_pb2.JOB_STATE_QUEUED
    progress = await pg.stub.ReportProgress(results_pb2.ReportProgressRequest(job_id=running.job_id, percent=10))
    assert progress.stop and "timed out" in progress.reason
    done = await pg.stub.CompleteSweep(results_pb2.CompleteSweepRequest(job_id=running.job_id))
    assert not done.stored


async def _failed(coro):
    job = await coro
    return job if job.state == jobs_pb2.JOB_STATE_FAILED else None


@pytest.mark.asyncio
async def test_dead_lettered_message_fails_the_job(pg, pg_db):
    tenant, _ = pg_db.tenant()
    job = await _submit(pg, tenant)
    handler = pg.bus.consumers[JOBS_DEAD_QUEUE]
    body = bus_pb2.JobMessage(job_id=job.job_id, tenant_id=tenant, job_kind=jobs_pb2.JOB_KIND_SWEEP).SerializeToString()
    await handler(Delivery(body=body, delivery_count=2))
    got = (await pg.stub.GetJob(results_pb2.GetJobRequest(tenant_id=tenant, job_id=job.job_id))).job
    assert got.state == jobs_pb2.JOB_STATE_FAILED
    assert got.error_message == "Job could not be processed after 2 attempts"
    # A second dead letter of the same job, or of an unknown one, is acked quietly.
    await handler(Delivery(body=body))
    await handler(Delivery(body=bus_pb2.JobMessage(job_id="sweep_unknown").SerializeToString()))


@pytest.mark.asyncio
async def test_list_jobs_newest_first_with_paging_and_state_filter(pg, pg_db):
    tenant, _ = pg_db.tenant()
    ids = [(await _submit(pg, tenant, ticker=f"T{i}")).job_id for i in range(5)]
    await pg.stub.CancelJob(results_pb2.CancelJobRequest(tenant_id=tenant, job_id=ids[1]))

    page = await pg.stub.ListJobs(results_pb2.ListJobsRequest(tenant_id=tenant))
    assert page.total == 5 and [j.job_id for j in page.jobs] == ids[::-1]
    page = await pg.stub.ListJobs(results_pb2.ListJobsRequest(tenant_id=tenant, limit=2, offset=1))
    assert page.total == 5 and [j.job_id for j in page.jobs] == ids[::-1][1:3]
    page = await pg.stub.ListJobs(results_pb2.ListJobsRequest(tenant_id=tenant, state=jobs_pb2.JOB_STATE_CANCELLED))
    assert page.total == 1 and [j.job_id for j in page.jobs] == [ids[1]]
    for bad in (results_pb2.ListJobsRequest(tenant_id=tenant, limit=1001), results_pb2.ListJobsRequest(tenant_id=tenant, offset=-1)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pg.stub.ListJobs(bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.asyncio
async def test_relay_retries_until_the_broker_takes_messages(services, results_pg_url, pg_engine):
    from .conftest import DbPeek

    bus = RecordingBus()
    running = await services.start(pg_settings(results_pg_url), bus)
    db = DbPeek(pg_engine)
    tenant, _ = db.tenant()
    bus.fail_publishes = 3
    ids = [(await _submit(running, tenant, ticker=f"R{i}")).job_id for i in range(3)]

    def relayed():
        got = [bus_pb2.JobMessage.FromString(b).job_id for b in bus.bodies(JOBS_QUEUE)]
        return [j for j in got if j in ids]

    assert await eventually(lambda: len(relayed()) == 3, timeout=10)
    assert relayed() == ids  # in order, none dropped, none twice
    await asyncio.sleep(0.7)
    assert relayed() == ids


def test_stored_states_are_the_proto_state_names():
    # The servicer maps the database's state strings to JobState by these names.
    assert tuple(STATE_NAMES.values()) == jobs_module.ACTIVE_STATES + jobs_module.ENDED_STATES


def test_the_estimate_follows_bars_times_combinations():
    from services.results.sweeps import ESTIMATE_BAR_PAIRS_PER_SECOND, estimate_duration_seconds

    assert estimate_duration_seconds(8, 0) == 1  # no data: the job fails at once
    small = estimate_duration_seconds(8, 2_000)
    s2 = estimate_duration_seconds(590, 1_000_000)  # the S2 sweep
    assert small == 2
    assert s2 == 2 + round(590 * 1_000_000 / ESTIMATE_BAR_PAIRS_PER_SECOND)
    assert estimate_duration_seconds(590 * 2, 1_000_000) > s2


@pytest.mark.asyncio
@pytest.mark.parametrize("lock", [jobs_module.locked_job, jobs_module.locked_job_if_free])
async def test_a_job_locked_after_another_commit_is_read_again(pg, pg_db, pg_engine, lock):
    # A request reads a job, another commits an event on it, then the first locks the job:
    # it must see the other's last event number (a stale one gave two events one number,
    # INTERNAL to the engine, when two replicas reported progress at once).
    from sqlalchemy.orm import Session

    tenant, _ = pg_db.tenant()
    job = await _submit(pg, tenant)
    with Session(pg_engine) as late, Session(pg_engine) as early, late.begin():
        # kept: the session's identity map holds its objects weakly (the servicer keeps it)
        read = jobs_module.get_job_any(late, job.job_id)
        seen = read.last_event_seq
        with early.begin():
            jobs_module.append_event(early, jobs_module.locked_job(early, job.job_id), "progress", {"percent": 1})
        locked = lock(late, job.job_id)
        assert locked is read and locked.last_event_seq == seen + 1
