"""No data lost: a job accepted is a job that finishes or fails visibly through
restarts of the engine and of results (SIGKILL, no graceful anything), in the
distributed mode on the real Postgres and RabbitMQ, and in standalone."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.e2e.test_seed001_flow import minute_csv, read_sse
from tests.stacks import start_distributed, start_standalone, wait_healthy

# They stop the machine's RabbitMQ: run alone, after the rest of the suite (Makefile `test`).
pytestmark = pytest.mark.serial

LONG = {"ticker": "DUR-BIG", "fast_range": [5, 60], "slow_range": [61, 200], "step": 1, "min_trades": 10,
        "strategy_type": "SMA"}


def wait_percent(c: httpx.Client, job_id: str, at_least: float, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = c.get(f"/api/v1/jobs/{job_id}").json()
        if job["progress"]["percent"] >= at_least:
            return
        assert job["status"] in ("queued", "running"), job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {at_least}%")


def wait_end(c: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            job = c.get(f"/api/v1/jobs/{job_id}").json()
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        if job.get("status") in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end")


def upload_big(c: httpx.Client) -> None:
    r = c.post("/api/v1/datasets", files={"file": ("big.csv", minute_csv(300_000), "text/csv")},
               data={"ticker": "DUR-BIG", "interval": "1m", "calendar": "continuous"})
    assert r.status_code == 201, r.text


@pytest.fixture
def distributed(tmp_path):
    db, db_url = create_database()
    vhost, amqp = create_vhost()
    stack = start_distributed(db_url, amqp, tmp_path)
    yield stack
    stack.stop()
    drop_database(db)
    delete_vhost(vhost)


def test_engine_killed_mid_job_then_restarted(distributed):
    s = distributed
    with s.client(headers={"X-API-Key": s.api_key}) as c:
        upload_big(c)
        job_id = c.post("/api/v1/strategy/sweep", json=LONG).json()["job_id"]
        wait_percent(c, job_id, 10)
        s.kill("engine")
        assert c.get(f"/api/v1/jobs/{job_id}").json()["status"] == "running"
        s.restart("engine")
        job = wait_end(c, job_id)
        assert job["status"] == "completed", (job, s.log_text())
        # The stream tells the whole story: the restart is visible, the end is `done`.
        with c.stream("GET", f"/api/v1/jobs/{job_id}/stream") as resp:
            events = [e["data"] for e in read_sse(resp)]
        assert any("interruption" in e.get("message", "") for e in events), events
        assert events[-1]["done"] is True
        best = c.get(f"/api/v1/sweeps/{job['sweep_run_id']}/best", params={"limit": 1000}).json()
        assert best["total_results"] + best["excluded_below_min_trades"] == 56 * 140


def test_results_killed_mid_job_then_restarted(distributed):
    s = distributed
    with s.client(headers={"X-API-Key": s.api_key}) as c:
        upload_big(c)
        job_id = c.post("/api/v1/strategy/sweep", json=LONG).json()["job_id"]
        wait_percent(c, job_id, 10)
        s.kill("results")
        # Without results the gateway cannot answer for jobs, and says so instead of hanging.
        r = c.get(f"/api/v1/jobs/{job_id}")
        assert r.status_code == 503 and r.headers.get("retry-after")
        r = c.post("/api/v1/strategy/sweep", json=LONG)
        assert r.status_code == 503 and r.headers.get("retry-after")
        time.sleep(1)
        s.restart("results")
        wait_healthy(s)
        job = wait_end(c, job_id)
        assert job["status"] == "completed", (job, s.log_text())


def test_standalone_killed_mid_job_then_restarted(tmp_path):
    s = start_standalone(tmp_path / "data", tmp_path)
    try:
        with s.client(headers={"X-API-Key": s.api_key}) as c:
            upload_big(c)
            job_id = c.post("/api/v1/strategy/sweep", json=LONG).json()["job_id"]
            wait_percent(c, job_id, 10)
            s.kill("standalone")
            s.restart("standalone")
            wait_healthy(s)
            job = wait_end(c, job_id)
            assert job["status"] == "completed", (job, s.log_text())
            assert json.loads(json.dumps(job))["sweep_run_id"]
    finally:
        s.stop()


def test_broker_restarted_mid_job(distributed):
    """RabbitMQ stops while a sweep runs: submissions meanwhile get 503 + Retry-After
    (nothing stored), the running job still completes, and new jobs run once it is back."""
    import subprocess

    s = distributed
    with s.client(headers={"X-API-Key": s.api_key}) as c:
        upload_big(c)
        job_id = c.post("/api/v1/strategy/sweep", json=LONG).json()["job_id"]
        wait_percent(c, job_id, 10)
        total_before = c.get("/api/v1/jobs").json()["total"]
        refused = None
        try:
            subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True, timeout=60)
            deadline = time.time() + 20
            while time.time() < deadline:
                r = c.post("/api/v1/strategy/sweep", json={**LONG, "fast_range": [5, 6], "slow_range": [61, 62]})
                if r.status_code == 503:
                    refused = r
                    break
                assert r.status_code == 202, r.text
                total_before += 1  # accepted before the outage was noticed: it must still finish
                time.sleep(0.2)
        finally:
            subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True, timeout=120)
        assert refused is not None and refused.headers.get("retry-after"), "no 503 while the broker was down"
        assert c.get("/api/v1/jobs").json()["total"] == total_before  # the refused one stored nothing
        job = wait_end(c, job_id, timeout=180)
        assert job["status"] == "completed", (job, s.log_text())
        deadline = time.time() + 60
        while True:
            r = c.post("/api/v1/strategy/sweep", json={**LONG, "fast_range": [5, 6], "slow_range": [61, 62]})
            if r.status_code == 202 or time.time() > deadline:
                break
            time.sleep(0.5)
        assert r.status_code == 202, r.text
        after = wait_end(c, r.json()["job_id"], timeout=120)
        assert after["status"] == "completed", (after, s.log_text())
        # Every job accepted at any point ended (none lost in the outage).
        for j in c.get("/api/v1/jobs", params={"limit": 100}).json()["jobs"]:
            assert wait_end(c, j["job_id"], timeout=120)["status"] in ("completed", "failed", "cancelled")
        for name, proc in s.procs.items():
            assert proc.poll() is None, f"{name} died with the broker\n{s.log_text()}"
