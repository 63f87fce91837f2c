"""Login and logout: an API key exchanged for an HttpOnly session cookie."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.gateway.auth import SESSION_COOKIE, SESSION_MAX_AGE
from services.gateway.backend import Backend
from services.gateway.body import read_fields
from services.gateway.deps import BackendDep
from services.gateway.errors import ApiError, invalid

router = APIRouter(tags=["auth"])

_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["api_key"],
                    "properties": {"api_key": {"type": "string", "example": "dev-key-000000000000000000000000"}},
                }
            }
        },
    }
}


def cookie_attributes(backend: Backend) -> dict:
    """The session cookie's attributes: HttpOnly, SameSite=Strict, and Secure unless
    HINDSIGHT_INSECURE_COOKIES is set (plain-HTTP development). Secure does not depend on the
    request's scheme, so behind a TLS-terminating proxy the cookie is Secure too; browsers
    keep Secure cookies of http://localhost and http://127.0.0.1, so `make run` needs nothing."""
    secure = not backend.settings.hindsight_insecure_cookies
    return {"path": "/", "httponly": True, "samesite": "strict", "secure": secure}


@router.post("/api/v1/auth/login", summary="Exchange an API key for a session cookie", openapi_extra=_LOGIN_BODY)
async def login(request: Request, backend: BackendDep) -> JSONResponse:
    """Sets `hindsight_session` (HttpOnly, SameSite=Strict, Secure unless
    HINDSIGHT_INSECURE_COOKIES=1; 7 days). The body is read as JSON whatever its
    Content-Type. A wrong key is 401."""
    fields = await read_fields(request)
    api_key = fields.get("api_key")
    if not isinstance(api_key, str) or not api_key.strip():
        raise invalid("api_key is required", [{"field": "api_key", "message": "expected a non-empty string"}])
    caller = await backend.authenticate_key(api_key.strip())
    if not caller.key_id:
        raise ApiError(500, "internal_error", "internal error")
    response = JSONResponse({"authenticated": True, "tenant_id": caller.tenant_id, "expires_in": SESSION_MAX_AGE})
    response.set_cookie(
        SESSION_COOKIE, backend.sessions.sign(caller.key_id), max_age=SESSION_MAX_AGE, **cookie_attributes(backend)
    )
    return response


@router.post("/api/v1/auth/logout", summary="Clear the session cookie")
async def logout(request: Request, backend: BackendDep) -> JSONResponse:
    response = JSONResponse({"authenticated": False})
    response.delete_cookie(SESSION_COOKIE, **cookie_attributes(backend))
    return response
