"""A universe's body (`PUT /api/v1/universes/{name}`); the rules are domain.universe's."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from domain import universe
from services.gateway.body import RequestModel, raise_problems


class UniverseBody(RequestModel):
    """The tickers a universe names."""

    model_config = ConfigDict(extra="forbid")

    tickers: list[str] = Field(
        description=f"1 to {universe.UNIVERSE_MAX_TICKERS} tickers, each once (in any case: `aapl` and `AAPL` are one); "
        "stored upper-case, in the order given",
        json_schema_extra={"maxItems": universe.UNIVERSE_MAX_TICKERS},
    )

    @model_validator(mode="after")
    def _valid_tickers(self) -> UniverseBody:
        raise_problems(type(self), [{"field": p.field, "message": p.message}
                                    for p in universe.ticker_list_problems(self.tickers)])
        return self
