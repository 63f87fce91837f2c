"""The gRPC servicer of `hindsight.results.v1.ResultsService`.

It translates requests into calls of the domain modules (keys, jobs,
datasets, sweeps) and of the job kinds' handlers (services.results.kinds),
runs them on the database thread pool, and maps domain errors to status
codes (services.results.rpc).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2, results_pb2_grpc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.market import BAR_PRICE_COLUMNS, INTERVALS, interval_message
from libs.bus import Bus
from libs.job_states import STATE_NAMES
from libs.metric_fields import SWEEP_RESULT_FIELDS
from libs.option_chain_wire import table_to_ipc
from libs.settings import Settings
from services.results import (
    chain_import,
    datasets,
    jobs,
    keys,
    option_chains,
    quotas,
    sweeps,
    universe_sweeps,
    uploads,
    walkforward,
)
from services.results.artifacts import check_date
from services.results.csv_bars import ImportReport, check_format
from services.results.datasets import DatasetView
from services.results.db import Database, wait_any
from services.results.errors import InvalidArgument, NotFound, ResourceExhausted, Unavailable
from services.results.jobs import Submission
from services.results.kinds.registry import KindRegistry
from services.results.market_store import MarketStore, bar_version_key
from services.results.models import Job
from services.results.rpc import (
    DatabaseServicer,
    limit,
    page_limit,
    require,
    server_stream,
    submitted_parameters,
    unary,
)
from services.results.timefmt import rfc3339
from services.results.trace_context import trace_headers

log = logging.getLogger(__name__)

BARS_CHUNK = 100_000
MAX_IMPORT_BYTES = 512 * 1024 * 1024
DEFAULT_LIST_LIMIT = 50
DEFAULT_BEST_LIMIT = 10
STREAM_POLL_SECONDS = 0.5


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


def chain_to_proto(c: option_chains.ChainView) -> results_pb2.OptionChain:
    return results_pb2.OptionChain(
        chain_id=c.chain_id,
        ticker=c.ticker,
        underlying=c.underlying,
        interval=c.interval,
        timezone=c.timezone,
        rows=c.rows,
        contracts=c.contracts,
        expiries=c.expiries,
        strike_steps=c.strike_steps,
        days=c.days,
        start=rfc3339(c.start),
        end=rfc3339(c.end),
        version=c.version,
        demo=c.demo,
        created_at=rfc3339(c.created_at),
        bytes_stored=c.bytes_stored,
        format=c.file_format,
        columns=c.columns,
    )


def report_to_proto(r: ImportReport) -> results_pb2.ImportReport:
    return results_pb2.ImportReport(
        format=r.format, columns=r.columns, dropped=r.dropped, rows_dropped=r.rows_dropped, notes=r.notes
    )


class ResultsServicer(DatabaseServicer, results_pb2_grpc.ResultsServiceServicer):
    """Every RPC of the results service; all state is in the database."""

    def __init__(self, db: Database, bus: Bus, kinds: KindRegistry, *, default_timeout_seconds: int) -> None:
        # Its `ready` is set once migrations ran; the other servicers share it.
        super().__init__(db, asyncio.Event())
        self.bus = bus
        self.kinds = kinds
        # Keys refused even when stored (the dev key outside standalone on loopback), set by the wiring.
        self.refused_key_hashes: frozenset[str] = frozenset()
        # Concurrent dataset uploads, and where they are spooled (None: the system's temporary
        # directory); the wiring sets both from the settings.
        self.upload_slots = uploads.UploadSlots()
        self.upload_dir: Path | None = None
        # The columnar market-data store (bar datasets, option chains); the wiring sets its root
        # from the settings.
        self.market = MarketStore(Settings().market_root())
        self.default_timeout_seconds = default_timeout_seconds
        # What one tenant may queue and run at once (fair tenants); the wiring sets the operator's.
        self.limits = quotas.TenantLimits.of(Settings())
        # Set at shutdown: open event streams end with UNAVAILABLE so clients reconnect elsewhere.
        self.stopping = asyncio.Event()

    # ------------------------------------------------------------ auth

    @unary
    async def Authenticate(self, request, context):
        tenant_id, key_id = await self.read(
            keys.authenticate, request.api_key, request.key_id, self.refused_key_hashes, request.session_token
        )
        return results_pb2.AuthenticateResponse(tenant_id=tenant_id, key_id=key_id)

    @unary
    async def CreateSession(self, request, context):
        new = await self.write(keys.create_session, request.api_key, int(request.ttl_seconds), self.refused_key_hashes)
        log.info("session created", extra={"tenant_id": new.tenant_id, "key_id": new.key_id})
        return results_pb2.CreateSessionResponse(
            session_token=new.token, tenant_id=new.tenant_id, key_id=new.key_id, expires_at=rfc3339(new.expires_at)
        )

    @unary
    async def RevokeSession(self, request, context):
        revoked = await self.write(keys.revoke_session, require(request.session_token, "session_token"))
        return results_pb2.RevokeSessionResponse(revoked=revoked)

    # ------------------------------------------------------------ jobs (user side)

    @unary
    async def SubmitJob(self, request, context):
        self.check_ready()
        if not self.bus.is_connected():
            raise Unavailable("job queue unavailable")
        tenant_id = require(request.tenant_id, "tenant_id")
        handler = self.kinds.for_request(request)
        if request.WhichOneof("spec") != handler.spec_field:
            raise InvalidArgument(f"{handler.spec_field} spec is required for kind {handler.name!r}")
        submission = Submission(
            tenant_id=tenant_id,
            kind=handler.kind,
            kind_name=handler.name,
            spec=getattr(request, handler.spec_field),
            parameters=submitted_parameters(request.parameters_json),
            webhook_url=request.webhook_url,
            notify_email=request.notify_email,
            timeout_seconds=request.timeout_seconds or min(self.default_timeout_seconds, self.limits.max_timeout_seconds),
            trace_id=request.trace_id,
            headers=trace_headers(),
        )

        quotas.check_timeout(submission.timeout_seconds, self.limits)

        def submit(s: Session) -> jobs_pb2.Job:
            job = handler.submit(s, submission)
            quotas.check_submission(s, job, self.limits)  # a refusal rolls the job back
            return self.kinds.job_proto(job, s)

        for attempt in range(3):
            try:
                job = await self.write(submit)
                break
            except IntegrityError:
                # A job id collision (same second, ticker and random suffix): draw another.
                if attempt == 2:
                    raise
        log.info(
            "job queued",
            extra={"job_id": job.job_id, "tenant_id": tenant_id, "kind": job.kind, "combinations": job.combinations},
        )
        return results_pb2.SubmitJobResponse(job=job)

    @unary
    async def GetJob(self, request, context):
        job = await self.read(jobs.get_job, request.tenant_id, require(request.job_id, "job_id"))
        return results_pb2.GetJobResponse(job=self.kinds.job_proto(job))

    @unary
    async def ListJobs(self, request, context):
        n = page_limit(request.limit, request.offset, DEFAULT_LIST_LIMIT)
        state = None
        if request.state != jobs_pb2.JOB_STATE_UNSPECIFIED:
            state = STATE_NAMES.get(request.state)
            if state is None:
                raise InvalidArgument(f"unknown job state {request.state}")
        rows, total = await self.read(jobs.list_jobs, request.tenant_id, n, request.offset, state)
        return results_pb2.ListJobsResponse(jobs=[self.kinds.job_proto(j) for j in rows], total=total)

    @unary
    async def CancelJob(self, request, context):
        job = await self.write(jobs.cancel_job, self.kinds, request.tenant_id, require(request.job_id, "job_id"))
        log.info("job cancelled", extra={"job_id": job.job_id})
        return results_pb2.CancelJobResponse(job=self.kinds.job_proto(job))

    @server_stream
    async def StreamJobEvents(self, request, context) -> AsyncIterator[results_pb2.StreamJobEventsResponse]:
        job_id = require(request.job_id, "job_id")
        await self.read(jobs.get_job, request.tenant_id, job_id)  # NOT_FOUND for other tenants
        if self.stopping.is_set():  # no headers from a results on its way out
            raise Unavailable("results service is shutting down; reconnect to resume the stream")
        # Headers now, not with the first event (which may be minutes away): the gateway,
        # reconnecting after an outage, counts the stream as open from here.
        await context.send_initial_metadata(())
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
                events, ended = await self.read(poll, last)
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

    @unary
    async def GetSweepBest(self, request, context):
        best = await self.read(
            sweeps.sweep_best,
            request.tenant_id,
            require(request.sweep_run_id, "sweep_run_id"),
            request.ticker,
            limit(request.limit, DEFAULT_BEST_LIMIT),
        )
        out = results_pb2.GetSweepBestResponse(
            sweep_run_id=best.run.sweep_run_id,
            ticker=best.ticker,
            total_results=best.total_results,
            excluded_below_min_trades=best.excluded_below_min_trades,
            min_trades=best.run.min_trades,
            job_id=best.run.job_id,
        )
        for r in best.rows:
            # Undefined metrics (None) stay unset.
            row = out.results.add(**{name: getattr(r, name) for name in SWEEP_RESULT_FIELDS if getattr(r, name) is not None})
            if r.parameters is not None:
                row.parameters_json = json.dumps(r.parameters, separators=(",", ":"))
        if best.overfitting is not None:
            out.overfitting.CopyFrom(sweeps.overfitting_message(best.overfitting))
        return out

    @unary
    async def GetSweepTickers(self, request, context):
        view = await self.read(universe_sweeps.tickers_view, request.tenant_id, require(request.sweep_id, "sweep_id"))
        out = results_pb2.GetSweepTickersResponse(
            sweep_run_id=view.run.sweep_run_id, job_id=view.job.job_id, state=view.job.state, universe=view.universe,
            min_trades=view.run.min_trades,
        )
        for t in view.tickers:
            item = out.tickers.add(ticker=t.shard.ticker, state=t.shard.state, error_message=t.shard.error_message,
                                   bars=t.shard.bars or 0, total_results=t.shard.total_results or 0)
            if t.best is not None:
                item.best.CopyFrom(results_pb2.SweepResult(
                    **{name: getattr(t.best, name) for name in SWEEP_RESULT_FIELDS if getattr(t.best, name) is not None}
                ))
                if t.best.parameters is not None:  # an RSI sweep's row: its combination
                    item.best.parameters_json = json.dumps(t.best.parameters, separators=(",", ":"))
            if t.shard.buy_and_hold_return_pct is not None:
                item.buy_and_hold_return_pct = t.shard.buy_and_hold_return_pct
            if t.shard.overfitting is not None:
                item.overfitting.CopyFrom(sweeps.overfitting_message(t.shard.overfitting))
        return out

    # ------------------------------------------------------------ datasets

    @unary
    async def ImportDataset(self, request_iterator, context):
        self.check_ready()
        # Past the cap the upload is refused before its first chunk is parsed.
        try:
            with self.upload_slots.take():
                try:
                    view, report = await self._import_dataset(request_iterator)
                finally:
                    await asyncio.to_thread(uploads.release_memory)
        except Exception:
            await uploads.drain(request_iterator)
            raise
        return results_pb2.ImportDatasetResponse(dataset=dataset_to_proto(view), report=report_to_proto(report))

    async def _import_dataset(self, request_iterator) -> tuple[DatasetView, ImportReport]:
        """Chunks to a temporary file, parsed from there in chunks into a staged version of the
        market store, published before the version's row is committed (removed if that fails)."""
        meta = None
        size = 0
        with uploads.spool_file(self.upload_dir) as spool:
            async for chunk in request_iterator:
                if meta is None:
                    # The first message says what the data is: refuse bad metadata before reading the rest.
                    tenant_id = require(chunk.tenant_id, "tenant_id")
                    meta = datasets.check_metadata(chunk.ticker, chunk.interval, chunk.calendar, chunk.timezone)
                    fmt, columns = chunk.format, chunk.columns
                    check_format(fmt, columns)
                size += len(chunk.data)
                if size > MAX_IMPORT_BYTES:
                    raise ResourceExhausted("the CSV upload is larger than 512 MB (the limit per import)")
                if chunk.data:
                    await asyncio.to_thread(spool.write, chunk.data)
            if meta is None:
                raise InvalidArgument("empty upload: the first message must carry tenant_id, ticker and interval")
            ticker, interval, calendar, timezone = meta
            staging, stored, report = await self.db.run(
                uploads.parse_and_stage, spool, self.market, interval, timezone, fmt, columns, self.upload_dir
            )
        version_id = datasets.new_version_id()
        key = None
        try:
            key = bar_version_key(tenant_id, version_id)
            await asyncio.to_thread(self.market.publish, staging, key)
            view = await self.write(
                datasets.store_dataset, tenant_id, ticker, interval, calendar, timezone, stored, version_id, key
            )
        except BaseException:
            await asyncio.to_thread(chain_import.discard, staging)
            if key is not None:
                await asyncio.to_thread(datasets.remove_version_files, self.market, [key])
            raise
        log.info(
            "dataset imported",
            extra={"tenant_id": tenant_id, "dataset_id": view.dataset_id, "version": view.version, "bars": view.bars,
                   "bytes": size, "format": report.format},
        )
        return view, report

    @unary
    async def ListDatasets(self, request, context):
        views = await self.read(datasets.list_datasets, request.tenant_id)
        chains = await self.read(option_chains.list_chains, request.tenant_id)
        return results_pb2.ListDatasetsResponse(
            datasets=[dataset_to_proto(v) for v in views], option_chains=[chain_to_proto(c) for c in chains]
        )

    @unary
    async def DeleteDataset(self, request, context):
        dataset_id = require(request.dataset_id, "dataset_id")
        if dataset_id.startswith(option_chains.CHAIN_ID_PREFIX):
            key = await self.write(option_chains.delete_chain, request.tenant_id, dataset_id)
            await asyncio.to_thread(option_chains.remove_files, self.market, key)
            log.info("option chain deleted", extra={"tenant_id": request.tenant_id, "dataset_id": dataset_id})
            return results_pb2.DeleteDatasetResponse(versions_deleted=1)
        n, keys_ = await self.write(datasets.delete_dataset, request.tenant_id, dataset_id)
        await asyncio.to_thread(datasets.remove_version_files, self.market, keys_)
        return results_pb2.DeleteDatasetResponse(versions_deleted=n)

    # ------------------------------------------------------------ option chains

    @unary
    async def ImportOptionChain(self, request_iterator, context):
        self.check_ready()
        try:
            with self.upload_slots.take():
                try:
                    view = await self._import_chain(request_iterator)
                finally:
                    await asyncio.to_thread(uploads.release_memory)
        except Exception:
            await uploads.drain(request_iterator)
            raise
        return results_pb2.ImportOptionChainResponse(chain=chain_to_proto(view))

    async def _import_chain(self, request_iterator) -> option_chains.ChainView:
        """Chunks to a spooled file; read from there in batches into day files under a staging
        directory, moved into the store before the record is committed (removed if that fails)."""
        meta = None
        size = 0
        with uploads.spool_file(self.upload_dir) as spool:
            async for chunk in request_iterator:
                if meta is None:
                    tenant_id = require(chunk.tenant_id, "tenant_id")
                    meta = option_chains.check_chain_metadata(chunk.ticker, chunk.interval, chunk.timezone)
                    if chunk.format or chunk.columns:
                        raise InvalidArgument("format and columns apply to bar datasets, not to option chains")
                size += len(chunk.data)
                if size > MAX_IMPORT_BYTES:
                    raise ResourceExhausted("the upload is larger than 512 MB (the limit per import)")
                if chunk.data:
                    await asyncio.to_thread(spool.write, chunk.data)
            if meta is None:
                raise InvalidArgument("empty upload: the first message must carry tenant_id, ticker and interval")
            underlying, interval, timezone = meta
            if size == 0:
                raise InvalidArgument("the file is empty")
            staging = await asyncio.to_thread(self.market.new_staging)
            try:
                summary = await self.db.run(chain_import.import_chain_file, spool, timezone, underlying, staging)
            except BaseException:
                await asyncio.to_thread(chain_import.discard, staging)
                raise
        version_id = "ocv_" + secrets.token_hex(12)
        chain_key = None
        try:
            stored_bytes = (await asyncio.to_thread(self.market.measure, staging)).bytes
            chain_key = self.market.chain_version_key(tenant_id, version_id)
            await asyncio.to_thread(self.market.publish, staging, chain_key)
            stored = await self.write(
                option_chains.record_chain, tenant_id, underlying, underlying, interval, timezone, summary, chain_key,
                stored_bytes,
            )
        except BaseException:
            await asyncio.to_thread(chain_import.discard, staging)
            if chain_key is not None:
                await asyncio.to_thread(option_chains.remove_files, self.market, chain_key)
            raise
        await asyncio.to_thread(option_chains.remove_files, self.market, stored.replaced_key)
        view = stored.view
        log.info(
            "option chain imported",
            extra={"tenant_id": tenant_id, "dataset_id": view.chain_id, "version": view.version, "rows": view.rows,
                   "bytes": size, "format": summary.file_format},
        )
        return view

    @server_stream
    async def GetOptionChainDay(self, request, context):
        tenant_id = require(request.tenant_id, "tenant_id")
        day = check_date(request.date)
        if request.chain_id:
            chain = await self.read(option_chains.get_chain, tenant_id, request.chain_id)
        else:
            if request.interval and request.interval not in INTERVALS:
                raise InvalidArgument(f"interval {interval_message()} (or empty)")
            chain = await self.read(
                option_chains.resolve_chain, tenant_id, require(request.underlying, "underlying"), request.interval
            )
            if chain is None:
                raise NotFound(f"no option chain on {request.underlying!r}")
        selection = option_chains.day_selection(
            request.columns, ((c.expiry, c.strike, c.option_type) for c in request.contracts)
        )
        if request.chain_only:
            yield results_pb2.GetOptionChainDayResponse(chain=chain_to_proto(chain))
            return
        table = await asyncio.to_thread(option_chains.chain_day_table, self.market, chain, day, selection)
        first = True
        for piece in await asyncio.to_thread(lambda: list(table_to_ipc(table))):
            yield results_pb2.GetOptionChainDayResponse(chain=chain_to_proto(chain) if first else None, arrow_ipc=piece)
            first = False

    # ------------------------------------------------------------ engine side

    @unary
    async def StartJob(self, request, context):
        job_id = require(request.job_id, "job_id")

        def start_unlocked(s: Session) -> tuple[bool, float, jobs_pb2.Job] | None:
            # A queued shard of a running sharded job: its own row is enough (shards.start_queued)
            job = jobs.get_job_any(s, job_id)
            if not self.kinds.start_queued_shard(s, job, request.shard_id):
                return None
            return True, 0.0, self.kinds.job_proto(job, s)

        if request.shard_id and (fast := await self.write(start_unlocked)) is not None:
            proceed, wait, msg = fast
            return results_pb2.StartJobResponse(proceed=proceed, job=msg, retry_after_seconds=wait)

        def start(s: Session) -> tuple[bool, float, jobs_pb2.Job]:
            job = jobs.locked_job(s, job_id)
            if job.state == jobs.QUEUED and (wait := quotas.start_delay(s, job, self.limits)):
                return False, wait, self.kinds.job_proto(job, s)  # its tenant runs enough already
            if request.shard_id:  # one shard of a sharded job (e.g. a ticker of a universe sweep)
                proceed, job = self.kinds.start_shard(s, job, request.shard_id)
            else:
                proceed, job = jobs.start_job(s, self.kinds, job)
            # The engine gets the kind's spec in full.
            return proceed, 0.0, self.kinds.job_proto(job, s)

        proceed, wait, msg = await self.write(start)
        return results_pb2.StartJobResponse(proceed=proceed, job=msg, retry_after_seconds=wait)

    @unary
    async def ResolveDataset(self, request, context):
        tenant_id = require(request.tenant_id, "tenant_id")
        ticker = require(request.ticker, "ticker")
        if request.interval and request.interval not in INTERVALS:
            raise InvalidArgument(f"interval {interval_message()} (or empty)")
        view = await self.read(datasets.resolve_dataset, tenant_id, ticker, request.interval)
        if view is None:
            return results_pb2.ResolveDatasetResponse(found=False)
        return results_pb2.ResolveDatasetResponse(found=True, dataset=dataset_to_proto(view), version_id=view.version_id)

    @server_stream
    async def GetBars(self, request, context):
        key = await self.read(datasets.version_storage_key, require(request.version_id, "version_id"))
        start = request.start_ns if request.HasField("start_ns") else None
        end = request.end_ns if request.HasField("end_ns") else None
        if start is not None and end is not None and start > end:
            raise InvalidArgument("start_ns is after end_ns")
        columns = list(request.columns) or None
        if columns is not None and (len(set(columns)) != len(columns) or not set(columns) <= set(BAR_PRICE_COLUMNS)):
            raise InvalidArgument(f"columns: distinct names among {', '.join(BAR_PRICE_COLUMNS)} (ts always comes)")
        # The files are read off the database's pool: no connection is held meanwhile.
        bars = await asyncio.to_thread(datasets.read_version_bars, self.market, key, start, end, columns)
        total = len(bars)
        if total == 0:
            yield results_pb2.GetBarsResponse(total_bars=0)
            return
        for chunk in bars.chunks(BARS_CHUNK):
            yield results_pb2.GetBarsResponse(total_bars=total, **chunk)

    @unary
    async def ReportProgress(self, request, context):
        job_id = require(request.job_id, "job_id")
        if request.shard_id:
            def shard_progress(s: Session) -> tuple[bool, str]:
                job = jobs.get_job_any(s, job_id)
                return self.kinds.sharded(job).shard_progress(s, job_id, request.shard_id, request.percent)

            stop, reason = await self.write(shard_progress)
            return results_pb2.ReportProgressResponse(stop=stop, reason=reason)
        stop, reason = await self.write(jobs.report_progress, job_id, request.percent, request.message)
        return results_pb2.ReportProgressResponse(stop=stop, reason=reason)

    @unary
    async def CompleteSweep(self, request, context):
        job_id = require(request.job_id, "job_id")
        rows = sweeps.rows_of(request.results)
        statistics = sweeps.statistics_of(request.statistics, len(rows)) if request.HasField("statistics") else None
        if request.shard_id:  # one ticker of a universe sweep: stored once, keyed by the shard
            bh = request.buy_and_hold_return_pct if request.HasField("buy_and_hold_return_pct") else None
            # stored under its shard's lock (a whole ticker) or its ticker's (a pair chunk), then the
            # job told under the job's
            if not universe_sweeps.is_pair_chunk(request.shard_id):
                run_id, stored = await self.write(universe_sweeps.store_shard, job_id, request.shard_id, rows,
                                                  request.execution_time_seconds, request.bars, statistics, bh)
            else:
                joined = None
                if request.HasField("statistics") and (
                    others := await self.read(universe_sweeps.staged_parts, job_id, request.shard_id)
                ):  # a ticker's last chunk: its whole grid's statistics before any row is locked
                    joined = await asyncio.to_thread(universe_sweeps.join_ahead, request.shard_id, others, request)
                run_id, stored = await self.write(
                    universe_sweeps.complete_shard, job_id, request.shard_id, rows, request.execution_time_seconds,
                    request.bars, statistics, bh, request, joined,
                )
            await self.write(universe_sweeps.settle, job_id)
            log.info("sweep shard completion",
                     extra={"job_id": job_id, "shard_id": request.shard_id, "sweep_run_id": run_id, "stored": stored})
            return results_pb2.CompleteSweepResponse(sweep_run_id=run_id, stored=stored)
        run_id, stored = await self.write(
            sweeps.complete_sweep, job_id, rows, request.execution_time_seconds, request.bars, request.dataset_version_id,
            statistics,
        )
        log.info("sweep completion", extra={"job_id": job_id, "sweep_run_id": run_id, "stored": stored})
        return results_pb2.CompleteSweepResponse(sweep_run_id=run_id, stored=stored)

    # ------------------------------------------------------------ walk-forward

    @unary
    async def CompleteWalkForwardFold(self, request, context):
        job_id = require(request.job_id, "job_id")
        stored, completed = await self.write(
            walkforward.complete_fold, job_id, request.fold_number, request.result_json, request.execution_time_seconds
        )
        log.info("walk-forward fold", extra={"job_id": job_id, "fold": request.fold_number, "stored": stored,
                                             "completed": completed})
        return results_pb2.CompleteWalkForwardFoldResponse(stored=stored, completed=completed)

    @unary
    async def GetWalkForward(self, request, context):
        view = await self.read(walkforward.view, request.tenant_id, require(request.job_id, "job_id"))
        return results_pb2.GetWalkForwardResponse(walkforward_json=json.dumps(view, allow_nan=False))

    @unary
    async def FailJob(self, request, context):
        job_id = require(request.job_id, "job_id")
        if request.shard_id:  # one shard failed alone (a ticker without enough data)
            def fail_shard(s: Session) -> Job:
                job = jobs.get_job_any(s, job_id)
                return self.kinds.sharded(job).fail_shard(s, job_id, request.shard_id, request.error_message)

            job = await self.write(fail_shard)
            log.info("shard failed by the engine", extra={"job_id": job_id, "shard_id": request.shard_id})
            return results_pb2.FailJobResponse(job=self.kinds.job_proto(job))
        job = await self.write(jobs.fail_job, self.kinds, job_id, request.error_message)
        log.info("job failed by the engine", extra={"job_id": job.job_id, "state": job.state})
        return results_pb2.FailJobResponse(job=self.kinds.job_proto(job))
