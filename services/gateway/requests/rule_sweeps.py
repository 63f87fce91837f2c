"""A sweep of a rule strategy's parameters (`POST /api/v1/strategies/{id}/sweep`).

The ranges are checked against the strategy's declared parameters by results, with the
domain's rules (`domain.rules.sweep.rule_grid`): a name not declared, a placeholder
with no range, a range of the wrong type and a grid over the maximum are 400s there,
before anything is queued. This model checks what needs no definition.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, model_validator

from domain import overfitting
from domain import sweep as crossover
from domain.backtest_spec import DAY_BY_DAY_CAPITAL_DEFAULT
from domain.rules import parameters as params
from domain.rules import sweep as rules
from domain.sweep import CASH_MAX
from services.gateway.body import RequestModel, raise_problems
from services.gateway.requests.day_by_day import CostPercentage
from services.gateway.requests.fields import Email, HttpUrl, IsoDate

Range = Annotated[
    list[int | float],
    Field(min_length=3, max_length=3, description="[start, stop, step]: start, start + step, ... up to stop inclusive",
          examples=[[10, 20, 2]]),
]


class RuleSweepRequest(RequestModel):
    """Sweep a saved rule strategy's declared parameters, each combination run day by day."""

    # A new endpoint, no seed client to stay compatible with: a misspelt field is an error.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    parameters: dict[str, Range] = Field(
        description=f"a range per swept parameter; every parameter the strategy uses as a {{placeholder}} needs one; "
        f"at most {params.MAX_SWEEP_COMBINATIONS} combinations in all",
        examples=[{"rsi_len": [10, 20, 2], "oversold": [20, 35, 5]}],
    )
    start_date: IsoDate
    end_date: IsoDate
    min_trades: Annotated[int, Field(ge=rules.MIN_TRADES_MIN, le=rules.MIN_TRADES_MAX)] = rules.MIN_TRADES_DEFAULT
    initial_capital: Annotated[float, Field(gt=0, le=CASH_MAX)] = DAY_BY_DAY_CAPITAL_DEFAULT
    slippage_percentage: CostPercentage = 0.0
    commission_percentage: CostPercentage = 0.0
    pbo_blocks: int = Field(
        overfitting.PBO_BLOCKS_DEFAULT,
        description=f"blocks of the CSCV behind `best`'s `overfitting.pbo`: an even number from "
        f"{overfitting.PBO_BLOCKS_MIN} to {overfitting.PBO_BLOCKS_MAX}",
    )
    webhook_url: HttpUrl | None = Field(None, description="called when the job ends")
    notify_email: Email | None = Field(None, description="emailed when the job ends")
    timeout_seconds: Annotated[
        int, Field(ge=crossover.TIMEOUT_SECONDS_MIN, le=crossover.TIMEOUT_SECONDS_MAX)
    ] | None = Field(None, description=f"default {crossover.TIMEOUT_SECONDS_DEFAULT}")

    @model_validator(mode="after")
    def _rules(self) -> RuleSweepRequest:
        problems: list[dict[str, Any]] = []
        if self.end_date < self.start_date:
            problems.append({"field": "end_date", "message": "must not be before start_date"})
        if not self.parameters:
            problems.append({"field": "parameters", "message": 'at least one range, e.g. {"rsi_len": [10, 20, 2]}'})
        for name in self.parameters:
            if not params.PARAMETER_NAME_RE.match(name):
                problems.append({"field": f"parameters.{name}", "message": "not a parameter name"})
        if (why := overfitting.pbo_blocks_problem(self.pbo_blocks)) is not None:
            problems.append({"field": "pbo_blocks", "message": why})
        if problems:
            raise_problems(type(self), problems)
        return self
