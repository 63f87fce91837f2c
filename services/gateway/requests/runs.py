"""A synchronous backtest (`POST /backtest`) and the overrides of a replay
(`POST /runs/{id}/replay`): the built-in strategies and their parameters from
`domain.backtest_spec`, costs and cash limits from `domain.sweep`."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from hindsight.engine.v1 import engine_pb2
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator

from domain import montecarlo as mc
from domain.backtest_spec import (
    BUILTIN_STRATEGIES,
    DIRECTIONS,
    FILLS,
    PARAM_ALIASES,
    SpecInvalid,
    check_direction,
    normalize_parameters,
    strategy_name,
)
from domain.market import INTERVALS, normalize_ticker
from domain.sweep import CASH_MAX, COST_PCT_MAX, INITIAL_CASH_DEFAULT
from services.gateway.body import RequestModel, problem, raise_problems
from services.gateway.errors import invalid
from services.gateway.requests.fields import Interval, IsoDate, Ticker

STRATEGY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_STRATEGY_ID = re.compile(STRATEGY_ID_PATTERN)
# Dates a backtest may name (bars outside them cannot exist).
FIRST_YEAR, LAST_YEAR = 1900, 2200


def _year(value: date) -> date:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise problem(f"must be a date between {FIRST_YEAR} and {LAST_YEAR}")
    return value


def _strategy(value: Any) -> Any:
    # Other spellings of a built-in ("SMA", "buy_hold") are that built-in.
    return (strategy_name(value) if isinstance(value, str) else None) or value


def _strategy_id(value: str) -> str:
    if not _STRATEGY_ID.match(value):
        raise problem("must be 1-64 letters, digits, _ or -")
    return value


Day = Annotated[IsoDate, AfterValidator(_year)]
Cash = Annotated[float, Field(gt=0, le=CASH_MAX)]
CostPct = Annotated[float, Field(ge=0, le=COST_PCT_MAX, description="percent of traded value, per side")]
CostFraction = Annotated[
    float, Field(ge=0, le=COST_PCT_MAX / 100, description="fraction of traded value, per side (0.002 = 0.2 %)")
]
BuiltinStrategy = Annotated[Literal[tuple(BUILTIN_STRATEGIES)], BeforeValidator(_strategy)]  # type: ignore[misc]


class BacktestSettings(RequestModel):
    """What a backtest and a replay share (absent: the default, or the original run's)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    parameters: dict[str, Any] | None = Field(
        None, description="per strategy (defaults filled in): crossovers fast_period/slow_period, MACD also "
        "signal_period, RSI period/oversold/overbought"
    )
    start_date: Day | None = Field(None, description="first day (inclusive, in the dataset's timezone); default: all data")
    end_date: Day | None = Field(None, description="last day (inclusive); default: all data")
    interval: Interval | None = Field(
        None, description=f"one of {', '.join(INTERVALS)}; a coarser one than the dataset's is resampled; "
        "default: the finest dataset"
    )
    cash: Cash | None = Field(None, description=f"initial cash, default {INITIAL_CASH_DEFAULT:g}")
    commission_pct: CostPct | None = None
    slippage_pct: CostPct | None = None
    commission: CostFraction | None = None
    slippage: CostFraction | None = None
    direction: Literal[DIRECTIONS] | None = Field(None, description="default long")  # type: ignore[valid-type]
    fill: Literal[FILLS] | None = Field(None, description="default next_open")  # type: ignore[valid-type]

    def _pct(self, name: str) -> float | None:
        """commission_pct / slippage_pct, from the percent or the fraction given."""
        pct, fraction = getattr(self, f"{name}_pct"), getattr(self, name)
        return pct if pct is not None else (fraction * 100.0 if fraction is not None else None)

    def _either_problems(self) -> list[dict[str, str]]:
        out = []
        for a, b in (("commission_pct", "commission"), ("slippage_pct", "slippage")):
            if getattr(self, a) is not None and getattr(self, b) is not None:
                out.append({"field": b, "message": f"give either {a} or {b}, not both"})
        return out


def _date_problems(start: str, end: str, field: str = "start_date") -> list[dict[str, str]]:
    if start and end and start > end:
        return [{"field": field, "message": "must not be after end_date" if field == "start_date"
                 else "must not be before start_date"}]
    return []


def _direction_problems(strategy: str, direction: str) -> list[dict[str, str]]:
    try:
        check_direction(strategy, direction)
    except SpecInvalid as exc:
        return exc.errors
    return []


def _strategy_problems(strategy: str, parameters: dict[str, Any], direction: str | None) -> tuple[dict[str, Any], list]:
    """The strategy's parameters normalized (defaults, aliases) and the problems with them and the direction."""
    problems = _direction_problems(strategy, direction) if direction else []
    try:
        return normalize_parameters(strategy, parameters), problems
    except SpecInvalid as exc:
        return {}, problems + exc.errors


class _Target(RequestModel):
    """What a backtest runs (listed first)."""

    ticker: Ticker
    strategy: BuiltinStrategy | None = Field(None, description="a built-in strategy; or give strategy_id")
    strategy_id: Annotated[str, AfterValidator(_strategy_id), Field(json_schema_extra={"pattern": STRATEGY_ID_PATTERN})] | None = (
        Field(None, description="a saved strategy")
    )


class BacktestRequest(BacktestSettings, _Target):
    """One backtest of a built-in strategy (or a saved one, `strategy_id`) on one dataset."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    initial_cash: Cash | None = Field(None, description="the sweep's name for cash")
    _parameters: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _rules(self) -> BacktestRequest:
        problems: list[dict[str, str]] = []
        if self.strategy is None and self.strategy_id is None:
            problems.append({"field": "strategy", "message": "is required (a built-in strategy, or strategy_id for a saved one)"})
        elif self.strategy is not None and self.strategy_id is not None:
            problems.append({"field": "strategy_id", "message": "give either strategy or strategy_id, not both"})
        if self.cash is not None and self.initial_cash is not None:
            problems.append({"field": "initial_cash", "message": "give either cash or initial_cash, not both"})
        problems += self._either_problems()
        self._parameters = dict(self.parameters or {})
        if self.strategy is not None:
            self._parameters, found = _strategy_problems(self.strategy, self._parameters, self.direction or "long")
            problems += found
        problems += _date_problems(_iso(self.start_date), _iso(self.end_date))
        raise_problems(type(self), problems)
        return self

    def spec(self) -> engine_pb2.BacktestSpec:
        """The engine's spec of this backtest."""
        cash = self.cash if self.cash is not None else self.initial_cash
        return engine_pb2.BacktestSpec(
            ticker=normalize_ticker(self.ticker),
            strategy=self.strategy or "",
            strategy_id=self.strategy_id or "",
            parameters_json=json.dumps(self._parameters, separators=(",", ":")),
            start_date=_iso(self.start_date),
            end_date=_iso(self.end_date),
            interval=self.interval or "",
            cash=cash if cash is not None else INITIAL_CASH_DEFAULT,
            commission_pct=self._pct("commission") or 0.0,
            slippage_pct=self._pct("slippage") or 0.0,
            direction=self.direction or "long",
            fill=self.fill or "next_open",
        )


class ReplayRequest(BacktestSettings):
    """Overrides of a replay: the original run's spec with these fields replaced
    (`parameters` merged into the original's). An empty body replays the run as it was.
    A day-by-day run takes `start_date`, `end_date`, `cash`, the costs and `user_id`."""

    user_id: str | None = Field(None, description="day-by-day runs only: the user the new run is kept under")

    # What a day-by-day replay may not change: it runs the saved strategy as it is.
    NOT_DAY_BY_DAY: ClassVar[tuple[str, ...]] = ("parameters", "interval", "direction", "fill")

    def day_by_day_problems(self) -> list[dict[str, str]]:
        """The overrides a day-by-day run does not take, one problem each."""
        return [{"field": f, "message": "a day-by-day run replays its saved strategy: this cannot be changed"}
                for f in self.NOT_DAY_BY_DAY if getattr(self, f) is not None]

    def day_by_day_request(self, original: dict[str, Any]) -> dict[str, Any]:
        """The seed-004 run request of a day-by-day replay (`original`: the run's own values)."""
        body = dict(original)
        if self.start_date:
            body["start_date"] = self.start_date.isoformat()
        if self.end_date:
            body["end_date"] = self.end_date.isoformat()
        if self.cash is not None:
            body["initial_capital"] = self.cash
        for name, field in (("commission", "commission_percentage"), ("slippage", "slippage_percentage")):
            pct = self._pct(name)
            if pct is not None:
                body[field] = pct
        if self.user_id is not None:
            body["user_id"] = self.user_id
        return {k: v for k, v in body.items() if v not in (None, "")}

    @model_validator(mode="after")
    def _rules(self) -> ReplayRequest:
        raise_problems(type(self), self._either_problems())
        return self

    def apply(self, base: engine_pb2.BacktestSpec) -> engine_pb2.BacktestSpec:
        """The replay's spec; 400 naming the overrides that do not fit the original run."""
        spec = engine_pb2.BacktestSpec()
        spec.CopyFrom(base)
        if self.start_date:
            spec.start_date = self.start_date.isoformat()
        if self.end_date:
            spec.end_date = self.end_date.isoformat()
        for name in ("interval", "direction", "fill"):
            if getattr(self, name):
                setattr(spec, name, getattr(self, name))
        for name in ("commission", "slippage"):
            pct = self._pct(name)
            if pct is not None:
                setattr(spec, f"{name}_pct", pct)
        if self.cash is not None:
            spec.cash = self.cash
        builtin = strategy_name(spec.strategy) if not spec.strategy_id else None
        problems: list[dict[str, str]] = []
        if self.parameters is not None:
            try:
                original = json.loads(spec.parameters_json) if spec.parameters_json else {}
            except ValueError:
                original = {}
            merged = dict(original)
            for key, value in self.parameters.items():
                merged[PARAM_ALIASES.get(key, key) if builtin else key] = value
            params = merged
            if builtin is not None:
                params, problems = _strategy_problems(builtin, merged, None)
            if not problems:
                spec.parameters_json = json.dumps(params, separators=(",", ":"))
        if builtin is not None and self.direction:
            problems += _direction_problems(builtin, spec.direction)
        field = "end_date" if self.end_date and not self.start_date else "start_date"
        problems += _date_problems(spec.start_date, spec.end_date, field)
        if problems:
            raise invalid("invalid replay overrides", problems)
        return spec


def _iso(value: date | None) -> str:
    return value.isoformat() if value else ""


class MonteCarloRequest(RequestModel):
    """A Monte Carlo of a saved run (`POST /runs/{id}/montecarlo`); an empty body takes every default."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    method: Literal[mc.METHODS] = Field(  # type: ignore[valid-type]
        "trades", description="trades: resample the trades; block_bootstrap: resample blocks of daily returns")
    resamples: int = Field(mc.DEFAULT_RESAMPLES, ge=mc.MIN_RESAMPLES, le=mc.MAX_RESAMPLES, description="paths drawn")
    seed: int = Field(0, ge=0, le=mc.MAX_SEED, description="of numpy.random.default_rng: the same seed, the same answer")
    block_days: int | None = Field(
        None, ge=1, le=mc.MAX_BLOCK_DAYS,
        description=f"block_bootstrap: days in a block, at most the run's days (default {mc.DEFAULT_BLOCK_DAYS}, "
        "or the run's days when it has fewer); not used by trades")
