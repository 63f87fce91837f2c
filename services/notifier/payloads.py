"""The body a webhook receiver gets: the event's payload in the seed's callback shape.

Results writes the payload when the job ends (`sweep.completed` /
`sweep.failed` for sweeps, `backtest.*` for other jobs); this only makes sure
it fits the seed's schema, whose `status` is `completed` or `failed`: a
cancelled job is announced as failed, with `error_message` "Job cancelled".
The body is the same bytes on every attempt and redelivery of an event.
"""

from __future__ import annotations

import json
from typing import Any

from hindsight.bus.v1 import bus_pb2


def event_type(event: bus_pb2.JobEndedMessage) -> str:
    """The event's type; derived from its status when a producer left it empty."""
    if event.event_type:
        return event.event_type
    return "backtest.completed" if event.status == "completed" else "backtest.failed"


def callback_payload(event: bus_pb2.JobEndedMessage) -> dict[str, Any]:
    try:
        payload = json.loads(event.payload_json) if event.payload_json else {}
    except json.JSONDecodeError:
        payload = {}
    if not isinstance(payload, dict) or not payload:
        payload = {"event_type": event_type(event), "job_id": event.job_id, "status": event.status}
    payload.setdefault("event_type", event_type(event))
    if payload.get("status") == "cancelled":
        payload["status"] = "failed"
        payload.setdefault("error_message", "Job cancelled")
    return payload


def callback_body(event: bus_pb2.JobEndedMessage) -> bytes:
    """The JSON bytes POSTed to the webhook (compact, keys in the seed's order)."""
    return json.dumps(callback_payload(event), separators=(",", ":"), ensure_ascii=False).encode()
