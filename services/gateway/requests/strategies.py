"""A rule strategy's definition (`POST /api/v1/strategies`, `PUT .../{id}`).

The rules are the domain's (`domain.rules.strategy.validate_definition`: the rule
language, sessions, nodes); the model describes the definition's normal form, which is
what the domain's validation returns (shorthands such as `side: "long"` or
`stop_loss: {"percent": 1}` are accepted and normalised). Problems carry the domain's
field paths (`entries[0].condition`) and, for a condition, the `position` of the error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, model_validator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from domain.option_legs import EXPIRY_RULES, STRIKE_RULE
from domain.rules.strategy import HHMM_RE, MAX_NODES, MAX_QUANTITY, NODE_ID_RE, StrategyInvalid, validate_definition
from services.gateway.body import RequestModel, raise_problems
from services.gateway.requests.fields import Interval, Ticker

NodeId = Annotated[str, Field(json_schema_extra={"pattern": NODE_ID_RE.pattern})]
LocalTime = Annotated[str, Field(json_schema_extra={"pattern": HHMM_RE.pattern}, examples=["09:15"])]
Condition = Annotated[str, Field(description="a condition in the rule language", examples=["RSI(14) < 30 and time >= 09:30"])]


class DatasetRef(RequestModel):
    ticker: Ticker
    interval: Interval | None = Field(None, description="default: the finest interval of the ticker")


class TradingSession(RequestModel):
    timezone: str | None = Field(None, description="IANA name; default: the dataset's", examples=["Asia/Kolkata"])
    start: LocalTime | None = Field(None, description="local HH:MM; default: the whole local day")
    end: LocalTime | None = Field(None, description="local HH:MM, exclusive")
    square_off: LocalTime | None = Field(None, description="open positions close at the first bar at or after it")


class Level(RequestModel):
    type: Literal["percent", "points"]
    value: float | str = Field(description="from the entry fill price, above 0; or a declared parameter as \"{name}\"")


class OptionInstrument(RequestModel):
    """An option leg: the contract is picked at the signal bar from the underlying's chain
    (domain.option_legs) and traded on its own bars; stop-loss and target are on its premium."""

    type: Literal["option"] = "option"
    option_type: Literal["CE", "PE"]
    strike: str = Field(description=f"{STRIKE_RULE}; ATM is the listed strike nearest to the underlying's close "
                                    "on the signal bar (a tie takes the lower)", examples=["ATM", "ATM+2", "OTM 1"])
    expiry: str = Field(description=f"one of {', '.join(EXPIRY_RULES)}", examples=["current_week"],
                        json_schema_extra={"enum": list(EXPIRY_RULES)})


class EntryNode(RequestModel):
    id: NodeId | None = Field(None, description="default entry-<n>")
    name: str | None = None
    condition: Condition
    side: Literal["buy", "sell", "long", "short"] = "buy"
    quantity: float = Field(1, gt=0, le=MAX_QUANTITY)
    stop_loss: Level | None = None
    target: Level | None = None
    max_reentries: int = Field(0, ge=0, description="entries allowed after a stop-out, per node and day")
    instrument: OptionInstrument | None = Field(None, description="absent: the node trades the underlying itself")


class ExitNode(RequestModel):
    id: NodeId | None = Field(None, description="default exit-<n>")
    name: str | None = None
    condition: Condition
    entries: list[str] | None = Field(None, description="the entry nodes it closes; default: all")


class StrategyDefinition(RequestModel):
    """A rule strategy: its dataset, session, entry and exit nodes."""

    name: str = Field(examples=["RSI reversal"])
    description: str | None = None
    dataset: DatasetRef
    session: TradingSession | None = None
    entries: list[EntryNode] = Field(min_length=1, max_length=MAX_NODES)
    exits: list[ExitNode] = Field(default_factory=list, max_length=MAX_NODES)
    metadata: dict[str, Any] | None = None
    parameters: dict[str, int | float] | None = Field(
        None,
        description="declared parameters and their defaults; `{name}` in a condition or as a stop-loss / target "
        "value is replaced by the value (the default, or a sweep's combination)",
        examples=[{"rsi_len": 14, "oversold": 30}],
    )
    _normal: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _domain(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> StrategyDefinition:
        try:
            normal = validate_definition(data)
        except StrategyInvalid as exc:
            raise_problems(cls, exc.errors)
            raise
        model = handler(normal)
        model._normal = normal
        return model

    def normal_form(self) -> dict[str, Any]:
        """The definition as the domain normalised it (what results stores)."""
        return self._normal


def strategy_message(problems: list[dict[str, Any]]) -> str:
    """"invalid strategy: entries[0].condition: unknown indicator FOO (at position 17)"."""
    summary = "; ".join(
        f"{e.get('field')}: {e.get('message')}" + (f" (at position {e['position']})" if "position" in e else "")
        for e in problems[:5]
    )
    return f"invalid strategy: {summary}"
