"""Strategies CRUD: `/api/v1/strategies` (rule strategies for day-by-day backtests).

A definition names its dataset, session and entry/exit nodes; conditions are
text in the rule language (see the API description). Invalid definitions are
400 with every problem listed in `details.errors` (`field`, `message`, and for a
condition the 0-based `position` of the error in its text).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from hindsight.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2

from services.gateway.backend import Backend
from services.gateway.body import BodyReader
from services.gateway.deps import BackendDep, CallerDep, checked_id
from services.gateway.errors import ApiError, invalid
from services.gateway.presenters.strategies import (
    BuiltinStrategyList,
    Strategy,
    StrategyDeleted,
    StrategyList,
    builtin_strategies,
    strategy_view,
)
from services.gateway.presenters.sweeps import RuleSweepAccepted, rule_sweep_accepted
from services.gateway.requests.fields import check_webhook
from services.gateway.requests.rule_sweeps import RuleSweepRequest
from services.gateway.requests.strategies import StrategyDefinition, strategy_message
from services.gateway.routes.sweeps import _trace_id

router = APIRouter(tags=["strategies"])
_read_definition = BodyReader(StrategyDefinition, message=strategy_message)
DefinitionDep = Annotated[StrategyDefinition, Depends(_read_definition)]
INVALID_RULE_SWEEP = "invalid sweep"
_read_rule_sweep = BodyReader(RuleSweepRequest, message=INVALID_RULE_SWEEP)

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
and parentheses. `VWAP` restarts at the session's `start` (at local midnight when the
session has none), so bars before a narrower session never enter it. Signals are taken at a
bar's close and fill at the next bar's open; stops and targets (percent or points from the
entry fill) are checked inside each bar: a bar that opens beyond either exits at its open (the
open came first), and only when the open lies between them and the bar reaches both does the
stop win. Positions still open at `square_off` close at that bar's open (`exit_reason:
square_off`); an exit signal decided on the bar before fills at that same open and keeps
`exit_reason: exit_signal`.

**Option legs.** An entry node may trade an option contract of its underlying instead of
the underlying itself. The underlying needs an option chain (`kind=option_chain` under
`/api/v1/datasets`): without one the strategy is refused with a 400 naming the node, and so is
a backtest of it once its chain is deleted.

```json
{"id": "entry-ce", "condition": "time >= 09:20", "side": "sell", "quantity": 50,
 "instrument": {"type": "option", "option_type": "CE", "strike": "ATM", "expiry": "current_week"},
 "stop_loss": {"type": "percent", "value": 30}, "target": {"type": "percent", "value": 50}}
```

A straddle is two such nodes (CE and PE) with the same condition. Conditions are still
evaluated on the underlying's bars; the contract is picked at the signal bar from the chain's
bars of that trading day (its session hours): `expiry` is `current_week` (the nearest listed
expiry on or after the day), `next_week` (the one after it) or `current_month` (the last listed
expiry of the day's month; when that has passed, the last of the next month); the listed
strikes are those of that expiry with a bar that day (calls or puts, so a straddle's legs share
their ATM); ATM is the listed strike nearest to the underlying's close on the signal bar (a tie
takes the lower); `ATM+N` / `ATM-N` are N listed strikes above / below it, `OTM N` N strikes out
of the money for the leg's type (above ATM for a CE, below for a PE) and `ITM N` N strikes into
it. The leg fills at the open of the contract's first bar at or after the end of the signal bar,
before the square-off; when it has none the entry is skipped (an `ENTRY_SKIPPED` event with
`reason: no_quote`; `no_contract` when the rule names no listed contract) and the node takes no
more positions that day. Stops and targets are on the leg's premium from its fill (a sold leg's
stop is the premium rising), checked inside each contract bar with the same open-first rule;
exit signals fill at the contract's next bar's open, the square-off at the open of its first
bar at or after `square_off`, and a leg with no such bar closes at its last close of the day.
P&L is (exit - entry) x quantity, negated for a sold leg, less costs. Trades and positions carry
the contract's `symbol` (`NIFTY:2024-10-31:OPT:24350:PE`), `strike`, `option_type` and the
underlying's last close at entry and exit as `<underlying>_spot_at_entry` / `_spot_at_exit` (the
underlying in lower case, other characters as `_`: `nifty_spot_at_entry`); the entry event's
`option_selection` records the spot, the ATM and chosen strikes, the expiry and the contract."""


def _stub(backend: Backend) -> backtest_pb2_grpc.StrategiesServiceStub:
    return backend.strategies


async def _call(backend: Backend, method, request, message=strategy_message):
    """A strategies call; a definition (or sweep) refused by results becomes a 400 listing its problems."""
    try:
        return await backend.call(method, request)
    except ApiError as err:
        if err.status == 400:
            try:
                body = json.loads(err.message)
            except ValueError:
                raise err from None
            if isinstance(body, dict) and isinstance(body.get("errors"), list):
                raise invalid(message(body["errors"]), body["errors"]) from None
        raise


def _sweep_message(problems: list[dict[str, Any]]) -> str:
    return INVALID_RULE_SWEEP + ": " + "; ".join(f"{e.get('field')}: {e.get('message')}" for e in problems[:5])


RULE_SWEEP_DOC = """Sweep a strategy's declared `parameters`: each combination of the ranges is the
strategy with its values substituted for the `{name}` placeholders, run day by day over
[start_date, end_date] exactly as `POST /api/v1/backtest/start` runs it, without per-day
files. The ranges are `[start, stop, step]`, inclusive (`[10, 20, 2]`: 10, 12, ..., 20);
a parameter whose default is a whole number takes whole numbers. Every placeholder the
strategy uses needs a range; a range over a name the strategy does not declare, a
range of the wrong type, a combination that makes the strategy invalid, or more than
1000 combinations are a 400 and nothing is queued. Each distinct indicator series is
computed once per sweep.

Follow the job at `stream_url`; when it is done its `sweep_run_id` names the results:
`GET /api/v1/sweeps/{sweep_run_id}/best` ranks the combinations by score (those with at
least `min_trades` trades), each row with its `parameters`, and carries the grid's
overfitting statistics (`overfitting`), the trials being every combination and their
daily returns those of the day-end equity."""


@router.post(
    "/api/v1/strategies/{strategy_id}/sweep",
    status_code=202,
    summary="Sweep a rule strategy's parameters (day by day)",
    description=RULE_SWEEP_DOC,
    response_model=RuleSweepAccepted,
)
async def sweep_strategy(
    strategy_id: str,
    sweep: Annotated[RuleSweepRequest, Depends(_read_rule_sweep)],
    backend: BackendDep,
    caller: CallerDep,
) -> dict[str, Any]:
    checked_id(strategy_id, "strategy")
    await check_webhook(sweep.webhook_url, backend.webhook_policy, message=INVALID_RULE_SWEEP)
    spec = jobs_pb2.RuleSweepSpec(
        strategy_id=strategy_id,
        parameters_json=json.dumps(sweep.parameters, separators=(",", ":")),
        start_date=sweep.start_date.isoformat(),
        end_date=sweep.end_date.isoformat(),
        min_trades=sweep.min_trades,
        initial_capital=sweep.initial_capital,
        commission_pct=sweep.commission_percentage,
        slippage_pct=sweep.slippage_percentage,
        pbo_blocks=sweep.pbo_blocks,
    )
    shown = {"strategy_id": strategy_id, **sweep.model_dump(mode="json", exclude_none=True)}
    request = results_pb2.SubmitJobRequest(
        tenant_id=caller.tenant_id,
        job_kind=jobs_pb2.JOB_KIND_RULE_SWEEP,
        parameters_json=json.dumps(shown, separators=(",", ":")),
        webhook_url=sweep.webhook_url or "",
        timeout_seconds=sweep.timeout_seconds or 0,
        rule_sweep=spec,
        trace_id=_trace_id(),
        notify_email=sweep.notify_email or "",
    )
    resp = await _call(backend, backend.stub.SubmitJob, request, _sweep_message)
    out = rule_sweep_accepted(resp.job, strategy_id, sweep)
    out["start_date"], out["end_date"] = sweep.start_date.isoformat(), sweep.end_date.isoformat()
    return out


def _definition_json(definition: StrategyDefinition) -> str:
    return json.dumps(definition.normal_form())


@router.post(
    "/api/v1/strategies",
    status_code=201,
    summary="Create a strategy",
    description=STRATEGY_DOC,
    response_model=Strategy,
)
async def create_strategy(definition: DefinitionDep, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    resp = await _call(
        backend,
        _stub(backend).CreateStrategy,
        backtest_pb2.CreateStrategyRequest(tenant_id=caller.tenant_id, definition_json=_definition_json(definition)),
    )
    return strategy_view(resp.strategy)


@router.get(
    "/api/v1/strategies/builtin",
    summary="The built-in strategies: parameters, defaults, ranges and aliases",
    response_model=BuiltinStrategyList,
)
async def list_builtin_strategies() -> BuiltinStrategyList:
    """The strategies backtests (`strategy`) and sweeps (`strategy_type`) run without a rule
    definition. A name is accepted in any case and under any of its aliases, in both places:
    `SMA`, `sma` and `sma_crossover` are one strategy."""
    return builtin_strategies()


@router.get("/api/v1/strategies", summary="List strategies, newest first", response_model=StrategyList)
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


@router.get("/api/v1/strategies/{strategy_id}", summary="One strategy", response_model=Strategy)
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
    response_model=Strategy,
    responses={201: {"model": Strategy, "description": "Created under this UUID"}},
)
async def put_strategy(
    strategy_id: str, definition: DefinitionDep, response: Response, backend: BackendDep, caller: CallerDep
) -> dict[str, Any]:
    resp = await _call(
        backend,
        _stub(backend).PutStrategy,
        backtest_pb2.PutStrategyRequest(
            tenant_id=caller.tenant_id, strategy_id=strategy_id, definition_json=_definition_json(definition)
        ),
    )
    if resp.created:
        response.status_code = 201
    return strategy_view(resp.strategy)


@router.delete("/api/v1/strategies/{strategy_id}", summary="Delete a strategy", response_model=StrategyDeleted)
async def delete_strategy(strategy_id: str, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    checked_id(strategy_id, "strategy")
    resp = await backend.call(
        _stub(backend).DeleteStrategy,
        backtest_pb2.DeleteStrategyRequest(tenant_id=caller.tenant_id, strategy_id=strategy_id),
    )
    return {"strategy_id": resp.strategy_id, "deleted": True}
