"""Login and logout: an API key exchanged for an HttpOnly session cookie."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from services.gateway.auth import SESSION_COOKIE, SESSION_MAX_AGE
from services.gateway.backend import Backend
from services.gateway.body import BodyReader
from services.gateway.deps import BackendDep
from services.gateway.errors import ApiError
from services.gateway.presenters.session import LoginResult, LogoutResult
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
    HINDSIGHT_INSECURE_COOKIES=1; 7 days). The body is read as JSON whatever its
    Content-Type. A wrong key is 401."""
    caller = await backend.authenticate_key(body.api_key)
    if not caller.key_id:
        raise ApiError(500, "internal_error", "internal error")
    response.set_cookie(
        SESSION_COOKIE, backend.sessions.sign(caller.key_id), max_age=SESSION_MAX_AGE, **cookie_attributes(backend)
    )
    return {"authenticated": True, "tenant_id": caller.tenant_id, "expires_in": SESSION_MAX_AGE}


@router.post("/api/v1/auth/logout", summary="Clear the session cookie", response_model=LogoutResult)
async def logout(response: Response, backend: BackendDep) -> dict[str, Any]:
    response.delete_cookie(SESSION_COOKIE, **cookie_attributes(backend))
    return {"authenticated": False}
