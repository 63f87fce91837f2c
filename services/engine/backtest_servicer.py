"""The gRPC servicer of `hindsight.engine.v1.EngineService`: synchronous backtests.

It picks the tenant's dataset (through results), loads its bars (cached per
version, shared with the job worker), cuts the date range, resamples to the
requested interval, runs :func:`services.engine.backtest.run_backtest` on a
worker thread (the kernels release the GIL) and answers the full result.
Nothing is stored here: the caller saves the run.

Limits of synchronous work (larger requests are RESOURCE_EXHAUSTED → HTTP 413,
telling the user to submit a job): at most ``MAX_SYNC_BARS`` bars backtested, at the
requested interval (bars × combinations, with one combination per backtest; a coarser
interval is resampled from at most ``MAX_SYNC_SOURCE_BARS`` bars of the dataset) and at
most ``MAX_SYNC_TRADES`` trades (both in domain.backtest_spec). At those sizes a backtest computes in about a
quarter of a second (measured: 1,000,000 one-minute bars, SMA 10/30, 0.14 s;
MACD 0.20 s); the trade cap bounds the answer (~3 MB of JSON) and the stored run.

Error messages that concern one request field start with ``<field>: `` so the
gateway can report the field.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from datetime import date
from typing import Any

import grpc
import numpy as np
from hindsight.engine.v1 import engine_pb2, engine_pb2_grpc
from hindsight.results.v1 import results_pb2, results_pb2_grpc

from domain.backtest_spec import (
    FILLS,
    MAX_SYNC_BARS,
    MAX_SYNC_SOURCE_BARS,
    MAX_SYNC_TRADES,
    SpecInvalid,
    check_direction,
    normalize_parameters,
    strategy_name,
)
from domain.market import INTERVAL_MINUTES, divides, insufficient_data, interval_name
from domain.report import TradeSpan, bars_in_market
from domain.sweep import CASH_MAX
from libs.metric_fields import run_metrics_pb
from services.engine import backtest as bt
from services.engine.bars_cache import BarsCache

log = logging.getLogger(__name__)

# Backtests computed at the same time by one engine (the rest wait their turn).
MAX_CONCURRENT = 2
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


class _Refused(Exception):
    """Answer the call with this status and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(field: str, message: str) -> _Refused:
    return _Refused(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {message}")


def _date(value: str, field: str) -> date | None:
    if not value:
        return None
    if not _DATE.match(value):
        raise _invalid(field, "must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _invalid(field, "must be a date YYYY-MM-DD") from None


def _pct(value: float, field: str) -> float:
    if not (math.isfinite(value) and 0.0 <= value <= 10.0):
        raise _invalid(field, "must be a number from 0 to 10")
    return value


def check_spec(spec: engine_pb2.BacktestSpec) -> dict[str, Any]:
    """The spec's values, validated and normalized (raises _Refused)."""
    ticker = spec.ticker.strip().upper()
    if not ticker or len(ticker) > 32:
        raise _invalid("ticker", "is required (1-32 characters)")
    if spec.strategy_id:
        # Saved strategies are defined by the day-by-day rule engine; none runs synchronously yet.
        raise _Refused(grpc.StatusCode.NOT_FOUND, f"strategy {spec.strategy_id!r} not found")
    strategy = strategy_name(spec.strategy)
    if strategy is None:
        raise _invalid("strategy", f"unknown strategy {spec.strategy!r}")
    try:
        raw = json.loads(spec.parameters_json) if spec.parameters_json else {}
        params = normalize_parameters(strategy, raw)
        direction = spec.direction or "long"
        check_direction(strategy, direction)
    except ValueError:
        raise _invalid("parameters", "must be a JSON object") from None
    except SpecInvalid as exc:
        first = exc.errors[0]
        raise _invalid(first["field"], first["message"]) from None
    fill = spec.fill or "next_open"
    if fill not in FILLS:
        raise _invalid("fill", f"must be one of {', '.join(FILLS)}")
    interval = None
    if spec.interval:
        interval = interval_name(spec.interval)
        if interval is None:
            raise _invalid("interval", f"must be one of {', '.join(INTERVAL_MINUTES)}")
    start, end = _date(spec.start_date, "start_date"), _date(spec.end_date, "end_date")
    if start and end and start > end:
        raise _invalid("start_date", "must not be after end_date")
    cash = spec.cash or 10_000.0
    if not (math.isfinite(cash) and 0 < cash <= CASH_MAX):
        raise _invalid("cash", "must be a number greater than 0")
    return {
        "ticker": ticker,
        "strategy": strategy,
        "params": params,
        "direction": direction,
        "fill": fill,
        "interval": interval,
        "start": start,
        "end": end,
        "cash": float(cash),
        "commission_pct": _pct(spec.commission_pct, "commission_pct"),
        "slippage_pct": _pct(spec.slippage_pct, "slippage_pct"),
    }


def choose_dataset(datasets: list[results_pb2.Dataset], ticker: str, interval: str | None) -> results_pb2.Dataset:
    """The dataset to backtest on: the requested interval if it exists, else the coarsest
    finer one (resampled); without an interval, the finest. Raises _Refused."""
    mine = [d for d in datasets if d.ticker.upper() == ticker and d.interval in INTERVAL_MINUTES]
    if not mine:
        raise _invalid("ticker", insufficient_data(ticker))
    by_minutes = sorted(mine, key=lambda d: INTERVAL_MINUTES[d.interval])
    if interval is None:
        return by_minutes[0]
    usable = [d for d in by_minutes if divides(d.interval, interval)]
    if not usable:
        finest = by_minutes[0].interval
        raise _invalid("interval", f"{interval} is finer than the data of {ticker} (finest: {finest}); "
                                   "bars can only be resampled to a coarser interval")
    return usable[-1]


def _trade_finite(t: bt.Trade) -> bool:
    values = (t.units, t.entry_value, t.exit_value, t.pnl, t.commission)
    return all(math.isfinite(x) for x in values) and t.entry_value != 0.0  # return_pct divides by it


def _check_finite(result: bt.BacktestResult, ticker: str) -> None:
    """Refuse a result whose numbers overflowed (prices like 1e-320 or swings of 1e200 make
    units, equity or P&L inf or NaN): nothing a client could read or a run could keep."""
    equity_ok = np.isfinite(result.equity) & np.isfinite(result.benchmark)
    bad_trade = next((t for t in result.trades if not _trade_finite(t)), None)
    if bad_trade is None and bool(equity_ok.all()):
        return
    at = int(np.argmin(equity_ok)) if not equity_ok.all() else bad_trade.entry_index
    raise _invalid("ticker", f"the prices of {ticker} overflow the backtest's arithmetic: the equity is not a finite "
                             f"number from {bt.local_date(result.bars, at).isoformat()} on; check the dataset's prices")


def compute(bars: Any, values: dict[str, Any], dataset: results_pb2.Dataset) -> engine_pb2.BacktestResponse:
    """The backtest itself (blocking; run on a worker thread)."""
    t0 = time.perf_counter()
    start = values["start"] or bt.local_date(bars, 0)
    end = values["end"] or bt.local_date(bars, len(bars) - 1)
    if start > end:
        raise _invalid("start_date", f"must not be after end_date (the data ends on {end.isoformat()})")
    chosen = bt.select_dates(bars, start, end)
    if len(chosen) == 0:
        first, last = bt.local_date(bars, 0), bt.local_date(bars, len(bars) - 1)
        raise _invalid("start_date", f"no bars of {values['ticker']} from {start} to {end} "
                                     f"(the data covers {first} to {last})")
    interval = values["interval"] or dataset.interval
    if interval != dataset.interval and len(chosen) > MAX_SYNC_SOURCE_BARS:
        raise _Refused(grpc.StatusCode.RESOURCE_EXHAUSTED,
                       f"{len(chosen)} bars of {values['ticker']} in the date range: more than "
                       f"{MAX_SYNC_SOURCE_BARS} to resample for a synchronous backtest; narrow the dates, "
                       "or submit a sweep job (POST /api/v1/strategy/sweep)")
    run_bars = bt.resample(chosen, interval) if interval != dataset.interval else chosen
    # The limit counts the bars backtested: a coarser interval is the way to fit a long range.
    if len(run_bars) > MAX_SYNC_BARS:
        raise _Refused(grpc.StatusCode.RESOURCE_EXHAUSTED,
                       f"{len(run_bars)} bars in the date range: more than {MAX_SYNC_BARS} for a synchronous backtest; "
                       "narrow the dates, choose a coarser interval, or submit a sweep job "
                       "(POST /api/v1/strategy/sweep)")
    try:
        result = bt.run_backtest(
            run_bars, values["strategy"], values["params"], direction=values["direction"], fill=values["fill"],
            commission_pct=values["commission_pct"], slippage_pct=values["slippage_pct"],
            initial_cash=values["cash"], max_trades=MAX_SYNC_TRADES,
        )
    except bt.TooLarge as exc:
        raise _Refused(grpc.StatusCode.RESOURCE_EXHAUSTED,
                       f"{exc}; narrow the dates, choose a coarser interval, or submit a sweep job "
                       "(POST /api/v1/strategy/sweep)") from None
    _check_finite(result, values["ticker"])
    keep = bt.downsample(result.equity)
    ts = run_bars.ts
    resolved = engine_pb2.BacktestSpec(
        ticker=dataset.ticker,
        strategy=values["strategy"],
        parameters_json=json.dumps(values["params"], separators=(",", ":")),
        start_date=start.isoformat(),
        end_date=end.isoformat(),
        interval=interval,
        cash=values["cash"],
        commission_pct=values["commission_pct"],
        slippage_pct=values["slippage_pct"],
        direction=values["direction"],
        fill=values["fill"],
    )
    out = engine_pb2.BacktestResponse(
        spec=resolved,
        metrics=run_metrics_pb(result.metrics),
        bars=len(run_bars),
        source_bars=len(chosen),
        dataset=engine_pb2.DatasetUsed(
            dataset_id=dataset.dataset_id, interval=dataset.interval, version=dataset.version,
            calendar=dataset.calendar, timezone=dataset.timezone,
        ),
        equity_points_total=len(run_bars),
    )
    out.trades.extend(
        engine_pb2.Trade(
            side="long" if t.side > 0 else "short", entry_ts=t.entry_ts, exit_ts=t.exit_ts,
            entry_price=t.entry_price, exit_price=t.exit_price, units=t.units, entry_value=t.entry_value,
            exit_value=t.exit_value, pnl=t.pnl, return_pct=t.return_pct, commission=t.commission,
            exit_reason=t.exit_reason,
        )
        for t in result.trades
    )
    eq, bh = result.equity[keep].tolist(), result.benchmark[keep].tolist()
    out.equity.extend(
        engine_pb2.EquityPoint(ts=int(ts[i]), equity=e, buy_and_hold=b) for i, e, b in zip(keep.tolist(), eq, bh)
    )
    spans = [TradeSpan("long" if t.side > 0 else "short", t.entry_ts, t.exit_ts, t.entry_price, t.exit_price,
                       t.return_pct) for t in result.trades]
    held = bars_in_market(ts, spans)
    out.exposure.CopyFrom(engine_pb2.Exposure(bars=held.bars, in_market=held.in_market, long_bars=held.long_bars,
                                              short_bars=held.short_bars))
    # Every day's last bar, never downsampled: the daily returns the metrics (and the run report) use.
    ends = np.flatnonzero(run_bars.day_ends())
    days = run_bars.day_index()[ends].astype("datetime64[D]").astype(str).tolist()
    out.day_ends.extend(
        engine_pb2.DayEndPoint(date=d, ts=int(t), equity=e, buy_and_hold=b)
        for d, t, e, b in zip(days, ts[ends].tolist(), result.equity[ends].tolist(), result.benchmark[ends].tolist())
    )
    out.execution_time_seconds = time.perf_counter() - t0
    return out


class BacktestServicer(engine_pb2_grpc.EngineServiceServicer):
    """Synchronous backtests over the tenant's datasets (bars read through results)."""

    def __init__(self, results: results_pb2_grpc.ResultsServiceStub, cache: BarsCache, rpc_timeout: float) -> None:
        self.results = results
        self.cache = cache
        self.rpc_timeout = rpc_timeout
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)

    async def Backtest(self, request: engine_pb2.BacktestRequest, context: grpc.aio.ServicerContext):
        try:
            return await self._backtest(request)
        except _Refused as exc:
            await context.abort(exc.code, exc.message)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _TRANSIENT:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "results service unavailable, retry later")
            log.error("results refused a call: %s %s", exc.code().name, exc.details())
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        except Exception:  # a bug: logged, answered without details
            log.exception("backtest failed")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    async def _backtest(self, request: engine_pb2.BacktestRequest) -> engine_pb2.BacktestResponse:
        if not request.tenant_id:
            raise _invalid("tenant_id", "is required")
        values = check_spec(request.spec)
        listing = await self.results.ListDatasets(
            results_pb2.ListDatasetsRequest(tenant_id=request.tenant_id), timeout=self.rpc_timeout
        )
        dataset = choose_dataset(list(listing.datasets), values["ticker"], values["interval"])
        resolved = await self.results.ResolveDataset(
            results_pb2.ResolveDatasetRequest(tenant_id=request.tenant_id, ticker=dataset.ticker,
                                              interval=dataset.interval),
            timeout=self.rpc_timeout,
        )
        if not resolved.found:  # deleted in between
            raise _invalid("ticker", insufficient_data(values["ticker"]))
        bars = await self.cache.get(self.results, resolved.dataset, resolved.version_id)
        async with self._slots:
            try:
                response = await asyncio.to_thread(compute, bars, values, resolved.dataset)
            except ValueError as exc:  # bars the kernels refuse (non-positive prices, ...)
                raise _invalid("ticker", f"the data of {values['ticker']} cannot be backtested: {exc}") from None
        log.info(
            "backtest done",
            extra={"tenant_id": request.tenant_id, "ticker": dataset.ticker, "strategy": values["strategy"],
                   "bars": response.bars, "trades": len(response.trades),
                   "seconds": round(response.execution_time_seconds, 3)},
        )
        return response
