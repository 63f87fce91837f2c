"""Rule strategies (`/api/v1/strategies`)."""

from __future__ import annotations

import json
from typing import Any

from hindsight.backtest.v1 import backtest_pb2
from pydantic import Field

from services.gateway.presenters.common import ResponseModel, timestamp


class Strategy(ResponseModel):
    strategy_id: str
    name: str
    definition: dict[str, Any] | None = Field(description="the definition in its normal form")
    created_at: str | None
    updated_at: str | None


class StrategyList(ResponseModel):
    strategies: list[Strategy]
    total: int
    limit: int
    offset: int


class StrategyDeleted(ResponseModel):
    strategy_id: str
    deleted: bool


def strategy_view(s: backtest_pb2.Strategy) -> dict[str, Any]:
    return {
        "strategy_id": s.strategy_id,
        "name": s.name,
        "definition": json.loads(s.definition_json) if s.definition_json else None,
        "created_at": timestamp(s.created_at),
        "updated_at": timestamp(s.updated_at),
    }
