"""`make up`'s HINDSIGHT_ENGINE_REPLICAS: what it accepts and the ports each engine gets
(tests/e2e/test_readme.py starts two engines through the README's distributed block)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.up import MAX_ENGINE_REPLICAS, engine_replicas, processes


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", str(MAX_ENGINE_REPLICAS + 1)])
def test_a_bad_count_is_refused_before_anything_starts(value: str, tmp_path) -> None:
    assert isinstance(engine_replicas({"HINDSIGHT_ENGINE_REPLICAS": value}), str)
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/x",
           "AMQP_URL": "amqp://nobody@127.0.0.1:1/", "HINDSIGHT_ENGINE_REPLICAS": value}
    proc = subprocess.run([sys.executable, "-m", "services.up", "start"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "HINDSIGHT_ENGINE_REPLICAS must be a whole number from 1 to 16" in proc.stderr
    assert not (tmp_path / ".run").exists(), "nothing is created"


def test_each_engine_gets_ports_of_its_own() -> None:
    assert engine_replicas({}) == 1 and engine_replicas({"HINDSIGHT_ENGINE_REPLICAS": " 3 "}) == 3
    plan = processes(3, 50052, 9464)
    assert [name for name, _, _ in plan] == ["results", "engine", "engine-2", "engine-3", "notifier", "gateway"]
    assert [service for _, service, _ in plan].count("engine") == 3
    metrics = [over["HINDSIGHT_METRICS_PORT"] for _, _, over in plan]
    assert len(set(metrics)) == len(metrics)
    grpc = {name: over.get("ENGINE_PORT") for name, _, over in plan}
    assert grpc["engine"] is None and grpc["engine-2"] == "50062" and grpc["engine-3"] == "50072"
    assert [name for name, _, _ in processes(1, 50052, 9464)] == ["results", "engine", "notifier", "gateway"]
