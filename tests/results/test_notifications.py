"""NotificationsService at results (Postgres and SQLite): events, deliveries, the attempt
protocol that keeps retries single and lossless, settings, listing and redelivery."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from hindsight.bus.v1 import bus_pb2
from hindsight.notify.v1 import notify_pb2, notify_pb2_grpc
from hindsight.results.v1 import results_pb2

from libs.bus import NOTIFY_DEAD_QUEUE, NOTIFY_QUEUE, InProcessBus
from libs.grpc_util import channel
from services.results.db import make_engine, sqlite_url

from .conftest import DbPeek, eventually, sqlite_settings
from .helpers import submit_request

pytestmark = pytest.mark.asyncio


def _stub(running) -> notify_pb2_grpc.NotificationsServiceStub:
    return notify_pb2_grpc.NotificationsServiceStub(running._channel)


async def _ended_job(running, tenant: str, **over) -> bus_pb2.JobEndedMessage:
    """Submit and fail a job; the JobEnded message results published for it."""
    job = (await running.stub.SubmitJob(submit_request(tenant, **over))).job
    await running.stub.FailJob(results_pb2.FailJobRequest(job_id=job.job_id, error_message="boom"))

    def ended():
        for q, body, _ in running.bus.published:
            if q == "hindsight.job-events":
                msg = bus_pb2.JobEndedMessage.FromString(body)
                if msg.job_id == job.job_id:
                    return msg
        return None

    return await eventually(ended)


def _tasks(running, delivery_id: str) -> list[tuple[notify_pb2.DeliveryTask, float]]:
    out = []
    for (q, body, _), delay in zip(running.bus.published, running.bus.delays):
        if q == NOTIFY_QUEUE:
            task = notify_pb2.DeliveryTask.FromString(body)
            if task.delivery_id == delivery_id:
                out.append((task, delay))
    return out


async def test_record_event_is_idempotent_and_queues_one_task_per_target(backend):
    running, db = backend
    stub = _stub(running)
    tenant, _ = db.tenant()
    event = await _ended_job(running, tenant, notify_email="a@example.com")
    first = await stub.RecordEvent(notify_pb2.RecordEventRequest(event=event))
    again = await stub.RecordEvent(notify_pb2.RecordEventRequest(event=event))
    assert first.created and not again.created
    assert [(d.channel, d.target, d.state) for d in first.deliveries] == [
        ("webhook", "http://webhook-receiver:3000/webhook/sweep-callback", "pending"),
        ("email", "a@example.com", "pending"),
    ]
    assert [d.delivery_id for d in again.deliveries] == [d.delivery_id for d in first.deliveries]
    for d in first.deliveries:
        (task, delay), = await eventually(lambda d=d: _tasks(running, d.delivery_id))
        assert task.attempt == 1 and delay == 0 and task.event.event_id == event.event_id
        assert task.event.payload_json and json.loads(task.event.payload_json)["error_message"] == "boom"


async def test_attempt_protocol_fences_duplicates_and_schedules_retries(backend):
    running, db = backend
    stub = _stub(running)
    tenant, _ = db.tenant()
    event = await _ended_job(running, tenant)
    (d,) = (await stub.RecordEvent(notify_pb2.RecordEventRequest(event=event))).deliveries
    (task, _), = await eventually(lambda: _tasks(running, d.delivery_id))

    claim = await stub.BeginAttempt(notify_pb2.BeginAttemptRequest(
        delivery_id=d.delivery_id, task_id=task.task_id, lease_seconds=30))
    assert claim.proceed and claim.attempt == 1 and claim.webhook_secret.startswith("whsec_")
    # A duplicate of the same task while the attempt runs: busy until the claim lapses.
    busy = await stub.BeginAttempt(notify_pb2.BeginAttemptRequest(
        delivery_id=d.delivery_id, task_id=task.task_id, lease_seconds=30))
    assert not busy.proceed and busy.reason == "busy" and 25 < busy.retry_after_seconds <= 30

    finish = notify_pb2.FinishAttemptRequest(
        delivery_id=d.delivery_id, task_id=task.task_id, attempt=1, outcome="retry", status_code=503,
        error="HTTP 503", latency_ms=12.5, started_at="2025-01-27T10:00:00.123Z", retry_after_seconds=7.5,
        url="http://webhook-receiver:3000/webhook/sweep-callback")
    assert (await stub.FinishAttempt(finish)).recorded
    assert not (await stub.FinishAttempt(finish)).recorded  # the same outcome again: once only
    # The old task is now stale; the next one waits 7.5 s in the broker.
    stale = await stub.BeginAttempt(notify_pb2.BeginAttemptRequest(
        delivery_id=d.delivery_id, task_id=task.task_id, lease_seconds=30))
    assert not stale.proceed and stale.reason == "stale"
    tasks = await eventually(lambda: len(_tasks(running, d.delivery_id)) == 2 and _tasks(running, d.delivery_id))
    nxt, delay = tasks[1]
    assert nxt.attempt == 2 and nxt.task_id != task.task_id and delay == 7.5

    claim = await stub.BeginAttempt(notify_pb2.BeginAttemptRequest(
        delivery_id=d.delivery_id, task_id=nxt.task_id, lease_seconds=30))
    assert claim.proceed and claim.attempt == 2
    await stub.FinishAttempt(notify_pb2.FinishAttemptRequest(
        delivery_id=d.delivery_id, task_id=nxt.task_id, attempt=2, outcome="failed", status_code=0,
        error="gave up", latency_ms=1.0, url="http://x/"))
    done = await stub.BeginAttempt(notify_pb2.BeginAttemptRequest(
        delivery_id=d.delivery_id, task_id=nxt.task_id, lease_seconds=30))
    assert not done.proceed and done.reason == "done"
    dead = await eventually(lambda: [b for q, b, _ in running.bus.published if q == NOTIFY_DEAD_QUEUE
                                     and notify_pb2.DeliveryTask.FromString(b).delivery_id == d.delivery_id])
    assert notify_pb2.DeliveryTask.FromString(dead[0]).event.event_id == event.event_id

    listing = await stub.ListDeliveries(notify_pb2.ListDeliveriesRequest(tenant_id=tenant, job_id=event.job_id))
    (ld,) = listing.deliveries
    assert ld.state == "failed" and ld.attempts == 2 and ld.completed_at
    assert [(a.attempt, a.status_code, a.outcome) for a in ld.history] == [(1, 503, "retry"), (2, 0, "failed")]
    assert ld.history[0].started_at == "2025-01-27T10:00:00.123Z" and ld.history[0].latency_ms == 12.5


async def test_settings_defaults_secret_and_isolation(backend):
    running, db = backend
    stub = _stub(running)
    tenant, _ = db.tenant()
    other, _ = db.tenant()
    s1 = (await stub.GetNotificationSettings(notify_pb2.GetNotificationSettingsRequest(tenant_id=tenant))).settings
    s2 = (await stub.GetNotificationSettings(notify_pb2.GetNotificationSettingsRequest(tenant_id=tenant))).settings
    assert s1.webhook_secret == s2.webhook_secret and len(s1.webhook_secret) > 40
    assert s1.webhook_url == "" and s1.notify_email == ""
    updated = (await stub.UpdateNotificationSettings(notify_pb2.UpdateNotificationSettingsRequest(
        tenant_id=tenant, webhook_url="https://hooks.example/x", notify_email="ops@example.com"))).settings
    assert (updated.webhook_url, updated.notify_email, updated.webhook_secret) == (
        "https://hooks.example/x", "ops@example.com", s1.webhook_secret)
    rotated = (await stub.UpdateNotificationSettings(notify_pb2.UpdateNotificationSettingsRequest(
        tenant_id=tenant, webhook_url="https://hooks.example/x", rotate_secret=True))).settings
    assert rotated.webhook_secret != s1.webhook_secret and rotated.notify_email == ""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateNotificationSettings(notify_pb2.UpdateNotificationSettingsRequest(
            tenant_id=tenant, webhook_secret="short"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # The default applies to jobs without their own URL; another tenant's job is NOT_FOUND.
    event = await _ended_job(running, tenant, webhook_url="")
    (d,) = (await stub.RecordEvent(notify_pb2.RecordEventRequest(event=event))).deliveries
    assert (d.channel, d.target) == ("webhook", "https://hooks.example/x")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListDeliveries(notify_pb2.ListDeliveriesRequest(tenant_id=other, job_id=event.job_id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_redeliver_needs_an_ended_recorded_job_and_a_target(backend):
    running, db = backend
    stub = _stub(running)
    tenant, _ = db.tenant()
    queued = (await running.stub.SubmitJob(submit_request(tenant))).job
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Redeliver(notify_pb2.RedeliverRequest(tenant_id=tenant, job_id=queued.job_id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "not ended" in err.value.details()

    silent = await _ended_job(running, tenant, webhook_url="")
    assert not (await stub.RecordEvent(notify_pb2.RecordEventRequest(event=silent))).deliveries
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Redeliver(notify_pb2.RedeliverRequest(tenant_id=tenant, job_id=silent.job_id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "no webhook URL" in err.value.details()

    # A default set later makes the old event deliverable, with its original id.
    await stub.UpdateNotificationSettings(notify_pb2.UpdateNotificationSettingsRequest(
        tenant_id=tenant, webhook_url="https://hooks.example/late"))
    resp = await stub.Redeliver(notify_pb2.RedeliverRequest(tenant_id=tenant, job_id=silent.job_id))
    assert resp.event_id == silent.event_id and resp.deliveries[0].redelivery
    assert resp.deliveries[0].target == "https://hooks.example/late"


async def test_standalone_restart_requeues_pending_deliveries_and_unrecorded_events(services, tmp_path: Path):
    settings = sqlite_settings(tmp_path / "data")
    bus = InProcessBus()
    running = await services.start(settings, bus)
    chan = channel(f"127.0.0.1:{running.handle.port}")
    stub = notify_pb2_grpc.NotificationsServiceStub(chan)
    db = DbPeek(make_engine(sqlite_url(tmp_path / "data")))
    tenant, _ = db.tenant()
    # Two ended jobs; the notifier (absent here) took the first event only.
    recorded = await _ended_job_inproc(running, bus, tenant)
    unrecorded = await _ended_job_inproc(running, bus, tenant)
    (d,) = (await stub.RecordEvent(notify_pb2.RecordEventRequest(event=recorded))).deliveries
    await chan.close()
    await services.stop(running)
    await bus.close()

    bus2 = InProcessBus()
    seen: dict[str, list[bytes]] = {"hindsight.job-events": [], NOTIFY_QUEUE: []}

    async def grab(q):
        async def handler(delivery):
            seen[q].append(delivery.body)
        return handler

    for q in seen:
        await bus2.consume(q, await grab(q))
    await services.start(settings, bus2)
    await eventually(lambda: seen[NOTIFY_QUEUE] and seen["hindsight.job-events"], timeout=10)
    tasks = [notify_pb2.DeliveryTask.FromString(b) for b in seen[NOTIFY_QUEUE]]
    assert [t.delivery_id for t in tasks] == [d.delivery_id] and tasks[0].attempt == 1
    events = [bus_pb2.JobEndedMessage.FromString(b).event_id for b in seen["hindsight.job-events"]]
    assert events == [unrecorded.event_id]
    await bus2.close()
    db.engine.dispose()


async def _ended_job_inproc(running, bus: InProcessBus, tenant: str) -> bus_pb2.JobEndedMessage:
    job = (await running.stub.SubmitJob(submit_request(tenant))).job
    await running.stub.FailJob(results_pb2.FailJobRequest(job_id=job.job_id, error_message="boom"))
    q = bus._queue("hindsight.job-events")

    async def take():
        while not q.empty():
            msg = bus_pb2.JobEndedMessage.FromString(q.get_nowait().body)
            if msg.job_id == job.job_id:
                return msg
        return None

    return await eventually(take)
