"""Clock and the timestamp format of the API (RFC 3339, UTC, `Z`)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(dt: datetime | None) -> str:
    """`2025-01-27T10:32:52Z` (the seeds' format: whole seconds); empty for None."""
    if dt is None:
        return ""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
