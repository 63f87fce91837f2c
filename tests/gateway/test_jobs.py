"""Jobs: read, list and page, cancel; tenant isolation."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.conftest import PAGER_KEY, Gateway, Results
from tests.gateway.helpers import SEED_JSON, assert_error, run_job


def test_job_view(alpha: httpx.Client) -> None:
    job_id = alpha.post("/api/v1/strategy/sweep", json=SEED_JSON).json()["job_id"]
    j = alpha.get(f"/api/v1/jobs/{job_id}").json()
    assert j["job_id"] == job_id and j["status"] == "queued"
    assert j["parameters"]["ticker"] == "BTC-USD"
    assert j["created_at"].endswith("Z") and j["started_at"] is None and j["completed_at"] is None
    assert set(j["progress"]) == {"percent", "message"}
    assert j["error_message"] is None and j["sweep_run_id"] is None and j["metrics"] is None
    assert j["timeout_seconds"] == 3600
    assert j["stream_url"] == f"/api/v1/jobs/{job_id}/stream"
    assert "trace_id" in j and "webhook_url" in j


def test_unknown_job_is_404(alpha: httpx.Client) -> None:
    for path in ("/api/v1/jobs/sweep_nope", "/api/v1/jobs/%00bad", "/api/v1/jobs/" + "x" * 300):
        assert_error(alpha.get(path), 404, "not_found")
    assert_error(alpha.delete("/api/v1/jobs/sweep_nope"), 404, "not_found")


def test_other_tenants_job_is_404(alpha: httpx.Client, beta: httpx.Client) -> None:
    job_id = alpha.post("/api/v1/strategy/sweep", json=SEED_JSON).json()["job_id"]
    assert_error(beta.get(f"/api/v1/jobs/{job_id}"), 404)
    assert_error(beta.delete(f"/api/v1/jobs/{job_id}"), 404)
    assert_error(beta.get(f"/api/pipelines/{job_id}"), 404)
    assert_error(beta.get(f"/api/v1/jobs/{job_id}/stream"), 404)
    assert_error(beta.get(f"/sse-proxy/jobs/{job_id}/stream"), 404)
    assert all(j["job_id"] != job_id for j in beta.get("/api/v1/jobs", params={"limit": 1000}).json()["jobs"])
    assert alpha.get(f"/api/v1/jobs/{job_id}").json()["status"] == "queued"  # untouched


def test_listing_pages_newest_first(gw: Gateway, results: Results) -> None:
    with httpx.Client(base_url=gw.url, headers={"X-API-Key": PAGER_KEY}, timeout=20) as c:
        start = c.get("/api/v1/jobs").json()["total"]
        ids = [c.post("/api/v1/strategy/sweep", json=SEED_JSON).json()["job_id"] for _ in range(5)]
        listing = c.get("/api/v1/jobs").json()
        assert listing["total"] == start + 5 and listing["limit"] == 50 and listing["offset"] == 0
        newest_first = [j["job_id"] for j in listing["jobs"][:5]]
        assert newest_first == ids[::-1]
        page1 = c.get("/api/v1/jobs", params={"limit": 2}).json()
        page2 = c.get("/api/v1/jobs", params={"limit": 2, "offset": 2}).json()
        assert [j["job_id"] for j in page1["jobs"] + page2["jobs"]] == ids[::-1][:4]
        assert page2["limit"] == 2 and page2["offset"] == 2
        assert c.get("/api/v1/jobs", params={"limit": 1000}).status_code == 200
        assert c.get("/api/v1/jobs", params={"offset": 10_000}).json()["jobs"] == []

        # Status filter, either case.
        run_job(results.stub(), ids[0])
        done = c.get("/api/v1/jobs", params={"status": "completed"}).json()
        assert [j["job_id"] for j in done["jobs"]] == [ids[0]] and done["total"] == 1
        assert c.get("/api/v1/jobs", params={"status": "QUEUED"}).json()["total"] == start + 4


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1001}, {"limit": -1}, {"limit": "ten"}, {"offset": -1}, {"offset": "x"},
     {"status": "sleeping"}, {"limit": "1e3"}],
)
def test_listing_bounds_are_400(alpha: httpx.Client, params: dict) -> None:
    err = assert_error(alpha.get("/api/v1/jobs", params=params), 400, "invalid_request")
    assert err["details"]["errors"], err


def test_cancel(alpha: httpx.Client, results: Results) -> None:
    job_id = alpha.post("/api/v1/strategy/sweep", json=SEED_JSON).json()["job_id"]
    r = alpha.delete(f"/api/v1/jobs/{job_id}")
    assert r.status_code == 200, r.text
    assert r.json()["job_id"] == job_id and r.json()["status"] == "cancelled"
    assert alpha.get(f"/api/v1/jobs/{job_id}").json()["status"] == "cancelled"
    assert_error(alpha.delete(f"/api/v1/jobs/{job_id}"), 409, "conflict")

    # A completed job cannot be cancelled either.
    done = alpha.post("/api/v1/strategy/sweep", json=SEED_JSON).json()["job_id"]
    run_job(results.stub(), done)
    assert_error(alpha.delete(f"/api/v1/jobs/{done}"), 409)
