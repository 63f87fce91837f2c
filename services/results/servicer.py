"""The gRPC servicer of `hindsight.results.v1.ResultsService`.

It translates requests into calls of the domain modules (keys, jobs,
datasets, sweeps), runs them on the database thread pool, and maps domain
errors to status codes. Unexpected errors are logged and answered INTERNAL
without details.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict, ParseDict
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2, results_pb2_grpc
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from domain.market import INTERVALS, interval_message
from libs.bus import Bus
from libs.job_states import STATE_BY_NAME, STATE_NAMES
from libs.metric_fields import SWEEP_OPTIONAL_METRICS, SWEEP_RESULT_FIELDS
from services.results import datasets, jobs, keys, sweeps, uploads
from services.results.datasets import DatasetView
from services.results.db import Database, wait_any
from services.results.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ResultsError,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)
from services.results.models import Job
from services.results.timefmt import rfc3339
from services.results.trace_context import trace_headers

log = logging.getLogger(__name__)

BARS_CHUNK = 100_000
MAX_IMPORT_BYTES = 512 * 1024 * 1024
DEFAULT_LIST_LIMIT = 50
DEFAULT_BEST_LIMIT = 10
MAX_LIMIT = 1000
STREAM_POLL_SECONDS = 0.5

_CODES: dict[type[ResultsError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


# Trailing metadata of a refusal that a retry after this many seconds may get past (a 429 in the gateway).
RETRY_AFTER_METADATA = "retry-after"

# gRPC carries the message in a header (percent-encoded, 16 KiB hard limit): a longer one
# would reach the caller as a broken stream instead of the error it is.
MAX_STATUS_MESSAGE_CHARS = 1000


def status_message(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= MAX_STATUS_MESSAGE_CHARS else text[: MAX_STATUS_MESSAGE_CHARS - 3] + "..."


async def _abort_for(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
    if isinstance(exc, TooManyRequests):
        # RESOURCE_EXHAUSTED as "too large" is, told apart by the wait it asks for.
        await context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            status_message(exc),
            trailing_metadata=((RETRY_AFTER_METADATA, str(exc.retry_after_seconds)),),
        )
    if isinstance(exc, ResultsError):
        code = next(c for t, c in _CODES.items() if isinstance(exc, t))
        await context.abort(code, status_message(exc))
    if isinstance(exc, (OperationalError, InterfaceError)):
        log.warning("database unavailable in %s: %s", method, exc.__class__.__name__)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable, retry later")
    log.exception("unexpected error in %s", method)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")


def _unary(fn):
    @functools.wraps(fn)
    async def wrapper(self, request, context):
        try:
            return await fn(self, request, context)
        except Exception as exc:  # noqa: BLE001 - mapped to a status code
            await _abort_for(context, fn.__name__, exc)

    return wrapper


def _server_stream(fn):
    @functools.wraps(fn)
    async def wrapper(self, request, context):
        try:
            async for item in fn(self, request, context):
                yield item
        except Exception as exc:  # noqa: BLE001 - mapped to a status code
            await _abort_for(context, fn.__name__, exc)

    return wrapper


def _require(value: str, name: str) -> str:
    if not value:
        raise InvalidArgument(f"{name} is required")
    return value


def job_to_proto(job: Job) -> jobs_pb2.Job:
    msg = jobs_pb2.Job(
        job_id=job.job_id,
        tenant_id=job.tenant_id,
        kind=job.kind,
        state=STATE_BY_NAME[job.state],
        parameters_json=json.dumps(job.parameters),
        webhook_url=job.webhook_url,
        created_at=rfc3339(job.created_at),
        started_at=rfc3339(job.started_at),
        completed_at=rfc3339(job.completed_at),
        error_message=job.error_message,
        percent=job.percent,
        progress_message=job.progress_message,
        sweep_run_id=job.sweep_run_id or "",
        timeout_seconds=job.timeout_seconds,
        combinations=job.combinations,
        metrics_json=json.dumps(job.metrics) if job.metrics is not None else "",
        estimated_duration_seconds=job.estimated_duration_seconds,
        trace_id=job.trace_id,
        notify_email=job.notify_email,
    )
    if job.sweep_spec is not None:
        ParseDict(job.sweep_spec, msg.sweep, ignore_unknown_fields=True)
    return msg


def dataset_to_proto(d: DatasetView) -> results_pb2.Dataset:
    return results_pb2.Dataset(
        dataset_id=d.dataset_id,
        ticker=d.ticker,
        interval=d.interval,
        bars=d.bars,
        start=rfc3339(d.start),
        end=rfc3339(d.end),
        calendar=d.calendar,
        timezone=d.timezone,
        version=d.version,
        demo=d.demo,
        created_at=rfc3339(d.created_at),
    )


def _limit(value: int, default: int) -> int:
    if value == 0:
        return default
    if not 1 <= value <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT}")
    return value


def _submitted_parameters(request: results_pb2.SubmitJobRequest) -> Any:
    """A submitted job's parameters (`parameters_json`, {} when empty), its timeout checked too."""
    try:
        parameters = json.loads(request.parameters_json) if request.parameters_json else {}
    except json.JSONDecodeError:
        raise InvalidArgument("parameters_json is not valid JSON") from None
    if request.timeout_seconds < 0:
        raise InvalidArgument("timeout_seconds must not be negative")
    return parameters


def _page_limit(limit: int, offset: int, default_limit: int) -> int:
    """The limit of a listing (`_limit`), after checking its offset too."""
    limit = _limit(limit, default_limit)
    if offset < 0:
        raise InvalidArgument("offset must not be negative")
    return limit


class DatabaseServicer:
    """What every servicer of the results service shares: domain calls on the database pool.

    `ready` is set once migrations ran (the main servicer's, shared by the others); calls
    before that are UNAVAILABLE.
    """

    def __init__(self, db: Database, ready: asyncio.Event) -> None:
        self.db = db
        self.ready = ready

    def _check_ready(self) -> None:
        if not self.ready.is_set():
            raise Unavailable("results service is starting")

    async def _read(self, fn, *args):
        """`fn(session, *args)` in a read-only session, on the pool."""
        return await self._in_session(self.db.read, fn, args)

    async def _write(self, fn, *args):
        """`fn(session, *args)` in one transaction, committed when it returns, on the pool."""
        return await self._in_session(self.db.write, fn, args)

    async def _in_session(self, open_session, fn, args):
        self._check_ready()

        def work():
            with open_session() as s:
                return fn(s, *args)

        return await self.db.run(work)


class ResultsServicer(DatabaseServicer, results_pb2_grpc.ResultsServiceServicer):
    """Every RPC of the results service; all state is in the database."""

    def __init__(self, db: Database, bus: Bus, *, default_timeout_seconds: int) -> None:
        # Its `ready` is set once migrations ran; the other servicers share it.
        super().__init__(db, asyncio.Event())
        self.bus = bus
        self.default_timeout_seconds = default_timeout_seconds
        # Set at shutdown: open event streams end with UNAVAILABLE so clients reconnect elsewhere.
        self.stopping = asyncio.Event()
        # Day-by-day backtests (services.results.daybyday_servicer), set by the wiring.
        self.day_backtests = None
        # Concurrent dataset uploads, and where they are spooled (None: the system's temporary
        # directory); the wiring sets both from the settings.
        self.upload_slots = uploads.UploadSlots()
        self.upload_dir = None

    # ------------------------------------------------------------ auth

    @_unary
    async def Authenticate(self, request, context):
        tenant_id, key_id = await self._read(keys.authenticate, request.api_key, request.key_id)
        return results_pb2.AuthenticateResponse(tenant_id=tenant_id, key_id=key_id)

    # ------------------------------------------------------------ jobs (user side)

    @_unary
    async def SubmitJob(self, request, context):
        self._check_ready()
        if not self.bus.is_connected():
            raise Unavailable("job queue unavailable")
        tenant_id = _require(request.tenant_id, "tenant_id")
        if request.kind == jobs.DAY_BACKTEST_KIND and self.day_backtests is not None:
            return await self.day_backtests.submit(request)
        if not request.HasField("sweep"):
            raise InvalidArgument("sweep spec is required")
        kind = request.kind or jobs.SWEEP_KIND
        if kind != jobs.SWEEP_KIND:
            raise InvalidArgument(f"unknown job kind {kind!r} (expected {jobs.SWEEP_KIND!r})")
        parameters = _submitted_parameters(request)
        spec = MessageToDict(request.sweep, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        fields = dict(
            tenant_id=tenant_id,
            kind=kind,
            parameters=parameters,
            sweep_spec=spec,
            webhook_url=request.webhook_url,
            notify_email=request.notify_email,
            timeout_seconds=request.timeout_seconds or self.default_timeout_seconds,
            trace_id=request.trace_id,
            headers=trace_headers(),
        )
        for attempt in range(3):
            try:
                job = await self._write(lambda s: jobs.submit_job(s, **fields))
                break
            except IntegrityError:
                # A job id collision (same second, ticker and random suffix): draw another.
                if attempt == 2:
                    raise
        log.info("job queued", extra={"job_id": job.job_id, "tenant_id": tenant_id, "combinations": job.combinations})
        return results_pb2.SubmitJobResponse(job=job_to_proto(job))

    @_unary
    async def GetJob(self, request, context):
        job = await self._read(jobs.get_job, request.tenant_id, _require(request.job_id, "job_id"))
        return results_pb2.GetJobResponse(job=job_to_proto(job))

    @_unary
    async def ListJobs(self, request, context):
        limit = _page_limit(request.limit, request.offset, DEFAULT_LIST_LIMIT)
        state = None
        if request.state != jobs_pb2.JOB_STATE_UNSPECIFIED:
            state = STATE_NAMES.get(request.state)
            if state is None:
                raise InvalidArgument(f"unknown job state {request.state}")
        rows, total = await self._read(jobs.list_jobs, request.tenant_id, limit, request.offset, state)
        return results_pb2.ListJobsResponse(jobs=[job_to_proto(j) for j in rows], total=total)

    @_unary
    async def CancelJob(self, request, context):
        job = await self._write(jobs.cancel_job, request.tenant_id, _require(request.job_id, "job_id"))
        log.info("job cancelled", extra={"job_id": job.job_id})
        return results_pb2.CancelJobResponse(job=job_to_proto(job))

    @_server_stream
    async def StreamJobEvents(self, request, context) -> AsyncIterator[results_pb2.StreamJobEventsResponse]:
        job_id = _require(request.job_id, "job_id")
        await self._read(jobs.get_job, request.tenant_id, job_id)  # NOT_FOUND for other tenants
        last = max(0, request.after_seq)
        wake = self.db.wakeups.watch_job(job_id)

        def poll(s, after: int):
            events = jobs.events_after(s, job_id, after)
            if events:  # new events: the job's row cannot say "ended with nothing after `after`"
                return events, False
            job = s.get(Job, job_id)
            ended = job is not None and job.state in jobs.ENDED_STATES and after >= job.last_event_seq
            return events, ended

        try:
            while True:
                wake.clear()
                events, ended = await self._read(poll, last)
                for ev in events:
                    yield results_pb2.StreamJobEventsResponse(
                        event=jobs_pb2.JobEvent(seq=ev.seq, type=ev.type, data_json=json.dumps(ev.data))
                    )
                    last = ev.seq
                    if ev.type in jobs.TERMINAL_EVENT_TYPES:
                        return
                if ended:  # resumed after the terminal event: nothing more will come
                    return
                if events:
                    continue
                if self.stopping.is_set():
                    raise Unavailable("results service is shutting down; reconnect to resume the stream")
                await wait_any(wake, self.stopping, timeout=STREAM_POLL_SECONDS)
        finally:
            self.db.wakeups.unwatch_job(job_id, wake)

    # ------------------------------------------------------------ sweeps

    @_unary
    async def GetSweepBest(self, request, context):
        limit = _limit(request.limit, DEFAULT_BEST_LIMIT)
        best = await self._read(
            sweeps.sweep_best, request.tenant_id, _require(request.sweep_run_id, "sweep_run_id"), request.ticker, limit
        )
        out = results_pb2.GetSweepBestResponse(
            sweep_run_id=best.run.sweep_run_id,
            ticker=best.run.ticker,
            total_results=best.total_results,
            excluded_below_min_trades=best.excluded_below_min_trades,
            min_trades=best.run.min_trades,
            job_id=best.run.job_id,
        )
        for r in best.rows:
            # Undefined metrics (None) stay unset.
            out.results.add(**{name: getattr(r, name) for name in SWEEP_RESULT_FIELDS if getattr(r, name) is not None})
        return out

    # ------------------------------------------------------------ datasets

    @_unary
    async def ImportDataset(self, request_iterator, context):
        self._check_ready()
        # Past the cap the upload is refused before its first chunk is read.
        with self.upload_slots.take():
            try:
                view = await self._import_dataset(request_iterator)
            finally:
                await asyncio.to_thread(uploads.release_memory)
        return results_pb2.ImportDatasetResponse(dataset=dataset_to_proto(view))

    async def _import_dataset(self, request_iterator) -> DatasetView:
        """Chunks to a temporary file, parsed from there in chunks; the database gets the encoded blob."""
        meta = None
        size = 0
        with uploads.spool_file(self.upload_dir) as spool:
            async for chunk in request_iterator:
                if meta is None:
                    # The first message says what the data is: refuse bad metadata before reading the rest.
                    tenant_id = _require(chunk.tenant_id, "tenant_id")
                    meta = datasets.check_metadata(chunk.ticker, chunk.interval, chunk.calendar, chunk.timezone)
                size += len(chunk.data)
                if size > MAX_IMPORT_BYTES:
                    raise ResourceExhausted("the CSV upload is larger than 512 MB (the limit per import)")
                if chunk.data:
                    await asyncio.to_thread(spool.write, chunk.data)
            if meta is None:
                raise InvalidArgument("empty upload: the first message must carry tenant_id, ticker and interval")
            ticker, interval, calendar, timezone = meta
            encoded = await self.db.run(uploads.parse_and_encode, spool, timezone)
        # On a connection of its own, closed afterwards: the driver's copy of the blob goes with it.
        view = await self._in_session(
            functools.partial(self.db.write, discard_connection=True),
            datasets.store_dataset,
            (tenant_id, ticker, interval, calendar, timezone, encoded),
        )
        log.info(
            "dataset imported",
            extra={"tenant_id": tenant_id, "dataset_id": view.dataset_id, "version": view.version, "bars": view.bars,
                   "bytes": size},
        )
        return view

    @_unary
    async def ListDatasets(self, request, context):
        views = await self._read(datasets.list_datasets, request.tenant_id)
        return results_pb2.ListDatasetsResponse(datasets=[dataset_to_proto(v) for v in views])

    @_unary
    async def DeleteDataset(self, request, context):
        n = await self._write(datasets.delete_dataset, request.tenant_id, _require(request.dataset_id, "dataset_id"))
        return results_pb2.DeleteDatasetResponse(versions_deleted=n)

    # ------------------------------------------------------------ engine side

    @_unary
    async def StartJob(self, request, context):
        proceed, job = await self._write(jobs.start_job, _require(request.job_id, "job_id"))
        msg = job_to_proto(job)
        if job.kind == jobs.DAY_BACKTEST_KIND and self.day_backtests is not None:
            msg.day_backtest.CopyFrom(await self.day_backtests.spec_of_job(job.job_id))
        return results_pb2.StartJobResponse(proceed=proceed, job=msg)

    @_unary
    async def ResolveDataset(self, request, context):
        tenant_id = _require(request.tenant_id, "tenant_id")
        ticker = _require(request.ticker, "ticker")
        if request.interval and request.interval not in INTERVALS:
            raise InvalidArgument(f"interval {interval_message()} (or empty)")
        view = await self._read(datasets.resolve_dataset, tenant_id, ticker, request.interval)
        if view is None:
            return results_pb2.ResolveDatasetResponse(found=False)
        return results_pb2.ResolveDatasetResponse(found=True, dataset=dataset_to_proto(view), version_id=view.version_id)

    @_server_stream
    async def GetBars(self, request, context):
        bars = await self._read(datasets.load_bars, _require(request.version_id, "version_id"))
        total = len(bars)
        if total == 0:
            yield results_pb2.GetBarsResponse(total_bars=0)
            return
        for ts, o, h, lo, c, v in bars.chunks(BARS_CHUNK):
            yield results_pb2.GetBarsResponse(total_bars=total, ts=ts, open=o, high=h, low=lo, close=c, volume=v)

    @_unary
    async def ReportProgress(self, request, context):
        stop, reason = await self._write(
            jobs.report_progress, _require(request.job_id, "job_id"), request.percent, request.message
        )
        return results_pb2.ReportProgressResponse(stop=stop, reason=reason)

    @_unary
    async def CompleteSweep(self, request, context):
        job_id = _require(request.job_id, "job_id")
        rows = [
            jobs.SweepRow(
                **{name: getattr(r, name) for name in SWEEP_RESULT_FIELDS if name not in SWEEP_OPTIONAL_METRICS},
                metrics={name: (getattr(r, name) if r.HasField(name) else None) for name in SWEEP_OPTIONAL_METRICS},
            )
            for r in request.results
        ]
        run_id, stored = await self._write(
            jobs.complete_sweep, job_id, rows, request.execution_time_seconds, request.bars, request.dataset_version_id
        )
        log.info("sweep completion", extra={"job_id": job_id, "sweep_run_id": run_id, "stored": stored})
        return results_pb2.CompleteSweepResponse(sweep_run_id=run_id, stored=stored)

    @_unary
    async def FailJob(self, request, context):
        job = await self._write(jobs.fail_job, _require(request.job_id, "job_id"), request.error_message)
        log.info("job failed by the engine", extra={"job_id": job.job_id, "state": job.state})
        return results_pb2.FailJobResponse(job=job_to_proto(job))
