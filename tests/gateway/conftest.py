"""Fixtures of the gateway tests: the REAL results service (SQLite, in-process
bus) and gateway apps served by real uvicorn servers on free ports, all on one
asyncio loop in a background thread; tests talk real HTTP (httpx) to the
gateways and real gRPC to results (to play the engine's part)."""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from hindsight.results.v1 import results_pb2_grpc

from libs.bus import InProcessBus
from libs.grpc_util import blocking_channel
from libs.settings import SEED_DEV_API_KEY, Settings
from services.gateway.app import create_app

ALPHA_KEY = "alpha-key-" + "a" * 24
BETA_KEY = "beta-key-" + "b" * 24
PAGER_KEY = "pager-key-" + "c" * 24
DEV_KEY = SEED_DEV_API_KEY
REVOKEE_KEY = "revokee-key-" + "d" * 24
BOOTSTRAP = f"alpha:{ALPHA_KEY},beta:{BETA_KEY},pager:{PAGER_KEY},revokee:{REVOKEE_KEY}"


class LoopThread:
    """An asyncio loop running in a daemon thread; `run` executes a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway-tests-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def base_settings(data_dir: Path, **over: Any) -> Settings:
    values: dict[str, Any] = dict(
        hindsight_mode="standalone",
        hindsight_host="127.0.0.1",
        hindsight_data_dir=data_dir,
        hindsight_bootstrap_keys=BOOTSTRAP,
        hindsight_require_auth=False,
        hindsight_session_secret="test-session-secret-" + secrets.token_hex(8),
        database_url="",
        amqp_url="",
        hindsight_rpc_timeout=5.0,
        # DEMO-OPTIONS takes seconds to generate per data directory: on only where a test needs it.
        hindsight_demo_option_chain=False,
    )
    values.update(over)
    return Settings(**values)


@dataclass
class Results:
    """A running results service."""

    handle: Any
    bus: InProcessBus
    settings: Settings
    addr: str
    _channel: grpc.Channel | None = None

    def stub(self) -> results_pb2_grpc.ResultsServiceStub:
        """A synchronous stub for playing the engine (real gRPC)."""
        if self._channel is None:
            self._channel = blocking_channel(self.addr)  # with the internal token, as every service
        return results_pb2_grpc.ResultsServiceStub(self._channel)

    def close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


@dataclass
class Gateway:
    """A gateway app served by uvicorn."""

    server: uvicorn.Server
    task: asyncio.Task
    port: int
    settings: Settings
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kw: Any) -> httpx.Client:
        c = httpx.Client(base_url=self.url, timeout=kw.pop("timeout", 20), **kw)
        self.clients.append(c)
        return c


async def start_results(settings: Settings) -> tuple[Any, InProcessBus]:
    from services.results.service import start

    bus = InProcessBus()
    await bus.start()
    handle = await start(settings, bus, port=0)
    return handle, bus


async def start_gateway(
    settings: Settings, setup: Callable[[FastAPI], None] | None = None
) -> tuple[uvicorn.Server, asyncio.Task, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(settings)
    if setup is not None:
        setup(app)
    config = uvicorn.Config(app, lifespan="on", log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    return server, task, port


async def stop_gateway(server: uvicorn.Server, task: asyncio.Task) -> None:
    server.should_exit = True
    await asyncio.wait_for(task, 15)


class Harness:
    """Starts and stops results services and gateways on the shared loop."""

    def __init__(self, loop: LoopThread, tmp: Path) -> None:
        self.loop = loop
        self.tmp = tmp
        self._results: list[Results] = []
        self._gateways: list[Gateway] = []
        self._started = 0  # results started so far (stopped ones included): each its own data dir

    def results(self, **over: Any) -> Results:
        data_dir = self.tmp / f"results-{self._started}"
        self._started += 1
        data_dir.mkdir()
        settings = base_settings(data_dir, **over)
        handle, bus = self.loop.run(start_results(settings))
        r = Results(handle, bus, settings, f"127.0.0.1:{handle.port}")
        self._results.append(r)
        return r

    def stop_results(self, r: Results) -> None:
        r.close_channel()
        self.loop.run(r.handle.stop())
        self.loop.run(r.bus.close())
        self._results.remove(r)

    def gateway(self, results_addr: str, setup: Callable[[FastAPI], None] | None = None, **over: Any) -> Gateway:
        """A gateway for `results_addr`; `setup(app)` may add test-only routes."""
        settings = base_settings(self.tmp, results_addr=results_addr, **over)
        server, task, port = self.loop.run(start_gateway(settings, setup))
        g = Gateway(server, task, port, settings)
        self._gateways.append(g)
        return g

    def close(self) -> None:
        for g in self._gateways:
            for c in g.clients:
                c.close()
            try:
                self.loop.run(stop_gateway(g.server, g.task), timeout=20)
            except Exception:  # already stopped or wedged: the loop goes away anyway
                pass
        for r in list(self._results):
            try:
                self.stop_results(r)
            except Exception:
                pass


@pytest.fixture(scope="session")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    loop = LoopThread()
    h = Harness(loop, tmp_path_factory.mktemp("gateway"))
    yield h
    h.close()
    loop.close()


@pytest.fixture(scope="session")
def results(harness: Harness) -> Results:
    """The shared results service (tenants alpha, beta, pager, and dev in standalone)."""
    return harness.results()


@pytest.fixture(scope="session")
def gw(harness: Harness, results: Results) -> Gateway:
    """Standalone gateway on loopback: requests without credentials act as the dev tenant."""
    return harness.gateway(results.addr)


@pytest.fixture(scope="session")
def gw_require_auth(harness: Harness, results: Results) -> Gateway:
    return harness.gateway(results.addr, hindsight_require_auth=True)


@pytest.fixture(scope="session")
def gw_distributed(harness: Harness, results: Results) -> Gateway:
    return harness.gateway(results.addr, hindsight_mode="distributed")


@pytest.fixture(scope="session")
def gw_public_bind(harness: Harness, results: Results) -> Gateway:
    """Standalone, but configured to bind a non-loopback address: no dev tenant."""
    return harness.gateway(results.addr, hindsight_host="0.0.0.0")


@pytest.fixture()
def alpha(gw: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=20, headers={"X-API-Key": ALPHA_KEY}) as c:
        yield c


@pytest.fixture()
def beta(gw: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=20, headers={"X-API-Key": BETA_KEY}) as c:
        yield c


@contextmanager
def engine_stack(harness: Harness, keys: dict[str, str]) -> Iterator[tuple[Results, Any, Gateway]]:
    """A results service with these tenants' keys, an engine on it, and a gateway to both:
    what the synchronous backtest routes (runs, reports, Monte Carlo) need."""
    from services.engine.service import start as start_engine

    results = harness.results(hindsight_bootstrap_keys=",".join(f"{t}:{k}" for t, k in keys.items()))
    engine = harness.loop.run(start_engine(base_settings(harness.tmp, results_addr=results.addr), results.bus, port=0))
    try:
        yield results, engine, harness.gateway(results.addr, engine_addr=f"127.0.0.1:{engine.port}")
    finally:
        harness.loop.run(engine.stop(grace=1.0))
