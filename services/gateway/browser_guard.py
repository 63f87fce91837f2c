"""What a browser may do: allowed hosts, CORS for listed origins, and no cross-site writes.

- **Host.** A request whose `Host` is not in `HINDSIGHT_ALLOWED_HOSTS` is refused
  (400), so a DNS-rebinding page cannot reach the gateway under its own name.
- **CORS.** Origins in `HINDSIGHT_CORS_ORIGINS` may call the API from their pages
  with credentials (cookie login, credentialed `EventSource`); their preflights are
  answered (Starlette's `CORSMiddleware`). No other origin gets CORS headers.
- **Cross-site writes.** A state-changing request (anything but GET, HEAD, OPTIONS)
  that a browser sent from another origin (its `Origin`, or lacking that its
  `Referer`) is refused (403) unless that origin is the gateway's own or listed.
  A state-changing request authenticated by the session cookie with a form,
  multipart or text/plain body (what pages of any site can send without a CORS
  preflight) also needs the `X-CSRF-Token` header, which the dashboard sends. Requests with
  `X-API-Key` or `Authorization: Bearer` are not cookie-authenticated: a browser
  never adds those headers by itself.

The CSRF token is `HMAC(session secret, session cookie)`; the gateway sets it in
the `hindsight_csrf` cookie (readable by the dashboard's scripts, `SameSite=Strict`)
next to a session cookie, so it changes with every login.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.settings import Settings
from services.gateway.auth import LOOPBACK_HOSTS, SESSION_COOKIE
from services.gateway.errors import ApiError, error_response

CSRF_COOKIE = "hindsight_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Bodies a page of any site can send without a CORS preflight.
SIMPLE_BODY_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
STANDALONE_CORS_ORIGINS = ("http://localhost:3000", "http://127.0.0.1:3000")
CORS_ALLOW_HEADERS = ["Accept", "Content-Type", "X-API-Key", "Authorization", "X-CSRF-Token", "Last-Event-ID"]
CORS_EXPOSE_HEADERS = ["Retry-After", "Location", "Content-Disposition", "X-Hindsight-Trace-Id"]


def _split(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def cors_origins(settings: Settings) -> list[str]:
    """The origins allowed to call the API from their pages (no trailing slash)."""
    if settings.hindsight_cors_origins is not None:
        return [o.rstrip("/") for o in _split(settings.hindsight_cors_origins)]
    return list(STANDALONE_CORS_ORIGINS) if settings.standalone else []


def allowed_hosts(settings: Settings) -> list[str]:
    """Host names (without port) the gateway answers to; ["*"] for any."""
    if settings.hindsight_allowed_hosts is not None:
        return [h.lower() for h in _split(settings.hindsight_allowed_hosts)] or ["*"]
    if settings.standalone:
        return sorted({"localhost", "127.0.0.1", "::1", settings.hindsight_host.strip().lower().strip("[]")})
    return ["*"]


def csrf_token(secret: str, session_cookie: str) -> str:
    return hmac.new(secret.encode(), b"csrf\0" + session_cookie.encode(), hashlib.sha256).hexdigest()


def _host_name(host_header: str) -> str:
    """`example.com:8000` -> `example.com`; `[::1]:8000` -> `::1`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class BrowserGuard:
    """Host check, then the cross-site write check, in front of the CORS middleware."""

    def __init__(self, app: ASGIApp, settings: Settings, secret: str) -> None:
        self.secret = secret
        self.hosts = allowed_hosts(settings)
        self.origins = cors_origins(settings)
        self.app = CORSMiddleware(
            app,
            allow_origins=self.origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=CORS_ALLOW_HEADERS,
            expose_headers=CORS_EXPOSE_HEADERS,
            max_age=600,
        )

    def _own_origins(self, scope: Scope, headers: Headers) -> set[str]:
        host = headers.get("host", "").strip().lower()
        schemes = {scope.get("scheme", "http"), "http", "https"} if _host_name(host) in LOOPBACK_HOSTS else {
            headers.get("x-forwarded-proto", scope.get("scheme", "http"))
        }
        return {f"{s}://{host}" for s in schemes if host}

    def check(self, scope: Scope, headers: Headers) -> ApiError | None:
        if "*" not in self.hosts and _host_name(headers.get("host", "")) not in self.hosts:
            return ApiError(400, "host_not_allowed", "this Host is not served here (HINDSIGHT_ALLOWED_HOSTS)")
        method = scope.get("method", "GET").upper()
        if method in SAFE_METHODS:
            return None
        origin_header = headers.get("origin")
        origin = _origin_of(origin_header) if origin_header and origin_header != "null" else None
        if origin is None and headers.get("referer"):
            origin = _origin_of(headers["referer"])
        trusted = self._own_origins(scope, headers) | set(self.origins)
        if origin_header == "null" or (origin is not None and origin not in trusted):
            return ApiError(403, "cross_origin_refused", "requests from this origin are not allowed (HINDSIGHT_CORS_ORIGINS)")
        if "x-api-key" in headers or "authorization" in headers:
            return None
        cookies = _cookies(headers)
        session = cookies.get(SESSION_COOKIE)
        if session is None:
            return None
        token_ok = hmac.compare_digest(headers.get(CSRF_HEADER, ""), csrf_token(self.secret, session))
        simple_body = headers.get("content-type", "").split(";")[0].strip().lower() in SIMPLE_BODY_TYPES
        if token_ok or not simple_body:
            return None
        return ApiError(
            403,
            "csrf_token_required",
            "a request authenticated by the session cookie needs the X-CSRF-Token header "
            "(or send X-API-Key / Authorization: Bearer instead of the cookie)",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        problem = self.check(scope, headers)
        if problem is not None:
            await error_response(problem)(scope, receive, send)
            return
        cookies = _cookies(headers)
        session, sent_token = cookies.get(SESSION_COOKIE), cookies.get(CSRF_COOKIE)
        https = headers.get("x-forwarded-proto", scope.get("scheme", "http")).lower() == "https"

        async def send_with_token(message: Message) -> None:
            if message["type"] == "http.response.start":
                set_cookies = [v for k, v in message.get("headers", []) if k.lower() == b"set-cookie"]
                new_session, secure = _session_set_by(set_cookies)
                value = new_session if new_session is not None else session
                token = csrf_token(self.secret, value) if value else ""
                if token != (sent_token or "") and (value or sent_token):
                    flags = "; Secure" if secure or https else ""
                    cookie = (f"{CSRF_COOKIE}={token}; Path=/; SameSite=Strict{flags}" if token
                              else f"{CSRF_COOKIE}=; Path=/; Max-Age=0; SameSite=Strict{flags}")
                    message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_token)


def _cookies(headers: Headers) -> dict[str, str]:
    return cookie_parser(headers.get("cookie", ""))


def _session_set_by(set_cookies: list[bytes]) -> tuple[str | None, bool]:
    """The new session cookie value a response sets ("" when it clears it, None when it
    does not touch it), and whether it is marked Secure."""
    for raw in set_cookies:
        text = raw.decode("latin-1")
        name, _, rest = text.partition("=")
        if name.strip() == SESSION_COOKIE:
            value = rest.split(";", 1)[0].strip().strip('"')
            lowered = text.lower()
            cleared = not value or "max-age=0" in lowered or "expires=thu, 01 jan 1970" in lowered
            return ("" if cleared else value), "; secure" in lowered
    return None, False
