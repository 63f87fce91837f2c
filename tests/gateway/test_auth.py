"""Credentials: session cookie, X-API-Key, Bearer; the dev tenant; 401s."""

from __future__ import annotations

import time

import httpx
import pytest
from hindsight.results.v1 import results_pb2

from tests.gateway.conftest import ALPHA_KEY, DEV_KEY, REVOKEE_KEY, Gateway, Results
from tests.gateway.helpers import SEED_FORM, assert_error


def test_login_sets_an_httponly_session_cookie_that_authenticates(gw_distributed: Gateway) -> None:
    with httpx.Client(base_url=gw_distributed.url, timeout=20) as c:
        assert_error(c.get("/api/v1/jobs"), 401, "unauthenticated")
        # The seed's curl: JSON body.
        r = c.post("/api/v1/auth/login", json={"api_key": ALPHA_KEY})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["authenticated"] is True and body["tenant_id"] == "alpha"
        assert body["expires_in"] == 7 * 24 * 3600
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("hindsight_session=")
        lowered = cookie.lower()
        assert "httponly" in lowered and "samesite=strict" in lowered and "max-age=604800" in lowered
        assert "secure" in lowered  # even over plain HTTP (tests/security/test_cookie.py)
        assert ALPHA_KEY not in cookie
        # The cookie authenticates (sent as a browser sends a Secure cookie to loopback;
        # httpx's jar keeps Secure cookies for https only).
        r = c.get("/api/v1/jobs", headers={"Cookie": cookie.split(";", 1)[0]})
        assert r.status_code == 200, r.text
        # Logout clears it.
        r = c.post("/api/v1/auth/logout")
        assert r.status_code == 200
        assert_error(c.get("/api/v1/jobs"), 401)


def test_login_reads_json_whatever_the_content_type(gw_distributed: Gateway) -> None:
    r = httpx.post(
        gw_distributed.url + "/api/v1/auth/login",
        content=b'{"api_key": "%s"}' % ALPHA_KEY.encode(),
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 200, r.text
    # The seed's Node client passes the Set-Cookie value on as a Cookie header.
    session = r.headers["set-cookie"].split(";", 1)[0]
    r = httpx.get(gw_distributed.url + "/api/v1/jobs", headers={"Cookie": session})
    assert r.status_code == 200, r.text


def test_login_errors(gw_distributed: Gateway) -> None:
    url = gw_distributed.url + "/api/v1/auth/login"
    assert_error(httpx.post(url, json={"api_key": "wrong"}), 401, "unauthenticated")
    assert_error(httpx.post(url, json={}), 400, "invalid_request")
    assert_error(httpx.post(url, json={"api_key": 42}), 400)
    assert_error(httpx.post(url, content=b"{not json", headers={"Content-Type": "application/json"}), 400)


def test_tampered_or_foreign_cookie_is_401(gw_distributed: Gateway, gw: Gateway) -> None:
    r = httpx.post(gw_distributed.url + "/api/v1/auth/login", json={"api_key": ALPHA_KEY})
    token = r.cookies["hindsight_session"]
    bad = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    r = httpx.get(gw_distributed.url + "/api/v1/jobs", cookies={"hindsight_session": bad})
    assert_error(r, 401)
    # Signed with another gateway's secret: not valid here, and never the dev tenant.
    r = httpx.get(gw.url + "/api/v1/jobs", cookies={"hindsight_session": token})
    assert_error(r, 401)


@pytest.mark.parametrize("how", ["x-api-key", "bearer", "bearer-lowercase"])
def test_api_key_headers(gw_distributed: Gateway, how: str) -> None:
    headers = {
        "x-api-key": {"X-API-Key": ALPHA_KEY},
        "bearer": {"Authorization": f"Bearer {ALPHA_KEY}"},
        "bearer-lowercase": {"authorization": f"bearer {ALPHA_KEY}"},
    }[how]
    r = httpx.get(gw_distributed.url + "/api/v1/jobs", headers=headers)
    assert r.status_code == 200, r.text


def test_no_credentials_act_as_dev_tenant_on_loopback_standalone(gw: Gateway) -> None:
    r = httpx.post(gw.url + "/api/v1/strategy/sweep", data=SEED_FORM)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    # The same job is visible with the dev key (the dev tenant) and not to alpha.
    assert httpx.get(gw.url + f"/api/v1/jobs/{job_id}", headers={"X-API-Key": DEV_KEY}).status_code == 200
    assert_error(httpx.get(gw.url + f"/api/v1/jobs/{job_id}", headers={"X-API-Key": ALPHA_KEY}), 404)


@pytest.mark.parametrize("fixture", ["gw_require_auth", "gw_distributed", "gw_public_bind"])
def test_no_credentials_is_401_unless_dev_mode(request: pytest.FixtureRequest, fixture: str) -> None:
    g: Gateway = request.getfixturevalue(fixture)
    assert_error(httpx.get(g.url + "/api/v1/jobs"), 401, "unauthenticated")
    assert_error(httpx.post(g.url + "/api/v1/strategy/sweep", data=SEED_FORM), 401, "unauthenticated")
    assert httpx.get(g.url + "/api/v1/jobs", headers={"X-API-Key": ALPHA_KEY}).status_code == 200


@pytest.mark.parametrize("fixture", ["gw", "gw_require_auth", "gw_distributed", "gw_public_bind"])
@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": "wrong-key"},
        {"X-API-Key": ""},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": "Bearer YOUR_SUPABASE_JWT"},
        {"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"},
        {"Cookie": "hindsight_session=garbage"},
    ],
    ids=["x-api-key", "empty-key", "bearer", "seed-placeholder", "basic", "cookie"],
)
def test_wrong_credentials_are_401_in_every_mode(
    request: pytest.FixtureRequest, fixture: str, headers: dict[str, str]
) -> None:
    g: Gateway = request.getfixturevalue(fixture)
    assert_error(httpx.get(g.url + "/api/v1/jobs", headers=headers), 401, "unauthenticated")


def test_revoked_key_and_its_sessions_stop_working_within_seconds(gw_distributed: Gateway, results: Results) -> None:
    from services.results.admin import run as admin

    with httpx.Client(base_url=gw_distributed.url, timeout=20) as c:
        assert c.get("/api/v1/jobs", headers={"X-API-Key": REVOKEE_KEY}).status_code == 200
        login = c.post("/api/v1/auth/login", json={"api_key": REVOKEE_KEY})
        assert login.status_code == 200
        c.headers["Cookie"] = login.headers["set-cookie"].split(";", 1)[0]  # a Secure cookie, sent as a browser does
        assert c.get("/api/v1/jobs").status_code == 200  # session cookie
        key_id = results.stub().Authenticate(results_pb2.AuthenticateRequest(api_key=REVOKEE_KEY), timeout=10).key_id
        assert admin(["--data-dir", str(results.settings.hindsight_data_dir), "revoke-key", key_id]) == 0
        deadline = time.monotonic() + 7  # lookups are cached 5 s at most
        while time.monotonic() < deadline:
            by_key = c.get("/api/v1/jobs", headers={"X-API-Key": REVOKEE_KEY}).status_code
            by_cookie = c.get("/api/v1/jobs").status_code
            if by_key == by_cookie == 401:
                break
            time.sleep(0.25)
        assert (by_key, by_cookie) == (401, 401)


def test_whoami_says_whether_a_login_is_needed(gw: Gateway, gw_require_auth: Gateway) -> None:
    """Issue 16: the dashboard asks this to show "no login needed" instead of "Log in"."""
    with gw.client() as c:
        assert c.get("/api/v1/auth/whoami").json() == {"tenant_id": "dev", "dev_access": True}
    with gw_require_auth.client() as c:
        r = c.get("/api/v1/auth/whoami")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
        me = c.get("/api/v1/auth/whoami", headers={"X-API-Key": ALPHA_KEY}).json()
        assert me == {"tenant_id": "alpha", "dev_access": False}
