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

from fastapi import APIRouter, Depends, Query
from hindsight.notify.v1 import notify_pb2

from services.gateway.body import BodyReader
from services.gateway.deps import BackendDep, CallerDep, checked_id
from services.gateway.errors import invalid
from services.gateway.presenters import notifications as shapes
from services.gateway.requests.fields import check_webhook
from services.gateway.requests.notifications import NotificationSettingsUpdate

router = APIRouter(tags=["notifications"])
INVALID_SETTINGS = "invalid notification settings"
_read_settings = BodyReader(NotificationSettingsUpdate, message=INVALID_SETTINGS)

_SETTINGS_DOC = (
    "The tenant's notification defaults: `webhook_url` and `notify_email` are used for jobs submitted "
    "without their own; `webhook_secret` signs every webhook: `X-Hindsight-Signature: t=<unix seconds>,"
    "v1=<hex HMAC-SHA256 of \"<t>.<raw body>\" keyed with the secret>`. Each delivery also carries "
    "`X-Hindsight-Event-Id` (the same on every retry and redelivery: drop duplicates with it) and "
    "`X-Hindsight-Event-Type`."
)


@router.get(
    "/api/v1/settings/notifications",
    summary="Notification defaults and webhook secret",
    description=_SETTINGS_DOC,
    response_model=shapes.NotificationSettings,
)
async def get_settings(backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    resp = await backend.call(
        backend.notifications.GetNotificationSettings,
        notify_pb2.GetNotificationSettingsRequest(tenant_id=caller.tenant_id),
    )
    return shapes.settings_view(resp.settings)


@router.put(
    "/api/v1/settings/notifications",
    summary="Replace the notification defaults",
    description=_SETTINGS_DOC,
    response_model=shapes.NotificationSettings,
)
async def put_settings(
    update: Annotated[NotificationSettingsUpdate, Depends(_read_settings)], backend: BackendDep, caller: CallerDep
) -> dict[str, Any]:
    await check_webhook(update.webhook_url, backend.webhook_policy, message=INVALID_SETTINGS)
    resp = await backend.call(
        backend.notifications.UpdateNotificationSettings,
        notify_pb2.UpdateNotificationSettingsRequest(
            tenant_id=caller.tenant_id,
            webhook_url=update.webhook_url or "",
            notify_email=update.notify_email or "",
            webhook_secret=update.webhook_secret or "",
            rotate_secret=update.rotate_secret,
        ),
    )
    return shapes.settings_view(resp.settings)


@router.get(
    "/api/v1/jobs/{job_id}/deliveries",
    summary="Webhook and email deliveries of a job, every attempt",
    response_model=shapes.JobDeliveries,
)
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
        "deliveries": [shapes.delivery_view(d) for d in resp.deliveries],
    }


@router.post(
    "/api/v1/jobs/{job_id}/deliveries/redeliver",
    status_code=202,
    summary="Send the job's final event again (same event id)",
    response_model=shapes.Redelivery,
)
async def redeliver(
    job_id: str,
    backend: BackendDep,
    caller: CallerDep,
    channel: Annotated[str | None, Query(description="webhook or email; default: every target")] = None,
) -> dict[str, Any]:
    """New deliveries of the job's final event, with the original `X-Hindsight-Event-Id`, to the job's
    own webhook URL / email (else the tenant's defaults). 409 while the job runs, or when it has no target."""
    checked_id(job_id, "job")
    if channel not in (None, "", "webhook", "email"):
        raise invalid("invalid channel", [{"field": "query.channel", "message": "must be webhook or email"}])
    resp = await backend.call(
        backend.notifications.Redeliver,
        notify_pb2.RedeliverRequest(tenant_id=caller.tenant_id, job_id=job_id, channel=channel or ""),
    )
    return {"job_id": job_id, "event_id": resp.event_id, "deliveries": [shapes.delivery_view(d) for d in resp.deliveries]}
