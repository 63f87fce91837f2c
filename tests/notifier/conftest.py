"""Fixtures of the notifier tests: the real results service on Postgres, the
real notifier, both on real RabbitMQ (a vhost of this module tree), a real HTTP
receiver and a real SMTP server (STARTTLS + AUTH) on loopback.

One stack per test module (started on the module's event loop); each test
makes its own tenant and jobs, so tests do not see each other's deliveries.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from hindsight.jobs.v1 import jobs_pb2
from hindsight.notify.v1 import notify_pb2, notify_pb2_grpc
from hindsight.results.v1 import results_pb2, results_pb2_grpc
from sqlalchemy.orm import Session

from libs.bus import AmqpBus
from libs.grpc_util import channel
from libs.settings import Settings
from services.notifier.service import NotifierHandle
from services.notifier.service import start as start_notifier
from services.results import keys
from services.results.db import make_engine
from services.results.service import ResultsHandle
from services.results.service import start as start_results
from tests.conftest import create_vhost, delete_vhost
from tests.notifier.receivers import Receiver, SmtpServer

# Names the tests' resolver answers (instead of DNS); values can change during a test (rebinding).
FAKE_DNS: dict[str, list[str]] = {}


async def fake_resolver(host: str, port: int) -> list[str]:
    if host in FAKE_DNS:
        return list(FAKE_DNS[host])
    from libs.ssrf import system_resolve

    return await system_resolve(host, port)


def notifier_settings(results_addr: str, **over: Any) -> Settings:
    values: dict[str, Any] = {
        "hindsight_mode": "distributed",
        "results_addr": results_addr,
        "hindsight_webhook_allow": "127.0.0.0/8",
        "hindsight_notify_retry_base_seconds": 0.2,
        "hindsight_notify_retry_factor": 2.0,
        "hindsight_notify_retry_max_delay_seconds": 1.0,
        "hindsight_notify_retry_window_seconds": 60.0,
        "hindsight_notify_retry_jitter": 0.1,
        "hindsight_notify_max_attempts": 6,
        "hindsight_webhook_timeout_seconds": 1.0,
        "hindsight_public_url": "https://hindsight.example",
        "notifier_metrics_port": 0,
    }
    values.update(over)
    return Settings(**values)


@dataclass
class NotifyStack:
    """results + notifier + receivers, and helpers to make jobs end."""

    results: ResultsHandle
    notifier: NotifierHandle
    results_bus: AmqpBus
    notifier_bus: AmqpBus
    receiver: Receiver
    smtp: SmtpServer
    engine: sa.Engine
    amqp_url: str
    settings: Settings
    stub: results_pb2_grpc.ResultsServiceStub = field(init=False)
    notifications: notify_pb2_grpc.NotificationsServiceStub = field(init=False)
    _channel: Any = None

    def __post_init__(self) -> None:
        self._channel = channel(f"127.0.0.1:{self.results.port}")
        self.stub = results_pb2_grpc.ResultsServiceStub(self._channel)
        self.notifications = notify_pb2_grpc.NotificationsServiceStub(self._channel)

    def tenant(self) -> str:
        tenant_id = "t_" + secrets.token_hex(4)
        with Session(self.engine) as s, s.begin():
            keys.ensure_key(s, tenant_id, "k-" + secrets.token_hex(16))
        return tenant_id

    async def submit(self, tenant: str, webhook_url: str = "", notify_email: str = "", ticker: str = "BTC-USD") -> str:
        req = results_pb2.SubmitJobRequest(
            tenant_id=tenant,
            job_kind=jobs_pb2.JOB_KIND_SWEEP,
            parameters_json=json.dumps({"ticker": ticker, "fast_range": [10, 20], "slow_range": [20, 30], "step": 5}),
            webhook_url=webhook_url,
            notify_email=notify_email,
            sweep=jobs_pb2.SweepSpec(ticker=ticker, fast_min=10, fast_max=20, slow_min=20, slow_max=30, step=5,
                                     min_trades=10, strategy_type="SMA"),
        )
        return (await self.stub.SubmitJob(req)).job.job_id

    async def complete(self, job_id: str) -> str:
        await self.stub.StartJob(results_pb2.StartJobRequest(job_id=job_id))
        rows = [
            results_pb2.SweepResult(ticker="BTC-USD", strategy_type="SMA", fast_period=f, slow_period=s,
                                    total_trades=t, score=sc, sharpe_ratio=1.1, total_return_pct=12.5,
                                    max_drawdown_pct=-8.0, win_rate_pct=55.0, avg_trade_duration="5.2 days")
            for f, s, t, sc in ((10, 20, 60, 2.5), (15, 25, 40, 1.5), (20, 30, 30, 0.5))
        ]
        done = await self.stub.CompleteSweep(
            results_pb2.CompleteSweepRequest(job_id=job_id, results=rows, execution_time_seconds=1.25, bars=900)
        )
        return done.sweep_run_id

    async def fail(self, job_id: str, message: str = "Insufficient historical data for ticker BTC-USD") -> None:
        await self.stub.FailJob(results_pb2.FailJobRequest(job_id=job_id, error_message=message))

    async def cancel(self, tenant: str, job_id: str) -> None:
        await self.stub.CancelJob(results_pb2.CancelJobRequest(tenant_id=tenant, job_id=job_id))

    async def deliveries(self, tenant: str, job_id: str) -> notify_pb2.ListDeliveriesResponse:
        return await self.notifications.ListDeliveries(notify_pb2.ListDeliveriesRequest(tenant_id=tenant, job_id=job_id))

    async def secret(self, tenant: str) -> str:
        resp = await self.notifications.GetNotificationSettings(notify_pb2.GetNotificationSettingsRequest(tenant_id=tenant))
        return resp.settings.webhook_secret

    async def settled(self, tenant: str, job_id: str, n: int = 1, timeout: float = 20.0) -> notify_pb2.ListDeliveriesResponse:
        """The job's deliveries once `n` exist and none is pending."""

        async def check():
            resp = await self.deliveries(tenant, job_id)
            ok = len(resp.deliveries) >= n and all(d.state != "pending" for d in resp.deliveries)
            return resp if ok else None

        return await eventually(check, timeout=timeout)


async def eventually(check, timeout: float = 10.0, interval: float = 0.05):
    """Await until `check()` (sync or async) returns something truthy; that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
def notify_vhost() -> str:
    """A RabbitMQ vhost of the notifier tests (deleted at the end)."""
    name, url = create_vhost()
    yield url
    delete_vhost(name)


@pytest.fixture(scope="session")
def smtp_tls_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("smtp-tls")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def notify_stack(pg_url: str, notify_vhost: str, smtp_tls_dir: Path) -> AsyncIterator[NotifyStack]:
    receiver = Receiver().start()
    smtp = SmtpServer(tls_dir=smtp_tls_dir, username="mailer", password="s3cret-pass").start()
    results_settings = Settings(hindsight_mode="distributed", database_url=pg_url, amqp_url=notify_vhost,
                                hindsight_bootstrap_keys="")
    results_bus = AmqpBus(notify_vhost, "results-test")
    await results_bus.start()
    results = await start_results(results_settings, results_bus, port=0)
    settings = notifier_settings(f"127.0.0.1:{results.port}", hindsight_smtp_url=smtp.url())
    notifier_bus = AmqpBus(notify_vhost, "notifier-test")
    await notifier_bus.start()
    notifier = await start_notifier(settings, notifier_bus, port=0, resolver=fake_resolver)
    engine = make_engine(pg_url)
    stack = NotifyStack(results, notifier, results_bus, notifier_bus, receiver, smtp, engine, notify_vhost, settings)
    try:
        yield stack
    finally:
        await notifier.stop(grace=0.5)
        await notifier_bus.close()
        await stack._channel.close()
        await results.stop(grace=0.5)
        await results_bus.close()
        engine.dispose()
        receiver.stop()
        smtp.stop()
