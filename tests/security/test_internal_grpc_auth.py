"""Issue 12, finding 13: in the distributed mode results listened on 0.0.0.0, took
`tenant_id` from the request and had no authentication: anything that reached the port
read any tenant. Now every internal gRPC server (results, engine, notifier) refuses a
call without the shared token (UNAUTHENTICATED; health checks stay open), every client
channel sends it, and the servers bind loopback unless configured.

Checked on real servers on real ports: every method of every service each one serves
(found through reflection), the process entry points, and a whole distributed stack
(four processes, Postgres, RabbitMQ) whose services talk to each other with the token."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hindsight.results.v1 import results_pb2, results_pb2_grpc

from libs.bus import InProcessBus
from libs.grpc_util import INTERNAL_AUTH_FAILED, blocking_channel
from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.security._trust2_support import Stack, distributed_settings
from tests.stacks import ROOT, start_distributed

TOKEN = "internal-" + os.urandom(16).hex()
OPEN_SERVICES = {"grpc.health.v1.Health"}
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"


@dataclass
class Servers:
    stack: Stack
    ports: dict[str, int]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """results (Postgres), engine and notifier as the distributed mode configures them:
    HINDSIGHT_INTERNAL_TOKEN set, HINDSIGHT_GRPC_HOST left at its default."""
    from services.engine.service import start as start_engine
    from services.notifier.service import start as start_notifier

    tmp = tmp_path_factory.mktemp("internal")
    stack = Stack(tmp)
    handles: list[Any] = []
    try:
        stack.start_results(hindsight_internal_token=TOKEN)
        settings = distributed_settings(tmp, "", results_addr=stack.results_addr, hindsight_internal_token=TOKEN)

        async def go() -> None:
            assert stack.bus is not None
            handles.append(await start_engine(settings, stack.bus, port=0))
            handles.append(await start_notifier(settings, stack.bus, port=0))

        stack.loop.run(go())
        yield Servers(stack, {"results": stack.results.port, "engine": handles[0].port, "notifier": handles[1].port})
    finally:
        for h in handles:
            stack.loop.run(h.stop(grace=0.5))
        stack.close()


def _services(port: int) -> list[str]:
    """The services a server offers, by reflection (with the token: reflection is not open)."""
    with blocking_channel(f"127.0.0.1:{port}", token=TOKEN) as chan:
        stub = reflection_pb2_grpc.ServerReflectionStub(chan)
        answers = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                            timeout=10)
        return [s.name for s in next(answers).list_services_response.service]


def _call(chan: grpc.Channel, service: str, method: Any) -> grpc.RpcError | None:
    """Call `method` with an empty request (bytes through, no stubs); the error, or None."""
    path = f"/{service}/{method.name}"
    try:
        if method.client_streaming and method.server_streaming:
            list(chan.stream_stream(path)(iter([b""]), timeout=10))
        elif method.client_streaming:
            chan.stream_unary(path)(iter([b""]), timeout=10)
        elif method.server_streaming:
            list(chan.unary_stream(path)(b"", timeout=10))
        else:
            chan.unary_unary(path)(b"", timeout=10)
    except grpc.RpcError as exc:
        return exc
    return None


@pytest.mark.parametrize("server", ["results", "engine", "notifier"])
@pytest.mark.parametrize("credentials", ["none", "wrong token"])
def test_every_method_refuses_a_call_without_the_token(servers: Servers, server: str, credentials: str) -> None:
    port = servers.ports[server]
    names = _services(port)
    assert REFLECTION in names and "grpc.health.v1.Health" in names
    if server == "results":
        assert {"hindsight.results.v1.ResultsService", "hindsight.runs.v1.RunsService",
                "hindsight.notify.v1.NotificationsService"} <= set(names)
    if server == "engine":
        assert "hindsight.engine.v1.EngineService" in names
    addr = f"127.0.0.1:{port}"
    chan = grpc.insecure_channel(addr) if credentials == "none" else blocking_channel(addr, token="not-" + TOKEN)
    checked = []
    with chan:
        for service in names:
            if service in OPEN_SERVICES:
                continue
            for method in descriptor_pool.Default().FindServiceByName(service).methods:
                err = _call(chan, service, method)
                assert err is not None, f"{service}/{method.name} answered without the token"
                assert (err.code(), err.details()) == (grpc.StatusCode.UNAUTHENTICATED, INTERNAL_AUTH_FAILED), \
                    f"{service}/{method.name}: {err.code()} {err.details()}"
                checked.append(f"{service}/{method.name}")
    assert f"{REFLECTION}/ServerReflectionInfo" in checked
    if server == "results":
        assert len(checked) > 20  # every RPC of every results service, not a sample


@pytest.mark.parametrize("server", ["results", "engine", "notifier"])
def test_health_checks_stay_open(servers: Servers, server: str) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{servers.ports[server]}") as chan:
        reply = health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_another_tenants_data_needs_the_token(servers: Servers) -> None:
    """The audit's read: any tenant_id, straight to results."""
    request = results_pb2.ListJobsRequest(tenant_id="alpha")
    with grpc.insecure_channel(servers.stack.results_addr) as chan:
        with pytest.raises(grpc.RpcError) as err:
            results_pb2_grpc.ResultsServiceStub(chan).ListJobs(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with blocking_channel(servers.stack.results_addr, token=TOKEN) as chan:  # what the services send
        assert results_pb2_grpc.ResultsServiceStub(chan).ListJobs(request, timeout=10).total >= 0


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("server", ["results", "engine", "notifier"])
def test_servers_bind_loopback_unless_configured(servers: Servers, server: str) -> None:
    port = servers.ports[server]
    assert _reachable("127.0.0.1", port)
    # Bound to 127.0.0.1 only: not even another loopback address (let alone the pod's) reaches it.
    assert not _reachable("127.0.0.2", port)


def test_a_configured_bind_address_is_used(servers: Servers) -> None:
    from services.engine.service import start as start_engine

    stack = servers.stack
    settings = distributed_settings(stack.tmp, "", results_addr=stack.results_addr, hindsight_internal_token=TOKEN,
                                    hindsight_grpc_host="0.0.0.0")

    async def go() -> Any:
        return await start_engine(settings, InProcessBus(), port=0)

    engine = stack.loop.run(go())
    try:
        assert _reachable("127.0.0.2", engine.port)
        with grpc.insecure_channel(f"127.0.0.2:{engine.port}") as chan:
            err = _call(chan, "hindsight.engine.v1.EngineService",
                        descriptor_pool.Default().FindServiceByName("hindsight.engine.v1.EngineService").methods[0])
        assert err is not None and err.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        stack.loop.run(engine.stop(grace=0.5))


@pytest.mark.parametrize("module", ["results", "engine", "notifier", "gateway"])
@pytest.mark.parametrize("token", ["", "short"])
def test_distributed_processes_refuse_to_start_without_a_token(module: str, token: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HINDSIGHT_", "DATABASE_URL", "AMQP_URL"))}
    env.update(HINDSIGHT_MODE="distributed", HINDSIGHT_INTERNAL_TOKEN=token, HINDSIGHT_SESSION_SECRET="s" * 32,
               DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none", AMQP_URL="amqp://nobody@127.0.0.1:1/")
    proc = subprocess.run([sys.executable, "-m", f"services.{module}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert "HINDSIGHT_INTERNAL_TOKEN" in proc.stderr, proc.stderr[-2000:]


@pytest.fixture(scope="module")
def distributed(tmp_path_factory: pytest.TempPathFactory):
    db, db_url = create_database()
    vhost, amqp = create_vhost()
    stack = start_distributed(db_url, amqp, tmp_path_factory.mktemp("internal-logs"))
    try:
        yield stack
    finally:
        stack.stop()
        drop_database(db)
        delete_vhost(vhost)


def test_the_services_of_a_distributed_stack_talk_with_the_token(distributed) -> None:
    """Four processes: the gateway reaches results and the engine, the engine results, with
    the shared token; a caller without it (this test process) is refused."""
    env = distributed.env
    with distributed.client(headers={"X-API-Key": distributed.api_key}) as http:
        r = http.post("/api/v1/strategy/sweep", json={"ticker": "DEMO-DAILY", "fast_range": [10, 20],
                                                      "slow_range": [20, 30], "step": 5, "min_trades": 10})
        assert r.status_code == 202, r.text + distributed.log_text()
        job_id = r.json()["job_id"]
        deadline = time.time() + 60
        while time.time() < deadline:
            job = http.get(f"/api/v1/jobs/{job_id}").json()
            if job["status"] in ("completed", "failed"):
                break
            time.sleep(0.2)
        assert job["status"] == "completed", job
        backtest = http.post("/backtest", json={"ticker": "DEMO-DAILY", "strategy": "sma_crossover",
                                                "parameters": {"fast_period": 10, "slow_period": 30}})
        assert backtest.status_code == 200, backtest.text  # gateway -> engine -> results
    results_addr = env["RESULTS_ADDR"]
    request = results_pb2.ListJobsRequest(tenant_id="e2e")
    for chan in (grpc.insecure_channel(results_addr), blocking_channel(results_addr)):  # none; this process's own
        with chan, pytest.raises(grpc.RpcError) as err:
            results_pb2_grpc.ResultsServiceStub(chan).ListJobs(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with blocking_channel(results_addr, token=env["HINDSIGHT_INTERNAL_TOKEN"]) as chan:
        assert results_pb2_grpc.ResultsServiceStub(chan).ListJobs(request, timeout=10).total >= 1
    # Refusals are logged (at most one line per 10 s), never with the token.
    logs = distributed.log_text()
    assert "refused internal gRPC calls without a valid token" in logs
    assert env["HINDSIGHT_INTERNAL_TOKEN"] not in logs
    assert httpx.get(distributed.base_url + "/health").json()["services"]["results"] == "serving"
