"""FastAPI dependencies: the app's backend and the calling tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPBearer

from services.gateway.auth import DEV_CALLER, SESSION_COOKIE, Caller, credentials_of, dev_tenant_allowed
from services.gateway.backend import Backend
from services.gateway.errors import ApiError, unauthorized
from services.gateway.requests.fields import has_control_characters
from services.gateway.results_wait import Patience

# Declared for the OpenAPI description only (auto_error off): the parsing is ours.
_api_key_doc = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")
_bearer_doc = HTTPBearer(auto_error=False, description="`Authorization: Bearer <api key>`.")
_cookie_doc = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="Set by POST /api/v1/auth/login.")


def get_backend(request: Request) -> Backend:
    return request.app.state.backend


BackendDep = Annotated[Backend, Depends(get_backend)]


def results_patience(backend: BackendDep) -> Patience:
    """How long an SSE stream request waits for an unreachable results, all its calls
    together (one object per request: FastAPI caches a dependency within a request)."""
    return Patience.for_seconds(backend.sse_results_wait)


PatienceDep = Annotated[Patience, Depends(results_patience)]


async def get_caller(
    request: Request,
    backend: BackendDep,
    _k: Annotated[str | None, Depends(_api_key_doc)] = None,
    _b: Annotated[object, Depends(_bearer_doc)] = None,
    _c: Annotated[str | None, Depends(_cookie_doc)] = None,
) -> Caller:
    """The tenant a request acts for; 401 without valid credentials (except the
    standalone dev tenant on loopback for requests with none at all)."""
    return await _caller(request, backend)


async def get_stream_caller(
    request: Request,
    backend: BackendDep,
    patience: PatienceDep,
    _k: Annotated[str | None, Depends(_api_key_doc)] = None,
    _b: Annotated[object, Depends(_bearer_doc)] = None,
    _c: Annotated[str | None, Depends(_cookie_doc)] = None,
) -> Caller:
    """`get_caller` for SSE streams: an unreachable results (a restart) is waited for
    within the request's patience, then 503; never a caller without results' word."""
    return await _caller(request, backend, patience)


async def _caller(request: Request, backend: Backend, wait: Patience | None = None) -> Caller:
    creds = credentials_of(request)
    if creds is None:
        if dev_tenant_allowed(backend.settings):
            return DEV_CALLER
        raise unauthorized("credentials required: X-API-Key, Authorization: Bearer, or a session cookie")
    client, path = client_address(request), request.url.path
    if creds.api_key is not None:
        return await backend.authenticate_key(creds.api_key, client, path, wait)
    assert creds.session_token is not None
    return await backend.authenticate_session(creds.session_token, client, path, wait)


def client_address(request: Request) -> str:
    """The client's address as the throttle of failed logins counts it."""
    return request.client.host if request.client is not None else "unknown"


CallerDep = Annotated[Caller, Depends(get_caller)]
StreamCallerDep = Annotated[Caller, Depends(get_stream_caller)]

MAX_ID_LENGTH = 200


def checked_id(value: str, what: str) -> str:
    """An id from a path: ids with control characters or absurd lengths cannot
    exist, so they are 404 without asking results."""
    if not value or len(value) > MAX_ID_LENGTH or has_control_characters(value):
        raise ApiError(404, "not_found", f"{what} not found")
    return value
