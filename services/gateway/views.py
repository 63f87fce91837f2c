"""Protobuf messages from results -> the JSON shapes of the HTTP API."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2

from libs.job_states import STATE_NAMES
from libs.metric_fields import SWEEP_OPTIONAL_METRICS, SWEEP_RESULT_FIELDS

log = logging.getLogger(__name__)


def utc_now() -> str:
    """Now as the seeds write times: 2025-01-27T10:30:45Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamp(value: str) -> str | None:
    """An RFC 3339 time from results, with UTC written as Z; empty -> None."""
    if not value:
        return None
    if value.endswith("+00:00"):
        return value[: -len("+00:00")] + "Z"
    return value


def state_name(state: int) -> str:
    return STATE_NAMES.get(state, "unknown")


def _json_or(text: str, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        log.warning("results sent JSON text that does not parse; showing it as a string")
        return text


def stream_url(job_id: str) -> str:
    return f"/api/v1/jobs/{job_id}/stream"


def job_view(job: jobs_pb2.Job) -> dict[str, Any]:
    """A job as `GET /api/v1/jobs/{id}` shows it."""
    return {
        "job_id": job.job_id,
        "kind": job.kind,
        "status": state_name(job.state),
        "parameters": _json_or(job.parameters_json, {}),
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "completed_at": timestamp(job.completed_at),
        "progress": {"percent": job.percent, "message": job.progress_message or None},
        "error_message": job.error_message or None,
        "sweep_run_id": job.sweep_run_id or None,
        "metrics": _json_or(job.metrics_json, None),
        "combinations": job.combinations,
        "estimated_duration_seconds": job.estimated_duration_seconds,
        "webhook_url": job.webhook_url or None,
        "notify_email": job.notify_email or None,
        "timeout_seconds": job.timeout_seconds,
        "trace_id": job.trace_id or None,
        "stream_url": stream_url(job.job_id),
    }


def sweep_row(row: results_pb2.SweepResult) -> dict[str, Any]:
    """One combo in the seed's shape; unset optional doubles are null."""
    out: dict[str, Any] = {}
    for name in SWEEP_RESULT_FIELDS:
        if name in SWEEP_OPTIONAL_METRICS:
            out[name] = getattr(row, name) if row.HasField(name) else None
        else:
            out[name] = getattr(row, name)
    return out


def dataset_view(ds: results_pb2.Dataset) -> dict[str, Any]:
    return {
        "dataset_id": ds.dataset_id,
        "ticker": ds.ticker,
        "interval": ds.interval,
        "bars": ds.bars,
        "start": timestamp(ds.start),
        "end": timestamp(ds.end),
        "calendar": ds.calendar,
        "timezone": ds.timezone or "UTC",
        "version": ds.version,
        "demo": ds.demo,
        "created_at": timestamp(ds.created_at),
    }


def pipeline_metrics(job: jobs_pb2.Job) -> dict[str, Any]:
    """Seed 001's pipeline metrics: duration_seconds and combinations_tested (null until known)."""
    metrics = _json_or(job.metrics_json, None)
    out: dict[str, Any] = dict(metrics) if isinstance(metrics, dict) else {}
    out.setdefault("duration_seconds", _duration(job.started_at, job.completed_at))
    out.setdefault("combinations_tested", job.combinations if job.state == jobs_pb2.JOB_STATE_COMPLETED else None)
    return out


def _duration(start: str, end: str) -> float | None:
    if not start or not end:
        return None
    try:
        t0 = datetime.fromisoformat(start.replace("Z", "+00:00"))
        t1 = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((t1 - t0).total_seconds(), 3)
