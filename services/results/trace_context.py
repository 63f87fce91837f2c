"""Trace context for broker messages (W3C `traceparent` headers), so a job's
messages join the trace of the request that caused them."""

from __future__ import annotations


def trace_headers() -> dict[str, str]:
    """The current trace context as message headers (empty when tracing is off)."""
    try:
        from opentelemetry import propagate
    except ImportError:  # pragma: no cover - opentelemetry is a dependency
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
