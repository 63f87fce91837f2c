"""Webhook signatures: `X-Hindsight-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`.

The HMAC key is the tenant's webhook secret and the signed bytes are
`"<t>." + raw body`, so a receiver checks both that the body is ours and that
it is recent (replays of an old delivery fail the timestamp check). `verify`
is what a receiver does (the README shows the same in ten lines).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Hindsight-Signature"
EVENT_ID_HEADER = "X-Hindsight-Event-Id"
EVENT_TYPE_HEADER = "X-Hindsight-Event-Type"
# Seconds a receiver should accept between t and its own clock.
DEFAULT_TOLERANCE = 300


def digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for `body` sent at `timestamp`."""
    return f"t={timestamp},v1={digest(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, tolerance: float = DEFAULT_TOLERANCE, now: float | None = None) -> bool:
    """Whether `header` signs `body` with `secret` and its time is within `tolerance` of now."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(digest(secret, timestamp, body), given)
