"""Logging in (`POST /api/v1/auth/login`)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from services.gateway.body import RequestModel


class LoginRequest(RequestModel):
    """An API key to exchange for a session cookie."""

    model_config = ConfigDict(str_strip_whitespace=True)

    api_key: str = Field(min_length=1, examples=["dev-key-000000000000000000000000"])
