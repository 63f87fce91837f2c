"""The gateway's one error model: `{"error": {"code", "message", "details"}}`.

Every failure a client can see goes through here: our own checks (`ApiError`),
FastAPI's parameter validation, Starlette's 404/405, gRPC statuses from
results, and anything unexpected (a 500 that never shows a traceback).
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.grpc_util import INTERNAL_AUTH_FAILED

log = logging.getLogger(__name__)

# Seconds a client should wait before retrying when results (or the broker behind it) is unavailable.
RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    """An error answered to the client as JSON with an HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


def invalid(message: str, errors: list[dict[str, Any]] | None = None) -> ApiError:
    """400 for a request that fails validation; `errors` lists each field problem."""
    return ApiError(400, "invalid_request", message, {"errors": errors or []})


def unauthorized(message: str = "missing or invalid credentials") -> ApiError:
    return ApiError(401, "unauthenticated", message, headers={"WWW-Authenticate": 'Bearer realm="hindsight"'})


def unavailable(message: str = "a backend service is unavailable, retry later") -> ApiError:
    return ApiError(503, "service_unavailable", message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


# gRPC status of a results call -> (HTTP status, error code).
_GRPC_TO_HTTP: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_argument"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "invalid_argument"),
    grpc.StatusCode.NOT_FOUND: (404, "not_found"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "unauthenticated"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "forbidden"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "conflict"),
    grpc.StatusCode.ABORTED: (409, "conflict"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "already_exists"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (413, "payload_too_large"),
    grpc.StatusCode.UNAVAILABLE: (503, "service_unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (503, "service_unavailable"),
    # The gateway itself cancelled the call (client gone or shutting down).
    grpc.StatusCode.CANCELLED: (503, "service_unavailable"),
}


def _retry_after(exc: grpc.aio.AioRpcError) -> int | None:
    """Seconds of results' `retry-after` trailing metadata (a refusal for now, not for good)."""
    try:
        for key, value in exc.trailing_metadata() or ():
            if key == "retry-after":
                return min(max(int(value), 1), 3600)
    except (TypeError, ValueError):
        pass
    return None


def from_grpc(exc: grpc.aio.AioRpcError) -> ApiError:
    """Translate a failed results call into the HTTP error the client sees."""
    code = exc.code()
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and (wait := _retry_after(exc)) is not None:
        # Too many at once (e.g. concurrent uploads), unlike a plain RESOURCE_EXHAUSTED (too large: 413).
        return ApiError(429, "too_many_requests", exc.details() or "too many requests, retry later",
                        headers={"Retry-After": str(wait)})
    status, name = _GRPC_TO_HTTP.get(code, (500, "internal_error"))
    if code == grpc.StatusCode.UNAUTHENTICATED and exc.details() == INTERNAL_AUTH_FAILED:
        # Our own token was refused, not the client's credentials: a deployment error.
        log.error("results refused the gateway's call: HINDSIGHT_INTERNAL_TOKEN differs between the services")
        return ApiError(500, "internal_error", "internal error")
    if status == 503:
        log.warning("results call failed: %s %s", code.name, exc.details())
        return unavailable()
    if status >= 500:
        # A bug on the results side: log it, show nothing of it.
        log.error("results call failed: %s %s", code.name, exc.details())
        return ApiError(500, "internal_error", "internal error")
    message = exc.details() or name.replace("_", " ")
    return ApiError(status, name, message)


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_request"])
    message: str
    details: dict[str, Any] = Field(
        description='for a 400, `errors`: every problem, one `{"field", "message"}` per field'
    )


class ErrorResponse(BaseModel):
    """Every error the API answers."""

    error: ErrorDetail


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(error_body(err.code, err.message, err.details), status_code=err.status, headers=err.headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into the error model."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_path(e.get("loc", ())), "message": str(e.get("msg", "invalid value"))}
            for e in exc.errors()
        ]
        return error_response(invalid("invalid request parameters", errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error" if exc.status_code < 500 else "internal_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such resource: {request.url.path}"
        if exc.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        return error_response(ApiError(exc.status_code, code, message, headers=dict(exc.headers or {})))

    @app.exception_handler(grpc.aio.AioRpcError)
    async def _grpc(request: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        return error_response(from_grpc(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(ApiError(500, "internal_error", "internal error"))


class CatchAllMiddleware:
    """The last line: an exception no handler took is logged once and answered as
    a JSON 500 (never a traceback), instead of reaching the server's own handler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            return  # the client left while sending its body: nobody to answer
        except Exception as exc:
            err = exc if isinstance(exc, ApiError) else None
            if err is None:
                log.error("unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
                err = ApiError(500, "internal_error", "internal error")
            if started:
                return  # mid-stream: nothing more can be said to this client
            await error_response(err)(scope, receive, send)
