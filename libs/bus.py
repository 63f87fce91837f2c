"""The message bus: RabbitMQ in the distributed mode, an in-process bus in standalone.

Both give the same semantics to the services:
- `publish` returns once the broker has taken the message (publisher confirms);
- a consumer's handler that returns acks the message; one that raises puts it
  back (nack + requeue); after `max_deliveries` deliveries the message goes to
  the queue's dead-letter queue (`<queue>.dead`) instead;
- queues are durable (quorum queues on RabbitMQ, which count deliveries);
- `publish(..., delay_seconds=d)` hands the message to the queue's consumers
  only after `d` seconds: on RabbitMQ it waits in a delay queue
  (`<queue>.delay.<ms>`, per-message TTL, dead-lettered back into `<queue>`
  when it expires), in-process on an asyncio timer. Nothing sleeps in the
  publisher or the consumer.

Both carry the trace context in the message headers (`traceparent`): a
publish is a PRODUCER span whose context goes into the headers, a handler runs
in a CONSUMER span that continues it (libs.telemetry).
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from libs import telemetry

log = logging.getLogger(__name__)

# Work for engines (JobMessage).
JOBS_QUEUE = "hindsight.jobs"
# Jobs that exhausted their deliveries; results fails them.
JOBS_DEAD_QUEUE = "hindsight.jobs.dead"
# Job ended events for the notifier (JobEndedMessage).
JOB_EVENTS_QUEUE = "hindsight.job-events"
# One attempt of a webhook/email delivery each (notify.v1.DeliveryTask); retries come back through its delay queues.
NOTIFY_QUEUE = "hindsight.notify.deliveries"
# Deliveries that exhausted their retries (or failed for good), kept for operators.
NOTIFY_DEAD_QUEUE = "hindsight.notify.deliveries.dead"
# Longest delay a delayed publish accepts (a day and a bit: the notifier retries for up to 24 hours).
MAX_DELAY_SECONDS = 2 * 86400


def delay_bucket_ms(delay_seconds: float) -> int:
    """The delay in ms, rounded to two significant digits (at least 1 ms).

    On RabbitMQ each bucket is one delay queue and every message in it has the
    same TTL, so messages expire in the order they were queued (a queue only
    expires messages at its head); rounding keeps the number of queues small
    while staying within 5% of the asked delay.
    """
    ms = max(1, round(float(delay_seconds) * 1000))
    digits = len(str(ms))
    if digits > 2:
        unit = 10 ** (digits - 2)
        ms = round(ms / unit) * unit
    return int(ms)


class BusUnavailable(Exception):
    """The broker cannot take the message now."""


@dataclass
class Delivery:
    """A message handed to a consumer."""

    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    # 1 on the first delivery.
    delivery_count: int = 1


Handler = Callable[[Delivery], Awaitable[None]]


class Consumer:
    """One `consume` registration; `cancel()` stops it alone (other consumers of the bus go on)."""

    def __init__(self, cancel: Callable[[], Awaitable[None]]) -> None:
        self._cancel = cancel
        self._cancelled = False

    async def cancel(self) -> None:
        """Stop taking messages; wait for the in-flight handler (or hand its message back)."""
        if not self._cancelled:
            self._cancelled = True
            await self._cancel()


class Bus(ABC):
    """Publish and consume protobuf-encoded messages on named durable queues."""

    def __init__(self, max_deliveries: int = 3) -> None:
        self.max_deliveries = max_deliveries

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def publish(self, queue: str, body: bytes, headers: dict[str, Any] | None = None, *, delay_seconds: float = 0.0) -> None:
        """Publish durably; raises BusUnavailable when the broker cannot take it.

        With `delay_seconds` > 0 the message reaches the queue's consumers after
        that delay (at most MAX_DELAY_SECONDS).
        """

    @abstractmethod
    async def consume(self, queue: str, handler: Handler, prefetch: int = 1) -> Consumer:
        """Start delivering the queue's messages to `handler`."""

    @abstractmethod
    async def declare(self, queue: str) -> None:
        """Make sure the durable queue (and its dead-letter queue) exists."""

    @abstractmethod
    async def stop_consuming(self) -> None:
        """Stop taking new messages; in-flight handlers finish (or nack)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def is_connected(self) -> bool: ...


class InProcessBus(Bus):
    """asyncio queues shared by the services of one standalone process.

    Messages live in memory only: on restart the results service re-publishes
    every unfinished job from the database, so nothing accepted is lost.
    """

    def __init__(self, max_deliveries: int = 3) -> None:
        super().__init__(max_deliveries)
        self._queues: dict[str, asyncio.Queue[Delivery]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._closed = False

    def _queue(self, name: str) -> asyncio.Queue[Delivery]:
        return self._queues.setdefault(name, asyncio.Queue())

    async def start(self) -> None:
        return None

    async def declare(self, queue: str) -> None:
        self._queue(queue)
        self._queue(queue + ".dead")

    async def publish(self, queue: str, body: bytes, headers: dict[str, Any] | None = None, *, delay_seconds: float = 0.0) -> None:
        if self._closed:
            raise BusUnavailable("bus closed")
        with telemetry.publishing(queue, headers) as traced:
            delivery = Delivery(body=body, headers=traced)
        if delay_seconds <= 0:
            self._queue(queue).put_nowait(delivery)
            return
        # Like RabbitMQ's delay queues: the message waits outside the queue, then joins it.
        delay = min(float(delay_seconds), MAX_DELAY_SECONDS)
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def due() -> None:
            if handle is not None:
                self._timers.discard(handle)
            if not self._closed:
                self._queue(queue).put_nowait(delivery)

        handle = loop.call_later(delay, due)
        self._timers.add(handle)

    async def consume(self, queue: str, handler: Handler, prefetch: int = 1) -> Consumer:
        handler = telemetry.traced_handler(queue, handler)
        tasks = [asyncio.create_task(self._worker(queue, handler)) for _ in range(max(1, prefetch))]
        self._tasks.extend(tasks)

        async def cancel() -> None:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks[:] = [t for t in self._tasks if t not in tasks]

        return Consumer(cancel)

    async def _worker(self, queue: str, handler: Handler) -> None:
        q = self._queue(queue)
        while True:
            delivery = await q.get()
            task: asyncio.Task[None] = asyncio.ensure_future(handler(delivery))
            self._inflight.add(task)
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                # Shutting down: hand the message back and let the handler finish.
                q.put_nowait(delivery)
                raise
            except Exception:
                log.exception("handler failed on %s (delivery %d)", queue, delivery.delivery_count)
                if delivery.delivery_count >= self.max_deliveries:
                    self._queue(queue + ".dead").put_nowait(delivery)
                else:
                    delivery.delivery_count += 1
                    q.put_nowait(delivery)
            finally:
                self._inflight.discard(task)

    async def stop_consuming(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def close(self) -> None:
        await self.stop_consuming()
        self._closed = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    def is_connected(self) -> bool:
        return not self._closed


class AmqpBus(Bus):
    """RabbitMQ through aio-pika: robust connection, confirms, quorum queues."""

    def __init__(self, url: str, name: str, max_deliveries: int = 3) -> None:
        super().__init__(max_deliveries)
        self._url = url
        self._name = name
        self._conn: Any = None
        self._pub_channel: Any = None
        self._consumers: list[tuple[Any, str]] = []
        self._declared: set[str] = set()
        self._inflight: set[asyncio.Task[None]] = set()
        self._inflight_queue: dict[asyncio.Task[None], str] = {}

    async def start(self) -> None:
        import aio_pika

        sep = "&" if "?" in self._url else "?"
        try:
            self._conn = await aio_pika.connect_robust(f"{self._url}{sep}name={self._name}", timeout=10)
        except Exception as exc:  # connection refused, DNS, auth
            raise BusUnavailable(f"cannot connect to the broker: {exc}") from exc
        # on_return_raises + mandatory: a message no queue takes fails the publish instead of vanishing.
        self._pub_channel = await self._conn.channel(publisher_confirms=True, on_return_raises=True)

    async def _declare(self, channel: Any, queue: str) -> Any:
        if queue.endswith(".dead"):
            # A dead-letter queue is a plain durable queue: nothing dead-letters out of it.
            return await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
        dead = queue + ".dead"
        await channel.declare_queue(dead, durable=True, arguments={"x-queue-type": "quorum"})
        return await channel.declare_queue(
            queue,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": max(0, self.max_deliveries - 1),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dead,
            },
        )

    async def declare(self, queue: str) -> None:
        if self._pub_channel is None:
            raise BusUnavailable("not connected to the broker")
        await self._declare(self._pub_channel, queue)
        self._declared.add(queue)

    async def _declare_delay(self, channel: Any, queue: str, ms: int) -> str:
        """The delay queue of `queue` for `ms`: nobody consumes it; each message expires
        after its TTL and is dead-lettered back into `queue`.

        A quorum queue with at-least-once dead-lettering, so a message that expires
        while the broker is busy or restarting is not dropped. It deletes itself
        (x-expires) once unused for ten minutes longer than its delay; it is
        re-declared before every publish, which resets that clock.
        """
        name = f"{queue}.delay.{ms}"
        await channel.declare_queue(
            name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": queue,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
                "x-expires": ms + 600_000,
            },
        )
        return name

    async def publish(self, queue: str, body: bytes, headers: dict[str, Any] | None = None, *, delay_seconds: float = 0.0) -> None:
        import aio_pika

        if self._conn is None or self._conn.is_closed or self._pub_channel is None:
            raise BusUnavailable("not connected to the broker")
        try:
            if queue not in self._declared:
                await self._declare(self._pub_channel, queue)
                self._declared.add(queue)
            routing_key, expiration = queue, None
            if delay_seconds > 0:
                ms = delay_bucket_ms(min(float(delay_seconds), MAX_DELAY_SECONDS))
                routing_key = await self._declare_delay(self._pub_channel, queue, ms)
                expiration = ms / 1000
            with telemetry.publishing(queue, headers) as traced:
                msg = aio_pika.Message(
                    body=body,
                    headers=traced,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    content_type="application/x-protobuf",
                    expiration=expiration,
                )
                await asyncio.wait_for(
                    self._pub_channel.default_exchange.publish(msg, routing_key=routing_key, mandatory=True), timeout=10
                )
        except Exception as exc:
            raise BusUnavailable(f"publish to {queue} failed: {exc}") from exc

    async def consume(self, queue: str, handler: Handler, prefetch: int = 1) -> Consumer:
        if self._conn is None:
            raise BusUnavailable("not connected to the broker")
        handler = telemetry.traced_handler(queue, handler)
        channel = await self._conn.channel()
        await channel.set_qos(prefetch_count=prefetch)
        q = await self._declare(channel, queue)

        async def on_message(message: Any) -> None:
            headers = dict(message.headers or {})
            count = int(headers.get("x-delivery-count", 0) or 0) + 1
            delivery = Delivery(body=message.body, headers=headers, delivery_count=count)
            task: Any = asyncio.current_task()
            self._inflight.add(task)
            self._inflight_queue[task] = queue  # cancelling one consumer waits only for its own handlers
            try:
                await handler(delivery)
            except asyncio.CancelledError:
                await message.nack(requeue=True)
                raise
            except Exception:
                log.exception("handler failed on %s (delivery %d)", queue, count)
                await message.nack(requeue=True)
            else:
                await message.ack()
            finally:
                self._inflight.discard(task)
                self._inflight_queue.pop(task, None)

        tag = await q.consume(on_message, no_ack=False)
        self._consumers.append((q, tag))

        async def cancel() -> None:
            try:
                await q.cancel(tag)
            except Exception:  # the connection may already be gone
                log.debug("cancel consumer failed", exc_info=True)
            if (q, tag) in self._consumers:
                self._consumers.remove((q, tag))
            pending = [t for t, name in self._inflight_queue.items() if name == queue]
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            await channel.close()

        return Consumer(cancel)

    async def stop_consuming(self) -> None:
        for q, tag in self._consumers:
            try:
                await q.cancel(tag)
            except Exception:  # the connection may already be gone
                log.debug("cancel consumer failed", exc_info=True)
        self._consumers.clear()
        if self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def close(self) -> None:
        await self.stop_consuming()
        if self._conn is not None:
            await self._conn.close()

    def is_connected(self) -> bool:
        """True only while a live transport exists: a robust connection that is
        reconnecting reports closed=False, so look at its current transport."""
        if self._conn is None or self._conn.is_closed:
            return False
        transport = getattr(self._conn, "transport", None)
        return transport is not None and not transport.connection.is_closed


def make_bus(amqp_url: str, name: str, max_deliveries: int = 3) -> Bus:
    """RabbitMQ when a URL is given, else the in-process bus."""
    return AmqpBus(amqp_url, name, max_deliveries) if amqp_url else InProcessBus(max_deliveries)
