"""Day-by-day backtests: seed 002 (`/api/v1/backtest/start`, its SSE stream and day ZIPs, the
legacy all-days `POST /api/v1/backtest`) and seed 004 (`/api/v1/backtest/run`, status,
metadata, day files, clear, cleanup).

Both run a stored rule strategy (`/api/v1/strategies`) day by day as a job of
kind `day-backtest`; results keeps each day's gzip JSON files under
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
import math
import re
import uuid
import zipfile
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from hindsight.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from hindsight.results.v1 import results_pb2
from opentelemetry import trace
from sse_starlette import EventSourceResponse, ServerSentEvent

from services.gateway.auth import Caller
from services.gateway.backend import Backend
from services.gateway.body import read_fields
from services.gateway.deps import BackendDep, CallerDep, checked_id
from services.gateway.errors import ApiError, invalid
from services.gateway.routes.jobs import SSE_PING_SECONDS, _after_seq, relaying
from services.gateway.routes.strategies import results_stub
from services.gateway.sweep_request import SweepInvalid, _email, check_webhook_target
from services.gateway.views import timestamp

log = logging.getLogger(__name__)
router = APIRouter(tags=["day-by-day backtests"])

KIND = "day-backtest"
USER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DMY_DATE_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{4})$")
BACKTEST_ID_RE = re.compile(r"^(.{36})_(\d{4}-\d{2}-\d{2})_(\d{4}-\d{2}-\d{2})$")
SEED002_EVENTS = ("day_started", "day_completed", "backtest_completed", "error")
TRADES_FILE, DIAGNOSTICS_FILE, POSITIONS_FILE = "trades_daily.json.gz", "diagnostics_export.json.gz", "positions.json.gz"
# How long the legacy all-days endpoint waits for its job.
LEGACY_WAIT_SECONDS = 600.0


def _days_stub(backend: Backend) -> backtest_pb2_grpc.DayBacktestServiceStub:
    return results_stub(backend, backtest_pb2_grpc.DayBacktestServiceStub, "_hs_day_backtest_stub")


def _trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


# ---------------------------------------------------------------- validation


def _bad_path(field: str, message: str) -> ApiError:
    return invalid(f"invalid {field}", [{"field": f"path.{field}", "message": message}])


def check_user_id(value: str) -> str:
    if not USER_ID_RE.match(value or "") or ".." in value:
        raise _bad_path("user_id", "1-64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit")
    return value


def check_strategy_id(value: str, where: str = "path") -> str:
    try:
        canonical = str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        canonical = ""
    if not canonical or canonical != str(value).lower():
        raise invalid("invalid strategy_id", [{"field": f"{where}.strategy_id", "message": "must be a UUID"}])
    return canonical


def iso_date(value: Any, field: str) -> str | None:
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
    if m is None or iso_date(m.group(2), "") is None or iso_date(m.group(3), "") is None:
        raise _bad_path("backtest_id", "{strategy_id}_{start_date}_{end_date}")
    check_strategy_id(m.group(1))
    return value


def _number(fields: dict, name: str, errors: list, *, default: float, positive: bool = False) -> float:
    value = fields.get(name)
    if value is None or value == "":
        return default
    try:
        f = float("nan") if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        f = float("nan")
    if not math.isfinite(f):
        errors.append({"field": name, "message": "must be a number"})
        return default
    if (f <= 0 if positive else f < 0) or f > 1e15:
        errors.append({"field": name, "message": "must be a positive number" if positive else "must be 0 or more"})
        return default
    return f


def parse_run_fields(fields: dict[str, Any], *, need_user: bool) -> tuple[backtest_pb2.DayBacktestSpec, str]:
    """The spec of a start/run request and its webhook URL; 400 listing every problem."""
    errors: list[dict[str, str]] = []
    user_id = ""
    if need_user:
        user_id = fields.get("user_id") if isinstance(fields.get("user_id"), str) else ""
        if not USER_ID_RE.match(user_id or "") or ".." in user_id:
            errors.append({"field": "user_id", "message": "required: 1-64 letters, digits, '_', '.', '@' or '-'"})
    strategy_id = fields.get("strategy_id")
    try:
        strategy_id = check_strategy_id(strategy_id, "body") if isinstance(strategy_id, str) else None
    except ApiError:
        strategy_id = None
    if strategy_id is None:
        errors.append({"field": "strategy_id", "message": "required: the UUID of a strategy"})
    start = iso_date(fields.get("start_date"), "start_date")
    end = iso_date(fields.get("end_date"), "end_date")
    if start is None:
        errors.append({"field": "start_date", "message": "required: a date YYYY-MM-DD"})
    if end is None:
        errors.append({"field": "end_date", "message": "required: a date YYYY-MM-DD"})
    if start and end and end < start:
        errors.append({"field": "end_date", "message": "must not be before start_date"})
    capital = _number(fields, "initial_capital", errors, default=100_000.0, positive=True)
    slippage = _number(fields, "slippage_percentage", errors, default=0.0)
    commission = _number(fields, "commission_percentage", errors, default=0.0)
    for name, value in (("slippage_percentage", slippage), ("commission_percentage", commission)):
        if value > 50:
            errors.append({"field": name, "message": "must be at most 50 (percent)"})
    webhook = fields.get("webhook_url") or ""
    if webhook and (not isinstance(webhook, str) or not re.match(r"^https?://[^\s/]+", webhook) or len(webhook) > 2048):
        errors.append({"field": "webhook_url", "message": "must be an http(s) URL"})
    if errors:
        raise invalid("invalid backtest parameters", errors)
    spec = backtest_pb2.DayBacktestSpec(
        strategy_id=strategy_id or "",
        user_id=user_id,
        start_date=start or "",
        end_date=end or "",
        initial_capital=capital,
        slippage_pct=slippage,
        commission_pct=commission,
    )
    return spec, webhook


async def submit(backend: Backend, caller: Caller, fields: dict[str, Any], *, need_user: bool):
    spec, webhook = parse_run_fields(fields, need_user=need_user)
    email = fields.get("notify_email")
    problems = []
    if email not in (None, ""):
        try:
            email = _email(email)
        except ValueError as exc:
            problems.append({"field": "notify_email", "message": str(exc)})
    try:
        # The same SSRF policy as sweeps, at submission; delivery checks again.
        await check_webhook_target(webhook or None, backend.webhook_policy)
    except SweepInvalid as exc:
        problems.extend(exc.errors)
    if problems:
        raise invalid("invalid backtest parameters", problems)
    request = results_pb2.SubmitJobRequest(
        tenant_id=caller.tenant_id,
        kind=KIND,
        parameters_json=json.dumps(fields, separators=(",", ":"), default=str),
        webhook_url=webhook,
        day_backtest=spec,
        trace_id=_trace_id(),
        notify_email=email or "",
    )
    resp = await backend.call(backend.stub.SubmitJob, request)
    backend.metrics.jobs_queued.labels(strategy_type=KIND).inc()
    return resp.job


def stream_path(backtest_id: str) -> str:
    return f"/api/v1/backtest/{backtest_id}/stream"


# ---------------------------------------------------------------- seed 004


@router.post("/api/v1/backtest/run", status_code=202, summary="Run a strategy day by day for a user (seed 004)")
async def run_backtest(request: Request, backend: BackendDep, caller: CallerDep) -> JSONResponse:
    """`{user_id, strategy_id, start_date, end_date}` (optional `initial_capital`,
    `slippage_percentage`, `commission_percentage`, `webhook_url`). Replaces the user's
    previous files of the strategy. 409 "Job already running" while the user has a
    queued or running backtest."""
    job = await submit(backend, caller, await read_fields(request), need_user=True)
    return JSONResponse({"job_id": job.job_id, "status": "queued", "message": "Backtest queued successfully"}, status_code=202)


@router.get("/api/v1/backtest/status/{job_id}", summary="Status and progress of a backtest job (seed 004)")
async def backtest_status(job_id: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    checked_id(job_id, "job")
    s = await backend.call(
        _days_stub(backend).GetBacktestStatus, backtest_pb2.GetBacktestStatusRequest(tenant_id=caller.tenant_id, job_id=job_id)
    )
    return {
        "job_id": s.job_id,
        "user_id": s.user_id or None,
        "strategy_id": s.strategy_id,
        "status": s.status,
        "progress": {
            "current_date": s.current_date or None,
            "completed_days": s.completed_days,
            "total_days": s.total_days,
            "percentage": s.percentage,
        },
        "started_at": timestamp(s.started_at),
        "estimated_completion": timestamp(s.estimated_completion),
        "error": s.error or None,
    }


def _dmy(iso: str) -> str:
    return f"{iso[8:10]}-{iso[5:7]}-{iso[0:4]}"


@router.get("/api/v1/backtest/metadata/{user_id}/{strategy_id}", summary="Overall and daily summaries (seed 004)")
async def backtest_metadata(user_id: str, strategy_id: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    check_user_id(user_id)
    check_strategy_id(strategy_id)
    m = await backend.call(
        _days_stub(backend).GetBacktestMetadata,
        backtest_pb2.GetBacktestMetadataRequest(tenant_id=caller.tenant_id, user_id=user_id, strategy_id=strategy_id),
    )
    positions = sum(d.positions for d in m.days)
    wins = sum(d.winning_trades for d in m.days)
    return {
        "job_id": m.job_id,
        "strategy_id": m.spec.strategy_id,
        "strategy_name": m.spec.strategy_name,
        "start_date": m.spec.start_date,
        "end_date": m.spec.end_date,
        "total_days": m.spec.total_days,
        "status": m.status,
        "created_at": timestamp(m.created_at),
        "expires_at": timestamp(m.expires_at),
        "overall_summary": {
            "total_positions": positions,
            "total_pnl": round(sum(d.pnl for d in m.days), 2),
            "win_rate": round(wins / positions * 100, 2) if positions else 0.0,
            "total_winning_trades": wins,
            "total_losing_trades": sum(d.losing_trades for d in m.days),
        },
        "daily_summaries": [
            {
                "date": _dmy(d.date),
                "positions": d.positions,
                "pnl": round(d.pnl, 2),
                "has_data": d.has_data,
                "file_size_kb": d.file_size_kb,
            }
            for d in m.days
        ],
    }


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
        _days_stub(backend).GetDayFiles,
        backtest_pb2.GetDayFilesRequest(
            tenant_id=caller.tenant_id, user_id=user_id, strategy_id=strategy_id, date=day, names=names, job_id=job_id
        ),
    )
    return list(resp.files)


@router.get(
    "/api/v1/backtest/day/{user_id}/{strategy_id}/{day}",
    summary="One day's positions with diagnostics (seed 004; gzip-encoded when accepted)",
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


@router.delete("/api/v1/backtest/clear/{user_id}/{strategy_id}", summary="Delete a user's files of a strategy (seed 004)")
async def clear_backtest(user_id: str, strategy_id: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    """A queued or running backtest of that user and strategy is cancelled first."""
    check_user_id(user_id)
    check_strategy_id(strategy_id)
    r = await backend.call(
        _days_stub(backend).ClearBacktestData,
        backtest_pb2.ClearBacktestDataRequest(tenant_id=caller.tenant_id, user_id=user_id, strategy_id=strategy_id),
    )
    return {
        "message": f"Cleared all backtest data for strategy {strategy_id}",
        "deleted_files": r.deleted_files,
        "freed_space_mb": round(r.freed_bytes / (1024 * 1024), 3),
    }


@router.get("/api/v1/backtest/cleanup/status", summary="Artifact cleanup settings (seed 004)")
async def cleanup_status(backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    r = await backend.call(
        _days_stub(backend).GetCleanupStatus, backtest_pb2.GetCleanupStatusRequest(tenant_id=caller.tenant_id)
    )
    ttl: float | int = int(r.ttl_hours) if float(r.ttl_hours).is_integer() else r.ttl_hours
    return {
        "cleanup_enabled": r.cleanup_enabled,
        "ttl_hours": ttl,
        "message": "Cleanup runs automatically on startup and periodically",
    }


@router.post("/api/v1/backtest/cleanup/run", summary="Delete your artifacts older than ttl_hours now (seed 004)")
async def cleanup_run(
    backend: BackendDep,
    caller: CallerDep,
    ttl_hours: Annotated[float, Query(ge=0, le=87600)] = 12,
) -> dict[str, Any]:
    r = await backend.call(
        _days_stub(backend).RunCleanup, backtest_pb2.RunCleanupRequest(tenant_id=caller.tenant_id, ttl_hours=ttl_hours)
    )
    return {
        "message": "Cleanup completed",
        "deleted_strategies": r.deleted_strategies,
        "freed_space_mb": round(r.freed_bytes / (1024 * 1024), 3),
        "cutoff_time": timestamp(r.cutoff_time),
    }


# ---------------------------------------------------------------- seed 002


@router.post("/api/v1/backtest/start", summary="Start a day-by-day backtest streamed over SSE (seed 002)")
async def start_backtest(request: Request, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    """`{strategy_id, start_date, end_date}` (optional `initial_capital`, `slippage_percentage`,
    `commission_percentage`). `total_days` counts the days with bars in the strategy's session."""
    job = await submit(backend, caller, await read_fields(request), need_user=False)
    spec = job.day_backtest
    return {
        "backtest_id": spec.backtest_id,
        "total_days": spec.total_days,
        "status": "ready",
        "stream_url": stream_path(spec.backtest_id),
        "job_id": job.job_id,
    }


def seed002_event(ev: Any) -> ServerSentEvent | None:
    """A stored job event as the seed's SSE event (None: not part of the seed's stream)."""
    try:
        data = json.loads(ev.data_json)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("event") in SEED002_EVENTS:
        return ServerSentEvent(data=json.dumps(data.get("data")), event=data["event"], id=str(ev.seq))
    if ev.type == "error":
        message = data.get("message") if isinstance(data, dict) else None
        return ServerSentEvent(data=json.dumps({"date": None, "error": message or "backtest failed"}), event="error", id=str(ev.seq))
    return None


async def _relay(call: Any, first: Any, backend: Backend) -> AsyncIterator[ServerSentEvent]:
    async with relaying(call, backend.metrics, "backtest", log):
        item = first
        while True:
            if item is None:
                item = await call.read()
            if item is grpc.aio.EOF:
                return
            sse = seed002_event(item.event)
            item = None
            if sse is not None:
                yield sse


@router.get(
    "/api/v1/backtest/{backtest_id}/stream",
    summary="Day events of a backtest (SSE, seed 002)",
    response_model=None,
)
async def backtest_stream(
    backtest_id: str,
    request: Request,
    backend: BackendDep,
    caller: CallerDep,
    last_event_id: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """Events `day_started`, `day_completed` (day summary, `has_detail_data`),
    `backtest_completed` (`overall_summary`) and `error`, each with an `id`; reconnect with
    `Last-Event-ID` to resume. After the last event a reconnect gets 204 (EventSource stops)."""
    check_backtest_id(backtest_id)
    after = _after_seq(request.headers.get("last-event-id"), last_event_id)
    found = await backend.call(
        _days_stub(backend).FindBacktest, backtest_pb2.FindBacktestRequest(tenant_id=caller.tenant_id, backtest_id=backtest_id)
    )
    job = (await backend.call(backend.stub.GetJob, results_pb2.GetJobRequest(tenant_id=caller.tenant_id, job_id=found.job_id))).job
    call = backend.stub.StreamJobEvents(
        results_pb2.StreamJobEventsRequest(tenant_id=caller.tenant_id, job_id=found.job_id, after_seq=after)
    )
    first = None
    if job.state in (3, 4, 5):  # ended: a reconnect after the last event gets 204 so EventSource stops
        try:
            first = await call.read()
        except grpc.aio.AioRpcError as exc:
            call.cancel()
            raise ApiError(503, "service_unavailable", f"event stream unavailable: {exc.code().name}") from None
        if first is grpc.aio.EOF:
            call.cancel()
            return Response(status_code=204)
    return EventSourceResponse(_relay(call, first, backend), ping=SSE_PING_SECONDS, headers={"Cache-Control": "no-cache"})


@router.get(
    "/api/v1/backtest/{backtest_id}/day/{day}",
    summary="One day's trades and diagnostics as a ZIP of two .json.gz files (seed 002)",
    response_class=Response,
)
async def backtest_day_zip(backtest_id: str, day: str, backend: BackendDep, caller: CallerDep) -> Response:
    check_backtest_id(backtest_id)
    iso = iso_date(day, "date")
    if iso is None:
        raise _bad_path("date", "a date YYYY-MM-DD")
    found = await backend.call(
        _days_stub(backend).FindBacktest, backtest_pb2.FindBacktestRequest(tenant_id=caller.tenant_id, backtest_id=backtest_id)
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


@router.post("/api/v1/backtest", summary="Run a day-by-day backtest and return every day at once (seed 002 legacy)")
async def backtest_all_days(request: Request, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    """Same body as `/api/v1/backtest/start`; waits for the end (up to 10 minutes) and returns
    the overall summary and each day's summary and trades."""
    job = await submit(backend, caller, await read_fields(request), need_user=False)
    spec = job.day_backtest
    days: list[dict[str, Any]] = []
    final: dict[str, Any] | None = None
    error: str | None = None
    call = backend.stub.StreamJobEvents(results_pb2.StreamJobEventsRequest(tenant_id=caller.tenant_id, job_id=job.job_id))

    async def consume() -> None:
        nonlocal final, error
        async for item in call:
            sse = seed002_event(item.event)
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
        await asyncio.wait_for(consume(), LEGACY_WAIT_SECONDS)
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
    return {
        "backtest_id": spec.backtest_id,
        "job_id": job.job_id,
        "strategy_id": spec.strategy_id,
        "start_date": spec.start_date,
        "end_date": spec.end_date,
        "total_days": spec.total_days,
        "status": "completed",
        "overall_summary": final.get("overall_summary"),
        "days": out_days,
    }


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
