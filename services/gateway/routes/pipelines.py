"""Seed 001's pipeline side: `POST /api/pipelines/trigger` and `GET /api/pipelines/{id}`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from hindsight.results.v1 import results_pb2

from services.gateway.deps import BackendDep, CallerDep, checked_id
from services.gateway.errors import ApiError
from services.gateway.routes.sweeps import SWEEP_BODY_DOC, read_sweep, submit_sweep
from services.gateway.views import (
    job_view,
    pipeline_metrics,
    state_name,
    stream_url,
    sweep_row,
    timestamp,
)

router = APIRouter(tags=["pipelines"])
PIPELINE_TOP_RESULTS = 10


@router.post(
    "/api/pipelines/trigger",
    status_code=202,
    summary="Trigger a trading sweep (seed 001 pipeline)",
    openapi_extra=SWEEP_BODY_DOC,
)
async def trigger(request: Request, backend: BackendDep, caller: CallerDep) -> JSONResponse:
    sweep = await read_sweep(request)
    job = await submit_sweep(backend, caller, sweep)
    body = {
        "job_id": job.job_id,
        "status": "QUEUED",
        "message": "Trading sweep job queued successfully",
        "webhook_url": sweep.webhook_url,
        "created_at": timestamp(job.created_at),
        "stream_url": stream_url(job.job_id),
    }
    return JSONResponse(body, status_code=202)


@router.get("/api/pipelines/{job_id}", summary="Status and top results of a pipeline job (seed 001)")
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
    view = job_view(job)
    return {
        "id": job.job_id,
        "status": state_name(job.state).upper(),
        "parameters": view["parameters"],
        "metrics": pipeline_metrics(job),
        "results": results,
        "error_message": view["error_message"],
        "sweep_run_id": view["sweep_run_id"],
        "created_at": view["created_at"],
        "started_at": view["started_at"],
        "completed_at": view["completed_at"],
        "webhook_url": view["webhook_url"],
    }

