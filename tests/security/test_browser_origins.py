"""Finding 2 of the trust audit: browsers of other origins only on purpose.

Against a real standalone stack over real HTTP: the Host check (DNS rebinding), the
cross-origin write check (a page on another port of the same host), the CSRF token
for cookie-authenticated simple bodies, and CORS for the listed origins. The browser
half runs the seeds' own browser snippets in headless Chromium from a page served on
another port.
"""

from __future__ import annotations

import contextlib
import http.server
import re
import signal
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.seeds import seed_file
from tests.stacks import Stack, free_port, start_standalone


@pytest.fixture(scope="module")
def page_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def dev_stack(tmp_path_factory: pytest.TempPathFactory, page_port: int) -> Iterator[Stack]:
    """Standalone on loopback without REQUIRE_AUTH; the page server's origin is allowed."""
    stack = start_standalone(
        tmp_path_factory.mktemp("origins-data"),
        tmp_path_factory.mktemp("origins-logs"),
        {"HINDSIGHT_CORS_ORIGINS": f"http://localhost:{page_port},http://localhost:3000"},
    )
    yield stack
    stack.stop(signal.SIGINT)


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory: pytest.TempPathFactory, page_port: int) -> Iterator[Stack]:
    """Standalone with credentials required and a tenant key."""
    stack = start_standalone(
        tmp_path_factory.mktemp("origins-auth-data"),
        tmp_path_factory.mktemp("origins-auth-logs"),
        {
            "HINDSIGHT_REQUIRE_AUTH": "1",
            "HINDSIGHT_BOOTSTRAP_KEYS": "alpha:alpha-key-0123456789abcdef0123",
            "HINDSIGHT_CORS_ORIGINS": f"http://localhost:{page_port}",
        },
    )
    stack.api_key = "alpha-key-0123456789abcdef0123"
    yield stack
    stack.stop(signal.SIGINT)


SWEEP = {"ticker": "DEMO-DAILY", "fast_range": [10, 20], "slow_range": [20, 30], "step": 5}


def _job_count(stack: Stack, headers: dict[str, str] | None = None) -> int:
    with stack.client() as c:
        r = c.get("/api/v1/jobs", headers=headers or {})
        assert r.status_code == 200, r.text
        body = r.json()
        return len(body["jobs"] if isinstance(body, dict) else body)


def test_a_host_not_served_here_is_refused(dev_stack: Stack) -> None:
    with dev_stack.client() as c:
        r = c.get("/api/v1/jobs", headers={"Host": "rebound.example:8000"})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "host_not_allowed"
        assert c.get("/api/v1/jobs", headers={"Host": "localhost"}).status_code == 200


def test_a_page_of_another_origin_cannot_write_without_credentials(dev_stack: Stack) -> None:
    before = _job_count(dev_stack)
    with dev_stack.client() as c:
        for origin in ("http://localhost:9", "null", "http://attacker.example"):
            r = c.post("/api/v1/strategy/sweep", json=SWEEP, headers={"Origin": origin})
            assert r.status_code == 403, (origin, r.text)
            assert r.json()["error"]["code"] == "cross_origin_refused"
        # a form post from a page (Referer only) is refused the same way
        r = c.post("/api/v1/strategy/sweep", data={"ticker": "DEMO-DAILY", "step": "5"},
                   headers={"Referer": "http://localhost:9/evil.html"})
        assert r.status_code == 403
    assert _job_count(dev_stack) == before
    # curl-like clients (no Origin) and the allowed origins still work
    with dev_stack.client() as c:
        assert c.post("/api/v1/strategy/sweep", json=SWEEP).status_code == 202
        assert c.post("/api/v1/strategy/sweep", json=SWEEP, headers={"Origin": "http://localhost:3000"}).status_code == 202
        assert c.post("/api/v1/strategy/sweep", json=SWEEP, headers={"Origin": dev_stack.base_url}).status_code == 202


def test_cookie_writes_with_simple_bodies_need_the_csrf_token(auth_stack: Stack) -> None:
    key = {"X-API-Key": auth_stack.api_key}
    before = _job_count(auth_stack, key)
    with auth_stack.client() as first:
        login = first.post("/api/v1/auth/login", json={"api_key": auth_stack.api_key})
        assert login.status_code == 200, login.text
    # The cookies are Secure (a browser keeps them on http://localhost); httpx sends Secure
    # cookies over https only, so this client sends them by hand, as the browser would.
    session, token = login.cookies.get("hindsight_session"), login.cookies.get("hindsight_csrf")
    assert session and token and re.fullmatch(r"[0-9a-f]{64}", token)
    with auth_stack.client(headers={"Cookie": f"hindsight_session={session}; hindsight_csrf={token}"}) as c:
        form = {"ticker": "DEMO-DAILY", "fast_range": "[10, 20]", "slow_range": "[20, 30]", "step": "5"}
        for content in ({"data": form}, {"content": '{"ticker": "DEMO-DAILY"}', "headers": {"Content-Type": "text/plain"}}):
            r = c.post("/api/v1/strategy/sweep", **content)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "csrf_token_required"
        assert _job_count(auth_stack, key) == before
        # the same form with the token (what the dashboard sends) is taken
        assert c.post("/api/v1/strategy/sweep", data=form, headers={"X-CSRF-Token": token}).status_code == 202
        # a token of another session is not this one's
        assert c.post("/api/v1/strategy/sweep", data=form, headers={"X-CSRF-Token": "0" * 64}).status_code == 403
    # seed 001's form client sends X-API-Key, not a cookie: it keeps working
    with auth_stack.client() as c:
        assert c.post("/api/v1/strategy/sweep", data=form, headers=key).status_code == 202


def test_cors_answers_the_listed_origins_only(dev_stack: Stack, page_port: int) -> None:
    allowed = f"http://localhost:{page_port}"
    with dev_stack.client() as c:
        pre = c.options("/api/v1/backtest/run", headers={
            "Origin": allowed, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == allowed
        assert pre.headers["access-control-allow-credentials"] == "true"
        other = c.options("/api/v1/backtest/run", headers={
            "Origin": "http://localhost:9", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in other.headers
        got = c.get("/health", headers={"Origin": allowed})
        assert got.headers["access-control-allow-origin"] == allowed


# ---------------------------------------------------------------- the seeds' browser snippets


def _seed_block(prefix: str, marker: str) -> str:
    path = seed_file(prefix)
    assert path is not None, "the seed documents are missing (HINDSIGHT_SEEDS_DIR)"
    for block in re.findall(r"```javascript\n(.*?)\n```", path.read_text(), re.DOTALL):
        if marker in block:
            return block
    raise AssertionError(f"no javascript block with {marker!r} in seed {prefix}")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory, page_port: int) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("pages")
    (root / "index.html").write_text("<!doctype html><title>another origin</title>")
    with _serving(root, page_port):
        yield root


@contextlib.contextmanager
def _serving(root: Path, port: int) -> Iterator[None]:
    """`root` served over HTTP on 127.0.0.1:`port` (a page of another origin)."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), lambda *a, **kw: _Quiet(*a, directory=str(root), **kw))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def _run_in_page(origin_url: str, script: str, tmp_path: Path) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=str(CHROMIUM),
                                                    headless=True, args=CHROMIUM_ARGS)
        try:
            page = ctx.new_page()
            page.goto(origin_url + "/index.html")
            return page.evaluate(script)
        finally:
            ctx.close()


def _seed001_browser(stack: Stack, job_id: str, api_key: str, *, credentialed: bool) -> str:
    code = _seed_block("001", "credentials: 'include'")
    port = stack.base_url.rsplit(":", 1)[1]
    code = code.replace("http://localhost:8000", f"http://localhost:{port}")
    if credentialed:  # the variant of the dashboard: a credentialed EventSource
        code = code.replace("/stream`)", "/stream`, { withCredentials: true })")
        assert "withCredentials: true" in code
    return f"""async () => {{
      const API_KEY = {api_key!r}; const jobId = {job_id!r};
      const seen = [];
      try {{
        {code.replace("console.log(", "seen.push(")}
        await new Promise((resolve) => {{
          const t = setTimeout(resolve, 15000);
          eventSource.addEventListener('message', (e) => {{ if (JSON.parse(e.data).done) {{ clearTimeout(t); resolve(); }} }});
          eventSource.onerror = () => {{ seen.push('error'); clearTimeout(t); resolve(); }};
        }});
        eventSource.close();
        return {{ ok: true, seen }};
      }} catch (err) {{ return {{ ok: false, error: String(err), seen }}; }}
    }}"""


def _submit(stack: Stack, headers: dict[str, str]) -> str:
    with stack.client() as c:
        r = c.post("/api/v1/strategy/sweep", json=SWEEP, headers=headers)
        assert r.status_code == 202, r.text
        return r.json()["job_id"]


def test_seed001_browser_snippet_from_an_allowed_origin(auth_stack: Stack, page_server: Path, page_port: int,
                                                        tmp_path: Path) -> None:
    job_id = _submit(auth_stack, {"X-API-Key": auth_stack.api_key})
    script = _seed001_browser(auth_stack, job_id, auth_stack.api_key, credentialed=True)
    out = _run_in_page(f"http://localhost:{page_port}", script, tmp_path)
    assert out["ok"], out
    assert "Done!" in out["seen"], out  # the stream reached its done event through the cookie


def test_seed001_browser_snippet_from_another_origin_is_refused(auth_stack: Stack, page_server: Path,
                                                                tmp_path: Path) -> None:
    job_id = _submit(auth_stack, {"X-API-Key": auth_stack.api_key})
    other = free_port()
    script = _seed001_browser(auth_stack, job_id, auth_stack.api_key, credentialed=True)
    with _serving(page_server, other):
        out = _run_in_page(f"http://localhost:{other}", script, tmp_path)
    assert not out["ok"] and "Failed to fetch" in out["error"], out  # CORS refused the login


def test_seed004_browser_fetch_from_an_allowed_origin_and_not_another(dev_stack: Stack, page_server: Path,
                                                                      page_port: int, tmp_path: Path) -> None:
    code = _seed_block("004", "api/v1/backtest/run")
    start = code.split("// 2. Poll status")[0]  # the snippet's POST, verbatim
    port = dev_stack.base_url.rsplit(":", 1)[1]
    start = start.replace("http://localhost:8000", f"http://localhost:{port}")
    script = f"""async () => {{
      try {{ {start}
        return {{ ok: true, status: response.status, job_id }};
      }} catch (err) {{ return {{ ok: false, error: String(err) }}; }}
    }}"""
    out = _run_in_page(f"http://localhost:{page_port}", script, tmp_path)
    # The request crossed origins and its JSON answer was readable: the seed's strategy does
    # not exist on this stack, so the answer is the API's 404, read by the page.
    assert out["ok"] and out["status"] in (202, 404), out
    with httpx.Client() as c:
        assert c.get(f"{dev_stack.base_url}/health").status_code == 200
    other = free_port()
    with _serving(page_server, other):
        refused = _run_in_page(f"http://localhost:{other}", script, tmp_path / "other")
    assert not refused["ok"] and "Failed to fetch" in refused["error"], refused
