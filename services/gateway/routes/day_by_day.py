"""Day-by-day backtests: seed 002 (`/api/v1/backtest/start`, its SSE stream and day ZIPs, the
legacy all-days `POST /api/v1/backtest`) and seed 004 (`/api/v1/backtest/run`, status,
metadata, day files, clear, cleanup).

Both run a stored rule strategy (`/api/v1/strategies`) day by day as a job of
kind JOB_KIND_DAY_BY_DAY; results keeps each day's gzip JSON files under
tenant/user/strategy/date. A seed-004 `user_id` is a partition inside the
caller's tenant. Ids in paths are validated here (and again by results):
a `..`, an encoded slash, a non-UUID strategy id or a malformed date is a 400.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import re
import uuid
import zipfile
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from hindsight.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2
from opentelemetry import trace
from sse_starlette import EventSourceResponse, ServerSentEvent

from services.gateway.auth import Caller
from services.gateway.backend import Backend
from services.gateway.body import BodyReader
from services.gateway.deps import BackendDep, CallerDep, PatienceDep, StreamCallerDep, checked_id
from services.gateway.docs import EVENT_STREAM, NO_MORE_EVENTS, content
from services.gateway.errors import ApiError, invalid
from services.gateway.presenters import day_by_day as shapes
from services.gateway.presenters.day_by_day import day_event
from services.gateway.requests.day_by_day import DayByDayRequest, UserDayByDayRequest, user_id_problem
from services.gateway.requests.fields import check_webhook
from services.gateway.results_wait import JobEvents
from services.gateway.routes.jobs import SSE_PING_SECONDS, _after_seq, open_events, relaying, waiting

log = logging.getLogger(__name__)
router = APIRouter(tags=["day-by-day backtests"])

ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DMY_DATE_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{4})$")
BACKTEST_ID_RE = re.compile(r"^(.{36})_(\d{4}-\d{2}-\d{2})_(\d{4}-\d{2}-\d{2})$")
TRADES_FILE, DIAGNOSTICS_FILE, POSITIONS_FILE = "trades_daily.json.gz", "diagnostics_export.json.gz", "positions.json.gz"
# How long the all-days endpoint waits for its job.
ALL_DAYS_WAIT_SECONDS = 600.0
INVALID_BACKTEST = "invalid backtest parameters"
_read_start = BodyReader(DayByDayRequest, message=INVALID_BACKTEST)
_read_run = BodyReader(UserDayByDayRequest, message=INVALID_BACKTEST)


def _day_by_day_stub(backend: Backend) -> backtest_pb2_grpc.DayBacktestServiceStub:
    return backend.day_by_day


def _trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


# ---------------------------------------------------------------- ids in paths


def _bad_path(field: str, message: str) -> ApiError:
    return invalid(f"invalid {field}", [{"field": f"path.{field}", "message": message}])


def check_user_id(value: str) -> str:
    why = user_id_problem(value or "")
    if why is not None:
        raise _bad_path("user_id", why)
    return value


def check_strategy_id(value: str, where: str = "path") -> str:
    try:
        canonical = str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        canonical = ""
    if not canonical or canonical != str(value).lower():
        raise invalid("invalid strategy_id", [{"field": f"{where}.strategy_id", "message": "must be a UUID"}])
    return canonical


def iso_date(value: Any) -> str | None:
    """The date as YYYY-MM-DD, or None when it is not one."""
    if not isinstance(value, str) or not ISO_DATE_RE.match(value):
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        return None


def dmy_date(value: str) -> str:
    """Seed 004's DD-MM-YYYY as YYYY-MM-DD; 400 otherwise."""
    m = DMY_DATE_RE.match(value or "")
    try:
        if m is None:
            raise ValueError
        return date(int(m.group(3)), int(m.group(2)), int(m.group(1))).isoformat()
    except ValueError:
        raise _bad_path("date", "a date DD-MM-YYYY, e.g. 01-10-2024") from None


def check_backtest_id(value: str) -> str:
    m = BACKTEST_ID_RE.match(value or "")
    if m is None or iso_date(m.group(2)) is None or iso_date(m.group(3)) is None:
        raise _bad_path("backtest_id", "{strategy_id}_{start_date}_{end_date}")
    check_strategy_id(m.group(1))
    return value


# ---------------------------------------------------------------- submission


async def submit(backend: Backend, caller: Caller, body: DayByDayRequest):
    # The same SSRF policy as sweeps, at submission; delivery checks again.
    await check_webhook(body.webhook_url, backend.webhook_policy, message=INVALID_BACKTEST)
    spec = backtest_pb2.DayBacktestSpec(
        strategy_id=body.strategy_id,
        user_id=body.user_id if isinstance(body, UserDayByDayRequest) else "",
        start_date=body.start_date.isoformat(),
        end_date=body.end_date.isoformat(),
        initial_capital=body.initial_capital,
        slippage_pct=body.slippage_percentage,
        commission_pct=body.commission_percentage,
    )
    request = results_pb2.SubmitJobRequest(
        tenant_id=caller.tenant_id,
        job_kind=jobs_pb2.JOB_KIND_DAY_BY_DAY,
        parameters_json=json.dumps(body.model_dump(mode="json", exclude_unset=True), separators=(",", ":")),
        webhook_url=body.webhook_url or "",
        day_backtest=spec,
        trace_id=_trace_id(),
        notify_email=body.notify_email or "",
    )
    resp = await backend.call(backend.stub.SubmitJob, request)
    backend.metrics.jobs_queued.labels(strategy_type=resp.job.kind).inc()
    return resp.job


def stream_path(backtest_id: str) -> str:
    return f"/api/v1/backtest/{backtest_id}/stream"


# ---------------------------------------------------------------- seed 004


@router.post(
    "/api/v1/backtest/run",
    status_code=202,
    summary="Run a strategy day by day for a user (seed 004)",
    response_model=shapes.DayByDayQueued,
)
async def run_backtest(
    body: Annotated[UserDayByDayRequest, Depends(_read_run)], backend: BackendDep, caller: CallerDep
) -> dict[str, Any]:
    """`{user_id, strategy_id, start_date, end_date}` (optional `initial_capital`,
    `slippage_percentage`, `commission_percentage`, `webhook_url`, `notify_email`). Replaces the
    user's previous files of the strategy. 409 "Job already running" while the user has a
    queued or running backtest."""
    job = await submit(backend, caller, body)
    return {"job_id": job.job_id, "status": "queued", "message": "Backtest queued successfully"}


@router.get(
    "/api/v1/backtest/status/{job_id}",
    summary="Status and progress of a backtest job (seed 004)",
    response_model=shapes.DayByDayStatus,
)
async def backtest_status(job_id: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    checked_id(job_id, "job")
    s = await backend.call(
        _day_by_day_stub(backend).GetBacktestStatus,
        backtest_pb2.GetBacktestStatusRequest(tenant_id=caller.tenant_id, job_id=job_id),
    )
    return shapes.status_view(s)


@router.get(
    "/api/v1/backtest/metadata/{user_id}/{strategy_id}",
    summary="Overall and daily summaries (seed 004)",
    response_model=shapes.DayByDayMetadata,
)
async def backtest_metadata(user_id: str, strategy_id: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    check_user_id(user_id)
    check_strategy_id(strategy_id)
    m = await backend.call(
        _day_by_day_stub(backend).GetBacktestMetadata,
        backtest_pb2.GetBacktestMetadataRequest(tenant_id=caller.tenant_id, user_id=user_id, strategy_id=strategy_id),
    )
    return shapes.metadata_view(m)


def accepts_gzip(request: Request) -> bool:
    """Whether Accept-Encoding allows gzip: its own q-value, else the wildcard's (an explicit
    `gzip` wins over `*` in either order)."""
    weights: dict[str, float] = {}
    for part in request.headers.get("accept-encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        name = name.strip().lower()
        if name not in ("gzip", "*"):
            continue
        q = 1.0
        param = params.strip().replace(" ", "")
        if param.startswith("q="):
            try:
                q = float(param[2:])
            except ValueError:
                q = 0.0
        weights.setdefault(name, q)
    return weights.get("gzip", weights.get("*", 0.0)) > 0


async def _day_files(backend: Backend, caller: Caller, names: list[str], day: str, *, user_id: str = "",
                     strategy_id: str = "", job_id: str = "") -> list[backtest_pb2.DayFile]:
    resp = await backend.call(
        _day_by_day_stub(backend).GetDayFiles,
        backtest_pb2.GetDayFilesRequest(
            tenant_id=caller.tenant_id, user_id=user_id, strategy_id=strategy_id, date=day, names=names, job_id=job_id
        ),
    )
    return list(resp.files)


@router.get(
    "/api/v1/backtest/day/{user_id}/{strategy_id}/{day}",
    summary="One day's positions with diagnostics (seed 004; gzip-encoded when accepted)",
    response_class=Response,
    responses={
        200: {
            "model": shapes.DayPositions,
            "description": "The day's JSON; sent as stored, with `Content-Encoding: gzip`, to clients that accept gzip",
            "headers": {"Content-Encoding": {"description": "gzip when the request accepts it", "schema": {"type": "string"}}},
        }
    },
)
async def backtest_day(user_id: str, strategy_id: str, day: str, request: Request, backend: BackendDep,
                       caller: CallerDep) -> Response:
    """`day` is DD-MM-YYYY. The stored gzip file is sent as is (`Content-Encoding: gzip`)
    to clients that accept gzip, and decompressed for the others."""
    check_user_id(user_id)
    check_strategy_id(strategy_id)
    iso = dmy_date(day)
    (f,) = await _day_files(backend, caller, [POSITIONS_FILE], iso, user_id=user_id, strategy_id=strategy_id)
    headers = {"Vary": "Accept-Encoding", "Cache-Control": "private, max-age=60"}
    if accepts_gzip(request):
        return Response(f.data, media_type="application/json", headers={**headers, "Content-Encoding": "gzip"})
    return Response(gzip.decompress(f.data), media_type="application/json", headers=headers)


@router.delete(
    "/api/v1/backtest/clear/{user_id}/{strategy_id}",
    summary="Delete a user's files of a strategy (seed 004)",
    response_model=shapes.DayByDayCleared,
)
async def clear_backtest(user_id: str, strategy_id: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    """A queued or running backtest of that user and strategy is cancelled first."""
    check_user_id(user_id)
    check_strategy_id(strategy_id)
    r = await backend.call(
        _day_by_day_stub(backend).ClearBacktestData,
        backtest_pb2.ClearBacktestDataRequest(tenant_id=caller.tenant_id, user_id=user_id, strategy_id=strategy_id),
    )
    return shapes.cleared_view(strategy_id, r)


@router.get(
    "/api/v1/backtest/cleanup/status",
    summary="Artifact cleanup settings (seed 004)",
    response_model=shapes.CleanupStatus,
)
async def cleanup_status(backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    r = await backend.call(
        _day_by_day_stub(backend).GetCleanupStatus, backtest_pb2.GetCleanupStatusRequest(tenant_id=caller.tenant_id)
    )
    return shapes.cleanup_status_view(r)


@router.post(
    "/api/v1/backtest/cleanup/run",
    summary="Delete your artifacts older than ttl_hours now (seed 004)",
    response_model=shapes.CleanupRun,
)
async def cleanup_run(
    backend: BackendDep,
    caller: CallerDep,
    ttl_hours: Annotated[float, Query(ge=0, le=87600)] = 12,
) -> dict[str, Any]:
    r = await backend.call(
        _day_by_day_stub(backend).RunCleanup,
        backtest_pb2.RunCleanupRequest(tenant_id=caller.tenant_id, ttl_hours=ttl_hours),
    )
    return shapes.cleanup_run_view(r)


# ---------------------------------------------------------------- seed 002


@router.post(
    "/api/v1/backtest/start",
    summary="Start a day-by-day backtest streamed over SSE (seed 002)",
    response_model=shapes.DayByDayStarted,
)
async def start_backtest(
    body: Annotated[DayByDayRequest, Depends(_read_start)], backend: BackendDep, caller: CallerDep
) -> dict[str, Any]:
    """`{strategy_id, start_date, end_date}` (optional `initial_capital`, `slippage_percentage`,
    `commission_percentage`). `total_days` counts the days with bars in the strategy's session."""
    job = await submit(backend, caller, body)
    return shapes.started_view(job, stream_path(job.day_backtest.backtest_id))


async def _relay(events: JobEvents, backend: Backend) -> AsyncIterator[ServerSentEvent]:
    """The job's events as day events (others skipped), and a comment while results is
    unreachable: the stream waits for it and resumes (routes/jobs.py `_relay`)."""
    async with relaying(events, backend.metrics, "backtest", log):
        async for event in events:
            sse = waiting() if event is None else day_event(event)
            if sse is not None:
                yield sse


@router.get(
    "/api/v1/backtest/{backtest_id}/stream",
    summary="Day events of a backtest (SSE, seed 002)",
    response_class=EventSourceResponse,
    responses={
        200: content(EVENT_STREAM, "Server-Sent Events `day_started`, `day_completed`, `backtest_completed`, `error`"),
        204: NO_MORE_EVENTS,
    },
)
async def backtest_stream(
    backtest_id: str,
    request: Request,
    backend: BackendDep,
    caller: StreamCallerDep,
    patience: PatienceDep,
    last_event_id: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """Events `day_started`, `day_completed` (day summary, `has_detail_data`),
    `backtest_completed` (`overall_summary`) and `error`, each with an `id`; reconnect with
    `Last-Event-ID` to resume. After the last event a reconnect gets 204 (EventSource stops).
    A restart of the results service is waited out as on the job stream (`: waiting for
    results` comments, up to HINDSIGHT_SSE_RESULTS_WAIT_SECONDS)."""
    check_backtest_id(backtest_id)
    after = _after_seq(request.headers.get("last-event-id"), last_event_id)
    found = await backend.call(
        _day_by_day_stub(backend).FindBacktest,
        backtest_pb2.FindBacktestRequest(tenant_id=caller.tenant_id, backtest_id=backtest_id),
        wait=patience,
    )
    job = (await backend.call(
        backend.stub.GetJob, results_pb2.GetJobRequest(tenant_id=caller.tenant_id, job_id=found.job_id), wait=patience
    )).job
    events = await open_events(backend, caller.tenant_id, found.job_id, after, job.state)
    if events is None:
        return Response(status_code=204)
    return EventSourceResponse(_relay(events, backend), ping=SSE_PING_SECONDS, headers={"Cache-Control": "no-cache"})


@router.get(
    "/api/v1/backtest/{backtest_id}/day/{day}",
    summary="One day's trades and diagnostics as a ZIP of two .json.gz files (seed 002)",
    response_class=Response,
    responses={200: content("application/zip", "trades_daily.json.gz and diagnostics_export.json.gz",
                            {"type": "string", "format": "binary"})},
)
async def backtest_day_zip(backtest_id: str, day: str, backend: BackendDep, caller: CallerDep) -> Response:
    check_backtest_id(backtest_id)
    iso = iso_date(day)
    if iso is None:
        raise _bad_path("date", "a date YYYY-MM-DD")
    found = await backend.call(
        _day_by_day_stub(backend).FindBacktest,
        backtest_pb2.FindBacktestRequest(tenant_id=caller.tenant_id, backtest_id=backtest_id),
    )
    files = await _day_files(backend, caller, [TRADES_FILE, DIAGNOSTICS_FILE], iso, job_id=found.job_id)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:  # the members are gzip already
        for f in files:
            zf.writestr(zipfile.ZipInfo(f.name, date_time=(int(iso[:4]), int(iso[5:7]), int(iso[8:10]), 0, 0, 0)), f.data)
    return Response(
        buf.getvalue(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="backtest_{iso}.zip"'},
    )


@router.post(
    "/api/v1/backtest",
    summary="Run a day-by-day backtest and return every day at once (seed 002 legacy)",
    response_model=shapes.DayByDayAllDays,
)
async def backtest_all_days(
    body: Annotated[DayByDayRequest, Depends(_read_start)], backend: BackendDep, caller: CallerDep
) -> dict[str, Any]:
    """Same body as `/api/v1/backtest/start`; waits for the end (up to 10 minutes) and returns
    the overall summary and each day's summary and trades."""
    job = await submit(backend, caller, body)
    days: list[dict[str, Any]] = []
    final: dict[str, Any] | None = None
    error: str | None = None
    call = backend.stub.StreamJobEvents(results_pb2.StreamJobEventsRequest(tenant_id=caller.tenant_id, job_id=job.job_id))

    async def consume() -> None:
        nonlocal final, error
        async for item in call:
            sse = day_event(item.event)
            if sse is None:
                continue
            payload = json.loads(sse.data)
            if sse.event == "day_completed":
                days.append(payload)
            elif sse.event == "backtest_completed":
                final = payload
            elif sse.event == "error":
                error = payload.get("error") or "backtest failed"

    try:
        await asyncio.wait_for(consume(), ALL_DAYS_WAIT_SECONDS)
    except TimeoutError:
        raise ApiError(504, "timeout", f"the backtest did not finish in time; follow job {job.job_id}") from None
    except grpc.aio.AioRpcError:
        raise ApiError(503, "service_unavailable", "event stream unavailable", headers={"Retry-After": "5"}) from None
    finally:
        call.cancel()
    if final is None:
        raise ApiError(422, "backtest_failed", error or "backtest failed", {"job_id": job.job_id})
    out_days = []
    for d in days:
        trades: list[Any] = []
        if d.get("has_detail_data"):
            (f,) = await _day_files(backend, caller, [TRADES_FILE], d["date"], job_id=job.job_id)
            trades = json.loads(gzip.decompress(f.data))["trades"]
        out_days.append({"date": d["date"], "day_number": d["day_number"], "summary": d["summary"], "trades": trades})
    return shapes.all_days_view(job, final.get("overall_summary"), out_days)


# ---------------------------------------------------------------- malformed paths


_PATH_MESSAGE = "ids in the path may not contain '/' (encoded or not) or '..'"


@router.api_route("/api/v1/backtest/day/{rest:path}", methods=["GET"], include_in_schema=False)
@router.api_route("/api/v1/backtest/metadata/{rest:path}", methods=["GET"], include_in_schema=False)
@router.api_route("/api/v1/backtest/clear/{rest:path}", methods=["DELETE"], include_in_schema=False)
@router.api_route("/api/v1/backtest/{backtest_id}/day/{rest:path}", methods=["GET"], include_in_schema=False)
# Anything else under the backtest API (e.g. '..' segments a server normalised away) is malformed, not missing.
@router.api_route("/api/v1/backtest/{rest:path}", methods=["GET", "DELETE"], include_in_schema=False)
async def malformed_path(request: Request) -> Response:
    raise invalid("invalid path", [{"field": "path", "message": _PATH_MESSAGE}])
