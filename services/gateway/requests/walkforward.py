"""A walk-forward optimization: a sweep as `POST /api/v1/strategy/sweep` takes it, and the
windows (domain.walkforward's rules; the windows against the data are results')."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from domain import sweep as sweep_rules
from domain import walkforward
from services.gateway.body import RequestModel, raise_problems
from services.gateway.requests.fields import Email, HttpUrl
from services.gateway.requests.sweeps import SweepRequest

WindowBars = Annotated[int, Field(ge=walkforward.WINDOW_BARS_MIN, le=walkforward.WINDOW_BARS_MAX)]


class WalkForwardRequest(RequestModel):
    """A sweep chosen on each training window and run on the test window after it."""

    sweep: SweepRequest = Field(description="the sweep of every training window, as `POST /api/v1/strategy/sweep` "
                                            "takes it (its webhook_url, notify_email and timeout are not used)")
    train_bars: WindowBars = Field(examples=[500], description="bars of a training window (anchored: of the first)")
    test_bars: WindowBars = Field(examples=[250], description="bars of a test window")
    step_bars: Annotated[int, Field(ge=1, le=walkforward.WINDOW_BARS_MAX)] = Field(
        examples=[250], description="bars between the starts of two folds"
    )
    anchored: bool = Field(False, description="true: every training window starts at the first bar")
    objective: Literal[walkforward.OBJECTIVES] = Field(  # type: ignore[valid-type]
        walkforward.OBJECTIVE_DEFAULT, description="the metric the training sweep maximises"
    )
    webhook_url: HttpUrl | None = Field(None, description="called when the job ends")
    notify_email: Email | None = Field(None, description="emailed when the job ends")
    timeout_seconds: Annotated[
        int, Field(ge=sweep_rules.TIMEOUT_SECONDS_MIN, le=sweep_rules.TIMEOUT_SECONDS_MAX)
    ] | None = Field(None, description=f"default {sweep_rules.TIMEOUT_SECONDS_DEFAULT}")

    @model_validator(mode="after")
    def _windows(self) -> WalkForwardRequest:
        sweep_problems = [p for p in (walkforward.target_problem(self.sweep.tickers, self.sweep.universe),
                                      walkforward.strategy_problem(self.sweep.strategy_type)) if p is not None]
        raise_problems(type(self), walkforward.windows_problems(self.windows()) + sweep_problems)
        return self

    def windows(self) -> walkforward.Windows:
        return walkforward.Windows(self.train_bars, self.test_bars, self.step_bars, self.anchored, self.objective)

    def parameters(self) -> dict[str, Any]:
        """As stored with the job and shown back (normalized)."""
        return {
            "sweep": self.sweep.parameters(),
            "train_bars": self.train_bars,
            "test_bars": self.test_bars,
            "step_bars": self.step_bars,
            "anchored": self.anchored,
            "objective": self.objective,
        }
