"""Sweeps: the answer to a submission, and a sweep run's best combinations (seed 001's shapes)."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2
from pydantic import Field, create_model

from libs.metric_fields import SWEEP_OPTIONAL_METRICS, SWEEP_RESULT_FIELDS
from services.gateway.presenters.common import ResponseModel, timestamp, utc_now
from services.gateway.presenters.jobs import stream_url
from services.gateway.requests.sweeps import SweepRequest

_PY_TYPES = {FieldDescriptor.TYPE_DOUBLE: float, FieldDescriptor.TYPE_INT32: int, FieldDescriptor.TYPE_INT64: int,
             FieldDescriptor.TYPE_STRING: str, FieldDescriptor.TYPE_BOOL: bool}


def _row_fields() -> dict[str, Any]:
    by_name = results_pb2.SweepResult.DESCRIPTOR.fields_by_name
    out: dict[str, Any] = {}
    for name in SWEEP_RESULT_FIELDS:
        kind: Any = _PY_TYPES[by_name[name].type]
        out[name] = (kind | None, ...) if name in SWEEP_OPTIONAL_METRICS else (kind, ...)
    return out


# One combination of a sweep, in the seed's column order; its fields are the proto's
# (`hindsight.results.v1.SweepResult`); undefined metrics are null.
SweepResultRow = create_model(  # type: ignore[call-overload]
    "SweepResultRow", __base__=ResponseModel, __doc__="One (fast, slow) combination and its metrics.", **_row_fields()
)


class SweepParametersShown(ResponseModel):
    ticker: str
    fast_range: list[int]
    slow_range: list[int]
    step: int
    combinations: int


class SweepAccepted(ResponseModel):
    """A queued sweep (seed 001's answer, with its event stream and trace)."""

    job_id: str
    status: str
    message: str
    parameters: SweepParametersShown
    estimated_duration_seconds: int
    webhook_url: str | None
    created_at: str | None
    stream_url: str
    trace_id: str | None


class SweepBest(ResponseModel):
    """The best combinations of a sweep run, by score, descending."""

    sweep_run_id: str
    ticker: str
    results: list[SweepResultRow]  # type: ignore[valid-type]
    total_results: int = Field(description="combinations with at least min_trades trades")
    returned: int
    query_timestamp: str
    excluded_below_min_trades: int
    min_trades: int
    job_id: str | None


def sweep_row(row: results_pb2.SweepResult) -> dict[str, Any]:
    """One combo in the seed's shape; unset optional doubles are null."""
    out: dict[str, Any] = {}
    for name in SWEEP_RESULT_FIELDS:
        if name in SWEEP_OPTIONAL_METRICS:
            out[name] = getattr(row, name) if row.HasField(name) else None
        else:
            out[name] = getattr(row, name)
    return out


def sweep_accepted(job: jobs_pb2.Job, sweep: SweepRequest) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "status": "queued",
        "message": "Strategy sweep job queued successfully",
        "parameters": {
            "ticker": sweep.ticker,
            "fast_range": list(sweep.fast_range),
            "slow_range": list(sweep.slow_range),
            "step": sweep.step,
            "combinations": job.combinations or sweep.combinations,
        },
        "estimated_duration_seconds": job.estimated_duration_seconds,
        "webhook_url": sweep.webhook_url,
        "created_at": timestamp(job.created_at) or utc_now(),
        "stream_url": stream_url(job.job_id),
        "trace_id": job.trace_id or None,
    }


def sweep_best(resp: results_pb2.GetSweepBestResponse, sweep_run_id: str) -> dict[str, Any]:
    rows = [sweep_row(r) for r in resp.results]
    return {
        "sweep_run_id": resp.sweep_run_id or sweep_run_id,
        "ticker": resp.ticker,
        "results": rows,
        "total_results": resp.total_results,
        "returned": len(rows),
        "query_timestamp": utc_now(),
        "excluded_below_min_trades": resp.excluded_below_min_trades,
        "min_trades": resp.min_trades,
        "job_id": resp.job_id or None,
    }
