"""Saved runs and synchronous backtests: their JSON (and CSV) shapes.

Seed 003's shapes, with our fields beside them: the summary of a listing (`id`,
`ticker`, `strategy`, `interval`, `pnl`, `return_pct`, `created_at`), the detail
of a run (plus `parameters`, dates, `cash`, `sharpe_ratio`, `max_drawdown`, trade
counts), and a backtest's full result (the detail plus `metrics`, `trades` and
`equity_curve`). Undefined numbers are null.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
from hindsight.engine.v1 import engine_pb2
from hindsight.runs.v1 import runs_pb2
from pydantic import Field, create_model

from libs.metric_fields import RUN_METRIC_FLOATS, run_metrics_dict
from services.gateway.presenters.common import ResponseModel

# Points of the common time axis of a comparison.
MAX_COMPARE_POINTS = 2000


# ---------------------------------------------------------------- shapes

# Every metric of a run: the optional doubles of `hindsight.engine.v1.Metrics` (null:
# undefined), then the trade counts and the average trade duration.
RunMetrics = create_model(  # type: ignore[call-overload]
    "RunMetrics",
    __base__=ResponseModel,
    __doc__="A run's metrics (see the API description); undefined values are null.",
    **{name: (float | None, ...) for name in RUN_METRIC_FLOATS},
    total_trades=(int, ...),
    winning_trades=(int, ...),
    losing_trades=(int | None, ...),
    avg_trade_duration=(str | None, Field(description='e.g. "5.2 days"')),
)


class RunSummary(ResponseModel):
    """A run in a listing."""

    id: int
    ticker: str
    strategy: str
    interval: str
    pnl: float | None
    return_pct: float | None
    created_at: str | None
    kind: str = Field(description="backtest, sweep or day_by_day")
    start_date: str | None
    end_date: str | None
    sharpe_ratio: float | None
    total_trades: int
    replay_of: int | None


class BestCombination(ResponseModel):
    parameters: Any
    score: float | None


class RunSweep(ResponseModel):
    """The sweep a sweep's run stands for (its best combination is the run)."""

    sweep_run_id: str
    job_id: str | None
    strategy_type: str
    fast_range: list[int]
    slow_range: list[int]
    step: int
    combinations: int
    min_trades: int
    best: BestCombination | None
    results_url: str


class RunDataset(ResponseModel):
    dataset_id: str
    version: int


class RunDetail(ResponseModel):
    """A saved run."""

    id: int
    ticker: str
    strategy: str
    parameters: Any = Field(description="the strategy's parameters (an object)")
    start_date: str | None
    end_date: str | None
    interval: str
    cash: float
    pnl: float | None
    return_pct: float | None
    sharpe_ratio: float | None
    max_drawdown: float | None
    total_trades: int
    winning_trades: int
    losing_trades: int | None
    created_at: str | None
    kind: str
    strategy_id: str | None
    direction: str
    fill: str
    commission_pct: float
    slippage_pct: float
    metrics: RunMetrics  # type: ignore[valid-type]
    replay_of: int | None
    replayable: bool
    sweep: RunSweep | None
    job_id: str | None
    bars: int
    dataset: RunDataset | None
    execution_time_seconds: float
    links: dict[str, str] = Field(description="self and replay; trades_csv and equity_csv when the run keeps its series")


class Trade(ResponseModel):
    side: str
    entry_time: str
    exit_time: str
    entry_price: float
    exit_price: float
    units: float
    entry_value: float
    exit_value: float
    pnl: float
    return_pct: float
    commission: float
    duration_seconds: int
    exit_reason: str


class EquityPoint(ResponseModel):
    timestamp: str
    equity: float
    buy_and_hold: float = Field(description="buy-and-hold with the same cash, fill and costs")


class BacktestDataset(ResponseModel):
    dataset_id: str
    interval: str
    version: int
    calendar: str
    timezone: str


class Backtest(RunDetail):
    """A backtest's result: the saved run, its trades and its equity curve."""

    dataset: BacktestDataset  # type: ignore[assignment]
    run_id: int
    source_bars: int = Field(description="bars of the dataset read (more than `bars` when resampled)")
    trades: list[Trade]
    equity_curve: list[EquityPoint] = Field(description="at most 2,000 points")
    equity_curve_points_total: int


class BacktestPreview(Backtest):
    """A backtest's result without saving it: no run number, no links."""

    id: int | None = Field(None, description="null: a preview is not saved")  # type: ignore[assignment]
    run_id: int | None = None  # type: ignore[assignment]


def preview_view(run: runs_pb2.Run, result: engine_pb2.BacktestResponse) -> dict[str, Any]:
    """A backtest's answer when it was not saved."""
    out = backtest_view(run, result)
    out.update(id=None, run_id=None, links={}, created_at=None)
    return out


class RunList(ResponseModel):
    runs: list[RunSummary]
    total: int = Field(description="every run matching the filters")
    limit: int
    offset: int


class ComparedSeries(ResponseModel):
    id: int
    equity: list[float | None]


class ComparedEquity(ResponseModel):
    timestamps: list[str]
    series: list[ComparedSeries]


class RunComparison(ResponseModel):
    """Runs side by side: each metric and parameter a list of values in the order of `ids`."""

    ids: list[int]
    runs: list[RunDetail]
    metrics: dict[str, list[Any]]
    parameters: dict[str, list[Any]]
    equity: ComparedEquity


# ---------------------------------------------------------------- builders


def iso(ts_ns: int) -> str:
    """ns since the epoch -> 2024-01-01T09:15:00Z."""
    seconds, _ = divmod(int(ts_ns), 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _opt(msg: Any, name: str) -> Any:
    return getattr(msg, name) if msg.HasField(name) else None


def metrics_view(m: engine_pb2.Metrics) -> dict[str, Any]:
    """Every metric of a run (the DESIGN.md set, score, and the money figures)."""
    out = run_metrics_dict(m)
    out["avg_trade_duration"] = m.avg_trade_duration or None
    return out


def _parameters(text: str) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


def links(run_id: int, prefix: str) -> dict[str, str]:
    base = f"{prefix}/runs/{run_id}"
    return {
        "self": base,
        "replay": f"{base}/replay",
        "trades_csv": f"{base}/trades.csv",
        "equity_csv": f"{base}/equity.csv",
    }


def run_summary(run: runs_pb2.Run) -> dict[str, Any]:
    """A run in a listing (seed's SavedRunSummaryResponse, plus kind, dates and replay_of)."""
    m = run.metrics
    return {
        "id": run.run_id,
        "ticker": run.ticker,
        "strategy": run.strategy,
        "interval": run.interval,
        "pnl": _opt(m, "pnl"),
        "return_pct": _opt(m, "total_return_pct"),
        "created_at": run.created_at or None,
        "kind": run.kind,
        "start_date": run.start_date or None,
        "end_date": run.end_date or None,
        "sharpe_ratio": _opt(m, "sharpe_ratio"),
        "total_trades": m.total_trades,
        "replay_of": run.replay_of or None,
    }


def sweep_view(run: runs_pb2.Run) -> dict[str, Any] | None:
    if not run.HasField("sweep"):
        return None
    s = run.sweep
    return {
        "sweep_run_id": s.sweep_run_id,
        "job_id": s.job_id or run.job_id or None,
        "strategy_type": s.strategy_type,
        "fast_range": [s.fast_min, s.fast_max],
        "slow_range": [s.slow_min, s.slow_max],
        "step": s.step,
        "combinations": s.combinations,
        "min_trades": s.min_trades,
        "best": (
            {"parameters": _parameters(run.parameters_json), "score": _opt(run.metrics, "score")} if s.has_best else None
        ),
        "results_url": f"/api/v1/sweeps/{s.sweep_run_id}/best?ticker={run.ticker}",
    }


def run_detail(run: runs_pb2.Run, prefix: str = "") -> dict[str, Any]:
    """A run (seed's SavedRunDetailResponse, plus everything we keep about it)."""
    m = run.metrics
    return {
        "id": run.run_id,
        "ticker": run.ticker,
        "strategy": run.strategy,
        "parameters": _parameters(run.parameters_json),
        "start_date": run.start_date or None,
        "end_date": run.end_date or None,
        "interval": run.interval,
        "cash": run.cash,
        "pnl": _opt(m, "pnl"),
        "return_pct": _opt(m, "total_return_pct"),
        "sharpe_ratio": _opt(m, "sharpe_ratio"),
        "max_drawdown": _opt(m, "max_drawdown_pct"),
        "total_trades": m.total_trades,
        "winning_trades": m.winning_trades,
        "losing_trades": _opt(m, "losing_trades"),
        "created_at": run.created_at or None,
        "kind": run.kind,
        "strategy_id": run.strategy_id or None,
        "direction": run.direction,
        "fill": run.fill,
        "commission_pct": run.commission_pct,
        "slippage_pct": run.slippage_pct,
        "metrics": metrics_view(m),
        "replay_of": run.replay_of or None,
        "replayable": run.HasField("replay_spec") or (run.kind == "day_by_day" and bool(run.strategy_id)),
        "sweep": sweep_view(run),
        "job_id": run.job_id or None,
        "bars": run.bars,
        "dataset": {"dataset_id": run.dataset_id, "version": run.dataset_version} if run.dataset_id else None,
        "execution_time_seconds": run.execution_time_seconds,
        "links": links(run.run_id, prefix) if run.has_series else {
            k: v for k, v in links(run.run_id, prefix).items() if k in ("self", "replay")
        },
    }


def trade_view(t: engine_pb2.Trade) -> dict[str, Any]:
    return {
        "side": t.side,
        "entry_time": iso(t.entry_ts),
        "exit_time": iso(t.exit_ts),
        "entry_price": t.entry_price,
        "exit_price": t.exit_price,
        "units": t.units,
        "entry_value": t.entry_value,
        "exit_value": t.exit_value,
        "pnl": t.pnl,
        "return_pct": t.return_pct,
        "commission": t.commission,
        "duration_seconds": (t.exit_ts - t.entry_ts) // 1_000_000_000,
        "exit_reason": t.exit_reason,
    }


def equity_view(points: Any) -> list[dict[str, Any]]:
    return [{"timestamp": iso(p.ts), "equity": p.equity, "buy_and_hold": p.buy_and_hold} for p in points]


def backtest_view(run: runs_pb2.Run, result: engine_pb2.BacktestResponse, prefix: str = "") -> dict[str, Any]:
    """The answer of `POST /backtest` and of a replay: the saved run and the full result."""
    out = run_detail(run, prefix)
    out["run_id"] = run.run_id
    out["dataset"] = {
        "dataset_id": result.dataset.dataset_id,
        "interval": result.dataset.interval,
        "version": result.dataset.version,
        "calendar": result.dataset.calendar,
        "timezone": result.dataset.timezone,
    }
    out["source_bars"] = result.source_bars
    out["trades"] = [trade_view(t) for t in result.trades]
    out["equity_curve"] = equity_view(result.equity)
    out["equity_curve_points_total"] = result.equity_points_total
    return out


# ---------------------------------------------------------------- comparison


def common_axis(curves: list[list[Any]], max_points: int = MAX_COMPARE_POINTS) -> tuple[list[int], list[list[Any]]]:
    """Put curves on one time axis: the union of their times (evenly thinned to at most
    `max_points`); each curve's value at a time is its last point at or before it, null
    outside the curve's own span."""
    stamps = sorted({p.ts for curve in curves for p in curve})
    if len(stamps) > max_points:
        pick = np.unique(np.linspace(0, len(stamps) - 1, max_points).round().astype(np.int64))
        stamps = [stamps[i] for i in pick.tolist()]
    axis = np.asarray(stamps, dtype=np.int64)
    series = []
    for curve in curves:
        if not curve:
            series.append([None] * len(stamps))
            continue
        ts = np.asarray([p.ts for p in curve], dtype=np.int64)
        values = [p.equity for p in curve]
        at = np.searchsorted(ts, axis, side="right") - 1
        inside = (at >= 0) & (axis <= ts[-1])
        series.append([values[i] if ok else None for i, ok in zip(at.tolist(), inside.tolist())])
    return stamps, series


def compare_view(resp: runs_pb2.CompareRunsResponse, prefix: str = "") -> dict[str, Any]:
    """Runs side by side: their details, each metric and parameter as a row of values (one
    per run, in the requested order), and their equity curves on a common time axis."""
    runs = [run_detail(r, prefix) for r in resp.runs]
    ids = [r.run_id for r in resp.runs]
    metric_names = list(runs[0]["metrics"]) if runs else []
    param_names: list[str] = []
    for r in runs:
        for name in r["parameters"]:
            if name not in param_names:
                param_names.append(name)
    stamps, series = common_axis([list(e.points) for e in resp.equity])
    return {
        "ids": ids,
        "runs": runs,
        "metrics": {name: [r["metrics"][name] for r in runs] for name in metric_names},
        "parameters": {name: [r["parameters"].get(name) for r in runs] for name in param_names},
        "equity": {
            "timestamps": [iso(t) for t in stamps],
            "series": [{"id": i, "equity": s} for i, s in zip(ids, series)],
        },
    }


# ---------------------------------------------------------------- CSV

TRADE_COLUMNS = (
    "trade", "side", "entry_time", "exit_time", "entry_price", "exit_price", "units", "entry_value", "exit_value",
    "pnl", "return_pct", "commission", "duration_seconds", "exit_reason",
)


def _cell(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else value


def trades_csv(trades: Any) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TRADE_COLUMNS)
    for i, t in enumerate(trades, start=1):
        row = trade_view(t)
        row["trade"] = i
        w.writerow([_cell(row[c]) for c in TRADE_COLUMNS])
    return buf.getvalue()


def equity_csv(points: Any, cash: float) -> str:
    """The curve with the drawdown below its running peak (which starts at the initial cash)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("timestamp", "equity", "buy_and_hold", "drawdown_pct"))
    peak = cash
    for p in points:
        peak = max(peak, p.equity)
        dd = (p.equity / peak - 1.0) * 100.0 if peak > 0 else None
        w.writerow((iso(p.ts), _cell(p.equity), _cell(p.buy_and_hold), _cell(dd) if dd is not None else ""))
    return buf.getvalue()


class DayByDayReplayQueued(ResponseModel):
    """A day-by-day run's replay: the new job, as seed 004's run answers, and the run replayed."""

    job_id: str
    status: str
    message: str
    replay_of: int
