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
