"""Shared by test_metrics_exposure, test_sessions, test_login_throttle and
test_internal_grpc_auth: the REAL results service on the machine's Postgres (the
distributed mode's database) and real gateways served by uvicorn on free ports,
all on one asyncio loop in a background thread (tests/gateway/conftest.py's way);
tests speak real HTTP and real gRPC to them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from libs.bus import InProcessBus
from libs.settings import Settings
from tests.conftest import create_database, drop_database
from tests.gateway.conftest import LoopThread, start_gateway, stop_gateway

ALPHA_KEY = "alpha-key-" + secrets.token_hex(12)
BETA_KEY = "beta-key-" + secrets.token_hex(12)
BOOTSTRAP = f"alpha:{ALPHA_KEY},beta:{BETA_KEY}"
# Gateway replicas share these, as in a deployment.
SESSION_SECRET = "security-session-" + secrets.token_hex(12)


def distributed_settings(tmp: Path, database_url: str, **over: Any) -> Settings:
    values: dict[str, Any] = dict(
        hindsight_mode="distributed",
        database_url=database_url,
        amqp_url="",
        hindsight_data_dir=tmp,
        hindsight_artifact_dir=tmp / "artifacts",
        hindsight_bootstrap_keys=BOOTSTRAP,
        hindsight_session_secret=SESSION_SECRET,
        hindsight_rpc_timeout=5.0,
        notifier_metrics_port=0,
    )
    values.update(over)
    return Settings(**values)


@dataclass
class Gateway:
    server: Any
    task: Any
    port: int
    settings: Settings

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Stack:
    """results on Postgres (in-process bus) and gateways in front of it, in this process."""

    tmp: Path
    loop: LoopThread = field(default_factory=LoopThread)
    db_name: str = ""
    database_url: str = ""
    results: Any = None
    bus: InProcessBus | None = None
    gateways: list[Gateway] = field(default_factory=list)

    def start_results(self, **over: Any) -> Settings:
        from services.results.service import start

        self.db_name, self.database_url = create_database()
        settings = distributed_settings(self.tmp, self.database_url, **over)

        async def go() -> None:
            self.bus = InProcessBus()
            await self.bus.start()
            self.results = await start(settings, self.bus, port=0)

        self.loop.run(go())
        return settings

    @property
    def results_addr(self) -> str:
        return f"127.0.0.1:{self.results.port}"

    def gateway(self, **over: Any) -> Gateway:
        """A gateway (distributed mode unless `over` says otherwise) in front of this results."""
        settings = distributed_settings(self.tmp, "", results_addr=self.results_addr, **over)
        server, task, port = self.loop.run(start_gateway(settings))
        g = Gateway(server, task, port, settings)
        self.gateways.append(g)
        return g

    def client(self, g: Gateway, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=g.url, timeout=20, **kw)

    def close(self) -> None:
        for g in self.gateways:
            try:
                self.loop.run(stop_gateway(g.server, g.task), timeout=20)
            except Exception:  # already stopped: the loop goes away anyway
                pass
        if self.results is not None:
            self.loop.run(self.results.stop(grace=0.5))
        if self.bus is not None:
            self.loop.run(self.bus.close())
        self.loop.close()
        if self.db_name:
            drop_database(self.db_name)
