"""Delayed publishes of libs.bus: broker delay queues on RabbitMQ, timers in-process; nobody sleeps."""

from __future__ import annotations

import asyncio
import secrets
import time

import aio_pika
import pytest

from libs.bus import AmqpBus, Delivery, InProcessBus


async def _collect(bus, queue: str) -> list[tuple[float, bytes]]:
    got: list[tuple[float, bytes]] = []

    async def handler(d: Delivery) -> None:
        got.append((time.monotonic(), d.body))

    await bus.consume(queue, handler, prefetch=4)
    return got


@pytest.mark.asyncio
async def test_in_process_delays():
    bus = InProcessBus()
    got = await _collect(bus, "q")
    t0 = time.monotonic()
    await bus.publish("q", b"late", delay_seconds=0.4)
    await bus.publish("q", b"soon", delay_seconds=0.15)
    await bus.publish("q", b"now")
    await asyncio.sleep(0.6)
    assert [b for _, b in got] == [b"now", b"soon", b"late"]
    assert got[1][0] - t0 >= 0.15 and got[2][0] - t0 >= 0.4
    await bus.publish("q", b"never", delay_seconds=0.1)
    await bus.close()  # pending timers are dropped with the bus
    await asyncio.sleep(0.2)
    assert len(got) == 3


@pytest.mark.asyncio
async def test_rabbitmq_delay_queues(notify_vhost):
    bus = AmqpBus(notify_vhost, "delay-test")
    await bus.start()
    queue = f"delay-test.{secrets.token_hex(3)}"
    try:
        got = await _collect(bus, queue)
        t0 = time.monotonic()
        await bus.publish(queue, b"late", {"k": "v"}, delay_seconds=1.0)
        await bus.publish(queue, b"soon", delay_seconds=0.3)
        await bus.publish(queue, b"now")
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert [b for _, b in got] == [b"now", b"soon", b"late"]
        assert 0.28 <= got[1][0] - t0 < 1.0 and 0.98 <= got[2][0] - t0 < 2.0
        # The waiting happened in the broker: one quorum delay queue per delay, nobody consumes it.
        conn = await aio_pika.connect_robust(notify_vhost)
        ch = await conn.channel()
        for name in (f"{queue}.delay.300", f"{queue}.delay.1000"):
            q = await ch.declare_queue(name, passive=True)
            assert q.declaration_result.consumer_count == 0 and q.declaration_result.message_count == 0
        await conn.close()
    finally:
        await bus.close()
