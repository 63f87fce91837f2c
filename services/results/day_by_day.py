"""Day-by-day backtests (seeds 002 and 004) on the results side: submission, the days the
engine stores, completion, the job's end, and what users read (status, metadata, day files),
clear and cleanup. services.results.kinds.day_by_day makes this the handler of JOB_KIND_DAY_BY_DAY.

Every function takes a `Session` inside the caller's transaction. Job rows are
locked before a change (services.results.jobs.locked_job). Artifacts are written
through the `ArtifactStore` inside the transaction that records them, after the
job row is locked, so a cancel (or a clear) and a late write of the engine
never interleave.

Job events of these jobs carry the seed-002 SSE event in an envelope
``{"event": name, "data": payload, ...}`` (`progress` rows for day_started /
day_completed, `done` for backtest_completed, `error` for error), plus the
generic ``percent``/``message``/``done``/``error`` keys of other jobs' streams.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import secrets
import zlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.backtest_spec import DAY_BY_DAY_CAPITAL_DEFAULT, DAY_BY_DAY_COST_PCT_MAX
from domain.market import NS_PER_DAY, PERIODS_PER_YEAR
from domain.metrics import day_by_day_metrics
from domain.report import TradeSpan, bars_in_market
from domain.rules.strategy import uses_option_legs
from domain.sessions import SessionDays, session_days
from domain.sweep import CASH_MAX
from services.results import jobs, option_chains, runs
from services.results.artifacts import FILE_NAMES, ArtifactStore, Removed, check_date, check_strategy_id, check_user_id
from services.results.bar_arrays import BarArrays
from services.results.datasets import load_bars, resolve_dataset
from services.results.errors import FailedPrecondition, InvalidArgument, NotFound
from services.results.jobs import JobEnd, Submission
from services.results.market_store import MarketStore
from services.results.models import Dataset, DatasetVersion, Job
from services.results.models_day_by_day import DayByDayBacktest, DayByDayBacktestDay
from services.results.strategies import get_strategy
from services.results.timefmt import rfc3339, utcnow

log = logging.getLogger(__name__)

MAX_RANGE_DAYS = 3_700
MAX_DAYS_PER_STORE = 500


@dataclass(frozen=True)
class DayByDayConfig:
    """Where artifacts go, how long they live, where bars are read, how long ranges are split."""

    store: ArtifactStore
    ttl_hours: float
    # The market-data store: the dataset's bars a backtest is planned and reported on.
    market: MarketStore
    # Days per shard (0: a range is never split).
    shard_days: int = 60


MAX_SHARDS = 32


def shard_ranges(days: list[date], shard_days: int) -> list[tuple[date, date, int]]:
    """Contiguous (first day, last day, days before it) shards of at most ~`shard_days` days;
    one shard (the whole range) when it is short enough."""
    n = len(days)
    k = 1 if shard_days <= 0 else min(MAX_SHARDS, max(1, math.ceil(n / shard_days)))
    size = math.ceil(n / k)
    return [(days[i], days[min(i + size, n) - 1], i) for i in range(0, n, size)]


@dataclass(frozen=True)
class DayIn:
    """One finished day from the engine."""

    date: str
    day_number: int
    summary: dict[str, Any]
    positions: int
    pnl: float
    winning: int
    losing: int
    largest_win: float
    largest_loss: float
    files: list[tuple[str, bytes]]
    gross_profit: float = 0.0
    gross_loss: float = 0.0
    trade_seconds: float = 0.0


def new_job_id(now: datetime) -> str:
    """Seed 004's `bt_20241202_153045_abc123`."""
    return f"bt_{now.strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(3)}"


def _money(x: float) -> str:
    return f"{x:.2f}"


def _finite(x: Any, field: str, default: float, lo: float, hi: float) -> float:
    value = default if x in (None, 0, 0.0) and default else x
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{field} must be a number") from None
    if not math.isfinite(f) or not lo <= f <= hi:
        raise InvalidArgument(f"{field} must be between {lo:g} and {hi:g}")
    return f


def _active_key(tenant_id: str, user_id: str, strategy_id: str) -> str:
    # One running job per seed-004 user; one per strategy among seed-002 runs.
    return f"{tenant_id}/{user_id}" if user_id else f"{tenant_id}//{strategy_id}"


# ---------------------------------------------------------------- submission


def submit(session: Session, config: DayByDayConfig, submission: Submission, spec: dict[str, Any]) -> Job:
    """Check the spec (a DayBacktestSpec as a dict), queue the job (row, first event, one
    JobMessage per shard) and replace the previous artifacts of the same user (or seed-002
    partition) and strategy."""
    tenant_id = submission.tenant_id
    jobs.check_tenant(session, tenant_id)
    strategy_id = check_strategy_id(str(spec.get("strategy_id") or ""))
    user_id = check_user_id(str(spec.get("user_id") or ""), required=False)
    start = check_date(str(spec.get("start_date") or ""), "start_date")
    end = check_date(str(spec.get("end_date") or ""), "end_date")
    if end < start:
        raise InvalidArgument("end_date must not be before start_date")
    if (end - start).days > MAX_RANGE_DAYS:
        raise InvalidArgument(f"a backtest covers at most {MAX_RANGE_DAYS} days")
    capital = _finite(spec.get("initial_capital"), "initial_capital", DAY_BY_DAY_CAPITAL_DEFAULT, 1e-6, CASH_MAX)
    slippage = _finite(spec.get("slippage_pct") or 0.0, "slippage_percentage", 0.0, 0.0, DAY_BY_DAY_COST_PCT_MAX)
    commission = _finite(spec.get("commission_pct") or 0.0, "commission_percentage", 0.0, 0.0, DAY_BY_DAY_COST_PCT_MAX)
    strategy = get_strategy(session, tenant_id, strategy_id)
    definition = strategy.definition
    ticker = definition["dataset"]["ticker"]
    interval = definition["dataset"].get("interval") or ""
    view = resolve_dataset(session, tenant_id, ticker, interval)
    if view is None:
        raise InvalidArgument(f"Failed to fetch market data: no {ticker} dataset{f' at {interval}' if interval else ''}")
    # Option legs trade contracts of the underlying's chain (the engine reads it day by day).
    if uses_option_legs(definition) and option_chains.resolve_chain(session, tenant_id, view.ticker) is None:
        raise InvalidArgument(
            f"the strategy trades option legs and there is no option chain of {view.ticker}: "
            f"import one (POST /api/v1/datasets, kind=option_chain, ticker={view.ticker})"
        )
    bars = load_bars(session, config.market, view.version_id)
    plan = _plan(bars, definition, view.timezone, start, end)
    total_days = int(plan.days.size)
    shards = shard_ranges(plan.dates(), config.shard_days) if total_days else []
    if total_days == 0:
        raise InvalidArgument(f"Failed to fetch market data: no {ticker} bars between {start} and {end}")

    now = utcnow()
    backtest_id = f"{strategy_id}_{start.isoformat()}_{end.isoformat()}"
    job = jobs.queued_job(
        submission,
        job_id=new_job_id(now),
        combinations=total_days,
        estimated_duration_seconds=max(1, math.ceil(1 + total_days / 100)),
        now=now,
        # One strategy over the bars of its trading days.
        bar_pairs=int((plan.ends - plan.starts).sum()),
    )
    bt = DayByDayBacktest(
        job_id=job.job_id,
        tenant_id=tenant_id,
        user_id=user_id,
        strategy_id=strategy_id,
        strategy_name=strategy.name,
        backtest_id=backtest_id,
        start_date=start.isoformat(),
        end_date=end.isoformat(),
        ticker=view.ticker,
        interval=view.interval,
        dataset_version_id=view.version_id,
        initial_capital=capital,
        slippage_pct=slippage,
        commission_pct=commission,
        strategy_definition=definition,
        total_days=total_days,
        completed_days=0,
        current_date="",
        summary=None,
        shards=len(shards),
        engine_seconds=0.0,
        active_key=_active_key(tenant_id, user_id, strategy_id),
        created_at=now,
        expires_at=now + timedelta(hours=config.ttl_hours),
        artifacts_cleared_at=None,
    )
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
            session.add(bt)
            session.flush()
    except IntegrityError:
        running = session.scalar(sa.select(DayByDayBacktest).where(DayByDayBacktest.active_key == bt.active_key))
        if running is None:
            raise
        who = f"user {user_id}" if user_id else f"strategy {strategy_id}"
        raise FailedPrecondition(f"Job already running for {who}: {running.job_id}") from None
    jobs.append_queued_event(session, job)
    # Days are independent (every day squares off): any engine replica may take any shard.
    parts = [{"day_start": a.isoformat(), "day_end": b.isoformat(), "day_offset": n} for a, b, n in shards]
    jobs.queue_job(session, job, submission, parts if len(parts) > 1 else None)
    # A new run replaces the previous artifacts of the same user and strategy.
    previous = session.scalars(
        sa.select(DayByDayBacktest).where(
            DayByDayBacktest.tenant_id == tenant_id,
            DayByDayBacktest.user_id == user_id,
            DayByDayBacktest.strategy_id == strategy_id,
            DayByDayBacktest.job_id != job.job_id,
            DayByDayBacktest.artifacts_cleared_at.is_(None),
        )
    ).all()
    for row in previous:
        row.artifacts_cleared_at = now
    config.store.delete_strategy(tenant_id, user_id, strategy_id)
    session.flush()
    return job


def _plan(bars: BarArrays, definition: dict[str, Any], dataset_timezone: str, start: date, end: date) -> SessionDays:
    """The trading days of [start, end] as the strategy's session sees them (domain.sessions)."""
    sess = definition.get("session") or {}

    def minutes(key: str) -> int | None:
        v = sess.get(key)
        return None if not v else int(v[:2]) * 60 + int(v[3:])

    return session_days(bars.ts, sess.get("timezone") or dataset_timezone, start, end, minutes("start"), minutes("end"))


def spec_of(bt: DayByDayBacktest) -> dict[str, Any]:
    """The DayBacktestSpec fields of a run."""
    return {
        "strategy_id": bt.strategy_id,
        "user_id": bt.user_id,
        "start_date": bt.start_date,
        "end_date": bt.end_date,
        "initial_capital": bt.initial_capital,
        "slippage_pct": bt.slippage_pct,
        "commission_pct": bt.commission_pct,
        "backtest_id": bt.backtest_id,
        "strategy_json": json.dumps(bt.strategy_definition),
        "ticker": bt.ticker,
        "interval": bt.interval,
        "total_days": bt.total_days,
        "strategy_name": bt.strategy_name,
        "dataset_version_id": bt.dataset_version_id,
    }


def run_of(session: Session, job_id: str) -> DayByDayBacktest:
    bt = session.get(DayByDayBacktest, job_id)
    if bt is None:
        raise NotFound(f"job {job_id!r} is not a day-by-day backtest")
    return bt


# ---------------------------------------------------------------- engine side


def _days(session: Session, job_id: str) -> list[DayByDayBacktestDay]:
    return list(
        session.scalars(sa.select(DayByDayBacktestDay).where(DayByDayBacktestDay.job_id == job_id).order_by(DayByDayBacktestDay.date))
    )


def store_days(session: Session, config: DayByDayConfig, job_id: str, days: list[DayIn]) -> tuple[bool, str]:
    """Write the days' files and record them (events included); (stop, reason) like ReportProgress."""
    if len(days) > MAX_DAYS_PER_STORE:
        raise InvalidArgument(f"at most {MAX_DAYS_PER_STORE} days per call")
    job = jobs.locked_job(session, job_id)
    if job.state == jobs.CANCELLED:
        return True, "job cancelled"
    if job.state == jobs.FAILED:
        return True, f"job failed: {job.error_message}"
    if job.state == jobs.COMPLETED:
        return True, "job already completed"
    bt = run_of(session, job_id)
    if bt.artifacts_cleared_at is not None:
        return True, "artifacts cleared"
    existing = {d.date: d for d in _days(session, job_id)}
    lo, hi = date.fromisoformat(bt.start_date), date.fromisoformat(bt.end_date)
    now = rfc3339(utcnow())
    for day in days:
        d = check_date(day.date)
        if not lo <= d <= hi:
            raise InvalidArgument(f"day {day.date} is outside the backtest's range")
        names = [n for n, _ in day.files]
        if len(set(names)) != len(names) or any(n not in FILE_NAMES for n in names):
            raise InvalidArgument(f"day files must be distinct names among {', '.join(FILE_NAMES)}")
        size = config.store.write_day(bt.tenant_id, bt.user_id, bt.strategy_id, day.date, day.files)
        values = {
            "day_number": day.day_number,
            "positions": day.positions,
            "pnl": float(day.pnl),
            "winning_trades": day.winning,
            "losing_trades": day.losing,
            "largest_win": float(day.largest_win),
            "largest_loss": float(day.largest_loss),
            "gross_profit": float(day.gross_profit),
            "gross_loss": float(day.gross_loss),
            "trade_seconds": float(day.trade_seconds),
            "summary": day.summary,
            "file_bytes": size,
        }
        row = existing.get(day.date)
        if row is not None:  # a redelivered job runs again: same day, same events already sent
            for k, v in values.items():
                setattr(row, k, v)
            continue
        row = DayByDayBacktestDay(job_id=job_id, date=day.date, **values)
        session.add(row)
        existing[day.date] = row
        head = {"date": day.date, "day_number": day.day_number, "total_days": bt.total_days}
        done = len(existing)
        percent = jobs.percent(done / max(1, bt.total_days) * 100)
        message = f"Day {day.date} completed ({done}/{bt.total_days})"
        jobs.append_event(session, job, "progress", {"event": "day_started", "data": head, "timestamp": now})
        jobs.append_event(
            session,
            job,
            "progress",
            {
                "event": "day_completed",
                "data": {**head, "summary": day.summary, "has_detail_data": day.positions > 0},
                "percent": percent,
                "message": message,
                "timestamp": now,
            },
        )
        job.percent = float(percent)
        job.progress_message = message
    bt.completed_days = len(existing)
    bt.current_date = max(existing) if existing else ""
    return False, ""


def overall_summary(bt: DayByDayBacktest, rows: list[DayByDayBacktestDay]) -> dict[str, Any]:
    """Numbers of the whole run (rendered per seed by the callers)."""
    trades = sum(r.positions for r in rows)
    wins = sum(r.winning_trades for r in rows)
    return {
        "total_days": bt.total_days,
        "completed_days": len(rows),
        "total_trades": trades,
        "total_pnl": math.fsum(r.pnl for r in rows),
        "winning_trades": wins,
        "losing_trades": sum(r.losing_trades for r in rows),
        "win_rate": wins / trades * 100 if trades else 0.0,
        "largest_win": max((r.largest_win for r in rows), default=0.0),
        "largest_loss": min((r.largest_loss for r in rows), default=0.0),
    }


def formatted_summary(s: dict[str, Any]) -> dict[str, Any]:
    """The overall summary as the stream's backtest_completed and the callback show it (money as strings)."""
    return {
        "total_days": s["total_days"],
        "total_trades": s["total_trades"],
        "total_pnl": _money(s["total_pnl"]),
        "win_rate": _money(s["win_rate"]),
        "largest_win": _money(s["largest_win"]),
        "largest_loss": _money(s["largest_loss"]),
    }


def complete(
    session: Session, config: DayByDayConfig, job_id: str, execution_time_seconds: float, bars: int,
    whole_range: bool = True,
) -> tuple[bool, bool]:
    """An engine finished its days (the whole range, or one shard); (stored, job completed).

    The job completes when the whole range was run, or when a shard finishes and every
    day of the range is stored (the last shard to finish completes it)."""
    job = jobs.locked_job(session, job_id)
    if job.state == jobs.COMPLETED:
        return True, True
    if job.state in (jobs.FAILED, jobs.CANCELLED):
        return False, False
    if job.state != jobs.RUNNING:
        raise FailedPrecondition(f"job {job_id!r} is {job.state}, not running")
    bt = run_of(session, job_id)
    bt.engine_seconds = float(bt.engine_seconds or 0.0) + max(0.0, float(execution_time_seconds))
    rows = _days(session, job_id)
    if not whole_range and len(rows) < bt.total_days:
        return True, False
    bt.summary = overall_summary(bt, rows)
    now = utcnow()
    started = job.started_at or job.created_at
    job.metrics = {
        "duration_seconds": round((now - started).total_seconds(), 1),
        "days": len(rows),
        "total_trades": bt.summary["total_trades"],
        "execution_time_seconds": round(bt.engine_seconds, 3),
        "bars": int(bars),
        "shards": bt.shards,
    }
    save_as_run(session, config, job, bt)
    jobs.end_job(session, job, jobs.COMPLETED, finish)
    return True, True


def run_figures(
    session: Session, market: MarketStore, bt: DayByDayBacktest, rows: list[DayByDayBacktestDay],
    trades: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], dict[str, list[Any]], list[str], dict[str, int]]:
    """A finished day-by-day backtest's metrics (domain.metrics.day_by_day_metrics, on its
    day-end equity), its equity curve against buy-and-hold, one point per trading day, the
    trading days (YYYY-MM-DD, in the session's timezone) of those points, and how many of the
    days' session bars `trades` held a position at (domain.report.bars_in_market).

    Buy-and-hold puts the initial capital into the underlying at the open of the first
    trading day's first session bar and holds it; each point is marked at the close of the
    day's last session bar, where the strategy's day ends."""
    version = session.get(DatasetVersion, bt.dataset_version_id)
    dataset = session.get(Dataset, version.dataset_id) if version is not None else None
    if dataset is None:
        raise NotFound(f"dataset version {bt.dataset_version_id} is gone")
    bars = load_bars(session, market, bt.dataset_version_id)
    plan = _plan(bars, bt.strategy_definition, dataset.timezone,
                 date.fromisoformat(bt.start_date), date.fromisoformat(bt.end_date))
    by_date = {r.date: r for r in rows}
    days = [d.isoformat() for d in plan.dates()]
    pnls = [float(by_date[d].pnl) if d in by_date else 0.0 for d in days]
    ntrades = sum(r.positions for r in rows)
    metrics = day_by_day_metrics(
        initial_cash=bt.initial_capital,
        day_pnls=pnls,
        periods_per_year=PERIODS_PER_YEAR.get(dataset.calendar, 365),
        span_days=(int(bars.ts[plan.ends[-1] - 1]) - int(bars.ts[plan.starts[0]])) / NS_PER_DAY if days else 0.0,
        ntrades=ntrades,
        nwins=sum(r.winning_trades for r in rows),
        gross_profit=math.fsum(r.gross_profit for r in rows),
        gross_loss=math.fsum(r.gross_loss for r in rows),
        duration_ns=math.fsum(r.trade_seconds for r in rows) * 1e9,
    )
    ts, equity, hold = [], [], []
    if days:
        units = bt.initial_capital / float(bars.open[plan.starts[0]])
        cash = bt.initial_capital
        for j, pnl in enumerate(pnls):
            last = int(plan.ends[j]) - 1
            cash += pnl
            ts.append(int(bars.ts[last]))
            equity.append(cash)
            hold.append(units * float(bars.close[last]))
    session_bars = (
        np.concatenate([np.arange(a, b) for a, b in zip(plan.starts.tolist(), plan.ends.tolist())])
        if days else np.empty(0, dtype=np.int64)
    )
    held = bars_in_market(np.asarray(bars.ts)[session_bars], [
        TradeSpan(t["side"], t["entry_ts"], t["exit_ts"], t["entry_price"], t["exit_price"], t["return_pct"])
        for t in trades or []
    ])
    exposure = {"bars": held.bars, "in_market": held.in_market, "long_bars": held.long_bars,
                "short_bars": held.short_bars}
    return metrics, {"ts": ts, "equity": equity, "buy_and_hold": hold}, days, exposure


# Positions a day-by-day run keeps as its trades (beyond: the first ones, and the report says so).
MAX_RUN_TRADES = 100_000


def _epoch_ns(text: str) -> int:
    # The trades file writes instants with their UTC offset, to the second.
    return int(datetime.fromisoformat(text).timestamp()) * 1_000_000_000


def run_trades(store: ArtifactStore, bt: DayByDayBacktest, rows: list[DayByDayBacktestDay]) -> list[dict[str, Any]]:
    """The positions of a finished run as trades (engine.v1.Trade fields), oldest first, read
    back from its day files: instants from seed 002's trades file (with their offsets), exact
    prices, P&L and commission from seed 004's positions file (same positions, same order).
    A day whose files are gone (cleared) contributes none."""
    out: list[dict[str, Any]] = []
    for row in rows:
        if row.positions <= 0 or len(out) >= MAX_RUN_TRADES:
            continue
        try:
            out.extend(_day_trades(store, bt, row.date))
        except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError, AttributeError):  # a damaged file
            log.warning("could not read a day's trades back", extra={"job_id": bt.job_id, "date": row.date},
                        exc_info=True)
    out.sort(key=lambda t: (t["entry_ts"], t["exit_ts"]))
    return out[:MAX_RUN_TRADES]


def _day_trades(store: ArtifactStore, bt: DayByDayBacktest, day: str) -> list[dict[str, Any]]:
    """One day's positions as trades (run_trades); none when its files are gone."""
    daily = store.read(bt.tenant_id, bt.user_id, bt.strategy_id, day, "trades_daily.json.gz")
    detail = store.read(bt.tenant_id, bt.user_id, bt.strategy_id, day, "positions.json.gz")
    if daily is None or detail is None:
        return []
    listed = json.loads(gzip.decompress(daily)).get("trades") or []
    positions = json.loads(gzip.decompress(detail)).get("positions") or []
    out: list[dict[str, Any]] = []
    for t, p in zip(listed, positions):
        qty = float(p.get("quantity") or 0.0)
        entry, exit_ = float(p["entry_price"]), float(p["exit_price"])
        out.append({
            "side": "short" if str(p.get("side", "")).upper() == "SELL" else "long",
            "entry_ts": _epoch_ns(t["entry_time"]),
            "exit_ts": _epoch_ns(t["exit_time"]),
            "entry_price": entry,
            "exit_price": exit_,
            "units": qty,
            "entry_value": entry * qty,
            "exit_value": exit_ * qty,
            "pnl": float(p["pnl"]),
            "return_pct": float(p["pnl_percent"]),
            "commission": float(p.get("commission") or 0.0),
            "exit_reason": str(p.get("exit_reason_code") or ""),
        })
    return out


def save_as_run(session: Session, config: DayByDayConfig, job: Job, bt: DayByDayBacktest) -> None:
    """Every backtest is also a saved run (services.results.runs), with the full metric set,
    an equity curve (one point per trading day, which is also its day-end equity) and its
    positions as trades (read back from the day files); never fails the job."""
    s = bt.summary or {}
    try:
        with session.begin_nested():
            rows = _days(session, job.job_id)
            trades = run_trades(config.store, bt, rows)
            metrics, curve, days, exposure = run_figures(session, config.market, bt, rows, trades)
            parameters = {"backtest_id": bt.backtest_id, "strategy_id": bt.strategy_id,
                          "definition": bt.strategy_definition}
            if bt.user_id:
                parameters["user_id"] = bt.user_id
            runs.save_run(
                session,
                bt.tenant_id,
                kind="day_by_day",
                ticker=bt.ticker,
                strategy=(bt.strategy_name or "rules")[:64],
                parameters=parameters,
                start_date=bt.start_date,
                end_date=bt.end_date,
                interval=bt.interval,
                cash=bt.initial_capital,
                metrics={
                    **metrics,
                    "pnl": s.get("total_pnl"),
                    "final_equity": bt.initial_capital + (s.get("total_pnl") or 0.0),
                    "winning_trades": s.get("winning_trades"),
                    "losing_trades": s.get("losing_trades"),
                    "buy_and_hold_return_pct": (curve["buy_and_hold"][-1] / bt.initial_capital - 1) * 100
                    if curve["buy_and_hold"] else None,
                },
                equity=curve,
                day_ends={"date": days, **curve},
                trades=trades or [],
                # Counted only from the trades read back (a run completed without its files: unknown).
                exposure=exposure if trades is not None else None,
                commission_pct=bt.commission_pct,
                slippage_pct=bt.slippage_pct,
                strategy_id=bt.strategy_id,
                job_id=job.job_id,
                bars=int((job.metrics or {}).get("bars") or 0),
                execution_time_seconds=float((job.metrics or {}).get("execution_time_seconds") or 0.0),
            )
    except Exception:  # a bug in the run record must not lose the backtest
        log.exception("could not save the day-by-day backtest as a run", extra={"job_id": job.job_id})


def finish(session: Session, job: Job, state: str, error_message: str, ts: str) -> JobEnd:
    """A day-by-day job's end: it no longer holds its user's (or strategy's) one active run,
    and its final event and callback are seed 002's (`backtest.completed` / `backtest.failed`)."""
    bt = run_of(session, job.job_id)
    bt.active_key = None
    base = {
        "job_id": job.job_id,
        "backtest_id": bt.backtest_id,
        "strategy_id": bt.strategy_id,
        "user_id": bt.user_id or None,
        "ticker": bt.ticker,
    }
    if state == jobs.COMPLETED:
        s = bt.summary or overall_summary(bt, _days(session, job.job_id))
        overall = formatted_summary(s)
        event = {
            "event": "backtest_completed",
            "data": {"backtest_id": bt.backtest_id, "overall_summary": overall},
            "done": True,
            "status": jobs.COMPLETED,
            "timestamp": ts,
        }
        payload = {
            "event_type": "backtest.completed",
            **base,
            "status": jobs.COMPLETED,
            "result_data": {
                "backtest_id": bt.backtest_id,
                "start_date": bt.start_date,
                "end_date": bt.end_date,
                "overall_summary": overall,
                "execution_time_seconds": (job.metrics or {}).get("execution_time_seconds", 0.0),
                "completed_at": ts,
            },
            "timestamp": ts,
        }
        return JobEnd(event, "backtest.completed", payload)
    event = {
        "event": "error",
        "data": {"date": bt.current_date or None, "error": error_message},
        "error": True,
        "message": error_message,
        "status": state,
        "timestamp": ts,
    }
    payload = {"event_type": "backtest.failed", **base, "status": state, "error_message": error_message, "timestamp": ts}
    return JobEnd(event, "backtest.failed", payload)


# ---------------------------------------------------------------- user side


def find_backtest(session: Session, tenant_id: str, backtest_id: str) -> DayByDayBacktest:
    bt = session.scalar(
        sa.select(DayByDayBacktest)
        .where(DayByDayBacktest.tenant_id == tenant_id, DayByDayBacktest.backtest_id == backtest_id)
        .order_by(DayByDayBacktest.created_at.desc())
        .limit(1)
    )
    if bt is None:
        raise NotFound(f"backtest {backtest_id!r} not found")
    return bt


def status(session: Session, tenant_id: str, job_id: str) -> tuple[Job, DayByDayBacktest, str]:
    """(job, run, estimated completion RFC 3339 or "")."""
    job = jobs.get_job(session, tenant_id, job_id)
    bt = session.get(DayByDayBacktest, job_id)
    if bt is None:
        raise NotFound(f"job {job_id!r} is not a day-by-day backtest")
    estimate = ""
    if job.state == jobs.COMPLETED:
        estimate = rfc3339(job.completed_at)
    elif job.state == jobs.RUNNING and job.started_at is not None and bt.completed_days > 0:
        elapsed = utcnow() - job.started_at
        estimate = rfc3339(job.started_at + elapsed * (bt.total_days / bt.completed_days))
    return job, bt, estimate


def newest_run(session: Session, tenant_id: str, user_id: str, strategy_id: str) -> DayByDayBacktest:
    bt = session.scalar(
        sa.select(DayByDayBacktest)
        .where(
            DayByDayBacktest.tenant_id == tenant_id,
            DayByDayBacktest.user_id == user_id,
            DayByDayBacktest.strategy_id == strategy_id,
            DayByDayBacktest.artifacts_cleared_at.is_(None),
        )
        .order_by(DayByDayBacktest.created_at.desc())
        .limit(1)
    )
    if bt is None:
        raise NotFound(f"No backtest data for user {user_id} and strategy {strategy_id}")
    return bt


def metadata(session: Session, tenant_id: str, user_id: str, strategy_id: str) -> tuple[DayByDayBacktest, Job, list[DayByDayBacktestDay]]:
    user_id = check_user_id(user_id)
    strategy_id = check_strategy_id(strategy_id)
    bt = newest_run(session, tenant_id, user_id, strategy_id)
    job = session.get(Job, bt.job_id)
    assert job is not None
    return bt, job, _days(session, bt.job_id)


def day_files(
    session: Session, config: DayByDayConfig, tenant_id: str, user_id: str, strategy_id: str, day: str, names: list[str], job_id: str
) -> list[tuple[str, bytes]]:
    """The stored files of one day (gzip bytes as on disk)."""
    if job_id:
        bt = run_of(session, job_id)
        if bt.tenant_id != tenant_id:
            raise NotFound(f"job {job_id!r} not found")
        if bt.artifacts_cleared_at is not None:
            raise NotFound("the backtest's files were replaced or expired; run it again")
    else:
        user_id = check_user_id(user_id)
        bt = newest_run(session, tenant_id, user_id, check_strategy_id(strategy_id))
    check_date(day)
    if session.scalar(sa.select(DayByDayBacktestDay.id).where(DayByDayBacktestDay.job_id == bt.job_id, DayByDayBacktestDay.date == day)) is None:
        raise NotFound(f"No data found for date {day}")
    out = []
    for name in names or list(FILE_NAMES):
        data = config.store.read(bt.tenant_id, bt.user_id, bt.strategy_id, day, name)
        if data is None:
            raise NotFound(f"No data found for date {day}")
        out.append((name, data))
    return out


def clear(session: Session, config: DayByDayConfig, tenant_id: str, user_id: str, strategy_id: str) -> Removed:
    """Delete a user's artifacts of a strategy; a queued or running job of theirs for it is cancelled."""
    user_id = check_user_id(user_id)
    strategy_id = check_strategy_id(strategy_id)
    now = utcnow()
    rows = session.scalars(
        sa.select(DayByDayBacktest).where(
            DayByDayBacktest.tenant_id == tenant_id, DayByDayBacktest.user_id == user_id, DayByDayBacktest.strategy_id == strategy_id
        )
    ).all()
    for bt in rows:
        if bt.active_key is not None:
            job = jobs.locked_job(session, bt.job_id)
            if job.state in jobs.ACTIVE_STATES:
                jobs.end_job(session, job, jobs.CANCELLED, finish, error_message="Job cancelled: its data was cleared")
        if bt.artifacts_cleared_at is None:
            bt.artifacts_cleared_at = now
    return config.store.delete_strategy(tenant_id, user_id, strategy_id)


def has_expired(session: Session) -> bool:
    """Whether some run's artifacts are past their TTL."""
    return (
        session.scalar(
            sa.select(DayByDayBacktest.job_id)
            .where(DayByDayBacktest.artifacts_cleared_at.is_(None), DayByDayBacktest.expires_at <= utcnow())
            .limit(1)
        )
        is not None
    )


def cleanup(session: Session, config: DayByDayConfig, *, tenant_id: str | None, created_before: datetime | None) -> tuple[int, int]:
    """Delete expired artifacts: runs whose TTL passed (`created_before` None) or that were
    submitted before `created_before`; never those of a queued or running job. (runs, bytes)."""
    now = utcnow()
    q = sa.select(DayByDayBacktest).where(DayByDayBacktest.artifacts_cleared_at.is_(None), DayByDayBacktest.active_key.is_(None))
    q = q.where(DayByDayBacktest.expires_at <= now) if created_before is None else q.where(DayByDayBacktest.created_at < created_before)
    if tenant_id is not None:
        q = q.where(DayByDayBacktest.tenant_id == tenant_id)
    groups: dict[tuple[str, str, str], list[DayByDayBacktest]] = {}
    for bt in session.scalars(q.limit(10_000)):
        groups.setdefault((bt.tenant_id, bt.user_id, bt.strategy_id), []).append(bt)
    deleted = freed = 0
    for (tenant, user, strategy), rows in groups.items():
        busy = session.scalar(
            sa.select(DayByDayBacktest.job_id).where(
                DayByDayBacktest.tenant_id == tenant,
                DayByDayBacktest.user_id == user,
                DayByDayBacktest.strategy_id == strategy,
                DayByDayBacktest.active_key.is_not(None),
            )
        )
        if busy is not None:  # a newer run is writing into the same directory
            continue
        for bt in rows:
            bt.artifacts_cleared_at = now
        removed = config.store.delete_strategy(tenant, user, strategy)
        deleted += 1
        freed += removed.bytes
    return deleted, freed
