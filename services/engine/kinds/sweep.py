"""JOB_KIND_SWEEP: run a parameter sweep with the sweep kernel (services.engine.sweep)
and store its rows, with the grid's overfitting statistics, with results' CompleteSweep."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import grpc
from hindsight.bus.v1 import bus_pb2
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2

from domain.market import insufficient_data
from domain.overfitting import PBO_BLOCKS_DEFAULT, BlockSums, SweepStatistics
from domain.shards import chunk_bounds
from domain.sweep import RSI_STRATEGY_TYPE, THRESHOLD_STEP_DEFAULT, rsi_combos, sweep_combos
from services.engine.bars_cache import SWEEP_COLUMNS
from services.engine.job_context import JobContext, ThreadProgress
from services.engine.kinds import universe_sweep
from services.engine.rsi_sweep import run_rsi_sweep
from services.engine.sweep import SweepCancelled, run_sweep, run_sweep_with_statistics

log = logging.getLogger(__name__)

# The percent range of the stream that the kernel's bar progress maps onto.
_KERNEL_START, _KERNEL_END = 5.0, 95.0


def _clean(row: dict) -> dict:
    """Drop None values so proto3 `optional` fields stay unset (→ JSON null)."""
    return {k: v for k, v in row.items() if v is not None}


def statistics_message(stats: SweepStatistics, block_sums: BlockSums | None = None) -> results_pb2.SweepStatistics:
    """The grid's overfitting statistics as CompleteSweep carries them (the per-trial
    moments only when the values are defined: results needs them for PSR and DSR); a pair
    chunk's (``block_sums`` given): its trials' moments and block sums, for results to
    compute the statistics of the ticker's whole grid."""
    out = results_pb2.SweepStatistics(
        trials=stats.trials,
        days=stats.days,
        pbo_blocks=stats.pbo_blocks,
        reason=stats.reason or "",
        **_clean({"sharpe_variance": stats.sharpe_variance, "expected_max_sharpe": stats.expected_max_sharpe,
                  "pbo": stats.pbo}),
    )
    out.logits.extend(stats.logits or [])
    if stats.moments is not None:
        out.sharpe.extend(stats.moments.sharpe.tolist())
        out.skewness.extend(stats.moments.skewness.tolist())
        out.kurtosis.extend(stats.moments.kurtosis.tolist())
    if block_sums is not None:
        out.block_sums.extend(block_sums.sums.ravel().tolist())
        out.block_squares.extend(block_sums.squares.ravel().tolist())
        out.block_rows = block_sums.rows
    return out


class SweepRunner:
    """The engine's runner of sweeps (services.engine.kinds.KindRunner)."""

    kind = jobs_pb2.JOB_KIND_SWEEP

    async def run(self, ctx: JobContext, job: jobs_pb2.Job, msg: bus_pb2.JobMessage) -> None:
        if msg.shard_id and not isinstance(ctx, universe_sweep.ShardContext):
            # A sharded sweep (issue 11): the message's ticker, or a pair chunk of its grid, as its own sweep.
            await universe_sweep.run_shards(self, ctx, job, msg, (_KERNEL_START, _KERNEL_END))
            return
        if job.sweep.tickers:
            await ctx.fail(job.job_id, "a universe sweep's messages name their shard; this one names none")
            return
        spec = job.sweep
        rsi = spec.strategy_type == RSI_STRATEGY_TYPE
        if rsi:
            grid = rsi_combos((spec.period_min, spec.period_max), spec.step, (spec.oversold_min, spec.oversold_max),
                              (spec.overbought_min, spec.overbought_max), spec.threshold_step or THRESHOLD_STEP_DEFAULT)
            combos = [(p, 0) for p, _, _ in grid]  # the longest warm-up is the longest period
        else:
            combos = sweep_combos(spec.fast_min, spec.fast_max, spec.slow_min, spec.slow_max, spec.step)
        # The whole grid's longest period decides whether the ticker has enough bars, so that
        # every pair chunk of it agrees.
        longest = max(s for _, s in combos) if combos else 0
        chunk, chunks = ctx.pair_chunk
        if chunks > 1 and not rsi:  # one pair chunk of a sharded sweep (domain.shards)
            start, end = chunk_bounds(len(combos), chunk, chunks)
            combos = combos[start:end]
        if (await ctx.progress(job.job_id, 1.0, "Loading historical data")).stop:
            return
        resolved = await ctx.call(
            ctx.stub.ResolveDataset,
            results_pb2.ResolveDatasetRequest(tenant_id=job.tenant_id, ticker=spec.ticker, interval=spec.interval),
        )
        if not resolved.found:
            await ctx.fail(job.job_id, insufficient_data(spec.ticker))
            return
        # A pair chunk runs on the version its ticker was counted on at submission, as its other chunks do.
        version = spec.dataset_versions.get(spec.ticker, "") or resolved.version_id
        try:
            bars = await ctx.cache.get(ctx.stub, resolved.dataset, version, columns=SWEEP_COLUMNS)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND or version == resolved.version_id:
                raise
            await ctx.fail(job.job_id, f"the dataset version of {spec.ticker} this sweep was split on was deleted")
            return
        # The slow average needs `longest` bars, and a signal needs a next bar to fill on.
        if len(bars.close) < longest + 2:
            await ctx.fail(job.job_id, insufficient_data(spec.ticker))
            return

        n_combos, n_bars = len(combos), len(bars.close)
        reports = ThreadProgress(ctx, job.job_id, asyncio.get_running_loop())

        def on_progress(fraction: float) -> bool:
            # Called from the kernel's thread between chunks; a few times a second at most.
            pct = _KERNEL_START + (_KERNEL_END - _KERNEL_START) * fraction
            done = round(fraction * n_combos * n_bars / max(n_bars, 1))
            text = f"Processing {min(done, n_combos)}/{n_combos} combinations ({fraction * 100:.0f}% of {n_bars} bars)"
            return reports.report(pct, text)

        t0 = time.perf_counter()
        try:
            settings = {
                "direction": spec.direction or "long",
                "fill": spec.fill or "next_open",
                "commission_pct": spec.commission_pct,
                "slippage_pct": spec.slippage_pct,
                "initial_cash": spec.initial_cash or 10_000.0,
                "progress": on_progress,
                "threads": ctx.sweep_threads,
            }
            strategy = spec.strategy_type or "SMA"
            if rsi:
                del settings["threads"]  # one kernel pass per combination, on this thread
                blocks = (spec.pbo_blocks or PBO_BLOCKS_DEFAULT) if ctx.sweep_statistics else None
                rsi_rows, stats = await asyncio.to_thread(run_rsi_sweep, bars, grid, pbo_blocks=blocks, **settings)
                statistics = statistics_message(stats) if stats is not None else None
                statistics_seconds = 0.0
                # A row's combination is its parameters; fast_period holds the period (slow_period 0).
                rows = []
                for row in rsi_rows:
                    combo = {name: row.pop(name) for name in ("period", "oversold", "overbought")}
                    rows.append({"fast_period": combo["period"], "slow_period": 0,
                                 "parameters_json": json.dumps(combo, separators=(",", ":")), **row})
            elif ctx.sweep_statistics:
                outcome = await asyncio.to_thread(
                    run_sweep_with_statistics, bars, strategy, combos,
                    pbo_blocks=spec.pbo_blocks or PBO_BLOCKS_DEFAULT, cscv=chunks <= 1, **settings,
                )
                rows, statistics = outcome.rows, statistics_message(outcome.statistics, outcome.block_sums)
                statistics_seconds = outcome.statistics_seconds
            else:
                rows = await asyncio.to_thread(run_sweep, bars, strategy, combos, **settings)
                statistics, statistics_seconds = None, 0.0
        except SweepCancelled:
            await reports.settle()
            if ctx.stopping:
                raise ctx.shutting_down(job.job_id) from None
            log.info("sweep stopped on request", extra={"job_id": job.job_id})
            return
        elapsed = time.perf_counter() - t0
        await reports.settle()
        # The kernel's throughput: the statistics after it depend on the grid and the days, not the bars.
        ctx.metrics.observe_sweep(n_combos, n_bars, max(elapsed - statistics_seconds, 1e-9))
        await ctx.progress(job.job_id, 98.0, "Storing results")
        results = [
            results_pb2.SweepResult(ticker=spec.ticker, strategy_type=spec.strategy_type or "SMA", **_clean(row))
            for row in rows
        ]
        await ctx.call(
            ctx.stub.CompleteSweep,
            results_pb2.CompleteSweepRequest(
                job_id=job.job_id, results=results, execution_time_seconds=elapsed, bars=n_bars,
                dataset_version_id=version, statistics=statistics,
            ),
            timeout=max(ctx.rpc_timeout, 60.0),
        )
        log.info(
            "sweep done",
            extra={"job_id": job.job_id, "combos": n_combos, "bars": n_bars, "seconds": round(elapsed, 3),
                   "statistics_seconds": round(statistics_seconds, 3)},
        )
