"""Webhooks end to end on real parts: results (Postgres) → RabbitMQ → notifier → a real HTTP receiver."""

from __future__ import annotations

import asyncio
import json
import re
from itertools import pairwise

import aio_pika
import pytest
from hindsight.notify.v1 import notify_pb2

from libs.bus import NOTIFY_DEAD_QUEUE
from services.notifier.signing import verify
from tests.notifier.conftest import FAKE_DNS, eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SEED_COMPLETED_KEYS = ["event_type", "job_id", "sweep_run_id", "status", "ticker", "result_data", "timestamp"]
SEED_FAILED_KEYS = ["event_type", "job_id", "status", "ticker", "error_message", "timestamp"]


async def test_completed_sweep_is_delivered_in_the_seed_shape_and_signed(notify_stack):
    s = notify_stack
    tenant = s.tenant()
    job_id = await s.submit(tenant, webhook_url=s.receiver.url)
    run_id = await s.complete(job_id)

    listing = await s.settled(tenant, job_id)
    (got,) = s.receiver.for_job(job_id)
    body = got.json
    assert list(body) == SEED_COMPLETED_KEYS
    assert body["event_type"] == "sweep.completed" and body["status"] == "completed"
    assert body["job_id"] == job_id and body["sweep_run_id"] == run_id and body["ticker"] == "BTC-USD"
    assert body["result_data"] == {
        "sweep_run_id": run_id, "total_combinations": 3,
        "execution_time_seconds": body["result_data"]["execution_time_seconds"],
        "completed_at": body["result_data"]["completed_at"],
        # beside the seed's fields; null: this engine (a test double) sent no overfitting statistics
        "deflated_sharpe_ratio": None, "pbo": None,
    }
    # The seed's meaning: the job's wall time from submission to completion, not the engine's 1.25 s.
    assert isinstance(body["result_data"]["execution_time_seconds"], float)
    assert 0 <= body["result_data"]["execution_time_seconds"] < 60
    assert RFC3339.match(body["timestamp"]) and RFC3339.match(body["result_data"]["completed_at"])

    secret = await s.secret(tenant)
    assert secret.startswith("whsec_")
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", got.headers["x-hindsight-signature"])
    assert verify(secret, got.headers["x-hindsight-signature"], got.body)
    assert not verify(secret + "x", got.headers["x-hindsight-signature"], got.body)
    assert not verify(secret, got.headers["x-hindsight-signature"], got.body + b" ")
    assert got.headers["x-hindsight-event-type"] == "sweep.completed"
    assert got.headers["content-type"] == "application/json"
    assert got.event_id == listing.event_id and listing.event_type == "sweep.completed"

    (d,) = listing.deliveries
    assert (d.channel, d.target, d.state, d.attempts) == ("webhook", s.receiver.url, "delivered", 1)
    (a,) = d.history
    assert (a.attempt, a.url, a.status_code, a.error, a.outcome) == (1, s.receiver.url, 200, "", "delivered")
    assert a.latency_ms > 0 and a.started_at.endswith("Z")


async def test_failed_and_cancelled_jobs_send_sweep_failed(notify_stack):
    s = notify_stack
    tenant = s.tenant()
    failed = await s.submit(tenant, webhook_url=s.receiver.url)
    await s.fail(failed)
    cancelled = await s.submit(tenant, webhook_url=s.receiver.url)
    await s.cancel(tenant, cancelled)
    await s.settled(tenant, failed)
    await s.settled(tenant, cancelled)

    (f,) = s.receiver.for_job(failed)
    assert list(f.json) == SEED_FAILED_KEYS
    assert f.json["event_type"] == "sweep.failed" and f.json["status"] == "failed"
    assert f.json["error_message"] == "Insufficient historical data for ticker BTC-USD"
    (c,) = s.receiver.for_job(cancelled)
    # The seed's schema knows completed and failed only: a cancellation is a failure saying so.
    assert c.json["event_type"] == "sweep.failed" and c.json["status"] == "failed"
    assert c.json["error_message"] == "Job cancelled"


async def test_down_slow_and_5xx_receivers_are_retried_with_backoff_until_one_success(notify_stack):
    s = notify_stack
    tenant = s.tenant()
    s.receiver.answer(503, ("retry-after", 1, 429), ("sleep", 1.5, 200), 502)
    job_id = await s.submit(tenant, webhook_url=s.receiver.url)
    await s.fail(job_id)
    listing = await s.settled(tenant, job_id, timeout=30)

    got = s.receiver.for_job(job_id)
    # 503, 429, a timeout (answered 200 too late: not a success for us), 502, then 200.
    assert [r.status for r in got] == [503, 429, 200, 502, 200]
    assert len({r.event_id for r in got}) == 1 and got[0].event_id == listing.event_id
    assert len({r.body for r in got}) == 1  # the same bytes every time
    assert len({r.headers["x-hindsight-signature"] for r in got}) >= 2  # signed anew (time) per attempt
    (d,) = listing.deliveries
    assert d.state == "delivered" and d.attempts == 5
    outcomes = [(a.status_code, a.outcome) for a in d.history]
    assert outcomes == [(503, "retry"), (429, "retry"), (0, "retry"), (502, "retry"), (200, "delivered")]
    assert d.history[2].error == "network error"  # a timeout, recorded like any network failure
    # Backoff: 0.2 s, 0.4 s (Retry-After 1 s wins), 0.8 s, then 1 s (the cap), ±10% jitter.
    gaps = [b.at - a.at for a, b in pairwise(got)]
    # Never early; late only by the broker's and the relay's latency (loose bounds: shared CI machines).
    assert 0.18 <= gaps[0] < 0.9, gaps
    assert 0.95 <= gaps[1] < 2.0, gaps  # Retry-After: 1
    assert 1.0 + 0.72 <= gaps[2] < 1.0 + 1.8, gaps  # 1 s timeout, then 0.8 s
    assert 0.9 <= gaps[3] < 2.0, gaps


async def test_receiver_down_for_several_intervals_then_up_gets_each_event_once(notify_stack):
    s = notify_stack
    tenant = s.tenant()
    s.receiver.stop()
    try:
        jobs = [await s.submit(tenant, webhook_url=s.receiver.url) for _ in range(3)]
        for job_id in jobs:
            await s.fail(job_id)

        async def retrying():
            for job_id in jobs:
                d = (await s.deliveries(tenant, job_id)).deliveries
                if not d or d[0].attempts < 3:
                    return False
            return True

        await eventually(retrying, timeout=20)
    finally:
        s.receiver.start()
    for job_id in jobs:
        listing = await s.settled(tenant, job_id, timeout=20)
        (d,) = listing.deliveries
        assert d.state == "delivered" and d.attempts >= 4
        assert all(a.error == "network error" for a in d.history[:-1]), d.history  # refused, not told apart
    mine = {r.event_id for job in jobs for r in s.receiver.for_job(job)}
    assert len(mine) == 3
    assert all(s.receiver.successes_by_event()[e] == 1 for e in mine)


async def test_other_4xx_fails_at_once_and_is_dead_lettered(notify_stack):
    s = notify_stack
    tenant = s.tenant()
    s.receiver.answer(410)
    job_id = await s.submit(tenant, webhook_url=s.receiver.url)
    await s.fail(job_id)
    listing = await s.settled(tenant, job_id)
    (d,) = listing.deliveries
    assert d.state == "failed" and d.attempts == 1 and d.history[0].status_code == 410
    assert d.history[0].outcome == "failed" and d.history[0].error == "HTTP 410"
    assert len(s.receiver.for_job(job_id)) == 1
    assert await _dead_lettered(s.amqp_url, listing.event_id)
    m = s.notifier.metrics
    assert m.dead_lettered.labels(channel="webhook")._value.get() >= 1
    assert m.deliveries.labels(channel="webhook", outcome="failed")._value.get() >= 1


async def test_gives_up_after_the_last_try_and_dead_letters(notify_stack):
    s = notify_stack
    tenant = s.tenant()
    s.receiver.answer(*[500] * 6)
    job_id = await s.submit(tenant, webhook_url=s.receiver.url)
    await s.fail(job_id)
    listing = await s.settled(tenant, job_id, timeout=30)
    (d,) = listing.deliveries
    assert d.state == "failed" and d.attempts == 6  # max attempts of these tests
    assert [a.outcome for a in d.history] == ["retry"] * 5 + ["failed"]
    assert "gave up after 6 attempts" in d.history[-1].error
    assert len(s.receiver.for_job(job_id)) == 6
    assert await _dead_lettered(s.amqp_url, listing.event_id)


async def test_redeliver_sends_the_same_event_id_again(notify_stack):
    s = notify_stack
    tenant = s.tenant()
    job_id = await s.submit(tenant, webhook_url=s.receiver.url)
    await s.complete(job_id)
    first = await s.settled(tenant, job_id)
    resp = await s.notifications.Redeliver(notify_pb2.RedeliverRequest(tenant_id=tenant, job_id=job_id))
    assert resp.event_id == first.event_id and len(resp.deliveries) == 1 and resp.deliveries[0].redelivery
    after = await s.settled(tenant, job_id, n=2)
    got = s.receiver.for_job(job_id)
    assert len(got) == 2 and got[0].event_id == got[1].event_id == first.event_id
    assert got[0].body == got[1].body
    assert [d.redelivery for d in after.deliveries] == [False, True]


async def test_tenant_default_webhook_and_secret(notify_stack):
    s = notify_stack
    tenant = s.tenant()
    await s.notifications.UpdateNotificationSettings(notify_pb2.UpdateNotificationSettingsRequest(
        tenant_id=tenant, webhook_url=s.receiver.url, webhook_secret="my-own-secret-0123456789"))
    job_id = await s.submit(tenant)  # no webhook_url of its own
    await s.fail(job_id)
    await s.settled(tenant, job_id)
    (got,) = s.receiver.for_job(job_id)
    assert verify("my-own-secret-0123456789", got.headers["x-hindsight-signature"], got.body)


async def test_address_is_checked_again_at_delivery_time(notify_stack):
    """A name that pointed somewhere public at submission and now resolves to a
    private or metadata address (DNS rebinding) is refused when connecting."""
    s = notify_stack
    tenant = s.tenant()
    FAKE_DNS["rebind.example"] = ["10.0.0.7"]
    FAKE_DNS["metadata.example"] = ["169.254.169.254"]
    jobs = {}
    for host in ("rebind.example", "metadata.example"):
        jobs[host] = await s.submit(tenant, webhook_url=f"http://{host}:{s.receiver.port}/hook")
        await s.fail(jobs[host])
    for job_id in jobs.values():
        (d,) = (await s.settled(tenant, job_id)).deliveries
        assert d.state == "failed" and d.attempts == 1, d
        assert "refused" in d.history[0].error and d.history[0].status_code == 0
    assert "private address" in (await s.deliveries(tenant, jobs["rebind.example"])).deliveries[0].history[0].error
    assert not any(s.receiver.for_job(j) for j in jobs.values())


async def test_duplicate_job_event_and_duplicate_task_make_one_attempt(notify_stack):
    """At-least-once broker delivery: a job event or a task that arrives twice changes nothing."""
    s = notify_stack
    tenant = s.tenant()
    s.receiver.answer(("sleep", 0.3, 200))
    job_id = await s.submit(tenant, webhook_url=s.receiver.url)
    await s.fail(job_id)
    first = await s.settled(tenant, job_id)
    with s.engine.connect() as c:
        (event_body,) = [b for q, b in c.exec_driver_sql("SELECT queue, body FROM outbox ORDER BY id")
                         if q == "hindsight.job-events" and job_id.encode() in bytes(b)]
        task_bodies = [bytes(b) for q, b in c.exec_driver_sql("SELECT queue, body FROM outbox ORDER BY id")
                       if q == "hindsight.notify.deliveries" and job_id.encode() in bytes(b)]
    await s.results_bus.publish("hindsight.job-events", bytes(event_body))
    for body in task_bodies * 2:
        await s.results_bus.publish("hindsight.notify.deliveries", body)
    await asyncio.sleep(1.0)
    again = await s.deliveries(tenant, job_id)
    assert len(again.deliveries) == 1 and again.deliveries[0].attempts == first.deliveries[0].attempts == 1
    assert len(s.receiver.for_job(job_id)) == 1


async def _dead_lettered(amqp_url: str, event_id: str, timeout: float = 10.0) -> bool:
    """Whether a task of `event_id` sits in the notifier's dead-letter queue."""
    conn = await aio_pika.connect_robust(amqp_url)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(NOTIFY_DEAD_QUEUE, durable=True, passive=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            msg = await q.get(no_ack=False, fail=False)
            if msg is None:
                await asyncio.sleep(0.1)
                continue
            task = notify_pb2.DeliveryTask.FromString(msg.body)
            await msg.nack(requeue=True) if task.event.event_id != event_id else await msg.ack()
            if task.event.event_id == event_id:
                assert json.loads(task.event.payload_json)["job_id"] == task.event.job_id
                return True
        return False
    finally:
        await conn.close()
