"""Login and logout: an API key exchanged for an HttpOnly session cookie.

The session lives at results (a row per login): logout ends it there, and so do the
revocation of its key and HINDSIGHT_SESSION_TTL_SECONDS."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.gateway.auth import SESSION_COOKIE
from services.gateway.body import read_fields
from services.gateway.deps import BackendDep, client_address
from services.gateway.errors import invalid

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


@router.post("/api/v1/auth/login", summary="Exchange an API key for a session cookie", openapi_extra=_LOGIN_BODY)
async def login(request: Request, backend: BackendDep) -> JSONResponse:
    """Sets `hindsight_session` (HttpOnly, SameSite=Lax, HINDSIGHT_SESSION_TTL_SECONDS: 7 days
    unless set). The body is read as JSON whatever its Content-Type. A wrong key is 401;
    too many failed logins from an address or for a key prefix are a 429 with Retry-After."""
    fields = await read_fields(request)
    api_key = fields.get("api_key")
    if not isinstance(api_key, str) or not api_key.strip():
        raise invalid("api_key is required", [{"field": "api_key", "message": "expected a non-empty string"}])
    caller, cookie = await backend.login(api_key.strip(), client_address(request), request.url.path)
    response = JSONResponse({"authenticated": True, "tenant_id": caller.tenant_id, "expires_in": backend.session_ttl})
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=backend.session_ttl,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/api/v1/auth/logout", summary="End the session and clear its cookie")
async def logout(request: Request, backend: BackendDep) -> JSONResponse:
    """Ends the cookie's session at results (the cookie no longer works anywhere, even if
    kept), then clears the cookie. Without a valid session cookie there is nothing to end."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await backend.logout(cookie)
    response = JSONResponse({"authenticated": False})
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response
