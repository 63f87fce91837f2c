"""With real RabbitMQ: job messages reach the queue through the outbox; a message the
engine cannot process is dead-lettered by the broker and results fails its job."""

from __future__ import annotations

import asyncio

import pytest
from hindsight.bus.v1 import bus_pb2
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2

from libs.bus import JOB_EVENTS_QUEUE, JOBS_QUEUE, AmqpBus, Delivery

from .conftest import DbPeek, eventually, pg_settings
from .helpers import submit_request


@pytest.mark.asyncio
async def test_submit_reaches_rabbitmq_and_job_ended_is_published(services, results_pg_url, results_amqp_url, pg_engine):
    bus = AmqpBus(results_amqp_url, "results-test", max_deliveries=2)
    await bus.start()
    engine_bus = AmqpBus(results_amqp_url, "engine-test", max_deliveries=2)
    await engine_bus.start()
    try:
        running = await services.start(pg_settings(results_pg_url, amqp_url=results_amqp_url), bus)
        db = DbPeek(pg_engine)
        tenant, _ = db.tenant()

        got: list[bus_pb2.JobMessage] = []
        ended: list[bus_pb2.JobEndedMessage] = []

        async def on_job(d: Delivery) -> None:
            got.append(bus_pb2.JobMessage.FromString(d.body))

        async def on_ended(d: Delivery) -> None:
            ended.append(bus_pb2.JobEndedMessage.FromString(d.body))

        await engine_bus.consume(JOBS_QUEUE, on_job)
        await engine_bus.consume(JOB_EVENTS_QUEUE, on_ended)

        job = (await running.stub.SubmitJob(submit_request(tenant, ticker="BTC-USD"))).job
        await eventually(lambda: any(m.job_id == job.job_id for m in got), timeout=10)
        msg = next(m for m in got if m.job_id == job.job_id)
        assert (msg.tenant_id, msg.job_kind) == (tenant, jobs_pb2.JOB_KIND_SWEEP)
        assert db.scalar(
            "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND position(:j in encode(body, 'escape')) > 0", j=job.job_id
        ) == 0

        await running.stub.CancelJob(results_pb2.CancelJobRequest(tenant_id=tenant, job_id=job.job_id))
        await eventually(lambda: any(m.job_id == job.job_id for m in ended), timeout=10)
        e = next(m for m in ended if m.job_id == job.job_id)
        assert (e.status, e.event_type) == ("cancelled", "sweep.failed")
    finally:
        await engine_bus.close()
        await services.stop_all()
        await bus.close()


@pytest.mark.asyncio
async def test_dead_lettered_job_is_failed(services, results_pg_url, results_amqp_url, pg_engine):
    bus = AmqpBus(results_amqp_url, "results-test", max_deliveries=2)
    await bus.start()
    engine_bus = AmqpBus(results_amqp_url, "engine-test", max_deliveries=2)
    await engine_bus.start()
    try:
        running = await services.start(pg_settings(results_pg_url, amqp_url=results_amqp_url), bus)
        db = DbPeek(pg_engine)
        tenant, _ = db.tenant()
        attempts: list[str] = []

        async def broken_engine(d: Delivery) -> None:
            attempts.append(bus_pb2.JobMessage.FromString(d.body).job_id)
            raise RuntimeError("engine cannot process this (test)")

        await engine_bus.consume(JOBS_QUEUE, broken_engine)
        job = (await running.stub.SubmitJob(submit_request(tenant))).job

        async def failed():
            j = (await running.stub.GetJob(results_pb2.GetJobRequest(tenant_id=tenant, job_id=job.job_id))).job
            return j if j.state == jobs_pb2.JOB_STATE_FAILED else None

        j = await eventually(failed, timeout=15, interval=0.1)
        assert j.error_message == "Job could not be processed after 2 attempts"
        assert attempts.count(job.job_id) == 2
    finally:
        await engine_bus.close()
        await services.stop_all()
        await bus.close()
        await asyncio.sleep(0)
