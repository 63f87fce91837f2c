"""The run report (`GET /runs/{id}/report`): its JSON shape, and the report built from a
run's series as results keeps them (`RunsService.GetRunSeries`).

The figures are domain.report's (one home for their definitions, shown in /docs from its
docstring); this module only turns the stored series into its inputs and adds what the
run is (its detail, dataset, the Hindsight version) and notes on what could not be exact.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from hindsight.runs.v1 import runs_pb2
from pydantic import Field

from domain import report as rp
from domain.market import PERIODS_PER_YEAR
from services.gateway.presenters.common import ResponseModel, utc_now
from services.gateway.presenters.runs import RunDetail, run_detail

_DEFINITIONS_AT = "Definitions\n-----------\n"
# The definitions as /docs shows them: domain.report's own docstring, from "Definitions" on.
DEFINITIONS_DOC = (rp.__doc__ or "").split(_DEFINITIONS_AT, 1)[-1].strip()


@cache
def hindsight_version() -> str:
    """The version in pyproject.toml: from the installed project (`pip install -e .`, what
    `make build` does), else read from the checkout's pyproject.toml; "unknown" without either."""
    try:
        return importlib.metadata.version("hindsight")
    except importlib.metadata.PackageNotFoundError:
        pass
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "pyproject.toml"
        if candidate.is_file():
            try:
                return str(tomllib.loads(candidate.read_text())["project"]["version"])
            except (KeyError, ValueError, OSError):
                break
    return "unknown"


# ---------------------------------------------------------------- shapes


class ReportDataset(ResponseModel):
    dataset_id: str
    interval: str
    version: int
    calendar: str = Field(description="continuous (P = 365) or sessions (P = 252)")
    timezone: str = Field(description="the timezone of the run's days (months and years too)")


class ReportEquity(ResponseModel):
    """The stored equity curve against buy-and-hold, and its underwater curve."""

    points_total: int = Field(description="points stored for the run (at most 2,000 for a backtest)")
    timestamps: list[str]
    equity: list[float | None]
    buy_and_hold: list[float | None]
    drawdown_pct: list[float | None] = Field(description="below the running peak (which starts at the cash), <= 0")


class Drawdown(ResponseModel):
    start: str = Field(description="time of the peak it falls from")
    trough: str = Field(description="time of its lowest point")
    recovery: str | None = Field(description="first time back at the peak; null: not recovered")
    depth_pct: float | None = Field(description="(trough / peak - 1) x 100, <= 0")
    length_days: float = Field(description="from start to recovery (or to the last point), in days of 24 h")


class MonthlyReturn(ResponseModel):
    year: int
    month: int = Field(ge=1, le=12)
    return_pct: float | None


class YearlyReturn(ResponseModel):
    year: int
    return_pct: float | None


class DailyPnl(ResponseModel):
    date: str
    pnl: float | None
    return_pct: float | None


class RollingSharpe(ResponseModel):
    window: int = Field(description="daily returns in each window (days with bars)")
    points_total: int = Field(description="windows computed (one per day from the window-th on)")
    points: list[tuple[str, float | None]] = Field(
        description="[time of the window's last day, Sharpe ratio or null]; at most 2,000, extremes kept")


class Histogram(ResponseModel):
    edges_pct: list[float]
    counts: list[int]


class ReturnDistribution(ResponseModel):
    count: int
    mean_pct: float | None
    std_pct: float | None
    min_pct: float | None
    max_pct: float | None
    positive_pct: float | None = Field(description="share of days with a positive return")
    histogram: Histogram


class Exposure(ResponseModel):
    long_pct: float | None
    short_pct: float | None
    bars: int | None = Field(description="bars of the run")
    bars_in_market: int | None


class TradeMarker(ResponseModel):
    side: str
    entry_time: str
    entry_price: float | None
    exit_time: str
    exit_price: float | None
    return_pct: float | None


class ReportLinks(ResponseModel):
    run: str
    html: str = Field(description="this report as one self-contained HTML file")
    bars: str | None = Field(description="the dataset's bars over the run's days, for the price chart")


class RunReport(ResponseModel):
    """A run's report (the tearsheet): every chart's numbers in one answer."""

    run_id: int
    run: RunDetail
    dataset: ReportDataset | None = Field(description="null: the run's dataset is gone")
    hindsight_version: str
    generated_at: str
    periods_per_year: float
    days: int = Field(description="days with bars (the daily returns)")
    first_day: str | None
    last_day: str | None
    equity: ReportEquity
    drawdowns: list[Drawdown] = Field(description="the 5 deepest, deepest first")
    monthly_returns: list[MonthlyReturn]
    yearly_returns: list[YearlyReturn]
    calendar: Literal["daily", "monthly"] = Field(
        description="daily: the run spans less than two months, daily_pnl is shown instead of monthly returns")
    daily_pnl: list[DailyPnl] | None
    rolling_sharpe: RollingSharpe
    daily_returns: ReturnDistribution
    trade_returns_pct: list[float | None] = Field(description="every trade's return, oldest first")
    exposure_pct: float | None = Field(description="share of the run's bars with a position open")
    exposure: Exposure
    trades_total: int
    trades: list[TradeMarker] = Field(description="the trades to draw on the price chart (at most 5,000, evenly)")
    day_ends_source: str = Field(description="stored, or curve (a run saved before day ends were kept)")
    notes: list[str]
    links: ReportLinks


# ---------------------------------------------------------------- builder


def _notes(resp: runs_pb2.GetRunSeriesResponse) -> list[str]:
    run, notes = resp.run, []
    if resp.day_ends_source == "curve" and run.kind != "day_by_day" and run.bars > len(resp.points):
        notes.append("This run was saved before its day-end equity was kept: monthly returns, the rolling Sharpe "
                     "ratio and the daily returns use the last stored point of each day. Replay the run for exact "
                     "figures.")
    if not resp.HasField("exposure"):
        notes.append("This run was saved before its bars in the market were counted: replay it for its exposure.")
    if not resp.HasField("dataset"):
        notes.append("The run's dataset is gone: P = 365 and UTC days are assumed.")
    if run.kind == "day_by_day":
        notes.append("A day-by-day run: its equity is the day-end equity (every day squares off), so its drawdowns "
                     "are between day ends.")
    return notes


def report_view(resp: runs_pb2.GetRunSeriesResponse, window: int | None, prefix: str = "") -> dict[str, Any]:
    """The report of a run from its series (CPU work: call it off the event loop)."""
    run = resp.run
    calendar = resp.dataset.calendar if resp.HasField("dataset") else ""
    periods = float(PERIODS_PER_YEAR.get(calendar, 365))
    points = resp.points
    curve = rp.Curve(
        np.fromiter((p.ts for p in points), dtype=np.int64, count=len(points)),
        np.fromiter((p.equity for p in points), dtype=np.float64, count=len(points)),
        np.fromiter((p.buy_and_hold for p in points), dtype=np.float64, count=len(points)),
    )
    ends = resp.day_ends
    days = rp.DayEnds.of([d.date for d in ends], [d.ts for d in ends], [d.equity for d in ends])
    trades = [rp.TradeSpan(t.side, t.entry_ts, t.exit_ts, t.entry_price, t.exit_price, t.return_pct)
              for t in resp.trades]
    held = None
    if resp.HasField("exposure"):
        e = resp.exposure
        held = rp.MarketBars(bars=e.bars, in_market=e.in_market, long_bars=e.long_bars, short_bars=e.short_bars)
    figures = rp.build_report(cash=run.cash, periods_per_year=periods, curve=curve, days=days, trades=trades,
                              market_bars=held, window=window)
    base = f"{prefix}/runs/{run.run_id}"
    dataset = None
    bars_link = None
    if resp.HasField("dataset"):
        d = resp.dataset
        dataset = {"dataset_id": d.dataset_id, "interval": d.interval, "version": d.version,
                   "calendar": d.calendar, "timezone": d.timezone}
        span = f"?start={figures['first_day']}&end={figures['last_day']}" if figures["first_day"] else ""
        bars_link = f"/api/v1/datasets/{d.dataset_id}/bars{span}"
    return {
        "run_id": run.run_id,
        "run": run_detail(run, prefix),
        "dataset": dataset,
        "hindsight_version": hindsight_version(),
        "generated_at": utc_now(),
        **figures,
        "day_ends_source": resp.day_ends_source or "stored",
        "notes": _notes(resp),
        "links": {"run": base, "html": f"{base}/report.html", "bars": bars_link},
    }
