"""Login and logout: an API key exchanged for an HttpOnly session cookie."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.gateway.auth import SESSION_COOKIE, SESSION_MAX_AGE
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


@router.post("/api/v1/auth/login", summary="Exchange an API key for a session cookie", openapi_extra=_LOGIN_BODY)
async def login(request: Request, backend: BackendDep) -> JSONResponse:
    """Sets `hindsight_session` (HttpOnly, SameSite=Lax, 7 days). The body is read as
    JSON whatever its Content-Type. A wrong key is 401."""
    fields = await read_fields(request)
    api_key = fields.get("api_key")
    if not isinstance(api_key, str) or not api_key.strip():
        raise invalid("api_key is required", [{"field": "api_key", "message": "expected a non-empty string"}])
    caller = await backend.authenticate_key(api_key.strip())
    if not caller.key_id:
        raise ApiError(500, "internal_error", "internal error")
    response = JSONResponse({"authenticated": True, "tenant_id": caller.tenant_id, "expires_in": SESSION_MAX_AGE})
    response.set_cookie(
        SESSION_COOKIE,
        backend.sessions.sign(caller.key_id),
        max_age=SESSION_MAX_AGE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/api/v1/auth/logout", summary="Clear the session cookie")
async def logout(request: Request) -> JSONResponse:
    response = JSONResponse({"authenticated": False})
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response
