"""JOB_KIND_DAY_BY_DAY: the engine's part of a day-by-day backtest.

Load the strategy's bars (cached per dataset version), evaluate the whole
range at once (services.engine.day_by_day: vectorised indicators + the Cython
position loop), then build each day's gzip JSON files and send them to results
(DayBacktestService.StoreDays) in date order. Days go out in small batches —
the first day at once, then whatever is ready every ~0.2 s — so clients see
`day_completed` events as days finish while a year costs a handful of calls.
Results answers whether to stop (the job was cancelled): the run stops
between days. A shutdown of the engine hands the message back to the queue.

A long range arrives as several messages, each naming a shard (day_start ..
day_end, day_offset): this engine runs only those days (indicators still warm up
on every earlier bar, so a shard's trades are the whole run's trades of those
days) and results completes the job when the last shard's days are stored.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
from datetime import date

import grpc
from hindsight.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from hindsight.bus.v1 import bus_pb2
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2

from domain.market import insufficient_data
from domain.rules.strategy import StrategyInvalid, compile_strategy
from services.engine.day_by_day import DayByDayRun, NoData, day_documents, run_day_by_day
from services.engine.job_context import JobContext
from services.engine.option_chains import ChainDays

log = logging.getLogger(__name__)

BATCH_SECONDS = 0.2
BATCH_MAX_DAYS = 64
BATCH_MAX_BYTES = 16 * 1024 * 1024
# gzip level: the files are small; level 6 costs ~3x level 1 for ~10% smaller files.
GZIP_LEVEL = 5
MARKET_DATA_ERROR = "Failed to fetch market data"


def _gz(doc: dict) -> bytes:
    return gzip.compress(json.dumps(doc, separators=(",", ":"), allow_nan=False).encode(), compresslevel=GZIP_LEVEL, mtime=0)


def build_day(run: DayByDayRun, day) -> backtest_pb2.DayArtifacts:
    """One day's files and numbers, ready for StoreDays."""
    trades, diagnostics, positions, s = day_documents(run, day)
    return backtest_pb2.DayArtifacts(
        date=day.date.isoformat(),
        day_number=day.day_number,
        summary_json=json.dumps(trades["summary"]),
        positions=s.positions,
        pnl=s.pnl,
        winning_trades=s.winning,
        losing_trades=s.losing,
        largest_win=s.largest_win,
        largest_loss=s.largest_loss,
        gross_profit=s.gross_profit,
        gross_loss=s.gross_loss,
        trade_seconds=s.trade_ns / 1e9,
        files=[
            backtest_pb2.DayFile(name="trades_daily.json.gz", data=_gz(trades)),
            backtest_pb2.DayFile(name="diagnostics_export.json.gz", data=_gz(diagnostics)),
            backtest_pb2.DayFile(name="positions.json.gz", data=_gz(positions)),
        ],
    )


class Stopped(Exception):
    """Results said stop (cancelled, failed, timed out)."""


class DayByDayRunner:
    """The engine's runner of day-by-day backtests (services.engine.kinds.KindRunner); the days
    and the end go to results' DayBacktestService."""

    kind = jobs_pb2.JOB_KIND_DAY_BY_DAY

    def __init__(self, days: backtest_pb2_grpc.DayBacktestServiceStub) -> None:
        self.days = days

    async def run(self, ctx: JobContext, job: jobs_pb2.Job, msg: bus_pb2.JobMessage) -> None:
        """Run the job's range, or the shard of it that `msg` names (day_start..day_end)."""
        spec = job.day_backtest
        shard = bool(msg.day_start)
        first = msg.day_start if shard else spec.start_date
        last = msg.day_end if shard else spec.end_date
        offset = msg.day_offset if shard else 0
        t0 = time.perf_counter()
        try:
            strategy = compile_strategy(json.loads(spec.strategy_json))
        except (ValueError, StrategyInvalid) as exc:
            await ctx.fail(job.job_id, f"Invalid strategy: {exc}")
            return
        resolved = await ctx.call(
            ctx.stub.ResolveDataset,
            results_pb2.ResolveDatasetRequest(tenant_id=job.tenant_id, ticker=spec.ticker, interval=spec.interval),
        )
        if not resolved.found:
            await ctx.fail(job.job_id, f"{MARKET_DATA_ERROR}: {insufficient_data(spec.ticker)}")
            return
        try:
            # The version the days were counted on at submission: every shard runs on the same bars.
            bars = await ctx.cache.get(ctx.stub, resolved.dataset, spec.dataset_version_id or resolved.version_id)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            await ctx.fail(job.job_id, f"{MARKET_DATA_ERROR}: the dataset version of this backtest was deleted")
            return
        underlying = spec.ticker or resolved.dataset.ticker
        # Option legs read the underlying's chain day by day (results' market store).
        chain_for = (
            ChainDays(ctx.stub, job.tenant_id, resolved.dataset.ticker, asyncio.get_running_loop(), ctx.chain_cache)
            if strategy.option_legs
            else None
        )
        try:
            run = await asyncio.to_thread(
                run_day_by_day,
                bars,
                strategy,
                date.fromisoformat(first),
                date.fromisoformat(last),
                interval=resolved.dataset.interval,
                ticker=underlying,
                slippage_pct=spec.slippage_pct,
                commission_pct=spec.commission_pct,
                day_offset=offset,
                chain_for=chain_for,
            )
        except NoData as exc:
            await ctx.fail(job.job_id, f"{MARKET_DATA_ERROR}: {exc}")
            return
        finally:
            if chain_for is not None:
                chain_for.close()

        computed = time.perf_counter()
        timing = {"store_seconds": 0.0, "build_seconds": 0.0, "store_calls": 0}

        async def store(batch: list[backtest_pb2.DayArtifacts]) -> None:
            t = time.perf_counter()
            resp = await ctx.call(
                self.days.StoreDays,
                backtest_pb2.StoreDaysRequest(job_id=job.job_id, days=batch),
                timeout=max(ctx.rpc_timeout, 60.0),
            )
            timing["store_seconds"] += time.perf_counter() - t
            timing["store_calls"] += 1
            if ctx.stopping:
                raise ctx.shutting_down(job.job_id)
            if resp.stop:
                raise Stopped(resp.reason)

        def build(days) -> list[backtest_pb2.DayArtifacts]:
            return [build_day(run, d) for d in days]

        # One StoreDays in flight while the next days are built (results writes as we build).
        inflight: asyncio.Task | None = None

        async def send(batch: list[backtest_pb2.DayArtifacts]) -> None:
            nonlocal inflight
            if inflight is not None:
                await inflight  # in date order, and a stop answer is seen before the next batch goes
            inflight = asyncio.create_task(store(batch))

        try:
            pending: list[backtest_pb2.DayArtifacts] = []
            size = 0
            sent_any = False
            last_sent = time.perf_counter()
            days = run.days
            i = 0
            while i < len(days):
                # Build a few days off the event loop, then decide whether to send.
                chunk = days[i : i + (8 if sent_any else 1)]
                i += len(chunk)
                t = time.perf_counter()
                built = await asyncio.to_thread(build, chunk)
                timing["build_seconds"] += time.perf_counter() - t
                pending.extend(built)
                size += sum(d.ByteSize() for d in built)
                if (
                    not sent_any  # the first day goes out at once
                    or time.perf_counter() - last_sent >= BATCH_SECONDS
                    or len(pending) >= BATCH_MAX_DAYS
                    or size >= BATCH_MAX_BYTES
                ):
                    await send(pending)
                    pending, size, sent_any, last_sent = [], 0, True, time.perf_counter()
            if pending:
                await send(pending)
            if inflight is not None:
                await inflight
        except Stopped as exc:
            log.info("day-by-day backtest stopped on request", extra={"job_id": job.job_id, "reason": str(exc)})
            return
        finally:
            if inflight is not None and not inflight.done():
                inflight.cancel()
                await asyncio.gather(inflight, return_exceptions=True)
        elapsed = time.perf_counter() - t0
        await ctx.call(
            self.days.CompleteDayBacktest,
            backtest_pb2.CompleteDayBacktestRequest(
                job_id=job.job_id, execution_time_seconds=elapsed, bars=run.bars_evaluated, whole_range=not shard
            ),
        )
        log.info(
            "day-by-day backtest done" if not shard else "day-by-day shard done",
            extra={
                "job_id": job.job_id,
                "days": len(run.days),
                "first": first,
                "last": last,
                "seconds": round(elapsed, 3),
                "evaluate_seconds": round(computed - t0, 3),
                **{k: round(v, 3) if isinstance(v, float) else v for k, v in timing.items()},
            },
        )
