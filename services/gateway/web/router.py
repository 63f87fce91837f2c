"""Serves the dashboard: the page shell at `/ui/...`, its static files, and plotly.js
from the installed `plotly` package (never a CDN).

`GET /` answers a browser (Accept: text/html) with a redirect to the dashboard and
any other client with a small JSON index, so API clients keep getting JSON.

Every page of the dashboard is the same shell (`static/index.html`); the JS router
(`static/js/app.js`) picks the page from the path, so `/ui/runs/12` can be
bookmarked and reloaded. Responses carry a Content-Security-Policy that lets a
page talk to this gateway only.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import mimetypes
import threading
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from services.gateway.errors import ApiError

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent / "static"
UI_PREFIX = "/ui"
# The page may load scripts, styles, images and data from this origin only. Plotly
# styles its charts with inline style attributes and <style> elements it creates.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}


@dataclass(frozen=True)
class Asset:
    """A file held in memory with its validator and (lazily) its gzip form."""

    body: bytes
    media_type: str
    etag: str


class AssetCache:
    """Static files read once per (path, mtime); gzip bodies made once on demand."""

    def __init__(self) -> None:
        self._assets: dict[Path, tuple[float, Asset]] = {}
        self._gz: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, path: Path) -> Asset:
        mtime = path.stat().st_mtime
        hit = self._assets.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        body = path.read_bytes()
        media = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        asset = Asset(body, media, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        self._assets[path] = (mtime, asset)
        return asset

    def gzipped(self, asset: Asset) -> bytes:
        with self._lock:
            data = self._gz.get(asset.etag)
            if data is None:
                data = gzip.compress(asset.body, compresslevel=6, mtime=0)
                self._gz[asset.etag] = data
            return data


_cache = AssetCache()


def plotly_js_path() -> Path | None:
    """plotly.min.js as shipped inside the installed `plotly` package (found without importing it)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "package_data" / "plotly.min.js"
        if candidate.is_file():
            return candidate
    return None


def _accepts_gzip(request: Request) -> bool:
    return any(p.split(";")[0].strip().lower() == "gzip" for p in request.headers.get("accept-encoding", "").split(","))


def _serve(request: Request, path: Path, cache_control: str, compress: bool = False) -> Response:
    asset = _cache.get(path)
    headers = {"ETag": asset.etag, "Cache-Control": cache_control, **SECURITY_HEADERS}
    if asset.etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    if compress:
        headers["Vary"] = "Accept-Encoding"
        if _accepts_gzip(request):
            headers["Content-Encoding"] = "gzip"
            return Response(_cache.gzipped(asset), media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def _static_file(rel: str) -> Path:
    """A file under static/, or a JSON 404 (no `..`, no hidden files, nothing outside)."""
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p.startswith(".") or "\\" in p for p in parts):
        raise ApiError(404, "not_found", f"no such file: {rel}")
    path = (STATIC_DIR / Path(*parts)).resolve()
    if STATIC_DIR not in path.parents or not path.is_file():
        raise ApiError(404, "not_found", f"no such file: {rel}")
    return path


@router.get("/")
async def root(request: Request) -> Response:
    """A browser goes to the dashboard; API clients get JSON pointing at the docs."""
    accept = request.headers.get("accept", "")
    if "text/html" in accept.lower():
        return RedirectResponse(f"{UI_PREFIX}/", status_code=303)
    return JSONResponse({"name": "Hindsight", "docs": "/docs", "health": "/health", "dashboard": f"{UI_PREFIX}/"})


@router.get(f"{UI_PREFIX}/vendor/plotly.min.js")
async def plotly_js(request: Request) -> Response:
    path = plotly_js_path()
    if path is None:
        raise ApiError(404, "not_found", "plotly is not installed (pip install -r requirements.txt)")
    # The file changes only when the package does; revalidated daily through its ETag.
    return _serve(request, path, "public, max-age=86400", compress=True)


@router.get(f"{UI_PREFIX}/assets/{{rel:path}}")
async def asset(rel: str, request: Request) -> Response:
    return _serve(request, _static_file(rel), "no-cache", compress=rel.endswith((".js", ".css")))


@router.get(UI_PREFIX)
@router.get(f"{UI_PREFIX}/")
@router.get(f"{UI_PREFIX}/{{page:path}}")
async def shell(request: Request, page: str = "") -> Response:
    """The page shell for every dashboard path; the JS router renders the page."""
    return _serve(request, STATIC_DIR / "index.html", "no-cache")
