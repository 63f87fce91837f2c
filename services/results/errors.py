"""Errors of the results domain; the servicer maps each to a gRPC status code."""

from __future__ import annotations


class ResultsError(Exception):
    """Base: a request the service refuses, with a message fit for the caller."""


class InvalidArgument(ResultsError):
    """The request is malformed (→ INVALID_ARGUMENT)."""


class NotFound(ResultsError):
    """No such thing for this tenant (→ NOT_FOUND)."""


class FailedPrecondition(ResultsError):
    """The thing is not in a state that allows this (→ FAILED_PRECONDITION)."""


class Unauthenticated(ResultsError):
    """Unknown or revoked credentials (→ UNAUTHENTICATED)."""


class Unavailable(ResultsError):
    """A dependency is down; retrying later may work (→ UNAVAILABLE)."""


class ResourceExhausted(ResultsError):
    """The request is larger than the service accepts (→ RESOURCE_EXHAUSTED)."""


class TooManyRequests(ResultsError):
    """Too much at once; retry after `retry_after_seconds` (→ RESOURCE_EXHAUSTED with a
    `retry-after` trailing metadata entry, which tells it from a request that is too large)."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
