"""Fixtures of the browser tests: a real standalone stack (credentials required, so the
login page is exercised) and headless Debian Chromium driven by Playwright, with every
request the pages make recorded."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.stacks import ROOT, Stack, start_standalone

# Credentials are required, so the seeds' public dev key is refused: tenant 'dev' gets a key of its own.
WEB_KEY = "web-key-" + "w" * 32
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-output" / "screenshots"
VIEWPORT = {"width": 1366, "height": 768}  # laptop width
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="package")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_standalone(
        tmp_path_factory.mktemp("web-data"), tmp_path_factory.mktemp("web-logs"),
        {"HINDSIGHT_REQUIRE_AUTH": "1", "HINDSIGHT_BOOTSTRAP_KEYS": f"dev:{WEB_KEY}"},
    )
    yield stack
    stack.stop(signal.SIGINT)


@dataclass
class Browser:
    """A browser context on a fresh profile, its page, and every URL it requested."""

    context: object
    page: object
    base_url: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path)

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.evaluate("() => window.scrollTo(0, 0)")  # the sticky header stays on top
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def log_in(self) -> None:
        """Give this browser a session unless it has one. Asked of the gateway (whoami), not
        read off a page: a page draws its form first and goes to the login page only when
        its data answers 401, so a form on screen does not mean a session (the tests of a
        file may run first on a worker, before any test logged in)."""
        page = self.page
        if urlsplit(page.url).netloc != urlsplit(self.base_url).netloc:
            self.goto("/ui/login")  # fetch needs the gateway's origin
        status = page.evaluate("() => fetch('/api/v1/auth/whoami', {credentials: 'same-origin'}).then(r => r.status)")
        if status == 200:
            return
        self.goto("/ui/login")
        page.fill("#api-key", WEB_KEY)
        page.click("#login-submit")
        page.wait_for_url(lambda url: "/ui/login" not in url)

    def foreign_requests(self) -> list[str]:
        """Requests to anywhere but the gateway (data: and blob: URLs stay in the page; file:
        URLs are a downloaded report opened from disk)."""
        origin = urlsplit(self.base_url)
        out = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "file"):
                continue
            if (parts.scheme, parts.netloc) != (origin.scheme, origin.netloc):
                out.append(url)
        return out


@pytest.fixture(scope="package")
def playwright() -> Iterator[object]:
    """One Playwright for the package: its sync API runs one instance per thread."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing at /usr/bin/chromium: run `make build` as root "
                    "(it runs apt-get install chromium) or install it yourself")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@contextmanager
def open_browser(pw, base_url: str, profile: Path) -> Iterator[Browser]:
    """Headless Chromium on a fresh profile, pointed at a stack."""
    context = pw.chromium.launch_persistent_context(
        str(profile),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport=VIEWPORT,
    )
    context.set_default_timeout(20_000)
    page = context.pages[0] if context.pages else context.new_page()
    b = Browser(context, page, base_url)
    context.on("request", lambda req: b.requests.append(req.url))
    page.on("pageerror", lambda exc: b.errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: b.errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    try:
        yield b
    finally:
        context.close()


@pytest.fixture(scope="package")
def browser(playwright, web_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with open_browser(playwright, web_stack.base_url, tmp_path_factory.mktemp("chromium-profile")) as b:
        yield b
