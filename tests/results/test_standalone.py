"""Standalone mode: SQLite in the data directory, dev key, demo datasets, the in-process
bus, re-queueing unfinished jobs after a restart, health."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pandas as pd
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hindsight.bus.v1 import bus_pb2
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2

from libs.bus import JOBS_QUEUE, Delivery, InProcessBus
from libs.grpc_util import channel
from libs.settings import DEV_TENANT, SEED_DEV_API_KEY

from .conftest import sqlite_settings
from .helpers import submit_request


@pytest.mark.asyncio
async def test_standalone_dev_key_demo_data_and_health(services, tmp_path):
    data_dir = tmp_path / "fresh" / "data"
    settings = sqlite_settings(data_dir, hindsight_bootstrap_keys="acme:acme-key-0123456789")
    running = await services.start(settings, InProcessBus())
    assert (data_dir / "hindsight.db").exists()
    assert running.handle.database_url.startswith("sqlite:///")

    async with channel(f"127.0.0.1:{running.handle.port}") as chan:
        health = health_pb2_grpc.HealthStub(chan)
        for service in ("", "hindsight.results.v1.ResultsService"):
            resp = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING

    auth = await running.stub.Authenticate(results_pb2.AuthenticateRequest(api_key=SEED_DEV_API_KEY))
    assert auth.tenant_id == DEV_TENANT
    acme = await running.stub.Authenticate(results_pb2.AuthenticateRequest(api_key="acme-key-0123456789"))
    assert acme.tenant_id == "acme"

    for tenant in (DEV_TENANT, "acme"):
        listed = (await running.stub.ListDatasets(results_pb2.ListDatasetsRequest(tenant_id=tenant))).datasets
        by_ticker = {d.ticker: d for d in listed}
        assert set(by_ticker) == {"DEMO-DAILY", "DEMO-MINUTE"}
        daily, minute = by_ticker["DEMO-DAILY"], by_ticker["DEMO-MINUTE"]
        assert (daily.interval, daily.calendar, daily.timezone, daily.bars, daily.demo) == ("1d", "continuous", "UTC", 2000, True)
        assert daily.start == "2019-01-01T00:00:00Z"
        assert (minute.interval, minute.calendar, minute.timezone, minute.bars, minute.demo) == (
            "1m", "sessions", "Asia/Kolkata", 40 * 375, True
        )
        assert minute.start == "2024-01-01T03:45:00Z"  # 09:15 in Kolkata

    resolved = await running.stub.ResolveDataset(
        results_pb2.ResolveDatasetRequest(tenant_id=DEV_TENANT, ticker="DEMO-MINUTE")
    )
    parts = [c async for c in running.stub.GetBars(results_pb2.GetBarsRequest(version_id=resolved.version_id))]
    ts = np.frombuffer(b"".join(p.ts for p in parts), "<i8")
    o, h, lo, c = (np.frombuffer(b"".join(getattr(p, k) for p in parts), "<f8") for k in ("open", "high", "low", "close"))
    assert len(ts) == 15000 and np.all(h >= np.maximum(o, c)) and np.all(lo <= np.minimum(o, c)) and np.all(lo > 0)
    local = pd.DatetimeIndex(ts.view("datetime64[ns]"), tz="UTC").tz_convert("Asia/Kolkata")
    assert local.min().strftime("%H:%M") == "09:15" and local.max().strftime("%H:%M") == "15:29"
    assert set(local.day_of_week) <= {0, 1, 2, 3, 4}

    # Demo data is deterministic: the same bars on every start.
    from services.results.demo_datasets import demo_minute

    assert np.array_equal(demo_minute().bars.close, c)


@pytest.mark.asyncio
async def test_restart_requeues_unfinished_jobs_on_the_in_process_bus(services, tmp_path):
    data_dir = tmp_path / "data"
    bus1 = InProcessBus()
    first = await services.start(sqlite_settings(data_dir), bus1)
    queued = (await first.stub.SubmitJob(submit_request(DEV_TENANT, ticker="DEMO-DAILY"))).job
    running_job = (await first.stub.SubmitJob(submit_request(DEV_TENANT, ticker="DEMO-DAILY"))).job
    ended = (await first.stub.SubmitJob(submit_request(DEV_TENANT, ticker="DEMO-DAILY"))).job
    await first.stub.StartJob(results_pb2.StartJobRequest(job_id=running_job.job_id))
    await first.stub.CancelJob(results_pb2.CancelJobRequest(tenant_id=DEV_TENANT, job_id=ended.job_id))
    await services.stop(first)
    await bus1.close()

    bus2 = InProcessBus()
    seen: list[str] = []

    async def engine(d: Delivery) -> None:
        seen.append(bus_pb2.JobMessage.FromString(d.body).job_id)

    await bus2.consume(JOBS_QUEUE, engine)
    second = await services.start(sqlite_settings(data_dir), bus2)
    for _ in range(100):
        if len(seen) >= 2:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert sorted(seen) == sorted([queued.job_id, running_job.job_id])
    got = (await second.stub.GetJob(results_pb2.GetJobRequest(tenant_id=DEV_TENANT, job_id=queued.job_id))).job
    assert got.state == jobs_pb2.JOB_STATE_QUEUED
    await services.stop(second)
    await bus2.close()


@pytest.mark.asyncio
async def test_dead_letter_on_the_in_process_bus_fails_the_job(services, tmp_path):
    bus = InProcessBus(max_deliveries=2)

    async def broken_engine(d: Delivery) -> None:
        raise RuntimeError("cannot process (test)")

    await bus.consume(JOBS_QUEUE, broken_engine)
    running = await services.start(sqlite_settings(tmp_path / "data"), bus)
    job = (await running.stub.SubmitJob(submit_request(DEV_TENANT))).job
    for _ in range(100):
        got = (await running.stub.GetJob(results_pb2.GetJobRequest(tenant_id=DEV_TENANT, job_id=job.job_id))).job
        if got.state == jobs_pb2.JOB_STATE_FAILED:
            break
        await asyncio.sleep(0.05)
    assert got.error_message == "Job could not be processed after 2 attempts"
    await services.stop(running)
    await bus.close()


@pytest.mark.asyncio
async def test_stop_ends_open_streams_with_unavailable(services, tmp_path):
    running = await services.start(sqlite_settings(tmp_path / "data"), InProcessBus())
    job = (await running.stub.SubmitJob(submit_request(DEV_TENANT))).job
    stream = running.stub.StreamJobEvents(results_pb2.StreamJobEventsRequest(tenant_id=DEV_TENANT, job_id=job.job_id))
    first = await stream.read()
    assert first.event.seq == 1
    stopping = asyncio.create_task(running.handle.stop(grace=5))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await asyncio.wait_for(stream.read(), 3)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    await asyncio.wait_for(stopping, 5)
