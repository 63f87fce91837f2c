"""Seed 001's pipeline side: `POST /api/pipelines/trigger` and `GET /api/pipelines/{id}`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from hindsight.results.v1 import results_pb2

from services.gateway.deps import BackendDep, CallerDep, checked_id
from services.gateway.errors import ApiError
from services.gateway.presenters import pipelines as shapes
from services.gateway.presenters.sweeps import sweep_row
from services.gateway.routes.sweeps import SweepDep, submit_sweep

router = APIRouter(tags=["pipelines"])
PIPELINE_TOP_RESULTS = 10


@router.post(
    "/api/pipelines/trigger",
    status_code=202,
    summary="Trigger a trading sweep (seed 001 pipeline)",
    response_model=shapes.PipelineAccepted,
)
async def trigger(sweep: SweepDep, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    job = await submit_sweep(backend, caller, sweep)
    return shapes.pipeline_accepted(job, sweep)


@router.get(
    "/api/pipelines/{job_id}",
    summary="Status and top results of a pipeline job (seed 001)",
    response_model=shapes.PipelineJob,
)
async def pipeline(job_id: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    checked_id(job_id, "job")
    resp = await backend.call(backend.stub.GetJob, results_pb2.GetJobRequest(tenant_id=caller.tenant_id, job_id=job_id))
    job = resp.job
    results: list[dict[str, Any]] = []
    if job.sweep_run_id:
        try:
            best = await backend.call(
                backend.stub.GetSweepBest,
                results_pb2.GetSweepBestRequest(
                    tenant_id=caller.tenant_id, sweep_run_id=job.sweep_run_id, limit=PIPELINE_TOP_RESULTS
                ),
            )
            results = [sweep_row(r) for r in best.results]
        except ApiError as err:
            if err.status != 404:
                raise
    return shapes.pipeline_job(job, results)
