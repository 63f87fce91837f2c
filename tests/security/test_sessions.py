"""Issue 12, finding 7: logout did not end the session (the cookie kept working for 7
days). Sessions now live at results (on Postgres here): logout ends them there, the
revocation of their key ends them, and HINDSIGHT_SESSION_TTL_SECONDS bounds them —
checked through real gateways (two replicas sharing the session secret), real gRPC
and the real database."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from hindsight.results.v1 import results_pb2, results_pb2_grpc
from itsdangerous import URLSafeTimedSerializer

from libs.grpc_util import blocking_channel
from tests.security._trust2_support import ALPHA_KEY, BETA_KEY, SESSION_SECRET, Stack

COOKIE = "hindsight_session"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("sessions"))
    try:
        s.start_results()
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def replicas(stack: Stack):
    """Two gateway replicas of one deployment (same session secret)."""
    return stack.gateway(), stack.gateway()


def _login(stack: Stack, g, key: str = ALPHA_KEY) -> str:
    with stack.client(g) as c:
        r = c.post("/api/v1/auth/login", json={"api_key": key})
        assert r.status_code == 200, r.text
        return r.cookies[COOKIE]


def _jobs_with(stack: Stack, g, cookie: str) -> int:
    """Status of a request that presents `cookie` as a client that kept it would."""
    with stack.client(g) as c:
        return c.get("/api/v1/jobs", headers={"Cookie": f"{COOKIE}={cookie}"}).status_code


def _rows(stack: Stack, sql: str, **params) -> list:
    engine = sa.create_engine(stack.database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        engine.dispose()


def _session_token(cookie: str) -> str:
    """The session token inside a cookie (the test knows the deployment's secret)."""
    return URLSafeTimedSerializer(SESSION_SECRET, salt="hindsight.session.v2").loads(cookie)


def test_logout_ends_the_session_for_a_client_that_kept_the_cookie(stack: Stack, replicas) -> None:
    one, other = replicas
    cookie = _login(stack, one)
    assert _jobs_with(stack, one, cookie) == 200
    with stack.client(one) as c:
        r = c.post("/api/v1/auth/logout", headers={"Cookie": f"{COOKIE}={cookie}"})
        assert r.status_code == 200, r.text
        assert r.json() == {"authenticated": False}
        assert f'{COOKIE}=""' in r.headers["set-cookie"] or "max-age=0" in r.headers["set-cookie"].lower()
    # The cookie was kept (a copy, a stolen one): it no longer works, on any replica.
    assert _jobs_with(stack, one, cookie) == 401
    assert _jobs_with(stack, other, cookie) == 401
    # Ended at results: the row says so, and results itself refuses the token.
    token = _session_token(cookie)
    (revoked_at,) = _rows(stack, "SELECT revoked_at FROM sessions WHERE token_sha256 = :h",
                          h=hashlib.sha256(token.encode()).hexdigest())[0]
    assert revoked_at is not None
    with blocking_channel(stack.results_addr) as chan:
        with pytest.raises(grpc.RpcError) as err:
            results_pb2_grpc.ResultsServiceStub(chan).Authenticate(
                results_pb2.AuthenticateRequest(session_token=token), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Logging out again (or with a garbage cookie) is harmless.
    with stack.client(one) as c:
        assert c.post("/api/v1/auth/logout", headers={"Cookie": f"{COOKIE}={cookie}"}).status_code == 200
        assert c.post("/api/v1/auth/logout", headers={"Cookie": f"{COOKIE}=garbage"}).status_code == 200


def test_logout_ends_only_its_own_session(stack: Stack, replicas) -> None:
    one, _ = replicas
    first, second = _login(stack, one), _login(stack, one)
    assert first != second
    with stack.client(one) as c:
        assert c.post("/api/v1/auth/logout", headers={"Cookie": f"{COOKIE}={first}"}).status_code == 200
    assert _jobs_with(stack, one, first) == 401
    assert _jobs_with(stack, one, second) == 200


def test_revoking_the_key_ends_its_sessions(stack: Stack, replicas, tmp_path: Path) -> None:
    from services.results.admin import run as admin

    one, other = replicas
    beta_cookies = [_login(stack, one, BETA_KEY), _login(stack, other, BETA_KEY)]
    alpha_cookie = _login(stack, one)
    assert all(_jobs_with(stack, g, c) == 200 for g in (one, other) for c in beta_cookies)
    (key_id,) = _rows(stack, "SELECT key_id FROM api_keys WHERE tenant_id = 'beta'")[0]
    assert admin(["--database-url", stack.database_url, "revoke-key", key_id]) == 0
    # Every session of the key is marked ended at once...
    open_ = _rows(stack, "SELECT count(*) FROM sessions WHERE key_id = :k AND revoked_at IS NULL", k=key_id)[0][0]
    assert open_ == 0
    # ...and refused within the gateways' few seconds of cached lookups.
    deadline = time.monotonic() + 7
    while time.monotonic() < deadline:
        codes = {_jobs_with(stack, g, c) for g in (one, other) for c in beta_cookies}
        if codes == {401}:
            break
        time.sleep(0.25)
    assert codes == {401}
    # Another key's session is untouched.
    assert _jobs_with(stack, one, alpha_cookie) == 200


def test_a_session_ends_after_its_lifetime(stack: Stack) -> None:
    g = stack.gateway(hindsight_session_ttl_seconds=2)
    with stack.client(g) as c:
        r = c.post("/api/v1/auth/login", json={"api_key": ALPHA_KEY})
        assert r.status_code == 200, r.text
        assert r.json()["expires_in"] == 2
        assert "max-age=2" in r.headers["set-cookie"].lower()
        cookie = r.cookies[COOKIE]
    assert _jobs_with(stack, g, cookie) == 200
    token = _session_token(cookie)
    created, expires = _rows(stack, "SELECT created_at, expires_at FROM sessions WHERE token_sha256 = :h",
                             h=hashlib.sha256(token.encode()).hexdigest())[0]
    assert 1.5 <= (expires - created).total_seconds() <= 2.5  # results holds the end, not only the cookie
    time.sleep(3.2)
    assert _jobs_with(stack, g, cookie) == 401
    with blocking_channel(stack.results_addr) as chan:
        with pytest.raises(grpc.RpcError) as err:
            results_pb2_grpc.ResultsServiceStub(chan).Authenticate(
                results_pb2.AuthenticateRequest(session_token=token), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_only_a_hash_of_the_session_token_is_stored(stack: Stack, replicas) -> None:
    one, _ = replicas
    cookie = _login(stack, one)
    token = _session_token(cookie)
    rows = _rows(stack, "SELECT * FROM sessions")
    assert rows and all(token not in str(v) and cookie not in str(v) for row in rows for v in row)
    assert ALPHA_KEY not in cookie
