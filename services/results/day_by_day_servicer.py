"""gRPC servicers of `hindsight.backtest.v1`: StrategiesService and DayBacktestService.

They share the results servicer's database, readiness and error mapping; the
domain code is services.results.strategies and services.results.daybyday.
Day-by-day jobs are submitted through ResultsService.SubmitJob (kind
"day-backtest"), which hands them to `DayBacktestServicer.submit`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

from google.protobuf.json_format import MessageToDict, ParseDict
from hindsight.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from hindsight.results.v1 import results_pb2
from sqlalchemy.exc import IntegrityError

from libs import grpc_util
from services.results import daybyday, strategies
from services.results.daybyday import DayConfig, DayIn
from services.results.errors import InvalidArgument
from services.results.models_daybyday import Strategy
from services.results.servicer import (
    ResultsServicer,
    _page_limit,
    _require,
    _submitted_parameters,
    _unary,
    job_to_proto,
)
from services.results.timefmt import rfc3339, utcnow
from services.results.trace_context import trace_headers

log = logging.getLogger(__name__)

STRATEGIES_SERVICE = grpc_util.service_name(backtest_pb2, "StrategiesService")
DAY_BACKTEST_SERVICE = grpc_util.service_name(backtest_pb2, "DayBacktestService")
DEFAULT_STRATEGY_LIMIT = 100


def strategy_to_proto(row: Strategy) -> backtest_pb2.Strategy:
    return backtest_pb2.Strategy(
        strategy_id=row.strategy_id,
        name=row.name,
        definition_json=json.dumps(row.definition),
        created_at=rfc3339(row.created_at),
        updated_at=rfc3339(row.updated_at),
    )


def spec_to_proto(spec: dict) -> backtest_pb2.DayBacktestSpec:
    return ParseDict(spec, backtest_pb2.DayBacktestSpec(), ignore_unknown_fields=True)


class StrategiesServicer(backtest_pb2_grpc.StrategiesServiceServicer):
    """Strategies CRUD over the results database."""

    def __init__(self, results: ResultsServicer) -> None:
        self.results = results

    @_unary
    async def CreateStrategy(self, request, context):
        tenant_id = _require(request.tenant_id, "tenant_id")
        row = await self.results._write(strategies.create_strategy, tenant_id, request.definition_json)
        log.info("strategy created", extra={"tenant_id": tenant_id, "strategy_id": row.strategy_id})
        return backtest_pb2.CreateStrategyResponse(strategy=strategy_to_proto(row))

    @_unary
    async def GetStrategy(self, request, context):
        row = await self.results._read(strategies.get_strategy, request.tenant_id, _require(request.strategy_id, "strategy_id"))
        return backtest_pb2.GetStrategyResponse(strategy=strategy_to_proto(row))

    @_unary
    async def ListStrategies(self, request, context):
        limit = _page_limit(request.limit, request.offset, DEFAULT_STRATEGY_LIMIT)
        rows, total = await self.results._read(strategies.list_strategies, request.tenant_id, limit, request.offset)
        return backtest_pb2.ListStrategiesResponse(strategies=[strategy_to_proto(r) for r in rows], total=total)

    @_unary
    async def PutStrategy(self, request, context):
        tenant_id = _require(request.tenant_id, "tenant_id")
        for attempt in range(3):
            try:
                row, created = await self.results._write(
                    strategies.put_strategy, tenant_id, _require(request.strategy_id, "strategy_id"), request.definition_json
                )
                break
            except IntegrityError:
                if attempt == 2:
                    raise
        return backtest_pb2.PutStrategyResponse(strategy=strategy_to_proto(row), created=created)

    @_unary
    async def DeleteStrategy(self, request, context):
        sid = await self.results._write(
            strategies.delete_strategy, request.tenant_id, _require(request.strategy_id, "strategy_id")
        )
        return backtest_pb2.DeleteStrategyResponse(strategy_id=sid)


class DayBacktestServicer(backtest_pb2_grpc.DayBacktestServiceServicer):
    """Day-by-day backtests: submission (via SubmitJob), what engines store, what users read."""

    def __init__(self, results: ResultsServicer, config: DayConfig) -> None:
        self.results = results
        self.config = config

    # ------------------------------------------------------------ called by ResultsServicer

    async def submit(self, request: results_pb2.SubmitJobRequest) -> results_pb2.SubmitJobResponse:
        if not request.HasField("day_backtest"):
            raise InvalidArgument("day_backtest spec is required for kind 'day-backtest'")
        parameters = _submitted_parameters(request)
        spec = MessageToDict(request.day_backtest, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        fields = {
            "tenant_id": request.tenant_id,
            "spec": spec,
            "parameters": parameters,
            "webhook_url": request.webhook_url,
            "notify_email": request.notify_email,
            "timeout_seconds": request.timeout_seconds or self.results.default_timeout_seconds,
            "trace_id": request.trace_id,
            "headers": trace_headers(),
        }
        job, bt = await self.results._write(lambda s: daybyday.submit(s, self.config, **fields))
        log.info("day-by-day backtest queued", extra={"job_id": job.job_id, "tenant_id": job.tenant_id, "days": bt.total_days})
        msg = job_to_proto(job)
        msg.day_backtest.CopyFrom(spec_to_proto(daybyday.spec_of(bt)))
        return results_pb2.SubmitJobResponse(job=msg)

    async def spec_of_job(self, job_id: str) -> backtest_pb2.DayBacktestSpec:
        bt = await self.results._read(daybyday.run_of, job_id)
        return spec_to_proto(daybyday.spec_of(bt))

    # ------------------------------------------------------------ user side

    @_unary
    async def FindBacktest(self, request, context):
        bt = await self.results._read(daybyday.find_backtest, request.tenant_id, _require(request.backtest_id, "backtest_id"))
        return backtest_pb2.FindBacktestResponse(job_id=bt.job_id, spec=spec_to_proto(daybyday.spec_of(bt)))

    @_unary
    async def GetBacktestStatus(self, request, context):
        job, bt, estimate = await self.results._read(daybyday.status, request.tenant_id, _require(request.job_id, "job_id"))
        return backtest_pb2.GetBacktestStatusResponse(
            job_id=job.job_id,
            user_id=bt.user_id,
            strategy_id=bt.strategy_id,
            status=job.state,
            current_date=bt.current_date,
            completed_days=bt.completed_days,
            total_days=bt.total_days,
            percentage=round(bt.completed_days / max(1, bt.total_days) * 100, 1),
            started_at=rfc3339(job.started_at),
            estimated_completion=estimate,
            error=job.error_message,
            backtest_id=bt.backtest_id,
        )

    @_unary
    async def GetBacktestMetadata(self, request, context):
        bt, job, days = await self.results._read(
            daybyday.metadata, request.tenant_id, request.user_id, request.strategy_id
        )
        return backtest_pb2.GetBacktestMetadataResponse(
            job_id=job.job_id,
            spec=spec_to_proto(daybyday.spec_of(bt)),
            status=job.state,
            created_at=rfc3339(bt.created_at),
            expires_at=rfc3339(bt.expires_at),
            days=[
                backtest_pb2.DaySummary(
                    date=d.date,
                    day_number=d.day_number,
                    positions=d.positions,
                    pnl=d.pnl,
                    has_data=d.positions > 0,
                    file_size_kb=round(d.file_bytes / 1024, 1),
                    winning_trades=d.winning_trades,
                    losing_trades=d.losing_trades,
                )
                for d in days
            ],
        )

    @_unary
    async def GetDayFiles(self, request, context):
        files = await self.results._read(
            daybyday.day_files,
            self.config,
            request.tenant_id,
            request.user_id,
            request.strategy_id,
            _require(request.date, "date"),
            list(request.names),
            request.job_id,
        )
        return backtest_pb2.GetDayFilesResponse(files=[backtest_pb2.DayFile(name=n, data=d) for n, d in files])

    @_unary
    async def ClearBacktestData(self, request, context):
        removed = await self.results._write(
            daybyday.clear, self.config, request.tenant_id, request.user_id, request.strategy_id
        )
        log.info("day-by-day artifacts cleared", extra={"tenant_id": request.tenant_id, "files": removed.files})
        return backtest_pb2.ClearBacktestDataResponse(deleted_files=removed.files, freed_bytes=removed.bytes)

    @_unary
    async def GetCleanupStatus(self, request, context):
        return backtest_pb2.GetCleanupStatusResponse(cleanup_enabled=True, ttl_hours=self.config.ttl_hours)

    @_unary
    async def RunCleanup(self, request, context):
        tenant_id = _require(request.tenant_id, "tenant_id")
        ttl = request.ttl_hours
        if not 0 <= ttl <= 24 * 3650:
            raise InvalidArgument("ttl_hours must be between 0 and 87600")
        cutoff = utcnow() - timedelta(hours=ttl)
        runs, freed = await self.results._write(
            lambda s: daybyday.cleanup(s, self.config, tenant_id=tenant_id, created_before=cutoff)
        )
        return backtest_pb2.RunCleanupResponse(deleted_strategies=runs, freed_bytes=freed, cutoff_time=rfc3339(cutoff))

    # ------------------------------------------------------------ engine side

    @_unary
    async def StoreDays(self, request, context):
        job_id = _require(request.job_id, "job_id")
        days = [
            DayIn(
                date=d.date,
                day_number=d.day_number,
                summary=json.loads(d.summary_json or "{}"),
                positions=d.positions,
                pnl=d.pnl,
                winning=d.winning_trades,
                losing=d.losing_trades,
                largest_win=d.largest_win,
                largest_loss=d.largest_loss,
                files=[(f.name, f.data) for f in d.files],
            )
            for d in request.days
        ]
        stop, reason = await self.results._write(daybyday.store_days, self.config, job_id, days)
        return backtest_pb2.StoreDaysResponse(stop=stop, reason=reason)

    @_unary
    async def CompleteDayBacktest(self, request, context):
        job_id = _require(request.job_id, "job_id")
        stored, completed = await self.results._write(
            daybyday.complete, job_id, request.execution_time_seconds, request.bars, request.whole_range
        )
        log.info("day-by-day backtest completion", extra={"job_id": job_id, "stored": stored, "completed": completed})
        return backtest_pb2.CompleteDayBacktestResponse(stored=stored, completed=completed)


def registrations(strategies_servicer: StrategiesServicer, day_servicer: DayBacktestServicer):
    """`register(server)` callables for grpc_util.start_server."""

    def reg_strategies(server) -> str:
        backtest_pb2_grpc.add_StrategiesServiceServicer_to_server(strategies_servicer, server)
        return STRATEGIES_SERVICE

    def reg_days(server) -> str:
        backtest_pb2_grpc.add_DayBacktestServiceServicer_to_server(day_servicer, server)
        return DAY_BACKTEST_SERVICE

    return [reg_strategies, reg_days]



class ArtifactCleanup:
    """Deletes expired day-by-day artifacts at start and every `interval` seconds, until `stopping` is set."""

    def __init__(self, results: ResultsServicer, config: DayConfig, interval: float) -> None:
        self.results = results
        self.config = config
        self.interval = interval
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="results-artifact-cleanup")

    def run_once(self) -> tuple[int, int]:
        # Look before taking the write lock: most passes find nothing to delete.
        with self.results.db.read() as s:
            if not daybyday.has_expired(s):
                return 0, 0
        with self.results.db.write() as s:
            return daybyday.cleanup(s, self.config, tenant_id=None, created_before=None)

    async def _run(self) -> None:
        stopping = self.results.stopping
        while not stopping.is_set():
            try:
                runs, freed = await self.results.db.run(self.run_once)
                if runs:
                    log.info("expired artifacts deleted", extra={"runs": runs, "bytes": freed})
            except Exception:
                if stopping.is_set():
                    return
                log.exception("artifact cleanup failed")
            if self.interval <= 0:
                return
            try:
                await asyncio.wait_for(stopping.wait(), self.interval)
            except TimeoutError:
                pass


def wire_day_backtests(results: ResultsServicer, settings) -> tuple[list, ArtifactCleanup]:
    """Create the strategies and day-by-day servicers for `results`; returns their gRPC
    registrations and the cleanup loop (start it once the database is ready)."""
    from services.results.artifacts import ArtifactStore

    config = DayConfig(
        ArtifactStore(settings.artifact_root()),
        float(settings.hindsight_artifact_ttl_hours),
        settings.day_shard_days(),
    )
    day = DayBacktestServicer(results, config)
    results.day_backtests = day
    cleanup = ArtifactCleanup(results, config, float(settings.hindsight_artifact_cleanup_interval_seconds))
    return registrations(StrategiesServicer(results), day), cleanup
