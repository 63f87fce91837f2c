"""gRPC servicers of `hindsight.backtest.v1`: StrategiesService and DayBacktestService.

They share the results service's database, readiness and error mapping
(services.results.rpc); the domain code is services.results.strategies and
services.results.day_by_day. Day-by-day jobs are submitted through
ResultsService.SubmitJob (JOB_KIND_DAY_BY_DAY: services.results.kinds.day_by_day).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

from hindsight.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from sqlalchemy.exc import IntegrityError

from libs import grpc_util
from services.results import day_by_day, strategies
from services.results.day_by_day import DayByDayConfig, DayIn
from services.results.db import Database
from services.results.errors import InvalidArgument
from services.results.kinds.day_by_day import spec_to_proto
from services.results.models_day_by_day import Strategy
from services.results.rpc import DatabaseServicer, page_limit, require, unary
from services.results.timefmt import rfc3339, utcnow

log = logging.getLogger(__name__)

STRATEGIES_SERVICE = grpc_util.service_name(backtest_pb2, "StrategiesService")
DAY_BY_DAY_SERVICE = grpc_util.service_name(backtest_pb2, "DayBacktestService")
DEFAULT_STRATEGY_LIMIT = 100


def strategy_to_proto(row: Strategy) -> backtest_pb2.Strategy:
    return backtest_pb2.Strategy(
        strategy_id=row.strategy_id,
        name=row.name,
        definition_json=json.dumps(row.definition),
        created_at=rfc3339(row.created_at),
        updated_at=rfc3339(row.updated_at),
    )


class StrategiesServicer(DatabaseServicer, backtest_pb2_grpc.StrategiesServiceServicer):
    """Strategies CRUD over the results database."""

    @unary
    async def CreateStrategy(self, request, context):
        tenant_id = require(request.tenant_id, "tenant_id")
        row = await self.write(strategies.create_strategy, tenant_id, request.definition_json)
        log.info("strategy created", extra={"tenant_id": tenant_id, "strategy_id": row.strategy_id})
        return backtest_pb2.CreateStrategyResponse(strategy=strategy_to_proto(row))

    @unary
    async def GetStrategy(self, request, context):
        row = await self.read(strategies.get_strategy, request.tenant_id, require(request.strategy_id, "strategy_id"))
        return backtest_pb2.GetStrategyResponse(strategy=strategy_to_proto(row))

    @unary
    async def ListStrategies(self, request, context):
        limit = page_limit(request.limit, request.offset, DEFAULT_STRATEGY_LIMIT)
        rows, total = await self.read(strategies.list_strategies, request.tenant_id, limit, request.offset)
        return backtest_pb2.ListStrategiesResponse(strategies=[strategy_to_proto(r) for r in rows], total=total)

    @unary
    async def PutStrategy(self, request, context):
        tenant_id = require(request.tenant_id, "tenant_id")
        for attempt in range(3):
            try:
                row, created = await self.write(
                    strategies.put_strategy, tenant_id, require(request.strategy_id, "strategy_id"), request.definition_json
                )
                break
            except IntegrityError:
                if attempt == 2:
                    raise
        return backtest_pb2.PutStrategyResponse(strategy=strategy_to_proto(row), created=created)

    @unary
    async def DeleteStrategy(self, request, context):
        sid = await self.write(
            strategies.delete_strategy, request.tenant_id, require(request.strategy_id, "strategy_id")
        )
        return backtest_pb2.DeleteStrategyResponse(strategy_id=sid)


class DayByDayServicer(DatabaseServicer, backtest_pb2_grpc.DayBacktestServiceServicer):
    """Day-by-day backtests: what engines store, what users read (submission: ResultsService.SubmitJob)."""

    def __init__(self, db: Database, ready: asyncio.Event, config: DayByDayConfig) -> None:
        super().__init__(db, ready)
        self.config = config

    # ------------------------------------------------------------ user side

    @unary
    async def FindBacktest(self, request, context):
        bt = await self.read(day_by_day.find_backtest, request.tenant_id, require(request.backtest_id, "backtest_id"))
        return backtest_pb2.FindBacktestResponse(job_id=bt.job_id, spec=spec_to_proto(day_by_day.spec_of(bt)))

    @unary
    async def GetBacktestStatus(self, request, context):
        job, bt, estimate = await self.read(day_by_day.status, request.tenant_id, require(request.job_id, "job_id"))
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

    @unary
    async def GetBacktestMetadata(self, request, context):
        bt, job, days = await self.read(
            day_by_day.metadata, request.tenant_id, request.user_id, request.strategy_id
        )
        return backtest_pb2.GetBacktestMetadataResponse(
            job_id=job.job_id,
            spec=spec_to_proto(day_by_day.spec_of(bt)),
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

    @unary
    async def GetDayFiles(self, request, context):
        files = await self.read(
            day_by_day.day_files,
            self.config,
            request.tenant_id,
            request.user_id,
            request.strategy_id,
            require(request.date, "date"),
            list(request.names),
            request.job_id,
        )
        return backtest_pb2.GetDayFilesResponse(files=[backtest_pb2.DayFile(name=n, data=d) for n, d in files])

    @unary
    async def ClearBacktestData(self, request, context):
        removed = await self.write(
            day_by_day.clear, self.config, request.tenant_id, request.user_id, request.strategy_id
        )
        log.info("day-by-day artifacts cleared", extra={"tenant_id": request.tenant_id, "files": removed.files})
        return backtest_pb2.ClearBacktestDataResponse(deleted_files=removed.files, freed_bytes=removed.bytes)

    @unary
    async def GetCleanupStatus(self, request, context):
        return backtest_pb2.GetCleanupStatusResponse(cleanup_enabled=True, ttl_hours=self.config.ttl_hours)

    @unary
    async def RunCleanup(self, request, context):
        tenant_id = require(request.tenant_id, "tenant_id")
        ttl = request.ttl_hours
        if not 0 <= ttl <= 24 * 3650:
            raise InvalidArgument("ttl_hours must be between 0 and 87600")
        cutoff = utcnow() - timedelta(hours=ttl)
        runs, freed = await self.write(
            lambda s: day_by_day.cleanup(s, self.config, tenant_id=tenant_id, created_before=cutoff)
        )
        return backtest_pb2.RunCleanupResponse(deleted_strategies=runs, freed_bytes=freed, cutoff_time=rfc3339(cutoff))

    # ------------------------------------------------------------ engine side

    @unary
    async def StoreDays(self, request, context):
        job_id = require(request.job_id, "job_id")
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
                gross_profit=d.gross_profit,
                gross_loss=d.gross_loss,
                trade_seconds=d.trade_seconds,
            )
            for d in request.days
        ]
        stop, reason = await self.write(day_by_day.store_days, self.config, job_id, days)
        return backtest_pb2.StoreDaysResponse(stop=stop, reason=reason)

    @unary
    async def CompleteDayBacktest(self, request, context):
        job_id = require(request.job_id, "job_id")
        stored, completed = await self.write(
            day_by_day.complete, self.config, job_id, request.execution_time_seconds, request.bars,
            request.whole_range,
        )
        log.info("day-by-day backtest completion", extra={"job_id": job_id, "stored": stored, "completed": completed})
        return backtest_pb2.CompleteDayBacktestResponse(stored=stored, completed=completed)


def registrations(strategies_servicer: StrategiesServicer, day_servicer: DayByDayServicer):
    """`register(server)` callables for grpc_util.start_server."""

    def reg_strategies(server) -> str:
        backtest_pb2_grpc.add_StrategiesServiceServicer_to_server(strategies_servicer, server)
        return STRATEGIES_SERVICE

    def reg_days(server) -> str:
        backtest_pb2_grpc.add_DayBacktestServiceServicer_to_server(day_servicer, server)
        return DAY_BY_DAY_SERVICE

    return [reg_strategies, reg_days]


class ArtifactCleanup:
    """Deletes expired day-by-day artifacts at start and every `interval` seconds, until `stopping` is set."""

    def __init__(self, db: Database, stopping: asyncio.Event, config: DayByDayConfig, interval: float) -> None:
        self.db = db
        self.stopping = stopping
        self.config = config
        self.interval = interval
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="results-artifact-cleanup")

    def run_once(self) -> tuple[int, int]:
        # Look before taking the write lock: most passes find nothing to delete.
        with self.db.read() as s:
            if not day_by_day.has_expired(s):
                return 0, 0
        with self.db.write() as s:
            return day_by_day.cleanup(s, self.config, tenant_id=None, created_before=None)

    async def _run(self) -> None:
        stopping = self.stopping
        while not stopping.is_set():
            try:
                runs, freed = await self.db.run(self.run_once)
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


def wire_day_by_day(
    db: Database, ready: asyncio.Event, stopping: asyncio.Event, config: DayByDayConfig, cleanup_interval: float
) -> tuple[list, ArtifactCleanup]:
    """The strategies and day-by-day servicers' gRPC registrations, and the artifact cleanup
    loop (start it once the database is ready; it ends when `stopping` is set)."""
    servicers = registrations(StrategiesServicer(db, ready), DayByDayServicer(db, ready, config))
    return servicers, ArtifactCleanup(db, stopping, config, cleanup_interval)
