"""A parameter sweep: seed 001's fields (its Zod schema's limits, from `domain.sweep`) and
the engine's settings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from domain import overfitting, sweep, universe
from domain.market import INTERVALS
from services.gateway.body import ErrorText, RequestModel, absent, problem, raise_problems
from services.gateway.requests.fields import Email, HttpUrl, Interval, Ticker

# [min, max] of a moving-average period.
PeriodRange = Annotated[
    list[int],
    Field(
        min_length=2,
        max_length=2,
        description='[min, max]; in a form also "[10, 20]", "10,20" or the field twice',
        json_schema_extra={"items": {"type": "integer", "minimum": sweep.PERIOD_MIN, "maximum": sweep.PERIOD_MAX}},
    ),
    ErrorText("expected [min, max], e.g. [10, 20]"),
]
CostPct = Annotated[float, Field(ge=0, le=sweep.COST_PCT_MAX, description="percent of traded value, per side")]
# [min, max] of an RSI threshold (strategy_type RSI).
ThresholdRange = Annotated[
    list[float],
    Field(min_length=2, max_length=2, description="[min, max], 0 to 100",
          json_schema_extra={"items": {"type": "number", "minimum": sweep.THRESHOLD_MIN, "maximum": sweep.THRESHOLD_MAX}}),
    ErrorText("expected [min, max], e.g. [20, 35]"),
]


def _again(error: Any) -> dict[str, Any]:
    """A validation error as `ValidationError.from_exception_data` takes it back."""
    ctx = error.get("ctx") or {}
    if error["type"] == "hindsight":
        return {"type": problem(error["msg"], **ctx), "loc": error["loc"], "input": error.get("input")}
    out = {"type": error["type"], "loc": error["loc"], "input": error.get("input")}
    if ctx:
        out["ctx"] = ctx
    return out


class SweepRequest(RequestModel):
    """A sweep of the (fast, slow) periods of a moving-average crossover over one dataset.
    `combinations` counts the pairs on the step grid of both ranges with fast < slow.
    `strategy_type: RSI` (rsi_reversion) sweeps instead its period (`period_range` on
    `step`) and its thresholds (`oversold_range`, `overbought_range` on `threshold_step`),
    every combination with oversold < overbought."""

    ticker: Ticker | None = Field(None, description="the ticker to sweep; or `tickers`, or `universe`")
    fast_range: PeriodRange | None = Field(None, examples=[[10, 20]], description="required but for RSI")
    slow_range: PeriodRange | None = Field(None, examples=[[20, 30]], description="required but for RSI")
    period_range: PeriodRange | None = Field(None, examples=[[10, 20]], description="RSI only: the RSI period")
    oversold_range: ThresholdRange | None = Field(None, examples=[[20, 35]], description="RSI only")
    overbought_range: ThresholdRange | None = Field(None, examples=[[65, 80]], description="RSI only")
    threshold_step: float = Field(sweep.THRESHOLD_STEP_DEFAULT, description="RSI only: the thresholds' step")
    step: Annotated[int, Field(ge=sweep.STEP_MIN, le=sweep.STEP_MAX, examples=[5])]
    min_trades: Annotated[int, Field(ge=sweep.MIN_TRADES_MIN, le=sweep.MIN_TRADES_MAX)] = sweep.MIN_TRADES_DEFAULT
    strategy_type: Literal[sweep.STRATEGY_TYPES] = Field(  # type: ignore[valid-type]
        "SMA", description="SMA, EMA or MACD; the backtests' names (sma_crossover, ...) and any case mean the same"
    )
    config_path: Literal[sweep.CONFIG_PATHS] | None = None  # type: ignore[valid-type]
    webhook_url: HttpUrl | None = Field(None, description="called when the job ends")
    interval: Interval | None = Field(None, description=f"one of {', '.join(INTERVALS)}; default: the finest dataset")
    direction: Literal[sweep.DIRECTIONS] = "long"  # type: ignore[valid-type]
    fill: Literal[sweep.FILLS] = "next_open"  # type: ignore[valid-type]
    commission_pct: CostPct = 0.0
    slippage_pct: CostPct = 0.0
    initial_cash: Annotated[float, Field(gt=0, le=sweep.CASH_MAX)] = sweep.INITIAL_CASH_DEFAULT
    timeout_seconds: Annotated[int, Field(ge=sweep.TIMEOUT_SECONDS_MIN, le=sweep.TIMEOUT_SECONDS_MAX)] | None = Field(
        None, description=f"default {sweep.TIMEOUT_SECONDS_DEFAULT}"
    )
    notify_email: Email | None = Field(None, description="emailed when the job ends")
    pbo_blocks: int = Field(
        overfitting.PBO_BLOCKS_DEFAULT,
        description=f"blocks of the CSCV behind `best`'s `overfitting.pbo`: an even number from "
        f"{overfitting.PBO_BLOCKS_MIN} to {overfitting.PBO_BLOCKS_MAX}",
        json_schema_extra={"minimum": overfitting.PBO_BLOCKS_MIN, "maximum": overfitting.PBO_BLOCKS_MAX,
                           "multipleOf": 2},
    )

    # A universe sweep (issue 11): every ticker of a list, or of a saved universe, one shard each.
    tickers: list[str] | None = Field(
        None, description=f"sweep each of these tickers (at most {universe.UNIVERSE_MAX_TICKERS}, each once) "
        "instead of one `ticker`", examples=[["AAPL", "MSFT"]],
    )
    universe: str | None = Field(None, description="sweep every ticker of this saved universe (PUT /api/v1/universes/{name})")

    @field_validator("strategy_type", mode="before")
    @classmethod
    def _strategy_alias(cls, value: Any) -> Any:
        return sweep.sweep_strategy_type(value) or value  # an unknown name fails as a Literal

    @model_validator(mode="wrap")
    @classmethod
    def _required_ranges(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> SweepRequest:
        """The ranges the strategy type needs (fast/slow, or RSI's three) are required, and
        reported missing beside every other problem of the request."""
        raw = data if isinstance(data, dict) else {}
        rsi = sweep.sweep_strategy_type(raw.get("strategy_type")) == sweep.RSI_STRATEGY_TYPE
        needed = ("period_range", "oversold_range", "overbought_range") if rsi else ("fast_range", "slow_range")
        missing = [{"type": "missing", "loc": (name,), "input": data} for name in needed if absent(raw.get(name))]
        try:
            model = handler(data)
        except ValidationError as exc:
            if not missing:
                raise
            raise ValidationError.from_exception_data(
                cls.__name__, [*missing, *(_again(e) for e in exc.errors(include_url=False))]  # type: ignore[list-item]
            ) from None
        if missing:
            raise ValidationError.from_exception_data(cls.__name__, missing)  # type: ignore[arg-type]
        return model

    @model_validator(mode="after")
    def _grid(self) -> SweepRequest:
        raise_problems(type(self), self._target_problems() or sweep.spec_problems(self.spec()))
        return self

    @staticmethod
    def _pair(value: list[Any] | None) -> tuple[Any, Any]:
        return (value[0], value[1]) if value else (0, 0)

    def _target_problems(self) -> list[universe.Problem]:
        """Exactly one of ticker, tickers and universe, each valid (domain.universe)."""
        return universe.sweep_target_problems(self.ticker, self.tickers, self.universe)

    @property
    def is_universe(self) -> bool:
        """Many tickers (a list or a saved universe) rather than one."""
        return self.tickers is not None or self.universe is not None

    def spec(self) -> sweep.SweepSpec:
        """The domain's sweep."""
        # The grid's rules do not depend on the ticker: a universe's are checked with a stand-in.
        return sweep.SweepSpec(
            ticker=self.ticker or (universe.normalize_tickers(self.tickers[:1]) if self.tickers else ["UNIVERSE"])[0],
            fast_range=self._pair(self.fast_range),
            slow_range=self._pair(self.slow_range),
            step=self.step,
            min_trades=self.min_trades,
            strategy_type=self.strategy_type,
            interval=self.interval or "",
            direction=self.direction,
            fill=self.fill,
            commission_pct=self.commission_pct,
            slippage_pct=self.slippage_pct,
            initial_cash=self.initial_cash,
            pbo_blocks=self.pbo_blocks,
            period_range=self._pair(self.period_range),
            oversold_range=self._pair(self.oversold_range),
            overbought_range=self._pair(self.overbought_range),
            threshold_step=self.threshold_step,
        )

    @property
    def combinations(self) -> int:
        """Pairs of the grid (per ticker)."""
        return self.spec().combinations

    def parameters(self) -> dict[str, Any]:
        """The sweep's parameters as stored with the job and shown back (normalized)."""
        out: dict[str, Any] = {"ticker": self.ticker} if not self.is_universe else {}
        if self.tickers is not None:
            out["tickers"] = universe.normalize_tickers(self.tickers)
        if self.universe is not None:
            out["universe"] = self.universe
        out |= {
            **({"period_range": self.period_range, "oversold_range": self.oversold_range,
                "overbought_range": self.overbought_range, "threshold_step": self.threshold_step}
               if self.strategy_type == sweep.RSI_STRATEGY_TYPE
               else {"fast_range": self.fast_range, "slow_range": self.slow_range}),
            "step": self.step,
            "min_trades": self.min_trades,
            "strategy_type": self.strategy_type,
        }
        if self.config_path is not None:
            out["config_path"] = self.config_path
        if self.interval is not None:
            out["interval"] = self.interval
        out.update(
            direction=self.direction,
            fill=self.fill,
            commission_pct=self.commission_pct,
            slippage_pct=self.slippage_pct,
            initial_cash=self.initial_cash,
        )
        if "pbo_blocks" in self.model_fields_set:  # shown only when asked for: the seed's parameters stay as they were
            out["pbo_blocks"] = self.pbo_blocks
        return out
