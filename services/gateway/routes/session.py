"""Login and logout: an API key exchanged for an HttpOnly session cookie whose session
lives at results (logout, key revocation and the lifetime end it)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from services.gateway.auth import SESSION_COOKIE
from services.gateway.backend import Backend
from services.gateway.body import BodyReader
from services.gateway.deps import BackendDep, CallerDep, client_address
from services.gateway.presenters.session import LoginResult, LogoutResult, WhoAmI
from services.gateway.requests.session import LoginRequest

router = APIRouter(tags=["auth"])
_read_login = BodyReader(LoginRequest, message="api_key is required")


def cookie_attributes(backend: Backend) -> dict[str, Any]:
    """The session cookie's attributes: HttpOnly, SameSite=Strict, and Secure unless
    HINDSIGHT_INSECURE_COOKIES is set (plain-HTTP development). Secure does not depend on the
    request's scheme, so behind a TLS-terminating proxy the cookie is Secure too; browsers
    keep Secure cookies of http://localhost and http://127.0.0.1, so `make run` needs nothing."""
    secure = not backend.settings.hindsight_insecure_cookies
    return {"path": "/", "httponly": True, "samesite": "strict", "secure": secure}


@router.post("/api/v1/auth/login", summary="Exchange an API key for a session cookie", response_model=LoginResult)
async def login(
    body: Annotated[LoginRequest, Depends(_read_login)], request: Request, response: Response, backend: BackendDep
) -> dict[str, Any]:
    """Sets `hindsight_session` (HttpOnly, SameSite=Strict, Secure unless
    HINDSIGHT_INSECURE_COOKIES=1; HINDSIGHT_SESSION_TTL_SECONDS, 7 days unless set). The body
    is read as JSON whatever its Content-Type. A wrong key is 401; too many failed logins from
    an address or for a key prefix are a 429 with Retry-After."""
    caller, cookie = await backend.login(body.api_key, client_address(request), request.url.path)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=backend.session_ttl, **cookie_attributes(backend))
    return {"authenticated": True, "tenant_id": caller.tenant_id, "expires_in": backend.session_ttl}


@router.post("/api/v1/auth/logout", summary="End the session and clear its cookie", response_model=LogoutResult)
async def logout(request: Request, response: Response, backend: BackendDep) -> dict[str, Any]:
    """Ends the cookie's session at results (the cookie no longer works anywhere, even if
    kept), then clears the cookie. Without a valid session cookie there is nothing to end."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await backend.logout(cookie)
    response.delete_cookie(SESSION_COOKIE, **cookie_attributes(backend))
    return {"authenticated": False}


@router.get("/api/v1/auth/whoami", summary="The tenant this request acts for", response_model=WhoAmI)
async def whoami(caller: CallerDep) -> dict[str, Any]:
    """The tenant of the key, Bearer token or session cookie sent; in standalone on loopback
    without HINDSIGHT_REQUIRE_AUTH, a request without credentials acts as the dev tenant
    (`dev_access`: no login needed). 401 without valid credentials elsewhere."""
    return {"tenant_id": caller.tenant_id, "dev_access": caller.dev}
