"""Issue 12, item 11: the session cookie is Secure whatever the request's scheme (behind a
TLS-terminating proxy too) unless HINDSIGHT_INSECURE_COOKIES=1, and SameSite=Strict; the
dashboard over http://127.0.0.1 still logs in (Chromium keeps Secure cookies of loopback).

Real standalone stacks (processes, credentials required) and headless Debian Chromium."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.security.conftest import start_standalone_at, stop
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

KEY = "cookie-key-" + "c" * 32
LOCKED = {"HINDSIGHT_REQUIRE_AUTH": "1", "HINDSIGHT_BOOTSTRAP_KEYS": f"dev:{KEY}"}


def attributes(set_cookie: str) -> dict[str, str]:
    parts = [p.strip() for p in set_cookie.split(";")]
    out = {}
    for p in parts[1:]:
        name, _, value = p.partition("=")
        out[name.lower()] = value
    return out


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    s = start_standalone_at(tmp_path_factory.mktemp("cookie-data"), tmp_path_factory.mktemp("cookie-logs"), LOCKED)
    yield s
    stop(s)


def test_cookie_is_secure_and_strict_whatever_the_scheme(locked):
    with locked.client() as c:
        # Plain HTTP, and as a TLS-terminating proxy forwards it (the app still sees http).
        for headers in ({}, {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}):
            r = c.post("/api/v1/auth/login", json={"api_key": KEY}, headers=headers)
            assert r.status_code == 200, r.text
            attrs = attributes(r.headers["set-cookie"])
            assert r.headers["set-cookie"].startswith("hindsight_session=")
            assert "secure" in attrs and "httponly" in attrs, attrs
            assert attrs["samesite"].lower() == "strict" and attrs["path"] == "/", attrs
        out = c.post("/api/v1/auth/logout")
        attrs = attributes(out.headers["set-cookie"])
        assert "secure" in attrs and attrs["samesite"].lower() == "strict" and attrs["max-age"] == "0", attrs


def test_insecure_cookies_only_when_configured(tmp_path_factory):
    s = start_standalone_at(tmp_path_factory.mktemp("insecure-data"), tmp_path_factory.mktemp("insecure-logs"),
                            {**LOCKED, "HINDSIGHT_INSECURE_COOKIES": "1"})
    try:
        with s.client() as c:
            r = c.post("/api/v1/auth/login", json={"api_key": KEY})
            attrs = attributes(r.headers["set-cookie"])
            assert "secure" not in attrs and attrs["samesite"].lower() == "strict", attrs
            assert c.get("/api/v1/jobs").status_code == 200  # a plain-HTTP client's jar sends it
    finally:
        stop(s)


class _OtherSite:
    """A page on http://localhost:<port> (another site than 127.0.0.1) linking to the API."""

    def __init__(self, target: str) -> None:
        html = f'<html><body><a id="go" href="{target}">go</a></body></html>'.encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(html)))
                self.end_headers()
                self.wfile.write(html)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_dashboard_login_over_http_loopback_and_no_cookie_from_another_site(locked, tmp_path):
    assert CHROMIUM.exists(), "Debian's chromium is missing at /usr/bin/chromium (make build installs it)"
    from playwright.sync_api import sync_playwright

    other = _OtherSite(locked.base_url + "/api/v1/jobs")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            context.set_default_timeout(20_000)
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(locked.base_url + "/")
            page.wait_for_url(re.compile(r"/ui/login\?next="))
            page.fill("#api-key", KEY)
            page.click("#login-submit")
            page.wait_for_url(re.compile(r"/ui/$"))
            assert "tenant dev" in page.inner_text("#session")
            (cookie,) = [c for c in context.cookies() if c["name"] == "hindsight_session"]
            assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
            # The page's own requests carry it; scripts cannot read it.
            status = page.evaluate("async () => (await fetch('/api/v1/jobs')).status")
            assert status == 200
            assert "hindsight_session" not in page.evaluate("() => document.cookie")
            # A link followed from another site (a top-level GET navigation): SameSite=Strict keeps
            # the cookie home (Lax would send it).
            page.goto(other.url)
            with page.expect_navigation():
                page.click("#go")
            assert "credentials required" in page.content(), page.content()[:500]
            context.close()
    finally:
        other.close()
