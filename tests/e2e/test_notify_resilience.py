"""Notifications survive failures, on the distributed stack (real processes, Postgres, RabbitMQ):
a receiver down for several retry intervals, the notifier SIGKILLed while retries are pending,
RabbitMQ restarted while deliveries are pending. Each event reaches its receiver exactly once."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx
import pytest

from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.notifier.receivers import Receiver, free_port
from tests.stacks import _spawn, start_distributed

# They stop the machine's RabbitMQ: run alone, after the rest of the suite (Makefile `test`).
pytestmark = pytest.mark.serial

# Fast retries (0.5 s, 1 s, 2 s, 2 s, ...) so "several retry intervals" take seconds.
NOTIFY_ENV = {
    "HINDSIGHT_WEBHOOK_ALLOW": "127.0.0.0/8",
    "HINDSIGHT_NOTIFY_RETRY_BASE_SECONDS": "0.5",
    "HINDSIGHT_NOTIFY_RETRY_MAX_DELAY_SECONDS": "2",
    "HINDSIGHT_NOTIFY_RETRY_WINDOW_SECONDS": "300",
    "HINDSIGHT_WEBHOOK_TIMEOUT_SECONDS": "2",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    logs = tmp_path_factory.mktemp("logs-notify")
    db, db_url = create_database()
    vhost, amqp = create_vhost()
    metrics_port = free_port()
    s = start_distributed(db_url, amqp, logs, extra_env={**NOTIFY_ENV, "NOTIFIER_METRICS_PORT": str(metrics_port)})
    s.env["NOTIFIER_METRICS_PORT"] = str(metrics_port)
    s.log_dir = logs
    yield s
    s.stop()
    drop_database(db)
    delete_vhost(vhost)


@pytest.fixture
def client(stack):
    with stack.client(headers={"X-API-Key": stack.api_key}) as c:
        yield c


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def submit_failing(c: httpx.Client, url: str, n: int) -> list[str]:
    """n sweeps of a ticker without data: the engine fails each at once (sweep.failed)."""
    ids = []
    for _ in range(n):
        r = c.post("/api/v1/strategy/sweep", json={"ticker": "BTC-USD", "fast_range": [10, 20], "slow_range": [20, 30],
                                                   "step": 5, "min_trades": 10, "webhook_url": url})
        assert r.status_code == 202, r.text
        ids.append(r.json()["job_id"])
    return ids


def deliveries(c: httpx.Client, job_id: str) -> list[dict]:
    r = c.get(f"/api/v1/jobs/{job_id}/deliveries")
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


def wait_for(check, timeout: float, what: str, stack=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout}s" + (f"\n{stack.log_text()}" if stack else ""))


def all_retrying(c: httpx.Client, jobs: list[str], attempts: int) -> bool:
    for job_id in jobs:
        d = deliveries(c, job_id)
        if not d or d[0]["attempt_count"] < attempts or d[0]["state"] != "pending":
            return False
    return True


def all_delivered_once(c: httpx.Client, receiver: Receiver, jobs: list[str]) -> None:
    for job_id in jobs:
        (d,) = deliveries(c, job_id)
        assert d["state"] == "delivered", d
        assert d["attempts"][-1]["outcome"] == "delivered" and d["attempts"][-1]["status_code"] == 200
    events = {r.event_id for job_id in jobs for r in receiver.for_job(job_id)}
    assert len(events) == len(jobs)
    successes = receiver.successes_by_event()
    assert all(successes.get(e) == 1 for e in events), successes


def test_receiver_down_then_up(client, receiver, stack):
    jobs = submit_failing(client, receiver.url, 3)
    wait_for(lambda: all_retrying(client, jobs, 3), 30, "three failed attempts each", stack)
    receiver.start()
    wait_for(lambda: all(deliveries(client, j)[0]["state"] == "delivered" for j in jobs), 30, "delivery", stack)
    all_delivered_once(client, receiver, jobs)
    (d,) = deliveries(client, jobs[0])
    assert [a["outcome"] for a in d["attempts"]][:3] == ["retry"] * 3
    assert all(a["error"] and a["status_code"] is None for a in d["attempts"][:3])
    metrics = httpx.get(f"http://127.0.0.1:{stack.env['NOTIFIER_METRICS_PORT']}/metrics").text
    assert 'hindsight_notifier_deliveries_total{channel="webhook",outcome="delivered"}' in metrics
    assert 'hindsight_notifier_attempts_total{channel="webhook",result="retry"}' in metrics
    assert "hindsight_notifier_attempt_latency_seconds_bucket" in metrics


def test_notifier_killed_while_retries_are_pending(client, receiver, stack):
    jobs = submit_failing(client, receiver.url, 4)
    wait_for(lambda: all_retrying(client, jobs, 2), 30, "two failed attempts each", stack)
    notifier = stack.procs["notifier"]
    notifier.send_signal(signal.SIGKILL)
    notifier.wait(10)
    time.sleep(2.5)  # retries fall due while no notifier runs: they wait in RabbitMQ
    receiver.start()
    stack.procs["notifier"], stack.logs["notifier"] = _spawn("notifier", "services.notifier", stack.env, stack.log_dir)
    wait_for(lambda: all(deliveries(client, j)[0]["state"] == "delivered" for j in jobs), 60, "delivery", stack)
    all_delivered_once(client, receiver, jobs)


def test_rabbitmq_restarted_while_deliveries_are_pending(client, receiver, stack):
    jobs = submit_failing(client, receiver.url, 4)
    wait_for(lambda: all_retrying(client, jobs, 2), 30, "two failed attempts each", stack)
    try:
        subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True, timeout=60)
        receiver.start()
    finally:
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True, timeout=120)
    wait_for(lambda: all(deliveries(client, j)[0]["state"] == "delivered" for j in jobs), 90, "delivery", stack)
    all_delivered_once(client, receiver, jobs)
    for name, proc in stack.procs.items():
        assert proc.poll() is None, f"{name} died with the broker\n{stack.log_text()}"
