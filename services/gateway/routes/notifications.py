"""Notifications: a tenant's defaults (webhook URL, signing secret, email) and a job's deliveries.

- `GET|PUT /api/v1/settings/notifications`: the defaults used for jobs
  submitted without `webhook_url` / `notify_email`, and the secret that signs
  every webhook of the tenant (created on first read; `rotate_secret` makes a
  new one). A default webhook URL passes the same SSRF check as a job's.
- `GET /api/v1/jobs/{id}/deliveries`: each webhook/email delivery of the job's
  final event and every attempt (time, URL, status code or error, latency).
- `POST /api/v1/jobs/{id}/deliveries/redeliver`: send that event again (same
  event id) to the job's targets, or `?channel=webhook|email` only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from hindsight.notify.v1 import notify_pb2

from services.gateway.body import read_fields
from services.gateway.deps import BackendDep, CallerDep, checked_id
from services.gateway.errors import invalid
from services.gateway.sweep_request import _EMAIL, MAX_EMAIL_LENGTH, SweepInvalid, check_webhook_target, http_url
from services.gateway.views import timestamp

router = APIRouter(tags=["notifications"])

SETTINGS_FIELDS = ("webhook_url", "notify_email", "webhook_secret", "rotate_secret")
MIN_SECRET, MAX_SECRET = 16, 128

_SETTINGS_DOC = (
    "The tenant's notification defaults: `webhook_url` and `notify_email` are used for jobs submitted "
    "without their own; `webhook_secret` signs every webhook: `X-Hindsight-Signature: t=<unix seconds>,"
    "v1=<hex HMAC-SHA256 of \"<t>.<raw body>\" keyed with the secret>`. Each delivery also carries "
    "`X-Hindsight-Event-Id` (the same on every retry and redelivery: drop duplicates with it) and "
    "`X-Hindsight-Event-Type`."
)
_PUT_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "webhook_url": {"type": ["string", "null"], "description": "http(s); null or absent: none"},
                        "notify_email": {"type": ["string", "null"], "description": "null or absent: none"},
                        "webhook_secret": {"type": "string", "minLength": MIN_SECRET, "maxLength": MAX_SECRET,
                                           "description": "absent: keep the current secret"},
                        "rotate_secret": {"type": "boolean", "description": "replace the secret with a new one"},
                    },
                    "additionalProperties": False,
                }
            }
        },
    }
}


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


def _optional_text(fields: dict[str, Any], name: str, errors: list[dict[str, str]]) -> str:
    value = fields.get(name)
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return ""
    if not isinstance(value, str):
        errors.append({"field": name, "message": "expected a string or null"})
        return ""
    return value


@router.get("/api/v1/settings/notifications", summary="Notification defaults and webhook secret", description=_SETTINGS_DOC)
async def get_settings(backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    resp = await backend.call(
        backend.notifications.GetNotificationSettings,
        notify_pb2.GetNotificationSettingsRequest(tenant_id=caller.tenant_id),
    )
    return settings_view(resp.settings)


@router.put(
    "/api/v1/settings/notifications",
    summary="Replace the notification defaults",
    description=_SETTINGS_DOC,
    openapi_extra=_PUT_DOC,
)
async def put_settings(request: Request, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    fields = await read_fields(request)
    errors: list[dict[str, str]] = [
        {"field": k, "message": f"unknown field (expected {', '.join(SETTINGS_FIELDS)})"}
        for k in fields
        if k not in SETTINGS_FIELDS
    ]
    webhook_url = _optional_text(fields, "webhook_url", errors)
    if webhook_url:
        try:
            webhook_url = http_url(webhook_url)
        except ValueError as exc:
            errors.append({"field": "webhook_url", "message": str(exc)})
            webhook_url = ""
    notify_email = _optional_text(fields, "notify_email", errors)
    if notify_email and (len(notify_email) > MAX_EMAIL_LENGTH or not _EMAIL.match(notify_email)):
        errors.append({"field": "notify_email", "message": "must be a valid email address"})
    secret = _optional_text(fields, "webhook_secret", errors)
    if secret and (not MIN_SECRET <= len(secret) <= MAX_SECRET or any(ord(c) < 0x21 or ord(c) > 0x7E for c in secret)):
        errors.append(
            {"field": "webhook_secret", "message": f"must be {MIN_SECRET} to {MAX_SECRET} printable ASCII characters"}
        )
    rotate = fields.get("rotate_secret", False)
    if isinstance(rotate, str) and rotate.lower() in ("true", "false", "1", "0"):
        rotate = rotate.lower() in ("true", "1")
    if not isinstance(rotate, bool):
        errors.append({"field": "rotate_secret", "message": "expected true or false"})
        rotate = False
    if secret and rotate:
        errors.append({"field": "rotate_secret", "message": "give webhook_secret or rotate_secret, not both"})
    if webhook_url and not errors:
        try:
            await check_webhook_target(webhook_url, backend.webhook_policy)
        except SweepInvalid as exc:
            errors.extend(exc.errors)
    if errors:
        raise invalid("invalid notification settings", errors)
    resp = await backend.call(
        backend.notifications.UpdateNotificationSettings,
        notify_pb2.UpdateNotificationSettingsRequest(
            tenant_id=caller.tenant_id,
            webhook_url=webhook_url,
            notify_email=notify_email,
            webhook_secret=secret,
            rotate_secret=rotate,
        ),
    )
    return settings_view(resp.settings)


@router.get("/api/v1/jobs/{job_id}/deliveries", summary="Webhook and email deliveries of a job, every attempt")
async def list_deliveries(job_id: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    """Each delivery of the job's final event with its state and every attempt: `time`, `url`
    (or `mailto:`), `status_code` (HTTP, or the SMTP reply) or `error`, `latency_ms`, `outcome`
    (`delivered`, `retry`: another attempt is scheduled at `next_attempt_at`, `failed`)."""
    checked_id(job_id, "job")
    resp = await backend.call(
        backend.notifications.ListDeliveries,
        notify_pb2.ListDeliveriesRequest(tenant_id=caller.tenant_id, job_id=job_id),
    )
    return {
        "job_id": job_id,
        "event_id": resp.event_id or None,
        "event_type": resp.event_type or None,
        "deliveries": [delivery_view(d) for d in resp.deliveries],
    }


@router.post(
    "/api/v1/jobs/{job_id}/deliveries/redeliver",
    status_code=202,
    summary="Send the job's final event again (same event id)",
)
async def redeliver(
    job_id: str,
    backend: BackendDep,
    caller: CallerDep,
    channel: Annotated[str | None, Query(description="webhook or email; default: every target")] = None,
) -> JSONResponse:
    """New deliveries of the job's final event, with the original `X-Hindsight-Event-Id`, to the job's
    own webhook URL / email (else the tenant's defaults). 409 while the job runs, or when it has no target."""
    checked_id(job_id, "job")
    if channel not in (None, "", "webhook", "email"):
        raise invalid("invalid channel", [{"field": "query.channel", "message": "must be webhook or email"}])
    resp = await backend.call(
        backend.notifications.Redeliver,
        notify_pb2.RedeliverRequest(tenant_id=caller.tenant_id, job_id=job_id, channel=channel or ""),
    )
    body = {"job_id": job_id, "event_id": resp.event_id, "deliveries": [delivery_view(d) for d in resp.deliveries]}
    return JSONResponse(body, status_code=202)
