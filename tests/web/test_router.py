"""How the gateway serves the dashboard: `/` for browsers and for API clients, the page
shell on every /ui/ path, static files, and plotly.js from the installed package."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx

from services.gateway.web.router import CSP, plotly_js_path
from tests.stacks import Stack


def test_root_redirects_browsers_and_answers_api_clients_in_json(web_stack: Stack) -> None:
    with httpx.Client(base_url=web_stack.base_url) as c:
        html = c.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        assert html.status_code == 303 and html.headers["location"] == "/ui/"
        for accept in ("application/json", "*/*", None):
            r = c.get("/", headers={"Accept": accept} if accept else {})
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
            assert r.json()["docs"] == "/docs"


def test_every_ui_path_serves_the_shell_with_a_same_origin_policy(web_stack: Stack) -> None:
    with httpx.Client(base_url=web_stack.base_url) as c:
        pages = [c.get(p) for p in ("/ui", "/ui/", "/ui/runs/12", "/ui/days?job=x", "/ui/not-a-page")]
        assert {r.status_code for r in pages} == {200}
        assert len({r.text for r in pages}) == 1 and '<main id="app"' in pages[0].text
        assert pages[0].headers["content-security-policy"] == CSP
        assert "default-src 'self'" in CSP and "connect-src 'self'" in CSP
        assert "http" not in pages[0].text.replace('http-equiv', '')  # no absolute URL to anywhere


def test_static_files_and_their_404s(web_stack: Stack) -> None:
    with httpx.Client(base_url=web_stack.base_url) as c:
        js = c.get("/ui/assets/js/app.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert c.get("/ui/assets/js/app.js", headers={"If-None-Match": js.headers["etag"]}).status_code == 304
        for bad in ("/ui/assets/js/nope.js", "/ui/assets/%2e%2e/router.py", "/ui/assets/js/..%2f..%2frouter.py",
                    "/ui/assets/.hidden", "/ui/assets/"):
            r = c.get(bad)
            assert r.status_code == 404, bad
            assert r.json()["error"]["code"] == "not_found"


def test_plotly_comes_from_the_installed_package(web_stack: Stack) -> None:
    path = plotly_js_path()
    assert path is not None and path.parts[-3:] == ("plotly", "package_data", "plotly.min.js")
    with httpx.Client(base_url=web_stack.base_url) as c:
        raw = c.get("/ui/vendor/plotly.min.js", headers={"Accept-Encoding": "identity"})
        assert raw.status_code == 200 and raw.content == Path(path).read_bytes()
        assert "max-age" in raw.headers["cache-control"]
        zipped = c.build_request("GET", "/ui/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"})
        resp = c.send(zipped, stream=True)
        body = b"".join(resp.iter_raw())
        assert resp.headers["content-encoding"] == "gzip" and len(body) < len(raw.content) / 2
        assert gzip.decompress(body) == raw.content
        again = c.get("/ui/vendor/plotly.min.js", headers={"If-None-Match": raw.headers["etag"]})
        assert again.status_code == 304
