"""JOB_KIND_WALK_FORWARD: the engine's part of a walk-forward optimization.

Each JobMessage names one fold's shard (`shard_id` "f0003", domain.shards; a message
queued before folds were shards names its `fold_number`, from 1, or 0: every fold). The fold's training sweep, choice and test run are
services.engine.walkforward.run_fold over the bars of the dataset version the folds were
cut on at submission; the fold goes to results' CompleteWalkForwardFold, which completes
the job when the last one is in. Folds share nothing, so replicas run them in parallel.
"""

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
from domain.shards import parse_fold_shard
from domain.sweep import MIN_TRADES_DEFAULT, sweep_combos
from domain.walkforward import Windows, folds
from services.engine.bars_cache import SWEEP_COLUMNS
from services.engine.job_context import JobContext
from services.engine.sweep import SweepCancelled
from services.engine.walkforward import FoldSettings, run_fold

log = logging.getLogger(__name__)


def settings_of(spec: jobs_pb2.WalkForwardSpec) -> FoldSettings:
    """What every fold of `spec` runs."""
    s = spec.sweep
    return FoldSettings(
        strategy_type=s.strategy_type or "SMA",
        combos=sweep_combos(s.fast_min, s.fast_max, s.slow_min, s.slow_max, s.step),
        objective=spec.objective or "score",
        min_trades=s.min_trades or MIN_TRADES_DEFAULT,
        direction=s.direction or "long",
        fill=s.fill or "next_open",
        commission_pct=s.commission_pct,
        slippage_pct=s.slippage_pct,
        initial_cash=s.initial_cash or 10_000.0,
    )


class WalkForwardRunner:
    """The engine's runner of walk-forward folds (services.engine.kinds.KindRunner)."""

    kind = jobs_pb2.JOB_KIND_WALK_FORWARD

    async def run(self, ctx: JobContext, job: jobs_pb2.Job, msg: bus_pb2.JobMessage) -> None:
        spec = job.walkforward
        sweep = spec.sweep
        resolved = await ctx.call(
            ctx.stub.ResolveDataset,
            results_pb2.ResolveDatasetRequest(tenant_id=job.tenant_id, ticker=sweep.ticker, interval=sweep.interval),
        )
        if not resolved.found:
            await ctx.fail(job.job_id, insufficient_data(sweep.ticker))
            return
        try:
            # The version the folds were cut on: every fold runs on the same bars.
            bars = await ctx.cache.get(ctx.stub, resolved.dataset, spec.dataset_version_id or resolved.version_id,
                                       columns=SWEEP_COLUMNS)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            await ctx.fail(job.job_id, "the dataset version of this walk-forward was deleted")
            return
        windows = Windows(spec.train_bars, spec.test_bars, spec.step_bars, spec.anchored, spec.objective or "score")
        cut = folds(len(bars), windows)
        if len(cut) != spec.folds:
            await ctx.fail(job.job_id, f"the dataset has {len(bars)} bars; its folds were cut on {spec.bars}")
            return
        try:
            # The fold's shard (domain.shards: "f0003"); a message queued before folds were
            # shards names its fold_number (0: every fold).
            number = parse_fold_shard(msg.shard_id) if msg.shard_id else msg.fold_number
        except ValueError:
            number = -1
        if not 0 <= number <= len(cut):
            await ctx.fail(job.job_id, f"fold {msg.shard_id or number} of a walk-forward of {len(cut)} folds")
            return
        settings = settings_of(spec)
        wanted = [cut[number - 1]] if number else cut

        def keep_going(_fraction: float) -> bool:
            return not ctx.stopping

        for fold in wanted:
            t0 = time.perf_counter()
            try:
                result = await asyncio.to_thread(run_fold, bars, fold, settings, threads=ctx.sweep_threads,
                                                 progress=keep_going)
            except SweepCancelled:
                raise ctx.shutting_down(job.job_id) from None
            except ValueError as exc:
                await ctx.fail(job.job_id, f"fold {fold.index + 1}: {exc}")
                return
            elapsed = time.perf_counter() - t0
            resp = await ctx.call(
                ctx.stub.CompleteWalkForwardFold,
                results_pb2.CompleteWalkForwardFoldRequest(
                    job_id=job.job_id, fold_number=fold.index + 1, result_json=json.dumps(result, allow_nan=False),
                    execution_time_seconds=elapsed,
                ),
                timeout=max(ctx.rpc_timeout, 60.0),
            )
            log.info("walk-forward fold done", extra={"job_id": job.job_id, "fold": fold.index + 1,
                                                      "parameters": result["parameters"], "seconds": round(elapsed, 3),
                                                      "stored": resp.stored})
            if not resp.stored:
                return  # the job ended meanwhile (cancelled, failed, timed out)
            if ctx.stopping:
                raise ctx.shutting_down(job.job_id)
