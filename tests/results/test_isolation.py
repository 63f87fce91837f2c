"""Tenant isolation: another tenant's ids answer NOT_FOUND and never show in lists."""

from __future__ import annotations

import grpc
import pytest
from hindsight.results.v1 import results_pb2

from .helpers import daily_csv, import_requests, result_row, submit_request


@pytest.mark.asyncio
async def test_other_tenants_ids_are_not_found(backend):
    running, db = backend
    owner, _ = db.tenant()
    intruder, _ = db.tenant()
    stub = running.stub

    job = (await stub.SubmitJob(submit_request(owner))).job
    await stub.StartJob(results_pb2.StartJobRequest(job_id=job.job_id))
    run_id = (
        await stub.CompleteSweep(results_pb2.CompleteSweepRequest(job_id=job.job_id, results=[result_row(10, 20, 1.0, 60)]))
    ).sweep_run_id
    job2 = (await stub.SubmitJob(submit_request(owner))).job

    async def reqs():
        for r in import_requests(owner, "OWN", daily_csv(5)):
            yield r

    dataset = (await stub.ImportDataset(reqs())).dataset

    calls = [
        stub.GetJob(results_pb2.GetJobRequest(tenant_id=intruder, job_id=job.job_id)),
        stub.CancelJob(results_pb2.CancelJobRequest(tenant_id=intruder, job_id=job2.job_id)),
        stub.GetSweepBest(results_pb2.GetSweepBestRequest(tenant_id=intruder, sweep_run_id=run_id)),
        stub.DeleteDataset(results_pb2.DeleteDatasetRequest(tenant_id=intruder, dataset_id=dataset.dataset_id)),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.StreamJobEvents(results_pb2.StreamJobEventsRequest(tenant_id=intruder, job_id=job.job_id)):
            pass
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    assert (await stub.ListJobs(results_pb2.ListJobsRequest(tenant_id=intruder))).total == 0
    assert not (await stub.ListDatasets(results_pb2.ListDatasetsRequest(tenant_id=intruder))).datasets
    assert not (await stub.ResolveDataset(results_pb2.ResolveDatasetRequest(tenant_id=intruder, ticker="OWN"))).found

    # Nothing of the owner's changed.
    got = (await stub.GetJob(results_pb2.GetJobRequest(tenant_id=owner, job_id=job2.job_id))).job
    assert got.state == 1  # queued
    assert len((await stub.ListDatasets(results_pb2.ListDatasetsRequest(tenant_id=owner))).datasets) == 1
