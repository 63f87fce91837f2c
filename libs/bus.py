"""The message bus: RabbitMQ in the distributed mode, an in-process bus in standalone.

Both give the same semantics to the services:
- `publish` returns once the broker has taken the message (publisher confirms);
- a consumer's handler that returns acks the message; one that raises puts it
  back (nack + requeue); after `max_deliveries` deliveries the message goes to
  the queue's dead-letter queue (`<queue>.dead`) instead;
- queues are durable (quorum queues on RabbitMQ, which count deliveries).
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Work for engines (JobMessage).
JOBS_QUEUE = "hindsight.jobs"
# Jobs that exhausted their deliveries; results fails them.
JOBS_DEAD_QUEUE = "hindsight.jobs.dead"
# Job ended events for the notifier (JobEndedMessage).
JOB_EVENTS_QUEUE = "hindsight.job-events"


class BusUnavailable(Exception):
    """The broker cannot take the message now."""


@dataclass
class Delivery:
    """A message handed to a consumer."""

    body: bytes
    headers: dict = field(default_factory=dict)
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
    async def publish(self, queue: str, body: bytes, headers: dict | None = None) -> None:
        """Publish durably; raises BusUnavailable when the broker cannot take it."""

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
        self._tasks: list[asyncio.Task] = []
        self._inflight: set[asyncio.Task] = set()
        self._closed = False

    def _queue(self, name: str) -> asyncio.Queue[Delivery]:
        return self._queues.setdefault(name, asyncio.Queue())

    async def start(self) -> None:
        return None

    async def declare(self, queue: str) -> None:
        self._queue(queue)
        self._queue(queue + ".dead")

    async def publish(self, queue: str, body: bytes, headers: dict | None = None) -> None:
        if self._closed:
            raise BusUnavailable("bus closed")
        self._queue(queue).put_nowait(Delivery(body=body, headers=dict(headers or {})))

    async def consume(self, queue: str, handler: Handler, prefetch: int = 1) -> Consumer:
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
            task = asyncio.create_task(handler(delivery))
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

    def is_connected(self) -> bool:
        return not self._closed


class AmqpBus(Bus):
    """RabbitMQ through aio-pika: robust connection, confirms, quorum queues."""

    def __init__(self, url: str, name: str, max_deliveries: int = 3) -> None:
        super().__init__(max_deliveries)
        self._url = url
        self._name = name
        self._conn = None
        self._pub_channel = None
        self._consumers: list[tuple[object, str]] = []
        self._declared: set[str] = set()
        self._inflight: set[asyncio.Task] = set()
        self._inflight_queue: dict[asyncio.Task, str] = {}

    async def start(self) -> None:
        import aio_pika

        sep = "&" if "?" in self._url else "?"
        try:
            self._conn = await aio_pika.connect_robust(f"{self._url}{sep}name={self._name}", timeout=10)
        except Exception as exc:  # connection refused, DNS, auth
            raise BusUnavailable(f"cannot connect to the broker: {exc}") from exc
        self._pub_channel = await self._conn.channel(publisher_confirms=True)

    async def _declare(self, channel, queue: str):
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

    async def publish(self, queue: str, body: bytes, headers: dict | None = None) -> None:
        import aio_pika

        if self._conn is None or self._conn.is_closed or self._pub_channel is None:
            raise BusUnavailable("not connected to the broker")
        try:
            if queue not in self._declared:
                await self._declare(self._pub_channel, queue)
                self._declared.add(queue)
            msg = aio_pika.Message(
                body=body,
                headers=dict(headers or {}),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/x-protobuf",
            )
            await asyncio.wait_for(self._pub_channel.default_exchange.publish(msg, routing_key=queue), timeout=10)
        except Exception as exc:
            raise BusUnavailable(f"publish to {queue} failed: {exc}") from exc

    async def consume(self, queue: str, handler: Handler, prefetch: int = 1) -> Consumer:
        if self._conn is None:
            raise BusUnavailable("not connected to the broker")
        channel = await self._conn.channel()
        await channel.set_qos(prefetch_count=prefetch)
        q = await self._declare(channel, queue)

        async def on_message(message) -> None:
            headers = dict(message.headers or {})
            count = int(headers.get("x-delivery-count", 0) or 0) + 1
            delivery = Delivery(body=message.body, headers=headers, delivery_count=count)
            task = asyncio.current_task()
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
        return self._conn is not None and not self._conn.is_closed


def make_bus(amqp_url: str, name: str, max_deliveries: int = 3) -> Bus:
    """RabbitMQ when a URL is given, else the in-process bus."""
    return AmqpBus(amqp_url, name, max_deliveries) if amqp_url else InProcessBus(max_deliveries)
