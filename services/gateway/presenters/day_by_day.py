"""Day-by-day backtests of rule strategies: seed 002's start, SSE events, all-days answer;
seed 004's run, status, metadata, day file, clear and cleanup."""

from __future__ import annotations

import json
from typing import Any

from hindsight.backtest.v1 import backtest_pb2
from pydantic import ConfigDict, Field
from sse_starlette import ServerSentEvent

from services.gateway.presenters.common import ResponseModel, timestamp

# The events of a day-by-day backtest's stream, by name.
DAY_STREAM_EVENTS = ("day_started", "day_completed", "backtest_completed", "error")


# ---------------------------------------------------------------- seed 004


class DayByDayQueued(ResponseModel):
    job_id: str
    status: str
    message: str


class DayByDayProgress(ResponseModel):
    current_date: str | None
    completed_days: int
    total_days: int
    percentage: float


class DayByDayStatus(ResponseModel):
    job_id: str
    user_id: str | None
    strategy_id: str
    status: str = Field(description="queued, running, completed or failed")
    progress: DayByDayProgress
    started_at: str | None
    estimated_completion: str | None
    error: str | None


class PositionsSummary(ResponseModel):
    total_positions: int
    total_pnl: float
    win_rate: float
    total_winning_trades: int
    total_losing_trades: int


class DailySummary(ResponseModel):
    date: str = Field(description="DD-MM-YYYY")
    positions: int
    pnl: float
    has_data: bool
    file_size_kb: float


class DayByDayMetadata(ResponseModel):
    job_id: str
    strategy_id: str
    strategy_name: str
    start_date: str
    end_date: str
    total_days: int
    status: str
    created_at: str | None
    expires_at: str | None
    overall_summary: PositionsSummary
    daily_summaries: list[DailySummary]


class DayPositionsSummary(ResponseModel):
    total_positions: int
    closed_positions: int
    total_pnl: float
    winning_trades: int
    losing_trades: int
    win_rate: float


class DayPositions(ResponseModel):
    """One day's positions with the diagnostics of their entry and exit."""

    date: str = Field(description="DD-MM-YYYY")
    summary: DayPositionsSummary
    positions: list[dict[str, Any]] = Field(
        description="position_id, position_num, re_entry_num, symbol, side, quantity, entry/exit price and time, "
        "pnl, exit_reason, diagnostic_data, exit_diagnostic_data, condition_preview, node_variables, ..."
    )


class DayByDayCleared(ResponseModel):
    message: str
    deleted_files: int
    freed_space_mb: float


class CleanupStatus(ResponseModel):
    cleanup_enabled: bool
    ttl_hours: int | float
    message: str


class CleanupRun(ResponseModel):
    message: str
    deleted_strategies: int
    freed_space_mb: float
    cutoff_time: str | None


def _dmy(iso: str) -> str:
    return f"{iso[8:10]}-{iso[5:7]}-{iso[0:4]}"


def status_view(s: backtest_pb2.GetBacktestStatusResponse) -> dict[str, Any]:
    return {
        "job_id": s.job_id,
        "user_id": s.user_id or None,
        "strategy_id": s.strategy_id,
        "status": s.status,
        "progress": {
            "current_date": s.current_date or None,
            "completed_days": s.completed_days,
            "total_days": s.total_days,
            "percentage": s.percentage,
        },
        "started_at": timestamp(s.started_at),
        "estimated_completion": timestamp(s.estimated_completion),
        "error": s.error or None,
    }


def metadata_view(m: backtest_pb2.GetBacktestMetadataResponse) -> dict[str, Any]:
    positions = sum(d.positions for d in m.days)
    wins = sum(d.winning_trades for d in m.days)
    return {
        "job_id": m.job_id,
        "strategy_id": m.spec.strategy_id,
        "strategy_name": m.spec.strategy_name,
        "start_date": m.spec.start_date,
        "end_date": m.spec.end_date,
        "total_days": m.spec.total_days,
        "status": m.status,
        "created_at": timestamp(m.created_at),
        "expires_at": timestamp(m.expires_at),
        "overall_summary": {
            "total_positions": positions,
            "total_pnl": round(sum(d.pnl for d in m.days), 2),
            "win_rate": round(wins / positions * 100, 2) if positions else 0.0,
            "total_winning_trades": wins,
            "total_losing_trades": sum(d.losing_trades for d in m.days),
        },
        "daily_summaries": [
            {
                "date": _dmy(d.date),
                "positions": d.positions,
                "pnl": round(d.pnl, 2),
                "has_data": d.has_data,
                "file_size_kb": d.file_size_kb,
            }
            for d in m.days
        ],
    }


def _mb(n_bytes: int) -> float:
    return round(n_bytes / (1024 * 1024), 3)


def cleared_view(strategy_id: str, r: backtest_pb2.ClearBacktestDataResponse) -> dict[str, Any]:
    return {
        "message": f"Cleared all backtest data for strategy {strategy_id}",
        "deleted_files": r.deleted_files,
        "freed_space_mb": _mb(r.freed_bytes),
    }


def cleanup_status_view(r: backtest_pb2.GetCleanupStatusResponse) -> dict[str, Any]:
    ttl: float | int = int(r.ttl_hours) if float(r.ttl_hours).is_integer() else r.ttl_hours
    return {
        "cleanup_enabled": r.cleanup_enabled,
        "ttl_hours": ttl,
        "message": "Cleanup runs automatically on startup and periodically",
    }


def cleanup_run_view(r: backtest_pb2.RunCleanupResponse) -> dict[str, Any]:
    return {
        "message": "Cleanup completed",
        "deleted_strategies": r.deleted_strategies,
        "freed_space_mb": _mb(r.freed_bytes),
        "cutoff_time": timestamp(r.cutoff_time),
    }


# ---------------------------------------------------------------- seed 002


class DayByDayStarted(ResponseModel):
    backtest_id: str = Field(description="{strategy_id}_{start_date}_{end_date}")
    total_days: int = Field(description="days with bars in the strategy's session")
    status: str
    stream_url: str
    job_id: str


class DayTradesSummary(ResponseModel):
    total_trades: int
    total_pnl: str
    winning_trades: int
    losing_trades: int
    win_rate: str


class DayTrade(ResponseModel):
    """A closed trade. An option leg's trade also carries `strike`, `option_type` and the
    underlying's spot at entry and exit (`<underlying>_spot_at_entry` / `_spot_at_exit`,
    e.g. `nifty_spot_at_entry`), and its `symbol` is the contract's
    (`NIFTY:2024-10-31:OPT:24350:PE`)."""

    # The spot fields are named after the underlying, so they cannot be declared here.
    model_config = ConfigDict(extra="allow")

    trade_id: str
    position_id: str
    re_entry_num: int
    symbol: str
    side: str
    quantity: int | float
    entry_price: str
    entry_time: str
    exit_price: str
    exit_time: str
    pnl: str
    pnl_percent: str
    duration_minutes: float
    status: str
    entry_flow_ids: list[str]
    exit_flow_ids: list[str]
    entry_trigger: str
    exit_reason: str


class OverallSummary(ResponseModel):
    total_days: int
    total_trades: int
    total_pnl: str
    win_rate: str
    largest_win: str
    largest_loss: str


class DayOfBacktest(ResponseModel):
    date: str
    day_number: int
    summary: DayTradesSummary
    trades: list[DayTrade]


class DayByDayAllDays(ResponseModel):
    """A finished day-by-day backtest: the overall summary and every day's summary and trades."""

    backtest_id: str
    job_id: str
    strategy_id: str
    start_date: str
    end_date: str
    total_days: int
    status: str
    overall_summary: OverallSummary | None
    days: list[DayOfBacktest]


def started_view(job: Any, stream_url: str) -> dict[str, Any]:
    spec = job.day_backtest
    return {
        "backtest_id": spec.backtest_id,
        "total_days": spec.total_days,
        "status": "ready",
        "stream_url": stream_url,
        "job_id": job.job_id,
    }


def day_event(ev: Any) -> ServerSentEvent | None:
    """A stored job event as an event of the day-by-day stream (None: not one of its events)."""
    try:
        data = json.loads(ev.data_json)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("event") in DAY_STREAM_EVENTS:
        return ServerSentEvent(data=json.dumps(data.get("data")), event=data["event"], id=str(ev.seq))
    if ev.type == "error":
        message = data.get("message") if isinstance(data, dict) else None
        return ServerSentEvent(data=json.dumps({"date": None, "error": message or "backtest failed"}), event="error", id=str(ev.seq))
    return None


def all_days_view(job: Any, overall: dict[str, Any] | None, days: list[dict[str, Any]]) -> dict[str, Any]:
    spec = job.day_backtest
    return {
        "backtest_id": spec.backtest_id,
        "job_id": job.job_id,
        "strategy_id": spec.strategy_id,
        "start_date": spec.start_date,
        "end_date": spec.end_date,
        "total_days": spec.total_days,
        "status": "completed",
        "overall_summary": overall,
        "days": days,
    }
