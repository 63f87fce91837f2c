"""A tenant's notification defaults (`PUT /api/v1/settings/notifications`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from services.gateway.body import ErrorText, RequestModel, problem, raise_problems
from services.gateway.requests.fields import Email, HttpUrl

MIN_SECRET, MAX_SECRET = 16, 128
_SECRET_RULE = f"must be {MIN_SECRET} to {MAX_SECRET} printable ASCII characters"


def _printable(value: str) -> str:
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in value):
        raise problem(_SECRET_RULE)
    return value


class NotificationSettingsUpdate(RequestModel):
    """The defaults for jobs submitted without their own `webhook_url` / `notify_email`,
    and the secret that signs every webhook of the tenant."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: HttpUrl | None = Field(None, description="http(s); null or absent: none")
    notify_email: Email | None = Field(None, description="null or absent: none")
    webhook_secret: Annotated[
        str, Field(min_length=MIN_SECRET, max_length=MAX_SECRET), AfterValidator(_printable), ErrorText(_SECRET_RULE)
    ] | None = Field(None, description="absent: keep the current secret")
    rotate_secret: bool = Field(False, description="replace the secret with a new one")

    @model_validator(mode="after")
    def _one_secret(self) -> NotificationSettingsUpdate:
        if self.webhook_secret and self.rotate_secret:
            raise_problems(type(self), [{"field": "rotate_secret", "message": "give webhook_secret or rotate_secret, not both"}])
        return self
