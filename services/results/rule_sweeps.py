"""Sweeps of rule strategies in results: submission (the domain's checks of the grid against
the stored definition, before anything is queued). The engine's rows arrive through
CompleteSweep and are stored, ranked and read like a crossover sweep's
(services.results.sweeps); services.results.kinds.rule_sweep makes this the handler
of JOB_KIND_RULE_SWEEP.
"""

from __future__ import annotations

import json
import math
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from domain.backtest_spec import DAY_BY_DAY_CAPITAL_DEFAULT, DAY_BY_DAY_COST_PCT_MAX
from domain.overfitting import PBO_BLOCKS_DEFAULT, pbo_blocks_problem
from domain.rules.strategy import StrategyInvalid
from domain.rules.sweep import MIN_TRADES_MAX, MIN_TRADES_MIN, STRATEGY_TYPE, rule_grid
from domain.sweep import CASH_MAX
from services.results import jobs
from services.results.artifacts import check_date
from services.results.datasets import load_bars, resolve_dataset
from services.results.day_by_day import MAX_RANGE_DAYS, _plan
from services.results.errors import InvalidArgument
from services.results.jobs import Submission
from services.results.market_store import MarketStore
from services.results.models import Job
from services.results.strategies import get_strategy
from services.results.sweeps import new_job_id
from services.results.timefmt import utcnow

# Day-by-day combinations per second the estimate assumes, per 100 trading days.
ESTIMATE_COMBINATIONS_PER_SECOND = 20.0


class SweepInvalid(InvalidArgument):
    """A sweep with problems; the message is JSON {"message", "errors": [...]} for the gateway."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__(json.dumps({"message": "invalid sweep", "errors": errors}))


def _number(spec: dict[str, Any], name: str, field: str, default: float, lo: float, hi: float,
            errors: list[dict[str, Any]]) -> float:
    value = spec.get(name)
    x = default if value in (None, 0, 0.0) else float(value)
    if not (math.isfinite(x) and lo <= x <= hi):
        errors.append({"field": field, "message": f"must be a number from {lo:g} to {hi:g}"})
    return x


def submit(session: Session, market: MarketStore, submission: Submission, spec: dict[str, Any]) -> Job:
    """Check a RuleSweepSpec (as a dict) against the tenant's strategy and queue the job;
    InvalidArgument (SweepInvalid: every problem, field by field) and nothing queued when
    it may not run, NotFound when the strategy is not the tenant's."""
    tenant_id = submission.tenant_id
    jobs.check_tenant(session, tenant_id)
    strategy = get_strategy(session, tenant_id, str(spec.get("strategy_id") or ""))
    definition = strategy.definition
    errors: list[dict[str, Any]] = []
    try:
        ranges = json.loads(str(spec.get("parameters_json") or "null"))
    except json.JSONDecodeError:
        ranges = None
    try:
        grid = rule_grid(definition, ranges)
    except StrategyInvalid as exc:
        errors.extend(exc.errors)
        grid = None
    dates: dict[str, date] = {}
    for name in ("start_date", "end_date"):
        try:
            dates[name] = check_date(str(spec.get(name) or ""), name)
        except InvalidArgument as exc:
            errors.append({"field": name, "message": str(exc)})
    if len(dates) == 2 and dates["end_date"] < dates["start_date"]:
        errors.append({"field": "end_date", "message": "must not be before start_date"})
    elif len(dates) == 2 and (dates["end_date"] - dates["start_date"]).days > MAX_RANGE_DAYS:
        errors.append({"field": "end_date", "message": f"a sweep covers at most {MAX_RANGE_DAYS} days"})
    min_trades = int(spec.get("min_trades") or 0)
    if not MIN_TRADES_MIN <= min_trades <= MIN_TRADES_MAX:
        errors.append({"field": "min_trades", "message": f"must be a whole number from {MIN_TRADES_MIN} to {MIN_TRADES_MAX}"})
    capital = _number(spec, "initial_capital", "initial_capital", DAY_BY_DAY_CAPITAL_DEFAULT, 1e-6, CASH_MAX, errors)
    slippage = _number(spec, "slippage_pct", "slippage_percentage", 0.0, 0.0, DAY_BY_DAY_COST_PCT_MAX, errors)
    commission = _number(spec, "commission_pct", "commission_percentage", 0.0, 0.0, DAY_BY_DAY_COST_PCT_MAX, errors)
    blocks = int(spec.get("pbo_blocks") or PBO_BLOCKS_DEFAULT)
    if (problem := pbo_blocks_problem(blocks)) is not None:
        errors.append({"field": "pbo_blocks", "message": problem})
    if errors or grid is None:
        raise SweepInvalid(errors)

    ticker = definition["dataset"]["ticker"]
    interval = definition["dataset"].get("interval") or ""
    view = resolve_dataset(session, tenant_id, ticker, interval)
    if view is None:
        raise InvalidArgument(f"Failed to fetch market data: no {ticker} dataset{f' at {interval}' if interval else ''}")
    bars = load_bars(session, market, view.version_id)
    plan = _plan(bars, definition, view.timezone, dates["start_date"], dates["end_date"])
    total_days = int(plan.days.size)
    if total_days == 0:
        raise InvalidArgument(
            f"Failed to fetch market data: no {ticker} bars between {dates['start_date']} and {dates['end_date']}"
        )
    now = utcnow()
    stored = {
        "strategy_id": strategy.strategy_id,
        "strategy_json": json.dumps(definition, separators=(",", ":")),
        "parameters_json": json.dumps(ranges, separators=(",", ":")),
        "start_date": dates["start_date"].isoformat(),
        "end_date": dates["end_date"].isoformat(),
        "min_trades": min_trades,
        "ticker": view.ticker,
        "interval": view.interval,
        "dataset_version_id": view.version_id,
        "initial_capital": capital,
        "commission_pct": commission,
        "slippage_pct": slippage,
        "pbo_blocks": blocks,
        "days": total_days,
        # What the sweep run and its saved record read (services.results.sweeps).
        "strategy_type": STRATEGY_TYPE,
        "rule_sweep": True,
    }
    combos = len(grid)
    job = jobs.queued_job(
        submission,
        job_id=new_job_id(view.ticker, now),
        combinations=combos,
        estimated_duration_seconds=max(1, math.ceil(2 + combos * total_days / 100 / ESTIMATE_COMBINATIONS_PER_SECOND)),
        now=now,
        bar_pairs=combos * int((plan.ends - plan.starts).sum()),
        sweep_spec=stored,
    )
    session.add(job)
    jobs.append_queued_event(session, job)
    jobs.queue_job(session, job, submission)
    session.flush()
    return job
