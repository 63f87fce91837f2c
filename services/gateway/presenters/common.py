"""What every presenter uses: the response model base, time stamps, JSON text from results."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)


class ResponseModel(BaseModel):
    """A JSON object of a response: exactly the declared fields, in the order shown."""

    model_config = ConfigDict(extra="forbid")


def utc_now() -> str:
    """Now as the seeds write times: 2025-01-27T10:30:45Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamp(value: str) -> str | None:
    """An RFC 3339 time from results, with UTC written as Z; empty -> None."""
    if not value:
        return None
    if value.endswith("+00:00"):
        return value[: -len("+00:00")] + "Z"
    return value


def json_or(text: str, default: Any) -> Any:
    """JSON text from results as a value; `default` when empty (the text itself if it does not parse)."""
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        log.warning("results sent JSON text that does not parse; showing it as a string")
        return text
