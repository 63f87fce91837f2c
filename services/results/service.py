"""Wiring of the results service, shared by `python -m services.results` and the standalone launcher."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from hindsight.notify.v1 import notify_pb2_grpc
from hindsight.results.v1 import results_pb2, results_pb2_grpc
from hindsight.runs.v1 import runs_pb2_grpc

from libs import grpc_util, telemetry
from libs.bus import JOB_EVENTS_QUEUE, JOBS_DEAD_QUEUE, JOBS_QUEUE, Bus, Consumer, InProcessBus
from libs.secretbox import SecretBox, SecretKeyError, key_text_for
from libs.settings import DEV_TENANT, SEED_DEV_API_KEY, Settings
from services.results import datasets, jobs, keys, notifications
from services.results.artifacts import ArtifactStore
from services.results.background import DeadLetterHandler, OutboxRelay, TimeoutWatchdog
from services.results.day_by_day import DayByDayConfig
from services.results.day_by_day_servicer import wire_day_by_day
from services.results.db import Database, database_url
from services.results.demo_chain import DEMO_CHAIN_TICKER, ensure_demo_chain
from services.results.kinds import registry
from services.results.kinds.registry import KindRegistry
from services.results.market_store import MarketStore
from services.results.metrics import ResultsMetrics
from services.results.notifications_servicer import SERVICE_NAME as NOTIFICATIONS_SERVICE_NAME
from services.results.notifications_servicer import NotificationsServicer
from services.results.quotas import TenantLimits
from services.results.runs_servicer import SERVICE_NAME as RUNS_SERVICE_NAME
from services.results.runs_servicer import RunsServicer
from services.results.servicer import ResultsServicer
from services.results.timefmt import utcnow
from services.results.universes_servicer import UniversesServicer
from services.results.universes_servicer import registration as universes_registration
from services.results.uploads import UploadSlots, limit_malloc_arenas

log = logging.getLogger(__name__)

SERVICE_NAME = grpc_util.service_name(results_pb2, "ResultsService")


@dataclass
class ResultsHandle:
    """A running results service: gRPC server, database, background tasks."""

    grpc: grpc_util.GrpcServer
    db: Database
    servicer: ResultsServicer
    bus: Bus
    relay: OutboxRelay
    watchdog: TimeoutWatchdog
    dead_letters: Consumer | None = None
    metrics: ResultsMetrics = field(default_factory=ResultsMetrics)
    _stopped: bool = field(default=False, repr=False)

    @property
    def port(self) -> int:
        return self.grpc.port

    @property
    def database_url(self) -> str:
        return self.db.url

    async def stop(self, grace: float = 5.0) -> None:
        """Stop background work and the dead-letter consumer, then drain gRPC calls within `grace`."""
        if self._stopped:
            return
        self._stopped = True
        await self.grpc.set_serving(False)
        self.servicer.stopping.set()
        await self.watchdog.stop()
        await self.relay.stop()
        await self.metrics.stop()
        if self.dead_letters is not None:
            await self.dead_letters.cancel()
        await self.grpc.stop(grace)
        await asyncio.to_thread(self.db.close)


def bootstrap(db: Database, settings: Settings, market: MarketStore) -> None:
    """Dev key (standalone on loopback without HINDSIGHT_REQUIRE_AUTH only) and demo data
    (standalone), bootstrap tenants and keys (any mode). The demo chain only with
    HINDSIGHT_DEMO_OPTION_CHAIN."""
    chains = settings.hindsight_demo_option_chain
    if settings.dev_access():
        with db.write() as s:
            if keys.ensure_key(s, DEV_TENANT, settings.hindsight_dev_api_key):
                log.info("dev API key created", extra={"tenant_id": DEV_TENANT})
        with db.write() as s:
            added = datasets.ensure_demo_datasets(s, market, DEV_TENANT, only_if_none=False)
            if chains and ensure_demo_chain(s, market, DEV_TENANT):
                added.append(DEMO_CHAIN_TICKER)
            if added:
                log.info("demo datasets loaded", extra={"tenant_id": DEV_TENANT, "tickers": ",".join(added)})
    elif settings.standalone:
        log.info("no dev API key (%s): create keys with services.results.admin or HINDSIGHT_BOOTSTRAP_KEYS",
                 settings.dev_access_off_reason())
    if not settings.dev_access() and SEED_DEV_API_KEY in {key for _, key in settings.bootstrap_keys()}:
        log.warning("HINDSIGHT_BOOTSTRAP_KEYS names the seeds' public dev key: anyone who read the README can use it")
    for tenant_id, key in settings.bootstrap_keys():
        with db.write() as s:
            if keys.ensure_key(s, tenant_id, key):
                log.info("bootstrap key created", extra={"tenant_id": tenant_id})
        with db.write() as s:
            added = datasets.ensure_demo_datasets(s, market, tenant_id, only_if_none=True)
            # The demo chain goes with the demo bars it is priced from.
            if added and chains and ensure_demo_chain(s, market, tenant_id):
                added.append(DEMO_CHAIN_TICKER)
            if added:
                log.info("demo datasets loaded", extra={"tenant_id": tenant_id, "tickers": ",".join(added)})


def _requeue_active_jobs(db: Database, kinds: KindRegistry) -> int:
    with db.write() as s:
        return jobs.requeue_active_jobs(s, kinds)


def _requeue_notifications(db: Database) -> None:
    """Standalone restart: job-ended events and delivery tasks of the lost in-memory queues, again."""
    with db.write() as s:
        events = notifications.resend_unrecorded_events(s, since=utcnow() - timedelta(days=1))
        tasks = notifications.requeue_pending(s)
    if events or tasks:
        log.info("re-queued notifications", extra={"events": events, "deliveries": tasks})


async def start(settings: Settings, bus: Bus, *, port: int | None = None) -> ResultsHandle:
    """Start the results service on `port` (None: settings.results_port; 0: a free port).

    The gRPC server answers health NOT_SERVING (and RPCs UNAVAILABLE) until the
    database is migrated and bootstrapped.
    """
    limit_malloc_arenas()  # before the pools start their threads (see uploads.py)
    url = database_url(settings.database_url, settings.standalone, settings.hindsight_data_dir)
    try:
        key_text = key_text_for(settings.hindsight_secret_key, settings.standalone, settings.hindsight_data_dir)
        box = SecretBox(key_text)
    except SecretKeyError as exc:
        raise SystemExit(str(exc)) from None
    telemetry.register_secrets(*key_text.split(","))
    db = Database(url, secret_box=box)
    db.wakeups.bind(asyncio.get_running_loop())
    market = MarketStore(settings.market_root())
    day_by_day = DayByDayConfig(
        ArtifactStore(settings.artifact_root()), float(settings.hindsight_artifact_ttl_hours), market,
        settings.day_shard_days(),
    )
    kinds = registry.build(day_by_day, market, shard_bar_pairs=settings.hindsight_shard_bar_pairs)
    servicer = ResultsServicer(db, bus, kinds, default_timeout_seconds=settings.hindsight_job_timeout_seconds)
    # The dev key outside standalone on loopback: refused even if an earlier start created it.
    servicer.refused_key_hashes = keys.refused_key_hashes(settings)
    servicer.upload_slots = UploadSlots(settings.hindsight_max_concurrent_uploads)
    servicer.limits = TenantLimits.of(settings)
    # Standalone spools uploads under the data directory (a /tmp on tmpfs would be memory too).
    servicer.upload_dir = settings.hindsight_data_dir / "uploads" if settings.standalone else None
    servicer.market = market

    def register(server) -> str:
        results_pb2_grpc.add_ResultsServiceServicer_to_server(servicer, server)
        return SERVICE_NAME

    runs_servicer = RunsServicer(db, servicer.ready)

    def register_runs(server) -> str:
        runs_pb2_grpc.add_RunsServiceServicer_to_server(runs_servicer, server)
        return RUNS_SERVICE_NAME

    notifications_servicer = NotificationsServicer(db, servicer.ready)

    def register_notifications(server) -> str:
        notify_pb2_grpc.add_NotificationsServiceServicer_to_server(notifications_servicer, server)
        return NOTIFICATIONS_SERVICE_NAME

    register_universes = universes_registration(UniversesServicer(db, servicer.ready))

    day_registrations, artifact_cleanup = wire_day_by_day(
        db, servicer.ready, servicer.stopping, day_by_day, float(settings.hindsight_artifact_cleanup_interval_seconds)
    )

    server = await grpc_util.start_server(
        [register, register_runs, register_notifications, register_universes, *day_registrations],
        host=settings.grpc_bind_host(),
        port=settings.results_port if port is None else port,
        token=settings.hindsight_internal_token,
        port_setting="RESULTS_PORT",
    )
    dead_letters: Consumer | None = None
    metrics = ResultsMetrics(kind_names=kinds.names)
    try:
        await db.run(db.migrate, market.root)
        sealed = await db.run(db.seal_plaintext_secrets)
        if sealed:
            log.info("plaintext secrets encrypted at rest", extra={"rows": sealed})
        await asyncio.to_thread(servicer.market.clear_staging)  # imports a crash cut short
        await db.run(bootstrap, db, settings, market)
        if isinstance(bus, InProcessBus):
            # Messages of the in-process bus died with the previous process.
            n = await db.run(_requeue_active_jobs, db, kinds)
            if n:
                log.info("re-queued unfinished jobs", extra={"jobs": n})
            await db.run(_requeue_notifications, db)
        # The queues (and the jobs queue's dead-letter queue) exist before anything is published or consumed.
        await bus.declare(JOBS_QUEUE)
        await bus.declare(JOB_EVENTS_QUEUE)
        dead_handler = DeadLetterHandler(db, kinds, settings.hindsight_job_max_deliveries)
        dead_letters = await bus.consume(JOBS_DEAD_QUEUE, dead_handler)
        relay = OutboxRelay(db, bus)
        relay.start("results-outbox-relay")
        watchdog = TimeoutWatchdog(db, kinds)
        watchdog.start("results-timeout-watchdog")
        artifact_cleanup.start()  # expired day-by-day artifacts: now, then periodically
        metrics.start(db)  # counts ended jobs, reads the database gauges now and then
    except BaseException:
        await metrics.stop()
        if dead_letters is not None:
            await dead_letters.cancel()
        await server.stop(0)
        await asyncio.to_thread(db.close)
        raise
    servicer.ready.set()
    await server.set_serving(True)
    log.info("results serving", extra={"port": server.port, "database": db.engine.dialect.name})
    return ResultsHandle(server, db, servicer, bus, relay, watchdog, dead_letters, metrics)
