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
