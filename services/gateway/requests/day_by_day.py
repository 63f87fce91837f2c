"""A day-by-day backtest of a saved rule strategy: seed 002's start (and its all-days
`POST /api/v1/backtest`) and seed 004's run, which adds the `user_id` partition."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from domain.backtest_spec import (
    DAY_BY_DAY_CAPITAL_DEFAULT,
    DAY_BY_DAY_COST_PCT_MAX,
    USER_ID_PATTERN,
    user_id_problem,
)
from domain.sweep import CASH_MAX
from services.gateway.body import RequestModel, problem, raise_problems
from services.gateway.requests.fields import Email, HttpUrl, IsoDate, Uuid


def _user_id(value: str) -> str:
    why = user_id_problem(value)
    if why is not None:
        raise problem(why)
    return value


CostPercentage = Annotated[
    float, Field(ge=0, le=DAY_BY_DAY_COST_PCT_MAX, description="percent of traded value, per side")
]
UserId = Annotated[str, AfterValidator(_user_id), Field(json_schema_extra={"pattern": USER_ID_PATTERN})]


class DayByDayRequest(RequestModel):
    """Run a saved strategy day by day over a date range (the days with bars in its session)."""

    strategy_id: Uuid = Field(description="a strategy of /api/v1/strategies")
    start_date: IsoDate
    end_date: IsoDate
    initial_capital: Annotated[float, Field(gt=0, le=CASH_MAX)] = DAY_BY_DAY_CAPITAL_DEFAULT
    slippage_percentage: CostPercentage = 0.0
    commission_percentage: CostPercentage = 0.0
    webhook_url: HttpUrl | None = Field(None, description="called when the job ends")
    notify_email: Email | None = Field(None, description="emailed when the job ends")

    @model_validator(mode="after")
    def _dates(self) -> DayByDayRequest:
        if self.end_date < self.start_date:
            raise_problems(type(self), [{"field": "end_date", "message": "must not be before start_date"}])
        return self


class UserDayByDayRequest(DayByDayRequest):
    """Seed 004's run: a day-by-day backtest kept under a user of the tenant; it replaces
    that user's previous files of the strategy."""

    user_id: UserId
