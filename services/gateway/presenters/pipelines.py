"""Seed 001's pipeline side: a triggered sweep, and a pipeline job with its top results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hindsight.jobs.v1 import jobs_pb2
from pydantic import ConfigDict, Field

from services.gateway.presenters.common import ResponseModel, json_or, timestamp
from services.gateway.presenters.jobs import job_view, state_name, stream_url
from services.gateway.presenters.sweeps import SweepResultRow
from services.gateway.requests.sweeps import SweepRequest


class PipelineAccepted(ResponseModel):
    job_id: str
    status: str = Field(description="QUEUED")
    message: str
    webhook_url: str | None
    created_at: str | None
    stream_url: str


class PipelineMetrics(ResponseModel):
    """The job's figures (what results keeps for the job, which varies); duration_seconds and
    combinations_tested are null until known."""

    model_config = ConfigDict(extra="allow")

    duration_seconds: float | None
    combinations_tested: int | None


class PipelineJob(ResponseModel):
    id: str
    status: str = Field(description="QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED")
    parameters: Any = Field(description="the sweep's parameters (an object)")
    metrics: PipelineMetrics
    results: list[SweepResultRow]  # type: ignore[valid-type]
    error_message: str | None
    sweep_run_id: str | None
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    webhook_url: str | None


def pipeline_accepted(job: jobs_pb2.Job, sweep: SweepRequest) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "status": "QUEUED",
        "message": "Trading sweep job queued successfully",
        "webhook_url": sweep.webhook_url,
        "created_at": timestamp(job.created_at),
        "stream_url": stream_url(job.job_id),
    }


def pipeline_metrics(job: jobs_pb2.Job) -> dict[str, Any]:
    """Seed 001's pipeline metrics: duration_seconds and combinations_tested (null until known)."""
    metrics = json_or(job.metrics_json, None)
    out: dict[str, Any] = dict(metrics) if isinstance(metrics, dict) else {}
    out.setdefault("duration_seconds", _duration(job.started_at, job.completed_at))
    out.setdefault("combinations_tested", job.combinations if job.state == jobs_pb2.JOB_STATE_COMPLETED else None)
    return out


def pipeline_job(job: jobs_pb2.Job, results: list[dict[str, Any]]) -> dict[str, Any]:
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


def _duration(start: str, end: str) -> float | None:
    if not start or not end:
        return None
    try:
        t0 = datetime.fromisoformat(start)
        t1 = datetime.fromisoformat(end)
    except ValueError:
        return None
    return round((t1 - t0).total_seconds(), 3)
