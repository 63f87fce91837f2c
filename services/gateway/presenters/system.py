"""Health and the domain's vocabulary."""

from __future__ import annotations

from pydantic import BaseModel, Field

from domain.shards import SHARD_SIZE_RULE
from services.gateway.presenters.common import ResponseModel


class ServiceStates(ResponseModel):
    gateway: str
    results: str = Field(description="serving, not_serving or unavailable")


class Health(ResponseModel):
    status: str = Field(description="healthy or unhealthy")
    version: str
    timestamp: str
    services: ServiceStates


class TickerRule(BaseModel):
    pattern: str
    max_length: int
    examples: list[str]


class SweepLimits(BaseModel):
    strategy_types: list[str]
    period: tuple[int, int]
    step: tuple[int, int]
    min_trades: tuple[int, int]
    min_trades_default: int
    cost_pct_max: float
    timeout_seconds: tuple[int, int]
    max_tickers: int = Field(description="tickers of one universe sweep, at most")
    shard_bar_pairs: int = Field(description=f"the shard size: {SHARD_SIZE_RULE}")


class RuleSweepLimits(BaseModel):
    """Sweeps of a rule strategy's declared parameters (`POST /api/v1/strategies/{id}/sweep`)."""

    max_combinations: int = Field(description="combinations of one sweep's grid, at most")
    max_parameters: int = Field(description="parameters a strategy declares, at most")
    min_trades: tuple[int, int]
    min_trades_default: int


class Vocabulary(BaseModel):
    """The domain's vocabulary, so clients (the dashboard among them) need not copy it."""

    intervals: list[str]
    calendars: list[str]
    dataset_formats: list[str] = Field(description="the `format` values of a dataset import")
    ticker: TickerRule
    strategies: list[str]
    sweep: SweepLimits
    rule_sweep: RuleSweepLimits
