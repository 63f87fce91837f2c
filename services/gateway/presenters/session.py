"""Login and logout."""

from __future__ import annotations

from pydantic import Field

from services.gateway.presenters.common import ResponseModel


class LoginResult(ResponseModel):
    authenticated: bool
    tenant_id: str
    expires_in: int = Field(description="seconds the session cookie lasts")


class LogoutResult(ResponseModel):
    authenticated: bool


class WhoAmI(ResponseModel):
    tenant_id: str
    dev_access: bool = Field(
        description="true when no credentials were sent and the dev tenant was assumed (standalone on loopback "
        "without HINDSIGHT_REQUIRE_AUTH): no login is needed"
    )
