"""Fixtures of the results tests: a throwaway Postgres database and RabbitMQ
vhost for this module tree, the real results gRPC server on a free port, a
generated stub over a real channel, and helpers to look into the database."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_asyncio
import sqlalchemy as sa
from hindsight.results.v1 import results_pb2_grpc
from sqlalchemy.orm import Session

from libs.bus import Bus, BusUnavailable, Delivery
from libs.grpc_util import channel
from libs.settings import Settings
from services.results import keys
from services.results.db import make_engine, sqlite_url
from services.results.service import ResultsHandle, start

PG_ADMIN = os.environ.get("HINDSIGHT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_BASE = os.environ.get("HINDSIGHT_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")


@pytest.fixture(scope="session")
def results_pg_url() -> str:
    """A Postgres database of its own for the results tests (dropped at the end)."""
    name = f"hs_results_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name  # a plain postgresql:// URL: the service normalizes it
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def results_amqp_url() -> str:
    """A RabbitMQ vhost of its own for the results tests (deleted at the end)."""
    name = f"hs_{secrets.token_hex(4)}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True, timeout=60)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    yield f"{AMQP_BASE}/{name}"
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True, timeout=60)


class RecordingBus(Bus):
    """A bus that records what is published; can be disconnected or made to fail publishes."""

    def __init__(self, max_deliveries: int = 3) -> None:
        super().__init__(max_deliveries)
        self.connected = True
        self.fail_publishes = 0
        self.published: list[tuple[str, bytes, dict]] = []
        # delay_seconds of each published message (same order as `published`).
        self.delays: list[float] = []
        self.consumers: dict[str, Callable[[Delivery], Any]] = {}

    async def start(self) -> None:
        return None

    async def publish(self, queue: str, body: bytes, headers: dict | None = None, *, delay_seconds: float = 0.0) -> None:
        if not self.connected:
            raise BusUnavailable("disconnected (test)")
        if self.fail_publishes > 0:
            self.fail_publishes -= 1
            raise BusUnavailable("broker refused (test)")
        self.published.append((queue, body, dict(headers or {})))
        self.delays.append(delay_seconds)

    async def consume(self, queue: str, handler, prefetch: int = 1) -> None:
        self.consumers[queue] = handler

    async def declare(self, queue: str) -> None:
        if not self.connected:
            raise BusUnavailable("disconnected (test)")

    async def stop_consuming(self) -> None:
        self.consumers.clear()

    async def close(self) -> None:
        self.connected = False

    def is_connected(self) -> bool:
        return self.connected

    def bodies(self, queue: str) -> list[bytes]:
        return [b for q, b, _ in self.published if q == queue]


@dataclass
class Running:
    """A running results service and a stub connected to it."""

    handle: ResultsHandle
    stub: results_pb2_grpc.ResultsServiceStub
    bus: Bus
    settings: Settings
    _channel: Any = None


@dataclass
class Services:
    """Starts results services for one test and stops them after it."""

    started: list[Running] = field(default_factory=list)
    # The market-data store of this test's distributed services (standalone ones keep theirs in
    # their data directory): what they import goes with the test's temporary directory.
    market_dir: Path | None = None

    async def start(self, settings: Settings, bus: Bus) -> Running:
        if not settings.standalone and "hindsight_market_dir" not in settings.model_fields_set and self.market_dir:
            settings = settings.model_copy(update={"hindsight_market_dir": self.market_dir})
        handle = await start(settings, bus, port=0)
        chan = channel(f"127.0.0.1:{handle.port}")
        running = Running(handle, results_pb2_grpc.ResultsServiceStub(chan), bus, settings, chan)
        self.started.append(running)
        return running

    async def stop(self, running: Running) -> None:
        if running in self.started:
            self.started.remove(running)
            await running._channel.close()
            await running.handle.stop(grace=0.5)

    async def stop_all(self) -> None:
        for r in list(self.started):
            await self.stop(r)


@pytest_asyncio.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    s = Services(market_dir=tmp_path / "market")
    yield s
    await s.stop_all()


def pg_settings(url: str, **over: Any) -> Settings:
    values: dict[str, Any] = dict(
        hindsight_mode="distributed",
        database_url=url,
        amqp_url="",
        hindsight_bootstrap_keys="",
        hindsight_job_max_deliveries=2,
    )
    values.update(over)
    return Settings(**values)


def sqlite_settings(data_dir: Path, **over: Any) -> Settings:
    values: dict[str, Any] = dict(
        hindsight_mode="standalone",
        hindsight_data_dir=data_dir,
        database_url="",
        amqp_url="",
        hindsight_bootstrap_keys="",
        hindsight_job_max_deliveries=2,
        hindsight_demo_option_chain=False,  # seconds per data directory (tests/results/test_demo_chain.py has it)
    )
    values.update(over)
    return Settings(**values)


@pytest_asyncio.fixture
async def pg(services: Services, results_pg_url: str) -> Running:
    """The results service on Postgres with a recording bus."""
    return await services.start(pg_settings(results_pg_url), RecordingBus())


@pytest_asyncio.fixture
async def lite(services: Services, tmp_path: Path) -> Running:
    """The results service on SQLite (standalone settings) with a recording bus."""
    return await services.start(sqlite_settings(tmp_path / "data"), RecordingBus())


@pytest.fixture(scope="session")
def pg_engine(results_pg_url: str):
    engine = make_engine(results_pg_url)
    yield engine
    engine.dispose()


class DbPeek:
    """Direct access to a service's database, to check what it stored."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as c:
            return c.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[sa.Row]:
        with self.engine.connect() as c:
            return list(c.execute(sa.text(sql), params))

    def tenant(self, key: str | None = None) -> tuple[str, str]:
        """A new tenant with one API key; returns (tenant_id, key)."""
        tenant_id = "t_" + secrets.token_hex(4)
        key = key or "test-key-" + secrets.token_hex(12)
        with Session(self.engine) as s, s.begin():
            keys.ensure_key(s, tenant_id, key)
        return tenant_id, key


@pytest.fixture
def pg_db(pg: Running, pg_engine) -> DbPeek:
    return DbPeek(pg_engine)


@pytest.fixture
def lite_db(lite: Running, tmp_path: Path):
    engine = make_engine(sqlite_url(tmp_path / "data"))
    yield DbPeek(engine)
    engine.dispose()


async def eventually(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Await until `check()` (sync or async) returns a truthy value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@pytest_asyncio.fixture(params=["postgres", "sqlite"])
async def backend(request, services: Services, tmp_path: Path, results_pg_url: str, pg_engine):
    """(running service, DbPeek) on Postgres and on SQLite."""
    if request.param == "postgres":
        return await services.start(pg_settings(results_pg_url), RecordingBus()), DbPeek(pg_engine)
    running = await services.start(sqlite_settings(tmp_path / "data"), RecordingBus())
    engine = make_engine(sqlite_url(tmp_path / "data"))
    request.addfinalizer(engine.dispose)
    return running, DbPeek(engine)
