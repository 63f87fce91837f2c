"""Saved runs (seed 003's `strategy_runs`): save, list, read, compare, export, and the
run every completed sweep leaves behind.

Every function takes a `Session` inside the caller's transaction. A run is
numbered within its tenant (1, 2, ...) under the row lock of the tenant's
counter, so concurrent saves never share a number.

Other areas save their runs with :func:`save_run` in their own transaction
(the day-by-day backtests: ``kind="day_by_day"``, ``job_id=...``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.backtest_spec import SWEEP_STRATEGY
from domain.market import NS_PER_DAY
from domain.report import day_ends_of_curve
from domain.sessions import local_wall
from libs.metric_fields import RUN_METRIC_FLOATS
from services.results.errors import InvalidArgument, NotFound
from services.results.keys import tenant_exists
from services.results.models import Dataset, DatasetVersion, Job
from services.results.models_day_by_day import DayByDayBacktest
from services.results.models_runs import RunCounter, StrategyRun, StrategyRunSeries
from services.results.timefmt import utcnow

KINDS = ("backtest", "sweep", "day_by_day")
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
MAX_COMPARE = 20
_DATE_LEN = 10
# Key of the day-end equity inside a run's stored curve (StrategyRunSeries.equity).
DAY_ENDS_KEY = "day_ends"
# Key of the exposure's bar counts inside a run's stored curve.
EXPOSURE_KEY = "exposure"


def finite(x: Any) -> float | None:
    """x as a float, or None when it is None, NaN or infinite."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def clean_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metric set with non-finite values as None and counts as ints."""
    out: dict[str, Any] = {k: finite(metrics.get(k)) for k in RUN_METRIC_FLOATS}
    out["total_trades"] = int(metrics.get("total_trades") or 0)
    out["winning_trades"] = int(metrics.get("winning_trades") or 0)
    losing = metrics.get("losing_trades")
    out["losing_trades"] = None if losing is None else int(losing)
    out["avg_trade_duration"] = str(metrics.get("avg_trade_duration") or "0.0 days")
    return out


def next_run_number(session: Session, tenant_id: str) -> int:
    """The tenant's next run number (locks the tenant's counter until the transaction ends)."""
    q = sa.select(RunCounter).where(RunCounter.tenant_id == tenant_id).with_for_update()
    counter = session.scalar(q)
    if counter is None:
        try:
            with session.begin_nested():
                counter = RunCounter(tenant_id=tenant_id, last_run_number=0)
                session.add(counter)
        except IntegrityError:  # created at the same moment by a concurrent save
            counter = session.scalar(q)
            assert counter is not None
    counter.last_run_number += 1
    return counter.last_run_number


def save_run(
    session: Session,
    tenant_id: str,
    *,
    kind: str,
    ticker: str,
    strategy: str,
    parameters: dict[str, Any],
    start_date: str,
    end_date: str,
    interval: str,
    cash: float,
    metrics: dict[str, Any],
    commission_pct: float = 0.0,
    slippage_pct: float = 0.0,
    direction: str = "long",
    fill: str = "next_open",
    strategy_id: str | None = None,
    replay_of: int | None = None,
    replay_spec: dict[str, Any] | None = None,
    sweep_run_id: str | None = None,
    job_id: str | None = None,
    sweep: dict[str, Any] | None = None,
    bars: int = 0,
    dataset_id: str | None = None,
    dataset_version: int | None = None,
    execution_time_seconds: float = 0.0,
    trades: list[dict[str, Any]] | None = None,
    equity: dict[str, list[Any]] | None = None,
    day_ends: dict[str, list[Any]] | None = None,
    exposure: dict[str, int] | None = None,
) -> StrategyRun:
    """Store a run (and its trades, equity curve and day-end equity when given); returns it
    with its number. The day ends ({date, ts, equity, buy_and_hold}: every local day's last
    bar, never downsampled) and the exposure's bar counts ({bars, in_market, long_bars,
    short_bars}) ride in the curve's JSON, so no column was added for them."""
    if kind not in KINDS:
        raise InvalidArgument(f"run kind must be one of {', '.join(KINDS)}")
    ticker, strategy = (ticker or "").strip().upper(), (strategy or "").strip().lower()
    if not ticker or len(ticker) > 64:
        raise InvalidArgument("run ticker is required (at most 64 characters)")
    if not strategy or len(strategy) > 64:
        raise InvalidArgument("run strategy is required (at most 64 characters)")
    if not isinstance(parameters, dict):
        raise InvalidArgument("run parameters must be an object")
    for name, value in (("start_date", start_date), ("end_date", end_date)):
        if len(value or "") > _DATE_LEN:
            raise InvalidArgument(f"run {name} must be YYYY-MM-DD")
    if finite(cash) is None or cash <= 0:
        raise InvalidArgument("run cash must be a positive number")
    if not tenant_exists(session, tenant_id):
        raise NotFound(f"tenant {tenant_id!r} not found")
    if replay_of is not None:
        get_run(session, tenant_id, replay_of)  # NotFound: nothing to replay
    m = clean_metrics(metrics)
    run = StrategyRun(
        tenant_id=tenant_id,
        run_number=next_run_number(session, tenant_id),
        kind=kind,
        ticker=ticker,
        strategy=strategy,
        strategy_id=strategy_id or None,
        parameters=parameters,
        start_date=start_date or "",
        end_date=end_date or "",
        interval=interval or "",
        cash=float(cash),
        commission_pct=float(commission_pct),
        slippage_pct=float(slippage_pct),
        direction=direction or "long",
        fill=fill or "next_open",
        pnl=m["pnl"],
        return_pct=m["total_return_pct"],
        sharpe_ratio=m["sharpe_ratio"],
        max_drawdown=m["max_drawdown_pct"],
        total_trades=m["total_trades"],
        winning_trades=m["winning_trades"],
        losing_trades=m["losing_trades"],
        metrics=m,
        replay_of=replay_of,
        replay_spec=replay_spec,
        sweep_run_id=sweep_run_id,
        job_id=job_id,
        sweep=sweep,
        bars=int(bars),
        dataset_id=dataset_id or None,
        dataset_version=dataset_version or None,
        execution_time_seconds=float(execution_time_seconds),
        created_at=utcnow(),
    )
    session.add(run)
    session.flush()
    if trades is not None or equity is not None:
        curve: dict[str, Any] = dict(equity or {"ts": [], "equity": [], "buy_and_hold": []})
        if day_ends is not None:
            curve[DAY_ENDS_KEY] = day_ends
        if exposure is not None:
            curve[EXPOSURE_KEY] = exposure
        session.add(StrategyRunSeries(run_id=run.id, trades=list(trades or []), equity=curve))
        session.flush()
    return run


# ---------------------------------------------------------------- reading


def list_runs(
    session: Session, tenant_id: str, ticker: str, strategy: str, kind: str, limit: int, offset: int
) -> tuple[list[StrategyRun], int]:
    """A page of the tenant's runs, newest first, and how many match the filters."""
    if kind and kind not in KINDS:
        raise InvalidArgument(f"kind must be one of {', '.join(KINDS)}")
    if not 0 <= limit <= MAX_LIST_LIMIT:
        raise InvalidArgument(f"limit must be between 0 and {MAX_LIST_LIMIT}")
    if offset < 0:
        raise InvalidArgument("offset must not be negative")
    where = [StrategyRun.tenant_id == tenant_id]
    if ticker:
        where.append(StrategyRun.ticker == ticker.strip().upper())
    if strategy:
        where.append(StrategyRun.strategy == strategy.strip().lower())
    if kind:
        where.append(StrategyRun.kind == kind)
    total = session.scalar(sa.select(sa.func.count()).select_from(StrategyRun).where(*where)) or 0
    if limit == 0 or offset >= total:
        return [], int(total)
    rows = session.scalars(
        sa.select(StrategyRun).where(*where).order_by(StrategyRun.run_number.desc()).limit(limit).offset(offset)
    )
    return list(rows), int(total)


def get_run(session: Session, tenant_id: str, run_number: int) -> StrategyRun:
    run = session.scalar(
        sa.select(StrategyRun).where(StrategyRun.tenant_id == tenant_id, StrategyRun.run_number == run_number)
    )
    if run is None:
        raise NotFound(f"run {run_number} not found")
    return run


def has_series(session: Session, run: StrategyRun) -> bool:
    return session.scalar(sa.select(sa.func.count()).where(StrategyRunSeries.run_id == run.id)) > 0


def get_runs(session: Session, tenant_id: str, run_numbers: list[int]) -> list[StrategyRun]:
    """Runs in the order asked (NotFound names every missing number)."""
    if not run_numbers:
        raise InvalidArgument("at least one run id is required")
    if len(run_numbers) > MAX_COMPARE:
        raise InvalidArgument(f"at most {MAX_COMPARE} runs at a time")
    found = {
        r.run_number: r
        for r in session.scalars(
            sa.select(StrategyRun).where(StrategyRun.tenant_id == tenant_id, StrategyRun.run_number.in_(run_numbers))
        )
    }
    missing = [n for n in run_numbers if n not in found]
    if missing:
        raise NotFound(f"run{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} not found")
    return [found[n] for n in run_numbers]


def series_of(session: Session, runs: list[StrategyRun]) -> dict[int, StrategyRunSeries]:
    """The stored series of these runs, by run id (absent: none stored)."""
    ids = [r.id for r in runs]
    return {s.run_id: s for s in session.scalars(sa.select(StrategyRunSeries).where(StrategyRunSeries.run_id.in_(ids)))}


def run_series(session: Session, tenant_id: str, run_number: int) -> tuple[StrategyRun, StrategyRunSeries]:
    """A run and its trades and curve; NotFound when the run keeps none (sweeps)."""
    run = get_run(session, tenant_id, run_number)
    series = session.get(StrategyRunSeries, run.id)
    if series is None:
        raise NotFound(
            f"run {run_number} keeps no trades or equity curve"
            + (" (a sweep keeps its best combination's metrics: replay the run to get them)" if run.kind == "sweep" else "")
        )
    return run, series


@dataclass(frozen=True)
class RunDataset:
    """The dataset version a run used, as its report needs it."""

    dataset_id: str
    interval: str
    version: int
    version_id: str
    calendar: str
    # Timezone of the run's days: the dataset's, or a day-by-day strategy's session timezone.
    timezone: str


@dataclass(frozen=True)
class ReportSeries:
    """What a run's report is computed from."""

    run: StrategyRun
    series: StrategyRunSeries
    dataset: RunDataset | None
    day_ends: dict[str, list[Any]]
    # "stored", or "curve": derived from the stored curve (runs saved before day ends were kept).
    day_ends_source: str
    # {bars, in_market, long_bars, short_bars}; None: not counted (runs saved before the report).
    exposure: dict[str, int] | None


def _version_row(session: Session, tenant_id: str, where: list[Any]) -> Any:
    # Named columns only: a version's row also holds its bars (tens of MB for large datasets).
    q = (
        sa.select(Dataset.dataset_id, Dataset.interval, Dataset.calendar, Dataset.timezone,
                  DatasetVersion.version, DatasetVersion.version_id)
        .join(DatasetVersion, DatasetVersion.dataset_id == Dataset.dataset_id)
        .where(Dataset.tenant_id == tenant_id, *where)
    )
    return session.execute(q.limit(1)).first()


def run_dataset(session: Session, run: StrategyRun) -> RunDataset | None:
    """The dataset version of a run (None when it is gone): a backtest's by its dataset id and
    version number, a day-by-day run's through its job (which also names the session timezone)."""
    timezone = None
    if run.kind == "day_by_day" and run.job_id:
        bt = session.execute(
            sa.select(DayByDayBacktest.dataset_version_id, DayByDayBacktest.strategy_definition)
            .where(DayByDayBacktest.job_id == run.job_id, DayByDayBacktest.tenant_id == run.tenant_id)
        ).first()
        if bt is None:
            return None
        row = _version_row(session, run.tenant_id, [DatasetVersion.version_id == bt.dataset_version_id])
        session_def = (bt.strategy_definition or {}).get("session") or {}
        timezone = session_def.get("timezone") if isinstance(session_def, dict) else None
    elif run.dataset_id:
        row = _version_row(session, run.tenant_id, [Dataset.dataset_id == run.dataset_id,
                                                   DatasetVersion.version == (run.dataset_version or 0)])
    else:
        return None
    if row is None:
        return None
    return RunDataset(dataset_id=row.dataset_id, interval=row.interval, version=row.version,
                      version_id=row.version_id, calendar=row.calendar, timezone=timezone or row.timezone)


def _day_ends_from_curve(curve: dict[str, list[Any]], timezone: str) -> dict[str, list[Any]]:
    """The last stored point of each local day (exact when the curve kept every bar)."""
    ts = np.asarray(curve.get("ts") or [], dtype=np.int64)
    try:
        days = np.floor_divide(local_wall(ts, timezone or "UTC"), NS_PER_DAY)
    except (ValueError, KeyError):  # an unknown zone cannot be stored; be safe anyway
        days = np.floor_divide(ts, NS_PER_DAY)
    idx, day_numbers = day_ends_of_curve(ts, np.asarray(curve.get("equity") or [], dtype=np.float64), days)
    equity, hold = curve.get("equity") or [], curve.get("buy_and_hold") or []
    return {
        "date": day_numbers.astype("datetime64[D]").astype(str).tolist(),
        "ts": ts[idx].tolist(),
        "equity": [equity[i] for i in idx.tolist()],
        "buy_and_hold": [hold[i] for i in idx.tolist()],
    }


def report_series(session: Session, tenant_id: str, run_number: int) -> ReportSeries:
    """A run's curve, day-end equity, trades and dataset; NotFound when it keeps no series (sweeps)."""
    run, series = run_series(session, tenant_id, run_number)
    dataset = run_dataset(session, run)
    curve = series.equity or {}
    stored, exposure = curve.get(DAY_ENDS_KEY), curve.get(EXPOSURE_KEY)
    if stored:
        return ReportSeries(run, series, dataset, stored, "stored", exposure)
    return ReportSeries(run, series, dataset, _day_ends_from_curve(curve, dataset.timezone if dataset else "UTC"),
                        "curve", exposure)


# ---------------------------------------------------------------- sweeps


@dataclass(frozen=True)
class _DatasetInfo:
    dataset_id: str
    ticker: str
    interval: str
    version: int
    start_date: str
    end_date: str


def _local_day(t: datetime, timezone: str) -> str:
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):  # an unknown zone cannot be stored; be safe anyway
        zone = ZoneInfo("UTC")
    return t.astimezone(zone).date().isoformat()


def _dataset_info(session: Session, job: Job, version_id: str) -> _DatasetInfo | None:
    spec = job.sweep_spec or {}
    q = sa.select(
        Dataset.dataset_id, Dataset.ticker, Dataset.interval, Dataset.timezone,
        DatasetVersion.version, DatasetVersion.start_at, DatasetVersion.end_at,
    ).join(DatasetVersion, DatasetVersion.dataset_id == Dataset.dataset_id)
    if version_id:
        q = q.where(DatasetVersion.version_id == version_id, Dataset.tenant_id == job.tenant_id)
    else:  # an engine that does not say which version it used: the latest one of the sweep's dataset
        q = q.where(Dataset.tenant_id == job.tenant_id, Dataset.ticker == str(spec.get("ticker", "")).strip().upper())
        if spec.get("interval"):
            q = q.where(Dataset.interval == spec["interval"])
        q = q.order_by(DatasetVersion.created_at.desc())
    row = session.execute(q.limit(1)).first()
    if row is None:
        return None
    return _DatasetInfo(
        dataset_id=row.dataset_id, ticker=row.ticker, interval=row.interval, version=row.version,
        start_date=_local_day(row.start_at, row.timezone), end_date=_local_day(row.end_at, row.timezone),
    )


def _best(rows: list[Any], min_trades: int) -> Any | None:
    """The sweep's best combination: the first of `best` (score descending, undefined last,
    then the sweep's own order), among those with at least min_trades trades."""
    eligible = [(i, r) for i, r in enumerate(rows) if r.total_trades >= min_trades]
    if not eligible:
        return None
    def key(item: tuple[int, Any]) -> tuple[bool, float, int]:
        i, r = item
        score = finite(r.metrics.get("score"))
        return (score is None, -(score or 0.0), i)
    return min(eligible, key=key)[1]


def record_sweep_run(
    session: Session,
    job: Job,
    sweep_run_id: str,
    rows: list[Any],
    execution_time_seconds: float,
    bars: int,
    dataset_version_id: str = "",
) -> StrategyRun:
    """Save the run of a completed sweep: its spec, a link to its results, and its best
    combination (parameters and metrics), replayable as a synchronous backtest.

    `rows` are the sweep's combinations (`sweeps.SweepRow`: fast/slow periods, total
    trades, avg duration, metrics).
    """
    spec = job.sweep_spec or {}
    strategy_type = str(spec.get("strategy_type") or "SMA").upper()
    strategy = SWEEP_STRATEGY.get(strategy_type, strategy_type.lower())
    min_trades = int(spec.get("min_trades", 0))
    cash = float(spec.get("initial_cash") or 10_000.0)
    direction, fill = spec.get("direction") or "long", spec.get("fill") or "next_open"
    commission, slippage = float(spec.get("commission_pct") or 0.0), float(spec.get("slippage_pct") or 0.0)
    ds = _dataset_info(session, job, dataset_version_id)
    ticker = ds.ticker if ds else str(spec.get("ticker", ""))
    interval = ds.interval if ds else str(spec.get("interval") or "")
    start, end = (ds.start_date, ds.end_date) if ds else ("", "")

    best = _best(rows, min_trades)
    parameters: dict[str, Any] = {}
    metrics: dict[str, Any] = {"total_trades": 0, "winning_trades": 0, "losing_trades": None}
    replay_spec = None
    if best is not None:
        parameters = {"fast_period": best.fast_period, "slow_period": best.slow_period}
        if getattr(best, "parameters", None):  # rsi_reversion's (period, oversold, overbought)
            parameters = dict(best.parameters)
        elif strategy == "macd_crossover":
            parameters["signal_period"] = 9
        m = best.metrics
        ret = finite(m.get("total_return_pct"))
        final = cash * (1.0 + ret / 100.0) if ret is not None else None
        win = finite(m.get("win_rate_pct"))
        metrics = {
            **{k: m.get(k) for k in RUN_METRIC_FLOATS if k in m},
            "total_trades": best.total_trades,
            "avg_trade_duration": best.avg_trade_duration,
            "final_equity": final,
            "pnl": final - cash if final is not None else None,
            # win_rate_pct = wins / trades x 100, so this recovers the count exactly.
            "winning_trades": round(win * best.total_trades / 100.0) if win is not None else 0,
            # The kernel counts winners, not losers: unknown for a sweep's combination.
            "losing_trades": None,
        }
        if ds is not None:
            replay_spec = {
                "ticker": ticker,
                "strategy": strategy,
                "parameters_json": json.dumps(parameters, separators=(",", ":")),
                "start_date": start,
                "end_date": end,
                "interval": interval,
                "cash": cash,
                "commission_pct": commission,
                "slippage_pct": slippage,
                "direction": direction,
                "fill": fill,
            }
    sweep = {
        "sweep_run_id": sweep_run_id,
        "job_id": job.job_id,
        "strategy_type": strategy_type,
        **{k: int(spec.get(k, 0)) for k in ("fast_min", "fast_max", "slow_min", "slow_max", "step")},
        "combinations": len(rows),
        "min_trades": min_trades,
        "has_best": best is not None,
    }
    return save_run(
        session,
        job.tenant_id,
        kind="sweep",
        ticker=ticker,
        strategy=strategy,
        parameters=parameters,
        start_date=start,
        end_date=end,
        interval=interval,
        cash=cash,
        metrics=metrics,
        commission_pct=commission,
        slippage_pct=slippage,
        direction=direction,
        fill=fill,
        replay_spec=replay_spec,
        sweep_run_id=sweep_run_id,
        job_id=job.job_id,
        sweep=sweep,
        bars=bars,
        dataset_id=ds.dataset_id if ds else None,
        dataset_version=ds.version if ds else None,
        execution_time_seconds=execution_time_seconds,
    )
