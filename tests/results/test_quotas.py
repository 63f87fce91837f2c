"""Fair tenants at results (issue 12, item 3), on Postgres and SQLite: StartJob holds back a
tenant's job while it runs its limit, the submission limits answer RESOURCE_EXHAUSTED with a
`retry-after` estimated from the jobs ahead, and the operator's maximum timeout is enforced."""

from __future__ import annotations

from dataclasses import replace

import grpc
import pytest
from hindsight.results.v1 import results_pb2

from services.results.quotas import TenantLimits

from .helpers import submit_request


def retry_after(exc: grpc.aio.AioRpcError) -> int:
    return int(dict(exc.trailing_metadata() or ())["retry-after"])


async def test_start_holds_back_a_tenants_second_job(backend) -> None:
    running, db = backend
    running.handle.servicer.limits = replace(TenantLimits.of(running.settings), max_running=1, wait_seconds=2.5)
    tenant, _ = db.tenant()
    other, _ = db.tenant()
    first = (await running.stub.SubmitJob(submit_request(tenant))).job
    second = (await running.stub.SubmitJob(submit_request(tenant))).job
    theirs = (await running.stub.SubmitJob(submit_request(other))).job

    started = await running.stub.StartJob(results_pb2.StartJobRequest(job_id=first.job_id))
    assert started.proceed and started.retry_after_seconds == 0
    held = await running.stub.StartJob(results_pb2.StartJobRequest(job_id=second.job_id))
    assert not held.proceed and held.retry_after_seconds == 2.5
    assert db.scalar("SELECT state FROM jobs WHERE job_id = :j", j=second.job_id) == "queued"
    # Another tenant's job is not held back by this one's.
    assert (await running.stub.StartJob(results_pb2.StartJobRequest(job_id=theirs.job_id))).proceed
    # The running job's own redelivery (an engine crash) is not held back either.
    assert (await running.stub.StartJob(results_pb2.StartJobRequest(job_id=first.job_id))).proceed
    # Once the first has ended, the second may start.
    await running.stub.FailJob(results_pb2.FailJobRequest(job_id=first.job_id, error_message="x"))
    assert (await running.stub.StartJob(results_pb2.StartJobRequest(job_id=second.job_id))).proceed


async def test_submission_limits_and_their_retry_after(backend) -> None:
    running, db = backend
    running.handle.servicer.limits = replace(TenantLimits.of(running.settings), max_active=2, max_timeout_seconds=600)
    tenant, _ = db.tenant()
    jobs = [(await running.stub.SubmitJob(submit_request(tenant))).job for _ in range(2)]
    await running.stub.StartJob(results_pb2.StartJobRequest(job_id=jobs[0].job_id))  # one running, one queued
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await running.stub.SubmitJob(submit_request(tenant))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 2 queued or running" in err.value.details()
    # No dataset: each job's estimate is 1 s, so a slot is expected in about 1 s.
    assert retry_after(err.value) == 1
    assert db.scalar("SELECT count(*) FROM jobs WHERE tenant_id = :t", t=tenant) == 2
    # Above the operator's maximum timeout: a 400 whatever the queue.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await running.stub.SubmitJob(submit_request(tenant, timeout_seconds=601))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "at most 600" in err.value.details()
    # A negative timeout (0 means "the default"): a 400 too.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await running.stub.SubmitJob(submit_request(tenant, timeout_seconds=-5))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "must be positive" in err.value.details()
    assert db.scalar("SELECT count(*) FROM jobs WHERE tenant_id = :t", t=tenant) == 2
    await running.stub.CancelJob(results_pb2.CancelJobRequest(tenant_id=tenant, job_id=jobs[0].job_id))
    assert (await running.stub.SubmitJob(submit_request(tenant))).job.job_id
