"""What every gRPC servicer of the results service shares.

Domain calls run on the database thread pool (`DatabaseServicer.read` /
`write`); domain errors map to status codes (`unary`, `server_stream`).
Unexpected errors are logged and answered INTERNAL without details.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from sqlalchemy.exc import InterfaceError, OperationalError

from services.results.db import Database
from services.results.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ResultsError,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_LIMIT = 1000

_CODES: dict[type[ResultsError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


# gRPC carries the message in a header (percent-encoded, 16 KiB hard limit): a longer one
# would reach the caller as a broken stream instead of the error it is.
MAX_STATUS_MESSAGE_CHARS = 1000


def status_message(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= MAX_STATUS_MESSAGE_CHARS else text[: MAX_STATUS_MESSAGE_CHARS - 3] + "..."


# Trailing metadata of a refusal that a retry after this many seconds may get past (a 429 in the gateway).
RETRY_AFTER_METADATA = "retry-after"


async def abort_for(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
    """End the call with the status code of `exc` (INTERNAL, logged, for anything unexpected)."""
    if isinstance(exc, TooManyRequests):
        # RESOURCE_EXHAUSTED as "too large" is, told apart by the wait it asks for.
        await context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            status_message(exc),
            trailing_metadata=((RETRY_AFTER_METADATA, str(exc.retry_after_seconds)),),
        )
    if isinstance(exc, ResultsError):
        code = next(c for t, c in _CODES.items() if isinstance(exc, t))
        await context.abort(code, status_message(exc))
    if isinstance(exc, (OperationalError, InterfaceError)):
        log.warning("database unavailable in %s: %s", method, exc.__class__.__name__)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable, retry later")
    log.exception("unexpected error in %s", method)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")


def unary(fn):
    """A unary RPC whose errors become status codes."""

    @functools.wraps(fn)
    async def wrapper(self, request, context):
        try:
            return await fn(self, request, context)
        except Exception as exc:
            await abort_for(context, fn.__name__, exc)

    return wrapper


def server_stream(fn):
    """A server-streaming RPC whose errors become status codes."""

    @functools.wraps(fn)
    async def wrapper(self, request, context):
        try:
            async for item in fn(self, request, context):
                yield item
        except Exception as exc:
            await abort_for(context, fn.__name__, exc)

    return wrapper


def require(value: str, name: str) -> str:
    """`value`, or INVALID_ARGUMENT "`name` is required" when it is empty."""
    if not value:
        raise InvalidArgument(f"{name} is required")
    return value


def limit(value: int, default: int) -> int:
    """A listing's limit: 0 means `default`, else 1..MAX_LIMIT."""
    if value == 0:
        return default
    if not 1 <= value <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT}")
    return value


def page_limit(value: int, offset: int, default_limit: int) -> int:
    """The limit of a listing (`limit`), after checking its offset too."""
    value = limit(value, default_limit)
    if offset < 0:
        raise InvalidArgument("offset must not be negative")
    return value


def submitted_parameters(parameters_json: str) -> Any:
    """A submitted job's parameters (`parameters_json`, {} when empty)."""
    try:
        parameters = json.loads(parameters_json) if parameters_json else {}
    except json.JSONDecodeError:
        raise InvalidArgument("parameters_json is not valid JSON") from None
    return parameters


class DatabaseServicer:
    """A servicer whose calls are domain functions on the database pool.

    `ready` is set once migrations ran (shared by every servicer of the process);
    calls before that are UNAVAILABLE.
    """

    def __init__(self, db: Database, ready: asyncio.Event) -> None:
        self.db = db
        self.ready = ready

    def check_ready(self) -> None:
        if not self.ready.is_set():
            raise Unavailable("results service is starting")

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(session, *args)` in a read-only session, on the pool."""
        return await self._in_session(self.db.read, fn, args)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(session, *args)` in one transaction, committed when it returns, on the pool."""
        return await self._in_session(self.db.write, fn, args)

    async def _in_session(self, open_session, fn, args):
        self.check_ready()

        def work():
            with open_session() as s:
                return fn(s, *args)

        return await self.db.run(work)
