"""Strategies CRUD: `/api/v1/strategies` (rule strategies for day-by-day backtests).

A definition names its dataset, session and entry/exit nodes; conditions are
text in the rule language (see the API description). Invalid definitions are
400 with every problem listed in `details.errors` (`field`, `message`, and for a
condition the 0-based `position` of the error in its text).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from hindsight.backtest.v1 import backtest_pb2, backtest_pb2_grpc

from services.gateway.backend import Backend
from services.gateway.body import read_fields
from services.gateway.deps import BackendDep, CallerDep, checked_id
from services.gateway.errors import ApiError, invalid
from services.gateway.views import timestamp

router = APIRouter(tags=["strategies"])

STRATEGY_DOC = """A rule strategy, e.g.

```json
{"name": "RSI reversal",
 "dataset": {"ticker": "DEMO-MINUTE", "interval": "1m"},
 "session": {"timezone": "Asia/Kolkata", "start": "09:15", "end": "15:30", "square_off": "15:25"},
 "entries": [{"id": "entry-1", "condition": "RSI(14) < 30 and time >= 09:30", "side": "buy", "quantity": 1,
              "stop_loss": {"type": "percent", "value": 0.5}, "target": {"type": "points", "value": 10},
              "max_reentries": 2}],
 "exits": [{"id": "exit-1", "condition": "RSI(14) > 70", "entries": ["entry-1"]}]}
```

Conditions: comparisons (`> >= < <= == != crosses_above crosses_below`) of series
(`open high low close volume`), numbers and indicators (`SMA(close, 20)`, `EMA(20)`,
`RSI(14)`, `MACD(12, 26, 9)` with `.line/.signal/.hist` or `MACD_SIGNAL(...)`,
`BBANDS(20, 2)` with `.upper/.middle/.lower` or `BB_UPPER(...)`, `ATR(14)`, `VWAP`),
arithmetic, `time >= 09:30` (the bar's local start time), joined by `and`, `or`, `not`
and parentheses. Signals are taken at a bar's close and fill at the next bar's open;
stops and targets (percent or points from the entry fill) are checked inside each bar;
positions still open at `square_off` close at that bar's open (`exit_reason: square_off`)."""


def _stub(backend: Backend) -> backtest_pb2_grpc.StrategiesServiceStub:
    return backend.strategies


def strategy_view(s: backtest_pb2.Strategy) -> dict[str, Any]:
    return {
        "strategy_id": s.strategy_id,
        "name": s.name,
        "definition": json.loads(s.definition_json) if s.definition_json else None,
        "created_at": timestamp(s.created_at),
        "updated_at": timestamp(s.updated_at),
    }


async def _call(backend: Backend, method, request):
    """A strategies call; a definition refused by results becomes a 400 listing its problems."""
    try:
        return await backend.call(method, request)
    except ApiError as err:
        if err.status == 400:
            try:
                body = json.loads(err.message)
            except ValueError:
                raise err from None
            if isinstance(body, dict) and isinstance(body.get("errors"), list):
                summary = "; ".join(
                    f"{e.get('field')}: {e.get('message')}"
                    + (f" (at position {e['position']})" if "position" in e else "")
                    for e in body["errors"][:5]
                )
                raise invalid(f"invalid strategy: {summary}", body["errors"]) from None
        raise


async def _definition(request: Request) -> str:
    fields = await read_fields(request)
    if not fields:
        raise invalid("a strategy definition (JSON object) is required", [{"field": "body", "message": "empty"}])
    return json.dumps(fields)


@router.post("/api/v1/strategies", status_code=201, summary="Create a strategy", description=STRATEGY_DOC)
async def create_strategy(request: Request, backend: BackendDep, caller: CallerDep) -> JSONResponse:
    definition = await _definition(request)
    resp = await _call(
        backend,
        _stub(backend).CreateStrategy,
        backtest_pb2.CreateStrategyRequest(tenant_id=caller.tenant_id, definition_json=definition),
    )
    return JSONResponse(strategy_view(resp.strategy), status_code=201)


@router.get("/api/v1/strategies", summary="List strategies, newest first")
async def list_strategies(
    backend: BackendDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, Any]:
    resp = await backend.call(
        _stub(backend).ListStrategies,
        backtest_pb2.ListStrategiesRequest(tenant_id=caller.tenant_id, limit=limit, offset=offset),
    )
    return {"strategies": [strategy_view(s) for s in resp.strategies], "total": resp.total, "limit": limit, "offset": offset}


@router.get("/api/v1/strategies/{strategy_id}", summary="One strategy")
async def get_strategy(strategy_id: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    checked_id(strategy_id, "strategy")
    resp = await backend.call(
        _stub(backend).GetStrategy, backtest_pb2.GetStrategyRequest(tenant_id=caller.tenant_id, strategy_id=strategy_id)
    )
    return strategy_view(resp.strategy)


@router.put(
    "/api/v1/strategies/{strategy_id}",
    summary="Replace a strategy (or create it under this UUID: 201)",
    description=STRATEGY_DOC,
)
async def put_strategy(strategy_id: str, request: Request, backend: BackendDep, caller: CallerDep) -> JSONResponse:
    definition = await _definition(request)
    resp = await _call(
        backend,
        _stub(backend).PutStrategy,
        backtest_pb2.PutStrategyRequest(tenant_id=caller.tenant_id, strategy_id=strategy_id, definition_json=definition),
    )
    return JSONResponse(strategy_view(resp.strategy), status_code=201 if resp.created else 200)


@router.delete("/api/v1/strategies/{strategy_id}", summary="Delete a strategy")
async def delete_strategy(strategy_id: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    checked_id(strategy_id, "strategy")
    resp = await backend.call(
        _stub(backend).DeleteStrategy,
        backtest_pb2.DeleteStrategyRequest(tenant_id=caller.tenant_id, strategy_id=strategy_id),
    )
    return {"strategy_id": resp.strategy_id, "deleted": True}
