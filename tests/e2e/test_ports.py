"""Issue 16: a port in use is one clear line that names the setting to change, and no server
silently shares a port another process holds (gRPC's SO_REUSEPORT is off)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import grpc
import pytest

from libs.grpc_util import PortUnavailable, start_server
from tests.stacks import ROOT


def held_port() -> socket.socket:
    """A listening socket on a free loopback port (another program holding it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def run(module: str, env: dict) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AMQP_URL")}
    full.update(env, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", module], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=60)


def test_standalone_on_a_taken_port_names_hindsight_port(tmp_path):
    with held_port() as sock:
        port = sock.getsockname()[1]
        out = run("services.standalone", {"HINDSIGHT_PORT": str(port), "HINDSIGHT_DATA_DIR": str(tmp_path / "d")})
    assert out.returncode == 2, out.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in out.stderr
    assert f"HINDSIGHT_PORT={port + 1} make run" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert not (tmp_path / "d").exists()  # nothing started, nothing created


async def test_grpc_server_refuses_a_port_another_grpc_server_holds():
    other = grpc.aio.server()  # grpcio's default: SO_REUSEPORT on, as a second stack would bind
    port = other.add_insecure_port("127.0.0.1:0")
    await other.start()
    try:
        with pytest.raises(PortUnavailable, match="set RESULTS_PORT to a free port"):
            await start_server([], port=port, port_setting="RESULTS_PORT")
    finally:
        await other.stop(None)


def test_distributed_service_on_a_taken_port_says_which_setting(amqp_url):
    with held_port() as sock:
        port = sock.getsockname()[1]
        out = run("services.notifier", {"HINDSIGHT_MODE": "distributed", "AMQP_URL": amqp_url,
                                        "NOTIFIER_PORT": str(port), "HINDSIGHT_INTERNAL_TOKEN": "t" * 32,
                                        "NOTIFIER_METRICS_PORT": "0"})
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"notifier: gRPC port 127.0.0.1:{port} is in use" in out.stderr
    assert "NOTIFIER_PORT" in out.stderr
    assert "Traceback" not in out.stderr


def test_addresses_follow_the_port_settings(monkeypatch):
    """Moving a service's port moves where the others look for it, as the README says."""
    from libs.settings import Settings

    for name in ("RESULTS_ADDR", "ENGINE_ADDR", "NOTIFIER_ADDR", "RESULTS_PORT", "ENGINE_PORT", "NOTIFIER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RESULTS_PORT", "6101")
    s = Settings()
    assert (s.results_addr, s.engine_addr, s.notifier_addr) == ("127.0.0.1:6101", "127.0.0.1:50052", "127.0.0.1:50053")
    monkeypatch.setenv("RESULTS_ADDR", "results.internal:7000")
    assert Settings().results_addr == "results.internal:7000"
