"""JOB_KIND_RULE_SWEEP: a sweep of a rule strategy's parameters (services.engine.rule_sweep),
each combination run day by day; its rows and the grid's overfitting statistics go to
results' CompleteSweep, like a crossover sweep's."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import date

import grpc
from hindsight.bus.v1 import bus_pb2
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2

from domain.market import insufficient_data
from domain.overfitting import PBO_BLOCKS_DEFAULT
from domain.rules.strategy import StrategyInvalid, validate_definition
from domain.rules.sweep import STRATEGY_TYPE, rule_grid
from services.engine.day_by_day import NoData
from services.engine.job_context import JobContext, ThreadProgress
from services.engine.kinds.sweep import _clean, statistics_message
from services.engine.rule_sweep import RuleSweepCancelled, run_rule_sweep

log = logging.getLogger(__name__)

MARKET_DATA_ERROR = "Failed to fetch market data"
_START, _END = 5.0, 95.0
# The row keys that are SweepResult metrics (the rest: the combination and day-by-day extras).
_NOT_METRICS = ("parameters", "winning_trades", "pnl")


class RuleSweepRunner:
    """The engine's runner of rule-strategy sweeps (services.engine.kinds.KindRunner)."""

    kind = jobs_pb2.JOB_KIND_RULE_SWEEP

    async def run(self, ctx: JobContext, job: jobs_pb2.Job, msg: bus_pb2.JobMessage) -> None:
        spec = job.rule_sweep
        try:
            definition = validate_definition(json.loads(spec.strategy_json))
            grid = rule_grid(definition, json.loads(spec.parameters_json))
        except (ValueError, StrategyInvalid) as exc:
            await ctx.fail(job.job_id, f"Invalid sweep: {exc}")
            return
        if (await ctx.progress(job.job_id, 1.0, "Loading historical data")).stop:
            return
        resolved = await ctx.call(
            ctx.stub.ResolveDataset,
            results_pb2.ResolveDatasetRequest(tenant_id=job.tenant_id, ticker=spec.ticker, interval=spec.interval),
        )
        if not resolved.found:
            await ctx.fail(job.job_id, f"{MARKET_DATA_ERROR}: {insufficient_data(spec.ticker)}")
            return
        version = spec.dataset_version_id or resolved.version_id
        try:
            bars = await ctx.cache.get(ctx.stub, resolved.dataset, version)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            await ctx.fail(job.job_id, f"{MARKET_DATA_ERROR}: the dataset version of this sweep was deleted")
            return

        reports = ThreadProgress(ctx, job.job_id, asyncio.get_running_loop())

        def on_progress(done: int, total: int) -> bool:
            return reports.report(_START + (_END - _START) * done / max(total, 1),
                                  f"Processing {done}/{total} combinations")

        t0 = time.perf_counter()
        try:
            outcome = await asyncio.to_thread(
                run_rule_sweep, bars, definition, grid,
                date.fromisoformat(spec.start_date), date.fromisoformat(spec.end_date),
                interval=resolved.dataset.interval, slippage_pct=spec.slippage_pct,
                commission_pct=spec.commission_pct, initial_cash=spec.initial_capital or 100_000.0,
                pbo_blocks=spec.pbo_blocks or PBO_BLOCKS_DEFAULT, progress=on_progress,
            )
        except NoData as exc:
            await ctx.fail(job.job_id, f"{MARKET_DATA_ERROR}: {exc}")
            return
        except RuleSweepCancelled:
            await reports.settle()
            if ctx.stopping:
                raise ctx.shutting_down(job.job_id) from None
            log.info("rule sweep stopped on request", extra={"job_id": job.job_id})
            return
        elapsed = time.perf_counter() - t0
        await reports.settle()
        await ctx.progress(job.job_id, 98.0, "Storing results")
        results = [
            results_pb2.SweepResult(
                ticker=spec.ticker, strategy_type=STRATEGY_TYPE,
                parameters_json=json.dumps(row["parameters"], separators=(",", ":")),
                **_clean({k: v for k, v in row.items() if k not in _NOT_METRICS}),
            )
            for row in outcome.rows
        ]
        await ctx.call(
            ctx.stub.CompleteSweep,
            results_pb2.CompleteSweepRequest(
                job_id=job.job_id, results=results, execution_time_seconds=elapsed, bars=outcome.bars,
                dataset_version_id=version, statistics=statistics_message(outcome.statistics),
            ),
            timeout=max(ctx.rpc_timeout, 60.0),
        )
        log.info("rule sweep done", extra={"job_id": job.job_id, "combos": len(grid), "days": outcome.days,
                                           "indicators": outcome.indicators, "seconds": round(elapsed, 3)})
