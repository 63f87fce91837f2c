"""Gateway side of notifications: the SSRF check of webhook URLs at submission, the
tenant's notification settings, a job's deliveries and redelivery (over real HTTP and gRPC)."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.conftest import ALPHA_KEY, BETA_KEY, Gateway, Harness, Results
from tests.gateway.helpers import SEED_JSON, assert_error, jobs_total

REFUSED_WEBHOOKS = [
    "http://127.0.0.1:3000/webhook",
    "http://[::1]:3000/webhook",
    "http://10.0.0.5/webhook",
    "http://172.16.3.4/webhook",
    "http://192.168.1.20/webhook",
    "http://169.254.169.254/latest/meta-data/",
    "http://0.0.0.0:8000/webhook",
    "http://localhost:3000/webhook",  # a hostname resolving to loopback
    "http://2130706433/webhook",  # decimal 127.0.0.1
    "http://0x7f000001/webhook",  # hex
    "http://0177.0.0.1/webhook",  # octal
    "http://[::ffff:127.0.0.1]/webhook",  # IPv4-mapped IPv6
    "http://[::ffff:a9fe:a9fe]/",  # mapped metadata address
    "http://metadata.google.internal/",
]


def _sweep(c: httpx.Client, webhook_url: str) -> httpx.Response:
    return c.post("/api/v1/strategy/sweep", json={**SEED_JSON, "webhook_url": webhook_url})


@pytest.fixture(scope="module")
def gw_allow(harness: Harness, results: Results) -> Gateway:
    """Distributed mode with a development allow-list."""
    return harness.gateway(results.addr, hindsight_mode="distributed", hindsight_webhook_allow="10.1.0.0/16,127.0.0.1/32")


def test_refused_webhook_urls_are_400_and_queue_nothing(gw_distributed: Gateway, results: Results) -> None:
    before = jobs_total(results.stub(), "alpha")
    with gw_distributed.client(headers={"X-API-Key": ALPHA_KEY}) as c:
        for url in REFUSED_WEBHOOKS:
            r = _sweep(c, url)
            body = assert_error(r, 400)
            (err,) = body["details"]["errors"]
            assert err["field"] == "webhook_url" and "refused" in err["message"], (url, err)
        # The pipeline trigger goes through the same check.
        r = c.post("/api/pipelines/trigger", json={**SEED_JSON, "webhook_url": "http://10.9.9.9/"})
        assert_error(r, 400)
    assert jobs_total(results.stub(), "alpha") == before


def test_public_and_unresolvable_hosts_are_accepted(gw_distributed: Gateway) -> None:
    with gw_distributed.client(headers={"X-API-Key": ALPHA_KEY}) as c:
        assert _sweep(c, "https://8.8.8.8/hook").status_code == 202
        # Not resolvable now (the seed's docker-compose name): checked again when delivering.
        assert _sweep(c, "http://webhook-receiver:3000/webhook/sweep-callback").status_code == 202


def test_allow_list_and_standalone_loopback(gw_allow: Gateway, gw: Gateway) -> None:
    with gw_allow.client(headers={"X-API-Key": ALPHA_KEY}) as c:
        assert _sweep(c, "http://10.1.2.3/hook").status_code == 202
        assert _sweep(c, "http://127.0.0.1:3000/hook").status_code == 202
        assert_error(_sweep(c, "http://127.0.0.2:3000/hook"), 400)
        assert_error(_sweep(c, "http://10.2.0.1/hook"), 400)
    # Standalone allows loopback receivers, nothing else private.
    with gw.client(headers={"X-API-Key": ALPHA_KEY}) as c:
        assert _sweep(c, "http://127.0.0.1:3000/hook").status_code == 202
        assert _sweep(c, "http://localhost:3000/hook").status_code == 202
        assert_error(_sweep(c, "http://192.168.1.20/hook"), 400)
        assert_error(_sweep(c, "http://169.254.169.254/"), 400)


def test_notification_settings_round_trip(gw_distributed: Gateway) -> None:
    with gw_distributed.client(headers={"X-API-Key": BETA_KEY}) as c:
        first = c.get("/api/v1/settings/notifications")
        assert first.status_code == 200, first.text
        s = first.json()
        assert s["webhook_url"] is None and s["notify_email"] is None and s["webhook_secret"].startswith("whsec_")
        assert c.get("/api/v1/settings/notifications").json()["webhook_secret"] == s["webhook_secret"]

        r = c.put("/api/v1/settings/notifications", json={"webhook_url": "https://8.8.8.8/hook",
                                                          "notify_email": "desk@example.com"})
        assert r.status_code == 200, r.text
        assert r.json()["webhook_url"] == "https://8.8.8.8/hook" and r.json()["notify_email"] == "desk@example.com"
        assert r.json()["webhook_secret"] == s["webhook_secret"]
        r = c.put("/api/v1/settings/notifications", json={"webhook_url": "https://8.8.8.8/hook", "rotate_secret": True})
        assert r.json()["webhook_secret"] != s["webhook_secret"] and r.json()["notify_email"] is None
        r = c.put("/api/v1/settings/notifications", json={"webhook_secret": "my-receivers-secret-123"})
        assert r.json()["webhook_secret"] == "my-receivers-secret-123" and r.json()["webhook_url"] is None

        for bad, field in (
            ({"webhook_url": "http://10.0.0.1/"}, "webhook_url"),
            ({"webhook_url": "ftp://8.8.8.8/"}, "webhook_url"),
            ({"webhook_url": "http://localhost/"}, "webhook_url"),
            ({"notify_email": "not-an-email"}, "notify_email"),
            ({"webhook_secret": "short"}, "webhook_secret"),
            ({"webhook_secret": "x" * 20, "rotate_secret": True}, "rotate_secret"),
            ({"rotate_secret": "maybe"}, "rotate_secret"),
            ({"webhookUrl": "https://8.8.8.8/"}, "webhookUrl"),
        ):
            body = assert_error(c.put("/api/v1/settings/notifications", json=bad), 400)
            assert field in [e["field"] for e in body["details"]["errors"]], (bad, body)
        assert c.get("/api/v1/settings/notifications").json()["webhook_secret"] == "my-receivers-secret-123"
    # Settings are the caller's own.
    with gw_distributed.client(headers={"X-API-Key": ALPHA_KEY}) as c:
        assert c.get("/api/v1/settings/notifications").json()["webhook_secret"] != "my-receivers-secret-123"


def test_deliveries_of_a_job(gw_distributed: Gateway) -> None:
    with gw_distributed.client(headers={"X-API-Key": ALPHA_KEY}) as c:
        job_id = _sweep(c, "https://8.8.8.8/hook").json()["job_id"]
        r = c.get(f"/api/v1/jobs/{job_id}/deliveries")
        assert r.status_code == 200, r.text
        assert r.json() == {"job_id": job_id, "event_id": None, "event_type": None, "deliveries": []}
        body = assert_error(c.post(f"/api/v1/jobs/{job_id}/deliveries/redeliver"), 409)
        assert "not ended" in body["message"]
        assert_error(c.post(f"/api/v1/jobs/{job_id}/deliveries/redeliver", params={"channel": "sms"}), 400)
        assert_error(c.get("/api/v1/jobs/sweep_nope/deliveries"), 404)
    with gw_distributed.client(headers={"X-API-Key": BETA_KEY}) as c:
        assert_error(c.get(f"/api/v1/jobs/{job_id}/deliveries"), 404)
        assert_error(c.post(f"/api/v1/jobs/{job_id}/deliveries/redeliver"), 404)
