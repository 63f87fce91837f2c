"""Background work of the results service: the outbox relay, the timeout
watchdog and the dead-letter consumer."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from hindsight.bus.v1 import bus_pb2

from libs.bus import Bus, BusUnavailable, Delivery
from services.results import jobs
from services.results.db import Database, wait_any
from services.results.jobs import KindLookup
from services.results.models import OutboxMessage
from services.results.timefmt import utcnow

log = logging.getLogger(__name__)

# Outbox header asking the relay for a delayed publish (seconds); the relay strips it.
DELAY_HEADER = "x-hindsight-delay-seconds"


class _Loop:
    """A background task that can be stopped between iterations."""

    def __init__(self) -> None:
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self, name: str) -> None:
        self._task = asyncio.create_task(self._run(), name=name)

    async def _run(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def _sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Sleep up to `seconds`; return early on stop (or when `wake` is set)."""
        await wait_any(self._stopping, *([wake] if wake is not None else []), timeout=seconds)

    async def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class OutboxRelay(_Loop):
    """Publishes unsent outbox rows in order and marks them sent; never drops one.

    Woken right after a local commit that added rows, and polls every
    `poll_seconds` for rows written by other replicas (or left by a crash).
    On Postgres, rows are claimed with FOR UPDATE SKIP LOCKED so replicas do
    not publish the same row twice.
    """

    def __init__(self, db: Database, bus: Bus, poll_seconds: float = 0.5, batch: int = 200) -> None:
        super().__init__()
        self.db = db
        self.bus = bus
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.published = 0

    async def _run(self) -> None:
        backoff = 0.2
        wake = self.db.wakeups.outbox
        while not self._stopping.is_set():
            wake.clear()
            try:
                n = await self._relay_batch()
            except BusUnavailable as exc:
                log.warning("outbox relay: broker unavailable, retrying in %.1fs: %s", backoff, exc)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            except Exception:
                log.exception("outbox relay failed, retrying in %.1fs", backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.2
            if n < self.batch:
                await self._sleep(self.poll_seconds, wake)

    async def _relay_batch(self) -> int:
        if self.db.is_sqlite:
            return await self._relay_batch_single_writer()
        return await self._relay_batch_claimed()

    def _unsent(self, session, lock: bool) -> list[tuple[int, str, bytes, dict[str, Any]]]:
        q = (
            sa.select(OutboxMessage.id, OutboxMessage.queue, OutboxMessage.body, OutboxMessage.headers)
            .where(OutboxMessage.sent_at.is_(None))
            .order_by(OutboxMessage.id)
            .limit(self.batch)
        )
        if lock:
            q = q.with_for_update(skip_locked=True)
        return [tuple(r) for r in session.execute(q)]

    async def _publish(self, rows, sent: list[int]) -> None:
        for row_id, queue, body, headers in rows:
            headers = dict(headers or {})
            delay = float(headers.pop(DELAY_HEADER, 0) or 0)
            if delay > 0:
                await self.bus.publish(queue, body, headers, delay_seconds=delay)
            else:
                await self.bus.publish(queue, body, headers)
            sent.append(row_id)

    def _mark_sent(self, session, ids: list[int]) -> None:
        if ids:
            session.execute(sa.update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(sent_at=utcnow()))

    async def _relay_batch_single_writer(self) -> int:
        # SQLite: this process is the only writer and runs one relay.
        def read():
            with self.db.read() as s:
                return self._unsent(s, lock=False)

        def mark(ids: list[int]) -> None:
            with self.db.write() as s:
                self._mark_sent(s, ids)

        rows = await self.db.run(read)
        sent: list[int] = []
        try:
            await self._publish(rows, sent)
        finally:
            if sent:
                await self.db.run(mark, sent)
                self.published += len(sent)
        return len(rows)

    async def _relay_batch_claimed(self) -> int:
        # Postgres: hold the claimed rows' locks while publishing, commit the marks.
        session = self.db.session()
        try:
            session.begin()
            rows = await self.db.run(self._unsent, session, True)
            sent: list[int] = []
            try:
                await self._publish(rows, sent)
            finally:

                def commit() -> None:
                    self._mark_sent(session, sent)
                    session.commit()

                await self.db.run(commit)
                self.published += len(sent)
            return len(rows)
        finally:
            await self.db.run(session.close)


class TimeoutWatchdog(_Loop):
    """Fails queued/running jobs whose deadline (created_at + timeout) has passed;
    now and then deletes outbox rows published more than a day ago."""

    def __init__(
        self,
        db: Database,
        kinds: KindLookup,
        interval_seconds: float = 1.0,
        outbox_retention: timedelta = timedelta(days=1),
    ) -> None:
        super().__init__()
        self.db = db
        self.kinds = kinds
        self.interval_seconds = interval_seconds
        self.outbox_retention = outbox_retention
        self._next_prune = 0.0

    def prune_once(self) -> int:
        with self.db.write() as s:
            return jobs.prune_sent_outbox(s, utcnow() - self.outbox_retention)

    def sweep_once(self) -> list[str]:
        now = utcnow()
        with self.db.read() as s:
            overdue = jobs.overdue_job_ids(s, now)
        failed = []
        for job_id in overdue:
            with self.db.write() as s:
                if jobs.time_out_job(s, self.kinds, job_id, now):
                    failed.append(job_id)
        for job_id in failed:
            log.info("job timed out", extra={"job_id": job_id})
        return failed

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.db.run(self.sweep_once)
                now = asyncio.get_running_loop().time()
                if now >= self._next_prune:
                    self._next_prune = now + 600
                    await self.db.run(self.prune_once)
            except Exception:
                log.exception("timeout watchdog failed")
            await self._sleep(self.interval_seconds)


class DeadLetterHandler:
    """Fails the job of each message that exhausted its deliveries on the jobs queue."""

    def __init__(self, db: Database, kinds: KindLookup, max_deliveries: int) -> None:
        self.db = db
        self.kinds = kinds
        self.max_deliveries = max_deliveries

    async def __call__(self, delivery: Delivery) -> None:
        try:
            msg = bus_pb2.JobMessage.FromString(delivery.body)
        except Exception:
            log.error("dead-lettered message is not a JobMessage; dropped")
            return

        def fail() -> bool:
            with self.db.write() as s:
                if msg.shard_id:  # one shard of a sharded job (a universe sweep's ticker)
                    return jobs.fail_dead_lettered_shard(s, self.kinds, msg.job_id, msg.shard_id, self.max_deliveries)
                return jobs.fail_dead_lettered(s, self.kinds, msg.job_id, self.max_deliveries)

        if await self.db.run(fail):
            log.warning("job failed after exhausting its deliveries", extra={"job_id": msg.job_id})
        else:
            log.info("dead-lettered job already ended or unknown", extra={"job_id": msg.job_id})
