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
from services.gateway.backend import Backend
from services.gateway.deps import BackendDep, CallerDep, PatienceDep, StreamCallerDep, checked_id
from services.gateway.docs import EVENT_STREAM, NO_MORE_EVENTS, content
from services.gateway.errors import from_grpc, invalid
from services.gateway.metrics import GatewayMetrics
from services.gateway.presenters.jobs import Job, JobList, job_list, job_view
from services.gateway.results_wait import JobEvents

log = logging.getLogger(__name__)
router = APIRouter(tags=["jobs"])
# Keep-alive comment every 15 s so proxies do not close idle streams.
SSE_PING_SECONDS = 15
# The comment a stream sends while results is unreachable and the gateway waits for it.
WAITING_COMMENT = "waiting for results"
MAX_SEQ = 2**63 - 1
# States after which a job's stream has a last event.
_ENDED = frozenset({jobs_pb2.JOB_STATE_COMPLETED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED})


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
async def relaying(
    events: JobEvents, metrics: GatewayMetrics, stream: str, logger: logging.Logger
) -> AsyncIterator[None]:
    """Around the relay of a results event stream to an SSE client: counts the client,
    logs (and ends on) a gRPC stream that ended early other than by cancel (results
    refused it, or stayed unreachable past the wait), and cancels the gRPC stream at the
    end (a client that disconnects included)."""
    metrics.sse_clients.inc()
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.CANCELLED:
            logger.warning("%s event stream from results ended early: %s %s", stream, exc.code().name, exc.details())
    finally:
        await events.aclose()
        metrics.sse_clients.dec()


def waiting() -> ServerSentEvent:
    """The keep-alive comment of a stream waiting for results (`: waiting for results`)."""
    return ServerSentEvent(comment=WAITING_COMMENT)


async def open_events(backend: Backend, tenant_id: str, job_id: str, after: int, state: int) -> JobEvents | None:
    """The job's events after `after` for a new stream, or None when an ended job (`state`) is
    resumed past its last event (204, which tells an EventSource to stop reconnecting;
    a 200 with no events would make it retry forever). The read ahead waits out an
    outage of results like the stream itself, then answers 503."""
    events = JobEvents(backend.stub, tenant_id, job_id, after, backend.sse_results_wait)
    if not (after and state in _ENDED):
        return events
    left = False
    try:
        left = await events.any_left()
    except grpc.aio.AioRpcError as exc:
        raise from_grpc(exc) from None
    finally:
        if not left:
            await events.aclose()
    return events if left else None


async def _relay(events: JobEvents, metrics: GatewayMetrics) -> AsyncIterator[ServerSentEvent]:
    """Re-emit results' job events as SSE: `id: <seq>`, `data: <json>` (the default
    "message" type, so `EventSource.onmessage` fires), and a comment while results is
    unreachable (the stream waits for it and resumes). Ends when results ends the stream
    (after the terminal event) or stays away past the wait; the client reconnects with
    Last-Event-ID. A client that disconnects cancels the gRPC stream."""
    async with relaying(events, metrics, "job", log):
        async for event in events:
            yield waiting() if event is None else ServerSentEvent(data=event.data_json, id=str(event.seq))


_STREAM_DOC = (
    "Server-Sent Events of the job: `{percent, message, timestamp}` progress events, then "
    "`{done: true, status, sweep_run_id}` or `{error: true, message, timestamp}`; each event has an "
    "`id`. Reconnect with `Last-Event-ID` (or `?last_event_id=`) to resume after that event. "
    "A stream opened after the job ended replays it and closes; resumed past its last event it answers 204 "
    "(which stops an EventSource from reconnecting). While the results service restarts, an open stream stays "
    "open (`: waiting for results` comments) and resumes, and a new request waits for it; both for up to "
    "HINDSIGHT_SSE_RESULTS_WAIT_SECONDS (then the stream ends, or the request gets a 503)."
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
    caller: StreamCallerDep,
    patience: PatienceDep,
    last_event_id: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    checked_id(job_id, "job")
    after = _after_seq(request.headers.get("last-event-id"), last_event_id)
    # Unknown (or another tenant's) job: a JSON 404 before any stream starts.
    got = await backend.call(
        backend.stub.GetJob, results_pb2.GetJobRequest(tenant_id=caller.tenant_id, job_id=job_id), wait=patience
    )
    events = await open_events(backend, caller.tenant_id, job_id, after, got.job.state)
    if events is None:
        return Response(status_code=204)
    return EventSourceResponse(
        _relay(events, backend.metrics),
        ping=SSE_PING_SECONDS,
        headers={"Cache-Control": "no-cache"},
    )
