"""Jobs (`/api/v1/jobs`): one job, a page of them; the address of a job's event stream."""

from __future__ import annotations

from typing import Any

from hindsight.jobs.v1 import jobs_pb2
from pydantic import Field

from domain.market import insufficient_data_ticker
from libs.job_states import STATE_NAMES
from services.gateway.presenters.common import ResponseModel, json_or, timestamp


class JobProgress(ResponseModel):
    percent: float
    message: str | None


class Job(ResponseModel):
    """A job of any kind (`kind`: the public name of its job kind)."""

    job_id: str
    kind: str
    status: str = Field(description="queued, running, completed, failed or cancelled")
    parameters: Any = Field(description="the job's parameters (an object)")
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    progress: JobProgress
    error_message: str | None
    sweep_run_id: str | None
    metrics: Any = Field(description="the job's figures once it ended (an object), else null")
    combinations: int
    estimated_duration_seconds: int
    webhook_url: str | None
    notify_email: str | None
    timeout_seconds: int
    trace_id: str | None
    stream_url: str
    hint: str | None = Field(None, description="what to do about a failure, when there is a known remedy")


class JobList(ResponseModel):
    jobs: list[Job]
    total: int
    limit: int
    offset: int


def state_name(state: int) -> str:
    return STATE_NAMES.get(state, "unknown")


def stream_url(job_id: str) -> str:
    return f"/api/v1/jobs/{job_id}/stream"


def job_view(job: jobs_pb2.Job) -> dict[str, Any]:
    """A job as `GET /api/v1/jobs/{id}` shows it."""
    return {
        "job_id": job.job_id,
        "kind": job.kind,
        "status": state_name(job.state),
        "parameters": json_or(job.parameters_json, {}),
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "completed_at": timestamp(job.completed_at),
        "progress": {"percent": job.percent, "message": job.progress_message or None},
        "error_message": job.error_message or None,
        "sweep_run_id": job.sweep_run_id or None,
        "metrics": json_or(job.metrics_json, None),
        "combinations": job.combinations,
        "estimated_duration_seconds": job.estimated_duration_seconds,
        "webhook_url": job.webhook_url or None,
        "notify_email": job.notify_email or None,
        "timeout_seconds": job.timeout_seconds,
        "trace_id": job.trace_id or None,
        "stream_url": stream_url(job.job_id),
        "hint": failure_hint(job.error_message),
    }


def failure_hint(message: str) -> str | None:
    """What to do about a job's failure (the message itself stays the seed's, word for word)."""
    ticker = insufficient_data_ticker(message)
    if ticker is not None:
        return (f"No bars for {ticker} yet: import a CSV with `hindsight datasets import FILE --ticker {ticker} "
                f"--interval 1d` or POST /api/v1/datasets (README: Bring your own data); "
                "GET /api/v1/datasets lists what you have.")
    return None


def job_list(jobs: Any, total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"jobs": [job_view(j) for j in jobs], "total": total, "limit": limit, "offset": offset}
