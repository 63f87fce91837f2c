"""Rule strategies (`/api/v1/strategies`)."""

from __future__ import annotations

import json
from typing import Any

from hindsight.backtest.v1 import backtest_pb2
from pydantic import Field

from domain import backtest_spec as spec
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


class BuiltinParameter(ResponseModel):
    name: str
    type: str = Field(description="integer or number")
    default: float
    min: float
    max: float
    aliases: list[str] = Field(description="other names the parameter is accepted under")


class BuiltinStrategy(ResponseModel):
    name: str = Field(description="the backtests' name (`strategy`)")
    aliases: list[str] = Field(description="other names accepted for it, in any case, in backtests and sweeps")
    sweep_strategy_type: str | None = Field(
        description="its name as a sweep's `strategy_type` (sweeps vary fast_period and slow_period), or null "
        "when it cannot be swept"
    )
    description: str
    parameters: list[BuiltinParameter]


class BuiltinStrategyList(ResponseModel):
    strategies: list[BuiltinStrategy]


def builtin_strategies() -> BuiltinStrategyList:
    """The domain's built-in strategies as the API lists them."""
    return BuiltinStrategyList(strategies=[
        BuiltinStrategy(
            name=name,
            aliases=spec.strategy_aliases(name),
            sweep_strategy_type=next((t for t, n in spec.SWEEP_STRATEGY.items() if n == name), None),
            description=spec.BUILTIN_DESCRIPTIONS[name],
            parameters=[
                BuiltinParameter(name=p.name, type="integer" if p.kind is int else "number", default=p.default,
                                 min=p.lo, max=p.hi, aliases=spec.param_aliases(p.name))
                for p in params
            ],
        )
        for name, params in spec.BUILTIN_STRATEGIES.items()
    ])
