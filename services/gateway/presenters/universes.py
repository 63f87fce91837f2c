"""Universes (`/api/v1/universes`)."""

from __future__ import annotations

from typing import Any

from hindsight.universes.v1 import universes_pb2

from services.gateway.presenters.common import ResponseModel, timestamp


class Universe(ResponseModel):
    name: str
    tickers: list[str]
    created_at: str | None
    updated_at: str | None


class UniverseList(ResponseModel):
    universes: list[Universe]


class UniverseDeleted(ResponseModel):
    name: str
    deleted: bool


def universe_view(u: universes_pb2.Universe) -> dict[str, Any]:
    return {"name": u.name, "tickers": list(u.tickers), "created_at": timestamp(u.created_at),
            "updated_at": timestamp(u.updated_at)}
