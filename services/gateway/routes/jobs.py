"""Jobs: read, list, cancel, and their SSE event streams."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Query, Request, Response
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2
from sse_starlette import EventSourceResponse, ServerSentEvent

from libs.job_states import STATE_BY_NAME
from services.gateway.deps import BackendDep, CallerDep, checked_id
from services.gateway.docs import EVENT_STREAM, NO_MORE_EVENTS, content
from services.gateway.errors import invalid
from services.gateway.metrics import GatewayMetrics
from services.gateway.presenters.jobs import Job, JobList, job_list, job_view

log = logging.getLogger(__name__)
router = APIRouter(tags=["jobs"])
# Keep-alive comment every 15 s so proxies do not close idle streams.
SSE_PING_SECONDS = 15
MAX_SEQ = 2**63 - 1


@router.get("/api/v1/jobs", summary="List jobs, newest first", response_model=JobList)
async def list_jobs(
    backend: BackendDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    status: Annotated[str | None, Query(description="queued, running, completed, failed or cancelled")] = None,
) -> dict[str, Any]:
    state = jobs_pb2.JOB_STATE_UNSPECIFIED
    if status is not None and status != "":
        state = STATE_BY_NAME.get(status.lower(), -1)
        if state == -1:
            raise invalid(
                "invalid status filter",
                [{"field": "query.status", "message": f"must be one of {', '.join(STATE_BY_NAME)}"}],
            )
    resp = await backend.call(
        backend.stub.ListJobs,
        results_pb2.ListJobsRequest(tenant_id=caller.tenant_id, limit=limit, offset=offset, state=state),
    )
    return job_list(resp.jobs, resp.total, limit, offset)


@router.get("/api/v1/jobs/{job_id}", summary="One job", response_model=Job)
async def get_job(job_id: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    checked_id(job_id, "job")
    resp = await backend.call(backend.stub.GetJob, results_pb2.GetJobRequest(tenant_id=caller.tenant_id, job_id=job_id))
    return job_view(resp.job)


@router.delete(
    "/api/v1/jobs/{job_id}", summary="Cancel a queued or running job (409 if it already ended)", response_model=Job
)
async def cancel_job(job_id: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    checked_id(job_id, "job")
    resp = await backend.call(
        backend.stub.CancelJob, results_pb2.CancelJobRequest(tenant_id=caller.tenant_id, job_id=job_id)
    )
    return job_view(resp.job)


def _after_seq(header: str | None, query: str | None) -> int:
    """Where a stream resumes: the Last-Event-ID header, else `?last_event_id=`, else 0."""
    raw = header if header is not None and header.strip() != "" else query
    if raw is None or raw.strip() == "":
        return 0
    text = raw.strip()
    if not text.isdigit() or int(text) > MAX_SEQ:
        raise invalid(
            "invalid Last-Event-ID", [{"field": "last_event_id", "message": "expected an event id (integer)"}]
        )
    return int(text)


@asynccontextmanager
async def relaying(call: Any, metrics: GatewayMetrics, stream: str, logger: logging.Logger) -> AsyncIterator[None]:
    """Around the relay of a results event stream to an SSE client: counts the client,
    logs (and ends on) a gRPC stream that ended early other than by cancel, and cancels
    the gRPC stream at the end (a client that disconnects included)."""
    metrics.sse_clients.inc()
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.CANCELLED:
            logger.warning("%s event stream from results ended early: %s %s", stream, exc.code().name, exc.details())
    finally:
        call.cancel()
        metrics.sse_clients.dec()


async def _relay(call: Any, metrics: GatewayMetrics, first: list[Any] = ()) -> AsyncIterator[ServerSentEvent]:
    """Re-emit results' job events as SSE: `id: <seq>`, `data: <json>` (the default
    "message" type, so `EventSource.onmessage` fires). Ends when results ends the
    stream (after the terminal event) or goes away; the client reconnects with
    Last-Event-ID. A client that disconnects cancels the gRPC stream."""
    async with relaying(call, metrics, "job", log):
        for item in first:  # an event read ahead to decide between 204 and a stream
            yield ServerSentEvent(data=item.event.data_json, id=str(item.event.seq))
        async for item in call:
            yield ServerSentEvent(data=item.event.data_json, id=str(item.event.seq))


# States after which a job's stream has a last event.
_ENDED = frozenset({jobs_pb2.JOB_STATE_COMPLETED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED})

_STREAM_DOC = (
    "Server-Sent Events of the job: `{percent, message, timestamp}` progress events, then "
    "`{done: true, status, sweep_run_id}` or `{error: true, message, timestamp}`; each event has an "
    "`id`. Reconnect with `Last-Event-ID` (or `?last_event_id=`) to resume after that event. "
    "A stream opened after the job ended replays it and closes; resumed past its last event it answers 204 "
    "(which stops an EventSource from reconnecting)."
)


_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: content(EVENT_STREAM, "Server-Sent Events: `id: <seq>`, `data: <JSON object>`"),
    204: NO_MORE_EVENTS,
}


# One handler, two paths; the seed-001 path keeps its own route name (and OpenAPI operation id).
@router.get(
    "/sse-proxy/jobs/{job_id}/stream",
    name="sse_proxy_stream",
    summary="Job events (SSE, seed 001 path)",
    description=_STREAM_DOC,
    response_class=EventSourceResponse,
    responses=_STREAM_RESPONSES,
)
@router.get(
    "/api/v1/jobs/{job_id}/stream",
    summary="Job events (SSE)",
    description=_STREAM_DOC,
    response_class=EventSourceResponse,
    responses=_STREAM_RESPONSES,
)
async def job_stream(
    job_id: str,
    request: Request,
    backend: BackendDep,
    caller: CallerDep,
    last_event_id: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    checked_id(job_id, "job")
    after = _after_seq(request.headers.get("last-event-id"), last_event_id)
    # Unknown (or another tenant's) job: a JSON 404 before any stream starts.
    got = await backend.call(backend.stub.GetJob, results_pb2.GetJobRequest(tenant_id=caller.tenant_id, job_id=job_id))
    call = backend.stub.StreamJobEvents(
        results_pb2.StreamJobEventsRequest(tenant_id=caller.tenant_id, job_id=job_id, after_seq=after)
    )
    first: list[Any] = []
    if after and got.job.state in _ENDED:
        # An ended job resumed past its last event: 204, which tells an EventSource to
        # stop reconnecting (a 200 with no events would make it retry forever).
        async for item in call:
            first.append(item)
            break
        if not first:
            call.cancel()
            return Response(status_code=204)
    return EventSourceResponse(
        _relay(call, backend.metrics, first),
        ping=SSE_PING_SECONDS,
        headers={"Cache-Control": "no-cache"},
    )
