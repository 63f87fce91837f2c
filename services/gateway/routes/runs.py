"""Seed 003: synchronous backtests and saved runs.

`POST /backtest` runs one backtest on the engine (synchronous gRPC) and saves it
as a run at results; `GET /runs` lists, `GET /runs/{id}` shows, `POST
/runs/{id}/replay` runs a saved run again (with optional overrides) as a new
run linked to it; beyond the seed, `GET /runs/compare?ids=1,2,3` and the CSV
exports, the report (`/runs/{id}/report`, and as one HTML file) and a run's Monte Carlo
(`POST /runs/{id}/montecarlo`). Every path is served at the seed's root and under `/api/v1/runs`
(the backtest itself at `/api/v1/runs/backtest`; `/api/v1/backtest` belongs to
seed 002).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from hindsight.engine.v1 import engine_pb2
from hindsight.runs.v1 import runs_pb2
from pydantic import ValidationError

from domain import montecarlo as mc
from domain import report as rp
from domain.backtest_spec import (
    BUILTIN_STRATEGIES,
    MAX_SYNC_BARS,
    MAX_SYNC_SOURCE_BARS,
    MAX_SYNC_TRADES,
)
from domain.market import INTERVAL_MINUTES
from services.gateway import report_html
from services.gateway.auth import Caller
from services.gateway.backend import Backend
from services.gateway.body import BodyReader, problems_of
from services.gateway.deps import BackendDep, CallerDep
from services.gateway.docs import METRICS_DOC, content
from services.gateway.errors import ApiError, from_grpc, invalid
from services.gateway.presenters import runs as shapes
from services.gateway.presenters.montecarlo import MONTECARLO_DEFINITIONS_DOC, MonteCarlo, montecarlo_view
from services.gateway.presenters.report import DEFINITIONS_DOC, RunReport, report_view
from services.gateway.requests.day_by_day import DayByDayRequest, UserDayByDayRequest
from services.gateway.requests.fields import has_control_characters
from services.gateway.requests.runs import BacktestRequest, MonteCarloRequest, ReplayRequest
from services.gateway.routes.datasets import chart_bars, in_days, version_bars
from services.gateway.routes.day_by_day import submit as submit_day_by_day

router = APIRouter(tags=["runs"])
_runs = APIRouter()
_read_backtest = BodyReader(BacktestRequest, message="invalid backtest request")
_read_replay = BodyReader(ReplayRequest, message="invalid replay overrides", required=False)
_read_montecarlo = BodyReader(MonteCarloRequest, message="invalid Monte Carlo request", required=False)
BacktestDep = Annotated[BacktestRequest, Depends(_read_backtest)]

# Deadline of a synchronous backtest at the engine (loading a large dataset's bars included).
BACKTEST_TIMEOUT = 60.0
MAX_RUN_ID = 2**53
MAX_COMPARE = 20
_FIELD_MESSAGE = re.compile(r"^([a-z_]+(?:\.[A-Za-z0-9_]+)?): (.+)$", re.DOTALL)
_RUN_ID = re.compile(r"^[1-9][0-9]{0,15}$")

BACKTEST_DOC = f"""\
Runs one backtest while you wait and saves it as a run (its `id` is the run's).

Body: `ticker`; `strategy` — one of {", ".join(f"`{s}`" for s in BUILTIN_STRATEGIES)} — or
`strategy_id` (a saved strategy); `parameters` (per strategy, defaults filled in: crossovers
`fast_period`/`slow_period`, MACD also `signal_period`, RSI `period`/`oversold`/`overbought`);
`start_date`, `end_date` (YYYY-MM-DD, inclusive, in the dataset's timezone; default: all data);
`interval` ({", ".join(INTERVAL_MINUTES)}; a coarser one than the dataset's is resampled, a finer
one is a 400; default: the finest dataset); `cash` (default 10000); `commission_pct`,
`slippage_pct` (percent per side; or `commission`/`slippage` as fractions, 0.002 = 0.2 %);
`direction` (long, short, both); `fill` (next_open, close).

Answer: the run (`id`, the seed's fields, `metrics`), the `trades`, and `equity_curve`
(at most 2,000 points, with `buy_and_hold` beside each: buy-and-hold with the same cash,
fill and costs).

**Synchronous limits**: at most {MAX_SYNC_BARS:,} bars backtested, at the requested interval
(bars × combinations, one combination per backtest; a coarser interval is resampled from at
most {MAX_SYNC_SOURCE_BARS:,} bars of the dataset) and at most {MAX_SYNC_TRADES:,} trades;
larger requests answer **413**: submit a sweep job (`POST /api/v1/strategy/sweep`), narrow
the dates or choose a coarser interval.

{METRICS_DOC}"""


def _prefix(request: Request) -> str:
    return "/api/v1" if request.url.path.startswith("/api/v1/") else ""


def _run_id(value: str) -> int:
    if not _RUN_ID.match(value or "") or int(value) > MAX_RUN_ID:
        raise invalid("invalid run id", [{"field": "run_id", "message": "must be a positive integer"}])
    return int(value)


def _engine_error(exc: grpc.aio.AioRpcError) -> ApiError:
    code, text = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        m = _FIELD_MESSAGE.match(text)
        field, message = (m.group(1), m.group(2)) if m else ("body", text)
        return invalid(text or "invalid backtest request", [{"field": field, "message": message}])
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ApiError(413, "too_large_for_sync", text, {"max_bars": MAX_SYNC_BARS, "max_trades": MAX_SYNC_TRADES,
                                                          "submit_job": "/api/v1/strategy/sweep"})
    return from_grpc(exc)


async def run_backtest(backend: Backend, caller: Caller, spec: engine_pb2.BacktestSpec, replay_of: int = 0,
                       save: bool = True):
    """Backtest on the engine, then save the run at results (unless `save` is False: then the
    run is returned unsaved, without a number); (run, result)."""
    try:
        result = await backend.engine.Backtest(
            engine_pb2.BacktestRequest(tenant_id=caller.tenant_id, spec=spec),
            timeout=max(backend.rpc_timeout, BACKTEST_TIMEOUT),
        )
    except grpc.aio.AioRpcError as exc:
        raise _engine_error(exc) from None
    done = result.spec
    run = runs_pb2.Run(
        kind="backtest",
        ticker=done.ticker,
        strategy=done.strategy,
        strategy_id=done.strategy_id,
        parameters_json=done.parameters_json,
        start_date=done.start_date,
        end_date=done.end_date,
        interval=done.interval,
        cash=done.cash,
        commission_pct=done.commission_pct,
        slippage_pct=done.slippage_pct,
        direction=done.direction,
        fill=done.fill,
        metrics=result.metrics,
        replay_of=replay_of,
        bars=result.bars,
        dataset_id=result.dataset.dataset_id,
        dataset_version=result.dataset.version,
        execution_time_seconds=result.execution_time_seconds,
        replay_spec=done,
    )
    if not save:
        return run, result
    saved = await backend.call(
        backend.runs.SaveRun,
        runs_pb2.SaveRunRequest(tenant_id=caller.tenant_id, run=run, trades=result.trades, equity=result.equity,
                                day_ends=result.day_ends, exposure=result.exposure),
    )
    return saved.run, result


async def _backtest(body: BacktestRequest, request: Request, backend: Backend, caller: Caller) -> dict[str, Any]:
    run, result = await run_backtest(backend, caller, body.spec())
    return shapes.backtest_view(run, result, _prefix(request))


@router.post(
    "/backtest",
    summary="Run one backtest synchronously and save it (seed 003)",
    description=BACKTEST_DOC,
    response_model=shapes.Backtest,
)
async def backtest(body: BacktestDep, request: Request, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    return await _backtest(body, request, backend, caller)


@router.post(
    "/api/v1/runs/backtest",
    summary="Run one backtest synchronously and save it",
    description=BACKTEST_DOC,
    response_model=shapes.Backtest,
)
async def backtest_v1(body: BacktestDep, request: Request, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    return await _backtest(body, request, backend, caller)


@router.post(
    "/api/v1/runs/backtest/preview",
    summary="Run one backtest synchronously without saving it",
    description="The same request and answer as `POST /api/v1/runs/backtest`, but nothing is saved: `id` is "
    "null and there are no links. The dashboard previews a sweep's combination this way.",
    response_model=shapes.BacktestPreview,
)
async def backtest_preview(body: BacktestDep, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    run, result = await run_backtest(backend, caller, body.spec(), save=False)
    return shapes.preview_view(run, result)


def _filter(value: str | None, field: str) -> str:
    if value is None:
        return ""
    if has_control_characters(value):
        raise invalid("invalid filter", [{"field": f"query.{field}", "message": "must not contain control characters"}])
    return value.strip()


@_runs.get("/runs", summary="Saved runs, newest first (seed 003)", response_model=shapes.RunList)
async def list_runs(
    backend: BackendDep,
    caller: CallerDep,
    ticker: Annotated[str | None, Query(max_length=32)] = None,
    strategy: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(description="backtest, sweep or day_by_day")] = None,
    limit: Annotated[int, Query(ge=0, le=1000, description="0 counts without listing")] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, Any]:
    """`{runs: [...], total, limit, offset}`; `total` counts every run matching the filters."""
    kind_value = _filter(kind, "kind")
    if kind_value and kind_value not in ("backtest", "sweep", "day_by_day"):
        raise invalid("invalid filter", [{"field": "query.kind", "message": "must be one of backtest, sweep, day_by_day"}])
    resp = await backend.call(
        backend.runs.ListRuns,
        runs_pb2.ListRunsRequest(
            tenant_id=caller.tenant_id, ticker=_filter(ticker, "ticker"), strategy=_filter(strategy, "strategy"),
            kind=kind_value, limit=limit, offset=offset,
        ),
    )
    return {"runs": [shapes.run_summary(r) for r in resp.runs], "total": resp.total, "limit": limit, "offset": offset}


def _compare_ids(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise invalid("invalid ids", [{"field": "query.ids", "message": "expected run ids separated by commas, e.g. 1,2,3"}])
    bad = [p for p in parts if not _RUN_ID.match(p) or int(p) > MAX_RUN_ID]
    if bad:
        raise invalid("invalid ids", [{"field": "query.ids", "message": f"not a run id: {bad[0][:20]!r}"}])
    ids = list(dict.fromkeys(int(p) for p in parts))
    if len(ids) > MAX_COMPARE:
        raise invalid("invalid ids", [{"field": "query.ids", "message": f"at most {MAX_COMPARE} runs"}])
    return ids


@_runs.get(
    "/runs/compare",
    summary="Runs side by side: parameters, metrics, equity on a common time axis",
    response_model=shapes.RunComparison,
)
async def compare_runs(
    request: Request, backend: BackendDep, caller: CallerDep, ids: Annotated[str, Query(max_length=400)]
) -> dict[str, Any]:
    """`ids=1,2,3` (at most 20; repeats ignored). Each metric and parameter is a list of values in
    the order of `ids`; `equity.series[i].equity` follows `equity.timestamps` (the union of the
    runs' curve times, at most 2,000) and is null outside that run's span."""
    resp = await backend.call(
        backend.runs.CompareRuns, runs_pb2.CompareRunsRequest(tenant_id=caller.tenant_id, run_ids=_compare_ids(ids))
    )
    return shapes.compare_view(resp, _prefix(request))


@_runs.get("/runs/{run_id}", summary="One saved run (seed 003)", response_model=shapes.RunDetail)
async def get_run(run_id: str, request: Request, backend: BackendDep, caller: CallerDep) -> dict[str, Any]:
    resp = await backend.call(
        backend.runs.GetRun, runs_pb2.GetRunRequest(tenant_id=caller.tenant_id, run_id=_run_id(run_id))
    )
    return shapes.run_detail(resp.run, _prefix(request))


@_runs.post(
    "/runs/{run_id}/replay",
    summary="Run a saved run again, with optional overrides (seed 003)",
    response_model=shapes.Backtest,
    responses={202: {"model": shapes.DayByDayReplayQueued, "description": "a day-by-day run's replay: a new job"}},
)
async def replay_run(
    run_id: str,
    overrides: Annotated[ReplayRequest, Depends(_read_replay)],
    request: Request,
    backend: BackendDep,
    caller: CallerDep,
) -> dict[str, Any]:
    """Body (optional): `start_date`, `end_date`, `interval`, `cash`, `parameters` (merged into the
    run's), and `commission_pct`, `slippage_pct`, `direction`, `fill`. Answers like `POST /backtest`;
    the new run's `replay_of` is this run. A sweep's run replays its best combination. A day-by-day
    run (`kind` day_by_day) takes `start_date`, `end_date`, `cash`, the costs and `user_id`, and is
    answered 202 with the new day-by-day job (seed 004's shape, plus `replay_of`)."""
    number = _run_id(run_id)
    resp = await backend.call(backend.runs.GetRun, runs_pb2.GetRunRequest(tenant_id=caller.tenant_id, run_id=number))
    original = resp.run
    if original.kind == "day_by_day":
        return await _replay_day_by_day(original, overrides, backend, caller)
    if overrides.user_id is not None:
        raise invalid("invalid replay overrides", [{"field": "user_id", "message": "only a day-by-day run has a user"}])
    if not original.HasField("replay_spec"):
        why = "its sweep had no combination with enough trades" if original.kind == "sweep" else "it keeps no backtest spec"
        raise ApiError(409, "conflict", f"run {number} cannot be replayed: {why}")
    spec = overrides.apply(original.replay_spec)
    run, result = await run_backtest(backend, caller, spec, replay_of=number)
    return shapes.backtest_view(run, result, _prefix(request))


async def _replay_day_by_day(original: runs_pb2.Run, overrides: ReplayRequest, backend: Backend,
                             caller: Caller) -> JSONResponse:
    """A day-by-day run again: a new day-by-day job of its strategy (as saved now) with the
    overrides, answered 202 like seed 004's run; the job saves its own run when it ends."""
    saved = json.loads(original.parameters_json or "{}")
    base = {
        "strategy_id": original.strategy_id,
        "start_date": original.start_date,
        "end_date": original.end_date,
        "initial_capital": original.cash,
        "commission_percentage": original.commission_pct,
        "slippage_percentage": original.slippage_pct,
        "user_id": saved.get("user_id") if isinstance(saved, dict) else None,
    }
    if problems := overrides.day_by_day_problems():
        raise invalid("invalid replay overrides", problems)
    fields = overrides.day_by_day_request(base)
    model = UserDayByDayRequest if fields.get("user_id") else DayByDayRequest
    try:
        body = model.model_validate(fields)
    except ValidationError as exc:
        raise invalid("invalid replay overrides", problems_of(model, exc)) from None
    job = await submit_day_by_day(backend, caller, body)
    return JSONResponse({"job_id": job.job_id, "status": "queued", "message": "Backtest queued successfully",
                         "replay_of": original.run_id}, status_code=202)


def _csv(text: str, filename: str) -> Response:
    return Response(
        text, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


_CSV = "text/csv"


@_runs.get(
    "/runs/{run_id}/trades.csv",
    summary="A run's trades as CSV",
    response_class=Response,
    responses={200: content(_CSV, "One row per trade (header: " + ",".join(shapes.TRADE_COLUMNS) + ")")},
)
async def trades_export(run_id: str, backend: BackendDep, caller: CallerDep) -> Response:
    number = _run_id(run_id)
    resp = await backend.call(
        backend.runs.GetRunTrades, runs_pb2.GetRunTradesRequest(tenant_id=caller.tenant_id, run_id=number)
    )
    return _csv(shapes.trades_csv(resp.trades), f"run_{number}_trades.csv")


@_runs.get(
    "/runs/{run_id}/equity.csv",
    summary="A run's equity curve as CSV",
    response_class=Response,
    responses={200: content(_CSV, "timestamp,equity,buy_and_hold,drawdown_pct")},
)
async def equity_export(run_id: str, backend: BackendDep, caller: CallerDep) -> Response:
    number = _run_id(run_id)
    resp = await backend.call(
        backend.runs.GetRunEquity, runs_pb2.GetRunEquityRequest(tenant_id=caller.tenant_id, run_id=number)
    )
    return _csv(shapes.equity_csv(resp.points, resp.run.cash), f"run_{number}_equity.csv")


REPORT_DOC = f"""\
The run's report (the tearsheet): every chart of the run page in one answer. The equity
curve against buy-and-hold and its underwater curve; the 5 deepest drawdowns; monthly and
yearly returns (or, for runs shorter than two months, each day's P&L: `calendar` says
which); the rolling Sharpe ratio; the distribution of daily returns and every trade's
return; the exposure; the trades to draw on the price chart (the price itself:
`links.bars`). Every run that keeps its series has one: backtests, replays and day-by-day
runs; a sweep's run keeps none (404: replay it, and read the new run's report).

`window`: days with bars in each rolling-Sharpe window ({rp.MIN_WINDOW}–{rp.MAX_WINDOW}; default half
of P: 126 on session calendars, 182 on continuous ones, or half the run's days when it is shorter
than P days); anything else is a 400.

### Definitions

{DEFINITIONS_DOC}
"""

WindowQuery = Annotated[
    int | None,
    Query(ge=rp.MIN_WINDOW, le=rp.MAX_WINDOW,
          description="days with bars in each rolling-Sharpe window (default: 126 on session calendars, 182 on "
                      "24/7 ones; half the run's days for a run shorter than a year)"),
]


async def _report(run_id: str, window: int | None, request: Request, backend: Backend, caller: Caller) -> dict[str, Any]:
    resp = await backend.call(
        backend.runs.GetRunSeries, runs_pb2.GetRunSeriesRequest(tenant_id=caller.tenant_id, run_id=_run_id(run_id))
    )
    return await asyncio.to_thread(report_view, resp, window, _prefix(request))


@_runs.get(
    "/runs/{run_id}/report",
    summary="A run's report: drawdowns, monthly returns, rolling Sharpe, distributions, exposure",
    description=REPORT_DOC,
    response_model=RunReport,
)
async def run_report(
    run_id: str, request: Request, backend: BackendDep, caller: CallerDep, window: WindowQuery = None
) -> dict[str, Any]:
    return await _report(run_id, window, request, backend, caller)


MONTECARLO_DOC = f"""\
A Monte Carlo of the run: its trades (`trades`) or blocks of its daily returns
(`block_bootstrap`) resampled into `resamples` other paths, and the percentiles (5, 25, 50,
75, 95) of their total return and maximum drawdown, with their histograms and the same two
figures on the run's own sequence. It is computed when asked and returned, not stored:
nothing changes, and the same run and body give the same answer (the draws are
seeded: `numpy.random.default_rng(seed)`).

Body (every field optional): `method` (`trades`, the default, or `block_bootstrap`);
`resamples` ({mc.MIN_RESAMPLES}–{mc.MAX_RESAMPLES:,}, default {mc.DEFAULT_RESAMPLES:,}); `seed`
(0–2^53 − 1, default 0); `block_days` (block_bootstrap: 1 to the run's number of days, default
{mc.DEFAULT_BLOCK_DAYS} or the run's days when it has fewer). A value outside these, an unknown
method or field, a run without trades (for `trades`) or with fewer than {mc.MIN_DAYS} days (for
`block_bootstrap`) is a 400, and more than {mc.MAX_DRAWS:,} draws in all (resamples × trades, or
resamples × days) too. Another tenant's run, or none, is a 404; a sweep's run keeps no series
(404: replay it, and ask the new run).

### Definitions

{MONTECARLO_DEFINITIONS_DOC}
"""


@_runs.post(
    "/runs/{run_id}/montecarlo",
    summary="A run's Monte Carlo: percentiles of total return and max drawdown over resampled paths (not stored)",
    description=MONTECARLO_DOC,
    response_model=MonteCarlo,
)
async def run_montecarlo(
    run_id: str,
    body: Annotated[MonteCarloRequest, Depends(_read_montecarlo)],
    request: Request,
    backend: BackendDep,
    caller: CallerDep,
) -> dict[str, Any]:
    number = _run_id(run_id)
    resp = await backend.call(
        backend.runs.GetRunSeries, runs_pb2.GetRunSeriesRequest(tenant_id=caller.tenant_id, run_id=number)
    )
    try:
        return await asyncio.to_thread(montecarlo_view, resp, body.method, body.resamples, body.seed, body.block_days,
                                       _prefix(request))
    except mc.MonteCarloInvalid as exc:
        raise invalid("invalid Monte Carlo request", exc.errors) from None


# Candles of the price chart in report.html (each stretch's extremes kept).
REPORT_PRICE_BARS = 2000
_HTML = "text/html"


def _run_price(ts, cols, zone: str, first_day: str, last_day: str) -> list[dict[str, Any]]:
    keep = in_days(ts, zone, first_day, last_day)
    return chart_bars(ts[keep], [c[keep] for c in cols], REPORT_PRICE_BARS)


@_runs.get(
    "/runs/{run_id}/report.html",
    summary="A run's report as one self-contained HTML file (opens offline)",
    response_class=Response,
    responses={200: content(_HTML, "One HTML file: the report's charts (plotly.js and the data inline), metrics, "
                                   "parameters, dataset and version, the Hindsight version; it makes no request")},
)
async def run_report_html(
    run_id: str, request: Request, backend: BackendDep, caller: CallerDep, window: WindowQuery = None
) -> Response:
    """The report of `GET /runs/{id}/report` (same `window`) with the run's price (at most
    2,000 candles over its days), as an attachment `run_<id>_report.html` to share: it opens
    from disk, offline, and asks nothing of any server."""
    number = _run_id(run_id)
    resp = await backend.call(
        backend.runs.GetRunSeries, runs_pb2.GetRunSeriesRequest(tenant_id=caller.tenant_id, run_id=number)
    )
    report = await asyncio.to_thread(report_view, resp, window, _prefix(request))
    bars = None
    if resp.dataset_version_id and report["first_day"] and report["dataset"]:
        try:
            ts, cols = await version_bars(backend, resp.dataset_version_id)
        except ApiError as exc:  # the version was deleted meanwhile: the report without its price
            if exc.status != 404:
                raise
        else:
            bars = await asyncio.to_thread(_run_price, ts, cols, report["dataset"]["timezone"], report["first_day"],
                                           report["last_day"])
    text = await asyncio.to_thread(report_html.render, report, bars)
    return Response(text, media_type="text/html; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="run_{number}_report.html"'})


# The seed's root paths, and the same under the versioned prefix.
router.include_router(_runs)
router.include_router(_runs, prefix="/api/v1")
