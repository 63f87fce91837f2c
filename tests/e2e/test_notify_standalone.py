"""Notifications in standalone mode (one process, in-process bus): loopback receivers are
allowed and the start says so; webhooks verified by the README's own receiver; email over
SMTP; deliveries, redelivery and the notifier's metrics through the gateway."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.notifier.receivers import Receiver, SmtpServer, free_port
from tests.stacks import ROOT, start_standalone

README_RECEIVER = re.compile(r"```python\n(import hashlib.*?serve_forever\(\)\n)```", re.DOTALL)


@pytest.fixture(scope="module")
def smtp():
    s = SmtpServer().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, smtp):
    env = {
        "HINDSIGHT_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        "HINDSIGHT_NOTIFY_RETRY_BASE_SECONDS": "0.3",
        "HINDSIGHT_NOTIFY_RETRY_MAX_DELAY_SECONDS": "1",
    }
    s = start_standalone(tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("logs"), env)
    yield s
    assert s.stop(signal.SIGINT)["standalone"] == 0, s.log_text()


@pytest.fixture(scope="module")
def client(stack):
    with stack.client(headers={"X-API-Key": stack.api_key}) as c:
        yield c


def readme_receiver(secret: str, port: int) -> subprocess.Popen:
    """The receiver printed in the README, run as it stands."""
    code = README_RECEIVER.search((ROOT / "README.md").read_text()).group(1)
    proc = subprocess.Popen([sys.executable, "-c", code],
                            env=dict(os.environ, HINDSIGHT_WEBHOOK_SECRET=secret, PORT=str(port)))
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with __import__("socket").create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("README receiver did not start")


def settled(c: httpx.Client, job_id: str, n: int = 1, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = c.get(f"/api/v1/jobs/{job_id}/deliveries").json()
        if len(body["deliveries"]) >= n and all(d["state"] != "pending" for d in body["deliveries"]):
            return body
        time.sleep(0.2)
    raise AssertionError(f"deliveries of {job_id} not settled: {body}")


def sweep(c: httpx.Client, ticker: str, **extra) -> str:
    r = c.post("/api/v1/strategy/sweep", json={"ticker": ticker, "fast_range": [10, 20], "slow_range": [20, 30],
                                               "step": 5, "min_trades": 10, **extra})
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def test_start_says_loopback_webhooks_are_allowed(stack):
    banner = "Webhooks to loopback receivers (127.0.0.0/8, ::1) are allowed in standalone mode"
    log_line = "webhooks to loopback (127.0.0.0/8, ::1) are allowed in standalone mode"
    deadline = time.time() + 10
    while time.time() < deadline:  # the banner follows the first /health by a moment
        text = stack.logs["standalone"].read_text(errors="replace")
        if banner in text:
            break
        time.sleep(0.1)
    assert banner in text and log_line in text


def test_readme_receiver_verifies_our_signature_and_email_is_sent(client, smtp):
    secret = client.get("/api/v1/settings/notifications").json()["webhook_secret"]
    good, bad = free_port(), free_port()
    procs = [readme_receiver(secret, good), readme_receiver("not-the-secret-at-all", bad)]
    try:
        ok_job = sweep(client, "DEMO-DAILY", webhook_url=f"http://127.0.0.1:{good}/hook",
                       notify_email="quant@example.com")
        bad_job = sweep(client, "DEMO-DAILY", webhook_url=f"http://localhost:{bad}/hook")
        ok = settled(client, ok_job, n=2)
        by_channel = {d["channel"]: d for d in ok["deliveries"]}
        assert by_channel["webhook"]["state"] == "delivered"
        assert by_channel["webhook"]["attempts"][0]["status_code"] == 204  # the README receiver said: valid
        assert by_channel["email"]["state"] == "delivered" and ok["event_type"] == "sweep.completed"
        (wrong,) = settled(client, bad_job)["deliveries"]
        assert wrong["state"] == "failed" and wrong["attempts"][0]["status_code"] == 401
    finally:
        for p in procs:
            p.kill()
            p.wait()
    msg = next(m for m in smtp.messages if ok_job in m["Subject"])
    assert "DEMO-DAILY" in msg["Subject"] and msg["X-Hindsight-Event-Id"] == ok["event_id"]
    assert {p.get_content_type() for p in msg.walk() if not p.is_multipart()} == {"text/plain", "text/html"}


def test_failed_job_callback_redelivery_and_metrics(client, stack):
    receiver = Receiver().start()
    try:
        receiver.answer(500)
        job_id = sweep(client, "BTC-USD", webhook_url=receiver.url)
        first = settled(client, job_id)
        (d,) = first["deliveries"]
        assert d["state"] == "delivered" and [a["status_code"] for a in d["attempts"]] == [500, 200]
        assert set(d["attempts"][0]) == {"attempt", "time", "url", "status_code", "error", "latency_ms", "outcome"}
        r = client.post(f"/api/v1/jobs/{job_id}/deliveries/redeliver")
        assert r.status_code == 202 and r.json()["event_id"] == first["event_id"]
        settled(client, job_id, n=2)
        got = receiver.for_job(job_id)
        assert [r.status for r in got] == [500, 200, 200]
        assert {r.event_id for r in got} == {first["event_id"]}
        body = got[-1].json
        assert list(body) == ["event_type", "job_id", "status", "ticker", "error_message", "timestamp"]
        assert body["error_message"] == "Insufficient historical data for ticker BTC-USD"
    finally:
        receiver.stop()
    assert client.post("/api/v1/strategy/sweep", json={
        "ticker": "DEMO-DAILY", "fast_range": [10, 20], "slow_range": [20, 30], "step": 5,
        "webhook_url": "http://10.0.0.1/hook"}).status_code == 400
    metrics = httpx.get(stack.base_url + "/metrics").text
    assert re.search(r'hindsight_notifier_deliveries_total\{channel="webhook",outcome="delivered"\} [1-9]', metrics)
    assert re.search(r'hindsight_notifier_deliveries_total\{channel="email",outcome="delivered"\} [1-9]', metrics)


def test_the_readme_receiver_is_about_ten_lines():
    code = README_RECEIVER.search(Path(ROOT / "README.md").read_text()).group(1)
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 12, lines


def test_a_completed_sweep_callback_and_email_carry_its_dsr_and_pbo(client, smtp):
    receiver = Receiver().start()
    try:
        job_id = sweep(client, "DEMO-DAILY", webhook_url=receiver.url, notify_email="dsr@example.com", pbo_blocks=8)
        settled(client, job_id, n=2)
        (got,) = receiver.for_job(job_id)
        data = got.json["result_data"]
    finally:
        receiver.stop()
    best = client.get(f"/api/v1/sweeps/{data['sweep_run_id']}/best").json()["overfitting"]
    assert best["pbo_blocks"] == 8 and len(best["logits"]) == 70
    assert data["deflated_sharpe_ratio"] == best["deflated_sharpe_ratio"] and data["pbo"] == best["pbo"]
    assert isinstance(data["pbo"], float) and isinstance(data["deflated_sharpe_ratio"], float)
    msg = next(m for m in smtp.messages if job_id in m["Subject"])
    text = next(p.get_content() for p in msg.walk() if p.get_content_type() == "text/plain")
    assert f"probability of backtest overfitting {data['pbo']:.3f}" in text and best["reading"] in text
