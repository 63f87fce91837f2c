"""Notifications: a tenant's defaults, and a job's webhook and email deliveries."""

from __future__ import annotations

from typing import Any

from hindsight.notify.v1 import notify_pb2
from pydantic import Field

from services.gateway.presenters.common import ResponseModel, timestamp


class NotificationSettings(ResponseModel):
    webhook_url: str | None
    notify_email: str | None
    webhook_secret: str
    signature_header: str
    updated_at: str | None


class Attempt(ResponseModel):
    attempt: int
    time: str
    url: str = Field(description="the webhook URL, or mailto:")
    status_code: int | None = Field(description="HTTP status, or the SMTP reply code")
    error: str | None
    latency_ms: float
    outcome: str = Field(description="delivered, retry (another attempt at next_attempt_at) or failed")


class Delivery(ResponseModel):
    delivery_id: str
    channel: str = Field(description="webhook or email")
    target: str
    state: str
    event_id: str
    event_type: str | None
    redelivery: bool
    created_at: str | None
    completed_at: str | None
    next_attempt_at: str | None
    attempt_count: int
    attempts: list[Attempt]


class JobDeliveries(ResponseModel):
    job_id: str
    event_id: str | None
    event_type: str | None
    deliveries: list[Delivery]


class Redelivery(ResponseModel):
    job_id: str
    event_id: str
    deliveries: list[Delivery]


def settings_view(s: notify_pb2.NotificationSettings) -> dict[str, Any]:
    return {
        "webhook_url": s.webhook_url or None,
        "notify_email": s.notify_email or None,
        "webhook_secret": s.webhook_secret,
        "signature_header": "X-Hindsight-Signature",
        "updated_at": timestamp(s.updated_at),
    }


def attempt_view(a: notify_pb2.Attempt) -> dict[str, Any]:
    return {
        "attempt": a.attempt,
        "time": a.started_at,
        "url": a.url,
        "status_code": a.status_code or None,
        "error": a.error or None,
        "latency_ms": round(a.latency_ms, 1),
        "outcome": a.outcome,
    }


def delivery_view(d: notify_pb2.Delivery) -> dict[str, Any]:
    return {
        "delivery_id": d.delivery_id,
        "channel": d.channel,
        "target": d.target,
        "state": d.state,
        "event_id": d.event_id,
        "event_type": d.event_type or None,
        "redelivery": d.redelivery,
        "created_at": timestamp(d.created_at),
        "completed_at": timestamp(d.completed_at),
        "next_attempt_at": timestamp(d.next_attempt_at),
        "attempt_count": d.attempts,
        "attempts": [attempt_view(a) for a in d.history],
    }
