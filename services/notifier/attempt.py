"""What one try of a delivery came to, whatever the channel."""

from __future__ import annotations

from dataclasses import dataclass

# The receiver took it.
DELIVERED = "delivered"
# Down, slow, 5xx/429 (or an SMTP 4xx): try again later.
RETRYABLE = "retryable"
# Refused for good (other 4xx, an SMTP 5xx, a forbidden address): stop.
PERMANENT = "permanent"


@dataclass(frozen=True)
class AttemptResult:
    """The answer (or error) of one attempt."""

    kind: str
    # HTTP status, or SMTP reply code; None when nothing came back.
    status_code: int | None = None
    error: str = ""
    latency_ms: float = 0.0
    # Seconds the receiver asked us to wait (Retry-After).
    retry_after: float | None = None
    # What really happened, for the notifier's log only: the recorded `error` of a network
    # failure is the same whatever it was (refused, reset, timed out, DNS), so a tenant
    # cannot use /deliveries to tell a closed port from a filtered one.
    detail: str = ""


# The recorded error of every network failure of a webhook attempt.
NETWORK_ERROR = "network error"
