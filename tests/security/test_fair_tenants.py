"""Issue 12, item 3: one tenant's work does not starve another's, and each tenant's queue is
bounded.

The distributed stack as processes (Postgres, RabbitMQ, one engine replica), two tenants.
- Tenant beta queues two long sweeps; tenant alpha's 8-combination sweep, submitted after
  them, completes while beta's first sweep is still running and its second still queued
  (beta runs one job at a time: HINDSIGHT_TENANT_MAX_RUNNING_JOBS=1). Before fairness
  alpha's sweep waited for both.
- Past HINDSIGHT_TENANT_MAX_ACTIVE_JOBS or HINDSIGHT_TENANT_MAX_QUEUED_BAR_PAIRS a tenant's
  submission gets a 429 with Retry-After and stores nothing; the other tenant is not
  affected; a single job larger than the bar-pair limit, or a timeout_seconds above
  HINDSIGHT_MAX_TIMEOUT_SECONDS, is a 400.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest

from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.e2e.test_seed001_flow import minute_csv
from tests.security.conftest import wait_for
from tests.stacks import Stack, start_distributed

BIG_BARS = 300_000
# 96 x 300 = 28,800 combinations over 300,000 bars: 8.6e9 bar-pairs, several seconds a sweep.
LONG = {"ticker": "FAIR-BIG", "fast_range": [5, 100], "slow_range": [101, 400], "step": 1, "min_trades": 10}
# The seed's 8 combinations.
SMALL = {"ticker": "FAIR-SMALL", "fast_range": [10, 20], "slow_range": [20, 30], "step": 5, "min_trades": 10}
LONG_PAIRS = 96 * 300 * BIG_BARS


def keys() -> dict[str, str]:
    return {t: f"{t}-key-" + os.urandom(8).hex() for t in ("alpha", "beta")}


def start(tmp_path, env: dict) -> tuple[Stack, dict[str, str], tuple[str, str]]:
    db, db_url = create_database()
    vhost, amqp = create_vhost()
    ks = keys()
    env = dict(env, HINDSIGHT_BOOTSTRAP_KEYS=",".join(f"{t}:{k}" for t, k in ks.items()))
    return start_distributed(db_url, amqp, tmp_path, extra_env=env), ks, (db, vhost)


def upload(c: httpx.Client, ticker: str, bars: int) -> None:
    r = c.post("/api/v1/datasets", files={"file": (f"{ticker}.csv", minute_csv(bars), "text/csv")},
               data={"ticker": ticker, "interval": "1m", "calendar": "continuous"})
    assert r.status_code == 201, r.text


def status(c: httpx.Client, job_id: str) -> str:
    return c.get(f"/api/v1/jobs/{job_id}").json()["status"]


@pytest.fixture
def fair_stack(tmp_path):
    stack, ks, (db, vhost) = start(tmp_path, {})
    yield stack, ks
    stack.stop()
    drop_database(db)
    delete_vhost(vhost)


def test_small_job_of_one_tenant_runs_beside_the_long_jobs_of_another(fair_stack):
    stack, ks = fair_stack
    with stack.client(headers={"X-API-Key": ks["beta"]}) as beta, \
            stack.client(headers={"X-API-Key": ks["alpha"]}) as alpha:
        upload(beta, "FAIR-BIG", BIG_BARS)
        upload(alpha, "FAIR-SMALL", 5_000)
        b1 = beta.post("/api/v1/strategy/sweep", json=LONG).json()["job_id"]
        wait_for(lambda: status(beta, b1) == "running", 30, "beta's first sweep running", stack)
        b2 = beta.post("/api/v1/strategy/sweep", json=LONG).json()["job_id"]
        time.sleep(1.5)  # the engine has a free slot: beta's second sweep is offered it, and held back
        a = alpha.post("/api/v1/strategy/sweep", json=SMALL)
        assert a.status_code == 202, a.text
        done = wait_for(lambda: (j := alpha.get(f"/api/v1/jobs/{a.json()['job_id']}").json())["status"]
                        in ("completed", "failed") and j, 60, "alpha's sweep", stack)
        # Alpha's sweep ended while beta's first still runs and beta's second waits its turn.
        states = (status(beta, b1), status(beta, b2))
        assert done["status"] == "completed", done
        assert states == ("running", "queued"), (states, stack.log_text())
        # Beta's second sweep starts once its first has ended.
        assert beta.delete(f"/api/v1/jobs/{b1}").status_code == 200
        wait_for(lambda: status(beta, b2) == "running", 30, "beta's second sweep running", stack)
        assert beta.delete(f"/api/v1/jobs/{b2}").status_code == 200


@pytest.fixture
def quota_stack(tmp_path):
    env = {
        "HINDSIGHT_TENANT_MAX_ACTIVE_JOBS": "3",
        # Two long sweeps fit, a third does not.
        "HINDSIGHT_TENANT_MAX_QUEUED_BAR_PAIRS": str(int(LONG_PAIRS * 2.5)),
        "HINDSIGHT_MAX_TIMEOUT_SECONDS": "600",
    }
    stack, ks, (db, vhost) = start(tmp_path, env)
    yield stack, ks
    stack.stop()
    drop_database(db)
    delete_vhost(vhost)


def jobs_of(c: httpx.Client) -> int:
    return c.get("/api/v1/jobs", params={"limit": 100}).json()["total"]


def assert_refused(r: httpx.Response, status_code: int, code: str) -> None:
    assert r.status_code == status_code, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == code, r.json()


def test_queue_limits_per_tenant(quota_stack):
    stack, ks = quota_stack
    with stack.client(headers={"X-API-Key": ks["beta"]}) as beta, \
            stack.client(headers={"X-API-Key": ks["alpha"]}) as alpha:
        upload(beta, "FAIR-BIG", BIG_BARS)
        upload(alpha, "FAIR-SMALL", 5_000)
        # The operator's maximum timeout: above it a 400, and nothing stored.
        r = beta.post("/api/v1/strategy/sweep", json=dict(SMALL, ticker="FAIR-BIG", timeout_seconds=601))
        assert_refused(r, 400, "invalid_argument")
        assert "600" in r.json()["error"]["message"]
        assert jobs_of(beta) == 0
        vocabulary = beta.get("/api/v1/vocabulary").json()
        assert vocabulary["sweep"]["timeout_seconds"] == [1, 600]

        # Queued bar-pairs: two long sweeps fit, the third is refused for now.
        first = [beta.post("/api/v1/strategy/sweep", json=LONG) for _ in range(2)]
        assert [r.status_code for r in first] == [202, 202], [r.text for r in first]
        r = beta.post("/api/v1/strategy/sweep", json=LONG)
        assert_refused(r, 429, "too_many_requests")
        assert 1 <= int(r.headers["Retry-After"]) <= 3600
        assert "bar-pairs" in r.json()["error"]["message"]
        assert jobs_of(beta) == 2
        # A job larger than the whole allowance can never fit: a 400, not a 429.
        huge = dict(LONG, fast_range=[1, 499], slow_range=[2, 500])  # 124,750 combinations
        assert_refused(beta.post("/api/v1/strategy/sweep", json=huge), 400, "invalid_argument")

        # Unfinished jobs: the third (small) one fits, the fourth is refused.
        r = beta.post("/api/v1/strategy/sweep", json=dict(SMALL, ticker="FAIR-BIG"))
        assert r.status_code == 202, r.text
        r = beta.post("/api/v1/strategy/sweep", json=dict(SMALL, ticker="FAIR-BIG"))
        assert_refused(r, 429, "too_many_requests")
        assert int(r.headers["Retry-After"]) >= 1
        assert "unfinished jobs" in r.json()["error"]["message"]
        assert jobs_of(beta) == 3

        # Another tenant is not affected by beta's queue.
        r = alpha.post("/api/v1/strategy/sweep", json=SMALL)
        assert r.status_code == 202, r.text

        # Once beta's jobs end, it may submit again.
        for job in beta.get("/api/v1/jobs").json()["jobs"]:
            if job["status"] in ("queued", "running"):
                beta.delete(f"/api/v1/jobs/{job['job_id']}")
        r = beta.post("/api/v1/strategy/sweep", json=LONG)
        assert r.status_code == 202, r.text
        beta.delete(f"/api/v1/jobs/{r.json()['job_id']}")
