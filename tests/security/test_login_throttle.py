"""Issue 12, finding 8: 300 wrong keys went through at 411 requests/s, all 401, with no
log line. Failed logins are now logged (never the key) and throttled per client address
and per key prefix with 429 + Retry-After — checked against real gateways over real
HTTP from several loopback source addresses (127.0.0.x), in front of the real results."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest

from libs.settings import Settings
from tests.security._trust2_support import ALPHA_KEY, Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("throttle"))
    try:
        s.start_results()
        yield s
    finally:
        s.close()


def _from(address: str, base_url: str) -> httpx.Client:
    """A client whose connections come from `address` (any of 127.0.0.0/8 reaches the gateway)."""
    return httpx.Client(base_url=base_url, timeout=20, transport=httpx.HTTPTransport(local_address=address))


def _records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == message]


def test_300_wrong_keys_are_logged_and_throttled(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    g = stack.gateway()  # the default allowances
    defaults = Settings()
    allowance = defaults.hindsight_auth_failures_per_address
    refill_per_second = allowance / defaults.hindsight_auth_failure_window_seconds
    wrong = ["hs_" + secrets.token_urlsafe(32) for _ in range(300)]
    caplog.set_level(logging.INFO)
    with _from("127.0.0.1", g.url) as c:
        codes = []
        started = time.monotonic()
        for i, key in enumerate(wrong):
            # Every way a key is presented counts: the header, Bearer, and the login itself.
            if i % 3 == 0:
                r = c.get("/api/v1/jobs", headers={"X-API-Key": key})
            elif i % 3 == 1:
                r = c.get("/api/v1/jobs", headers={"Authorization": f"Bearer {key}"})
            else:
                r = c.post("/api/v1/auth/login", json={"api_key": key})
            codes.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1
                assert r.json()["error"]["code"] == "too_many_requests"
        # The burst, plus what came back while the run lasted.
        checked = allowance + int((time.monotonic() - started) * refill_per_second) + 1
        assert allowance <= codes.count(401) <= checked, codes
        assert codes[:allowance] == [401] * allowance and codes.count(429) >= 300 - checked
        assert set(codes) == {401, 429}
        # While throttled, even the right key gets no answer from this address (no oracle)...
        assert c.get("/api/v1/jobs", headers={"X-API-Key": ALPHA_KEY}).status_code == 429
    # ...but another address is not affected.
    with _from("127.0.0.2", g.url) as other:
        assert other.get("/api/v1/jobs", headers={"X-API-Key": ALPHA_KEY}).status_code == 200
    failed = _records(caplog, "failed login")
    assert len(failed) == codes.count(401)  # one line per failure that was checked; none while throttled
    for r in failed:
        assert r.levelname == "WARNING" and r.client == "127.0.0.1"
        assert r.key_prefix.startswith("hs_") and len(r.key_prefix) == 4 and r.key_length == len(wrong[0])
    assert _records(caplog, "client address throttled after failed logins")
    text = "\n".join(json.dumps({k: str(v) for k, v in vars(r).items()}) for r in caplog.records)
    assert not any(key in text for key in wrong)  # never the key
    assert not any(key[:8] in text for key in wrong)  # nor more than its first 4 characters


def test_one_key_prefix_is_throttled_across_addresses(stack: Stack) -> None:
    g = stack.gateway(hindsight_auth_failures_per_key_prefix=5, hindsight_auth_failure_window_seconds=600)
    prefix = "hs_" + secrets.token_hex(3)[:5]
    codes = []
    for i in range(12):
        with _from(f"127.0.1.{i + 1}", g.url) as c:  # each address fails once: far below its own allowance
            r = c.get("/api/v1/jobs", headers={"X-API-Key": prefix + secrets.token_urlsafe(24)})
            codes.append(r.status_code)
    assert codes[:5] == [401] * 5 and codes[5:] == [429] * 7, codes
    # Keys with other prefixes, from those same addresses, are still checked.
    with _from("127.0.1.1", g.url) as c:
        assert c.get("/api/v1/jobs", headers={"X-API-Key": ALPHA_KEY}).status_code == 200


def test_bad_session_cookies_count_too_and_the_allowance_comes_back(stack: Stack) -> None:
    g = stack.gateway(hindsight_auth_failures_per_address=3, hindsight_auth_failure_window_seconds=3)
    with _from("127.0.2.1", g.url) as c:
        codes = [c.get("/api/v1/jobs", headers={"Cookie": f"hindsight_session=forged{i}"}).status_code
                 for i in range(5)]
        assert codes == [401, 401, 401, 429, 429], codes
        r = c.post("/api/v1/auth/login", json={"api_key": ALPHA_KEY})
        assert r.status_code == 429
        wait = int(r.headers["Retry-After"])
        assert 1 <= wait <= 3
        time.sleep(wait + 0.2)
        # One unit came back: the right key logs in; a wrong one then is 401, then 429 again.
        assert c.post("/api/v1/auth/login", json={"api_key": ALPHA_KEY}).status_code == 200
        assert c.get("/api/v1/jobs", headers={"X-API-Key": "wrong-" + secrets.token_hex(8)}).status_code == 401
        assert c.get("/api/v1/jobs", headers={"X-API-Key": "wrong-" + secrets.token_hex(8)}).status_code == 429


def test_requests_without_credentials_and_good_keys_are_never_counted(stack: Stack) -> None:
    g = stack.gateway(hindsight_auth_failures_per_address=2)
    with _from("127.0.3.1", g.url) as c:
        for _ in range(10):
            assert c.get("/api/v1/jobs", headers={"X-API-Key": ALPHA_KEY}).status_code == 200
            assert c.get("/api/v1/jobs").status_code == 401  # no credentials: distributed mode wants some
            assert c.get("/health").status_code == 200
        assert c.get("/api/v1/jobs", headers={"X-API-Key": "wrong-" + secrets.token_hex(8)}).status_code == 401
