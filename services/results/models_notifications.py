"""Models of webhook/email deliveries and tenant notification settings (on the shared `Base`).

- `NotificationSettings`: a tenant's default webhook URL and email, and the
  secret that signs all its webhooks.
- `NotificationEvent`: a job's final (job-ended) event as the notifier took
  it from the broker: the payload and the event id every delivery of it
  carries, so a redelivery sends exactly the same event.
- `Delivery`: one event to one target (a URL or an address); `task_id` is the
  token of the one broker task allowed to make its next attempt, `lease_until`
  the claim of an attempt in progress.
- `DeliveryAttempt`: every try, with its answer or error and its latency.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from services.results.models_base import Base
from services.results.sealed import EncryptedText


class NotificationSettings(Base):
    """A tenant's notification defaults and webhook signing secret."""

    __tablename__ = "notification_settings"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True)
    webhook_url: Mapped[str] = mapped_column(sa.Text, default="")
    # Encrypted at rest (HINDSIGHT_SECRET_KEY): stored as enc:v1:<Fernet token>.
    webhook_secret: Mapped[str] = mapped_column(EncryptedText)
    notify_email: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class NotificationEvent(Base):
    """A job's final event, kept for its deliveries and for redelivery."""

    __tablename__ = "notification_events"

    event_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.job_id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(sa.String(64))
    # completed, failed or cancelled
    status: Mapped[str] = mapped_column(sa.String(16))
    # The callback body (seed shape) as results wrote it.
    payload: Mapped[dict[str, Any]]
    # The job's own webhook URL at submission (empty: the tenant default applies).
    webhook_url: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime]


class Delivery(Base):
    """One event to one target, until delivered or given up."""

    __tablename__ = "deliveries"
    __table_args__ = (sa.Index("ix_deliveries_job_created", "job_id", "created_at"),)

    delivery_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(
        sa.ForeignKey("notification_events.event_id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.job_id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"))
    # webhook or email
    channel: Mapped[str] = mapped_column(sa.String(16))
    target: Mapped[str] = mapped_column(sa.Text)
    # pending, delivered or failed
    state: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    redelivery: Mapped[bool] = mapped_column(default=False)
    # Token of the broker task that may make the next attempt.
    task_id: Mapped[str] = mapped_column(sa.String(32))
    # An attempt in progress holds the delivery until then.
    lease_until: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class DeliveryAttempt(Base):
    """One try of a delivery."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (sa.UniqueConstraint("delivery_id", "attempt", name="uq_delivery_attempts_delivery_attempt"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(sa.ForeignKey("deliveries.delivery_id", ondelete="CASCADE"))
    attempt: Mapped[int]
    started_at: Mapped[datetime]
    # The URL, or mailto:address.
    url: Mapped[str] = mapped_column(sa.Text)
    status_code: Mapped[int | None]
    error: Mapped[str] = mapped_column(sa.Text, default="")
    latency_ms: Mapped[float]
    # delivered, retry or failed; started while in progress, interrupted when it never finished
    outcome: Mapped[str] = mapped_column(sa.String(16))
