"""The gRPC servicer of `hindsight.notify.v1.NotificationsService` over services.results.notifications.

Runs on the results service's database pool; domain errors map to status
codes as in the main servicer (another tenant's job is NOT_FOUND).
"""

from __future__ import annotations

import logging

from hindsight.notify.v1 import notify_pb2, notify_pb2_grpc
from sqlalchemy.exc import IntegrityError

from libs import grpc_util
from services.results import notifications as n
from services.results.models_notifications import Delivery, DeliveryAttempt, NotificationSettings
from services.results.rpc import DatabaseServicer, require, unary
from services.results.timefmt import rfc3339, utcnow

log = logging.getLogger(__name__)

SERVICE_NAME = grpc_util.service_name(notify_pb2, "NotificationsService")


def delivery_pb(d: Delivery, event_type: str = "", history: list[DeliveryAttempt] | None = None) -> notify_pb2.Delivery:
    now = utcnow()
    msg = notify_pb2.Delivery(
        delivery_id=d.delivery_id,
        event_id=d.event_id,
        job_id=d.job_id,
        channel=d.channel,
        target=d.target,
        state=d.state,
        attempts=d.attempts,
        created_at=rfc3339(d.created_at),
        completed_at=rfc3339(d.completed_at),
        event_type=event_type,
        redelivery=d.redelivery,
        next_attempt_at=rfc3339(d.next_attempt_at) if d.state == n.PENDING else "",
    )
    for a in history or ():
        outcome = n.shown_outcome(a, d, now)
        if outcome == n.INTERRUPTED and a.attempt > d.attempts:
            msg.attempts += 1  # cut off, not yet marked so by the next claim: it counts all the same
        msg.history.add(
            attempt=a.attempt,
            started_at=n.rfc3339_ms(a.started_at),
            url=a.url,
            status_code=a.status_code or 0,
            error=a.error or (n.INTERRUPTED_ERROR if outcome == n.INTERRUPTED else ""),
            latency_ms=a.latency_ms,
            outcome=outcome,
        )
    return msg


def settings_pb(row: NotificationSettings) -> notify_pb2.NotificationSettings:
    return notify_pb2.NotificationSettings(
        webhook_url=row.webhook_url,
        webhook_secret=row.webhook_secret,
        notify_email=row.notify_email,
        updated_at=rfc3339(row.updated_at),
    )


class NotificationsServicer(DatabaseServicer, notify_pb2_grpc.NotificationsServiceServicer):
    """Every RPC of the notifications service; all state is in the database."""

    # ------------------------------------------------------------ notifier

    @unary
    async def RecordEvent(self, request, context):
        event = request.event
        for attempt in range(2):
            try:
                deliveries, created = await self.write(n.record_event, event)
                break
            except IntegrityError:
                # Another replica recorded the same event at the same moment: read what it made.
                if attempt == 1:
                    raise
        if created:
            log.info(
                "job event recorded",
                extra={"job_id": event.job_id, "event_id": event.event_id, "deliveries": len(deliveries)},
            )
        return notify_pb2.RecordEventResponse(
            deliveries=[delivery_pb(d, event.event_type) for d in deliveries], created=created
        )

    @unary
    async def BeginAttempt(self, request, context):
        claim = await self.write(
            n.begin_attempt,
            require(request.delivery_id, "delivery_id"),
            require(request.task_id, "task_id"),
            request.lease_seconds,
        )
        return notify_pb2.BeginAttemptResponse(
            proceed=claim.proceed,
            reason=claim.reason,
            retry_after_seconds=claim.retry_after_seconds,
            attempt=claim.attempt,
            webhook_secret=claim.webhook_secret,
            delivery_created_at=n.rfc3339_ms(claim.delivery_created_at),
        )

    @unary
    async def FinishAttempt(self, request, context):
        outcome = n.AttemptOutcome(
            delivery_id=require(request.delivery_id, "delivery_id"),
            task_id=require(request.task_id, "task_id"),
            attempt=request.attempt,
            outcome=request.outcome,
            status_code=request.status_code or None,
            error=request.error,
            latency_ms=request.latency_ms,
            started_at=n.parse_time(request.started_at, utcnow()),
            retry_after_seconds=request.retry_after_seconds,
            url=request.url,
        )
        recorded, state = await self.write(n.finish_attempt, outcome)
        return notify_pb2.FinishAttemptResponse(recorded=recorded, state=state)

    # ------------------------------------------------------------ gateway

    @unary
    async def ListDeliveries(self, request, context):
        event, rows = await self.read(
            n.list_deliveries, require(request.tenant_id, "tenant_id"), require(request.job_id, "job_id")
        )
        event_type = event.event_type if event is not None else ""
        return notify_pb2.ListDeliveriesResponse(
            deliveries=[delivery_pb(d, event_type, history) for d, history in rows],
            event_id=event.event_id if event is not None else "",
            event_type=event_type,
        )

    @unary
    async def Redeliver(self, request, context):
        event, deliveries = await self.write(
            n.redeliver, require(request.tenant_id, "tenant_id"), require(request.job_id, "job_id"), request.channel
        )
        log.info("redelivery requested", extra={"job_id": event.job_id, "event_id": event.event_id})
        return notify_pb2.RedeliverResponse(
            deliveries=[delivery_pb(d, event.event_type) for d in deliveries], event_id=event.event_id
        )

    @unary
    async def GetNotificationSettings(self, request, context):
        row = await self.write(n.tenant_settings, require(request.tenant_id, "tenant_id"))
        return notify_pb2.GetNotificationSettingsResponse(settings=settings_pb(row))

    @unary
    async def UpdateNotificationSettings(self, request, context):
        tenant_id = require(request.tenant_id, "tenant_id")

        def update(s):
            return n.update_settings(
                s,
                tenant_id,
                webhook_url=request.webhook_url,
                notify_email=request.notify_email,
                webhook_secret=request.webhook_secret,
                rotate_secret=request.rotate_secret,
            )

        row = await self.write(update)
        return notify_pb2.UpdateNotificationSettingsResponse(settings=settings_pb(row))
