"""The gRPC servicer of `hindsight.runs.v1.RunsService`: saved runs over services.results.runs.

Runs on the results service's database pool; domain errors map to status codes
as in the main servicer (another tenant's run is NOT_FOUND).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from google.protobuf.json_format import MessageToDict, ParseDict
from hindsight.engine.v1 import engine_pb2
from hindsight.runs.v1 import runs_pb2, runs_pb2_grpc

from libs import grpc_util
from libs.metric_fields import run_metrics_dict, run_metrics_pb
from services.results import runs
from services.results.errors import InvalidArgument
from services.results.models_runs import StrategyRun
from services.results.rpc import DatabaseServicer, unary
from services.results.timefmt import rfc3339

log = logging.getLogger(__name__)

SERVICE_NAME = grpc_util.service_name(runs_pb2, "RunsService")
_TRADE_FIELDS = tuple(f.name for f in engine_pb2.Trade.DESCRIPTOR.fields)
EXPOSURE_FIELDS = frozenset(f.name for f in engine_pb2.Exposure.DESCRIPTOR.fields)
MAX_RUN_NUMBER = 2**53


def run_pb(run: StrategyRun, *, with_replay: bool = True, has_series: bool = False) -> runs_pb2.Run:
    msg = runs_pb2.Run(
        run_id=run.run_number,
        kind=run.kind,
        ticker=run.ticker,
        strategy=run.strategy,
        strategy_id=run.strategy_id or "",
        parameters_json=json.dumps(run.parameters, separators=(",", ":")),
        start_date=run.start_date,
        end_date=run.end_date,
        interval=run.interval,
        cash=run.cash,
        commission_pct=run.commission_pct,
        slippage_pct=run.slippage_pct,
        direction=run.direction,
        fill=run.fill,
        metrics=run_metrics_pb(run.metrics or {}),
        replay_of=run.replay_of or 0,
        job_id=run.job_id or "",
        created_at=rfc3339(run.created_at),
        bars=run.bars,
        dataset_id=run.dataset_id or "",
        dataset_version=run.dataset_version or 0,
        execution_time_seconds=run.execution_time_seconds,
        has_series=has_series,
    )
    if run.sweep:
        ParseDict(run.sweep, msg.sweep, ignore_unknown_fields=True)
    if with_replay and run.replay_spec:
        ParseDict(run.replay_spec, msg.replay_spec, ignore_unknown_fields=True)
    return msg


def trade_dict(t: engine_pb2.Trade) -> dict[str, Any]:
    return {name: getattr(t, name) for name in _TRADE_FIELDS}


def trades_pb(items: list[dict[str, Any]]) -> list[engine_pb2.Trade]:
    return [engine_pb2.Trade(**{k: v for k, v in t.items() if k in _TRADE_FIELDS}) for t in items]


def equity_dict(points: Any) -> dict[str, list[Any]]:
    return {
        "ts": [p.ts for p in points],
        "equity": [p.equity for p in points],
        "buy_and_hold": [p.buy_and_hold for p in points],
    }


def equity_pb(curve: dict[str, list[Any]] | None) -> list[engine_pb2.EquityPoint]:
    if not curve:
        return []
    return [
        engine_pb2.EquityPoint(ts=int(t), equity=e, buy_and_hold=b)
        for t, e, b in zip(curve.get("ts", []), curve.get("equity", []), curve.get("buy_and_hold", []))
    ]


def day_ends_dict(points: Any) -> dict[str, list[Any]]:
    return {
        "date": [p.date for p in points],
        "ts": [p.ts for p in points],
        "equity": [p.equity for p in points],
        "buy_and_hold": [p.buy_and_hold for p in points],
    }


def day_ends_pb(days: dict[str, list[Any]]) -> list[engine_pb2.DayEndPoint]:
    return [
        engine_pb2.DayEndPoint(date=str(d), ts=int(t), equity=e, buy_and_hold=b)
        for d, t, e, b in zip(days.get("date", []), days.get("ts", []), days.get("equity", []),
                              days.get("buy_and_hold", []))
    ]


def _run_number(value: int) -> int:
    if not 1 <= value <= MAX_RUN_NUMBER:
        raise InvalidArgument("run_id must be a positive integer")
    return value


class RunsServicer(DatabaseServicer, runs_pb2_grpc.RunsServiceServicer):
    """Every RPC of the runs service; all state is in the database."""

    @unary
    async def SaveRun(self, request, context):
        r = request.run
        if not request.tenant_id:
            raise InvalidArgument("tenant_id is required")
        try:
            parameters = json.loads(r.parameters_json) if r.parameters_json else {}
        except ValueError:
            raise InvalidArgument("run.parameters_json is not valid JSON") from None
        if r.replay_of < 0:
            raise InvalidArgument("run.replay_of must not be negative")
        replay_spec = None
        if r.HasField("replay_spec"):
            replay_spec = MessageToDict(r.replay_spec, preserving_proto_field_name=True)
        sweep = MessageToDict(r.sweep, preserving_proto_field_name=True) if r.HasField("sweep") else None
        trades = [trade_dict(t) for t in request.trades]
        equity = equity_dict(request.equity)
        fields = {
            "kind": r.kind or "backtest",
            "ticker": r.ticker,
            "strategy": r.strategy,
            "parameters": parameters,
            "start_date": r.start_date,
            "end_date": r.end_date,
            "interval": r.interval,
            "cash": r.cash,
            "metrics": run_metrics_dict(r.metrics),
            "commission_pct": r.commission_pct,
            "slippage_pct": r.slippage_pct,
            "direction": r.direction,
            "fill": r.fill,
            "strategy_id": r.strategy_id or None,
            "replay_of": r.replay_of or None,
            "replay_spec": replay_spec,
            "sweep_run_id": (r.sweep.sweep_run_id or None) if sweep else None,
            "job_id": r.job_id or None,
            "sweep": sweep,
            "bars": r.bars,
            "dataset_id": r.dataset_id or None,
            "dataset_version": r.dataset_version or None,
            "execution_time_seconds": r.execution_time_seconds,
            "trades": trades,
            "equity": equity,
            "day_ends": day_ends_dict(request.day_ends) if request.day_ends else None,
            "exposure": {name: int(getattr(request.exposure, name)) for name in sorted(EXPOSURE_FIELDS)}
            if request.HasField("exposure") else None,
        }
        run = await self.write(lambda s: runs.save_run(s, request.tenant_id, **fields))
        log.info("run saved", extra={"tenant_id": request.tenant_id, "run_id": run.run_number, "kind": run.kind})
        return runs_pb2.SaveRunResponse(run=run_pb(run, has_series=True))

    @unary
    async def ListRuns(self, request, context):
        limit = request.limit if request.HasField("limit") else runs.DEFAULT_LIST_LIMIT
        rows, total = await self.read(
            runs.list_runs, request.tenant_id, request.ticker, request.strategy, request.kind, limit, request.offset
        )
        return runs_pb2.ListRunsResponse(runs=[run_pb(r, with_replay=False) for r in rows], total=total)

    @unary
    async def GetRun(self, request, context):
        number = _run_number(request.run_id)

        def read(s):
            run = runs.get_run(s, request.tenant_id, number)
            return run, runs.has_series(s, run)

        run, stored = await self.read(read)
        return runs_pb2.GetRunResponse(run=run_pb(run, has_series=stored))

    @unary
    async def CompareRuns(self, request, context):
        numbers = [_run_number(n) for n in request.run_ids]

        def read(s):
            rows = runs.get_runs(s, request.tenant_id, numbers)
            return rows, runs.series_of(s, rows)

        rows, series = await self.read(read)
        out = runs_pb2.CompareRunsResponse()
        for r in rows:
            stored = series.get(r.id)
            out.runs.append(run_pb(r, has_series=stored is not None))
            out.equity.append(runs_pb2.RunEquity(run_id=r.run_number, points=equity_pb(stored.equity if stored else None)))
        return out

    @unary
    async def GetRunTrades(self, request, context):
        run, series = await self.read(runs.run_series, request.tenant_id, _run_number(request.run_id))
        return runs_pb2.GetRunTradesResponse(run=run_pb(run, has_series=True), trades=trades_pb(series.trades))

    @unary
    async def GetRunEquity(self, request, context):
        run, series = await self.read(runs.run_series, request.tenant_id, _run_number(request.run_id))
        return runs_pb2.GetRunEquityResponse(run=run_pb(run, has_series=True), points=equity_pb(series.equity))

    @unary
    async def GetRunSeries(self, request, context):
        got = await self.read(runs.report_series, request.tenant_id, _run_number(request.run_id))
        out = runs_pb2.GetRunSeriesResponse(
            run=run_pb(got.run, has_series=True),
            points=equity_pb(got.series.equity),
            day_ends=day_ends_pb(got.day_ends),
            trades=trades_pb(got.series.trades),
            day_ends_source=got.day_ends_source,
        )
        if got.exposure is not None:
            out.exposure.CopyFrom(engine_pb2.Exposure(**{k: int(v) for k, v in got.exposure.items()
                                                         if k in EXPOSURE_FIELDS}))
        if got.dataset is not None:
            d = got.dataset
            out.dataset.CopyFrom(engine_pb2.DatasetUsed(
                dataset_id=d.dataset_id, interval=d.interval, version=d.version, calendar=d.calendar,
                timezone=d.timezone,
            ))
            out.dataset_version_id = d.version_id
        return out
