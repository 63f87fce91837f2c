"""Request builders shared by the results tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2

CSV_HEADER = "timestamp,open,high,low,close,volume\n"


def sweep_spec(ticker: str = "BTC-USD", **over) -> jobs_pb2.SweepSpec:
    values = dict(
        ticker=ticker, fast_min=10, fast_max=20, slow_min=20, slow_max=30, step=5, min_trades=50, strategy_type="SMA"
    )
    values.update(over)
    return jobs_pb2.SweepSpec(**values)


def submit_request(tenant_id: str, ticker: str = "BTC-USD", **over) -> results_pb2.SubmitJobRequest:
    spec = sweep_spec(ticker)
    values = dict(
        tenant_id=tenant_id,
        job_kind=jobs_pb2.JOB_KIND_SWEEP,
        parameters_json=json.dumps({"ticker": ticker, "fast_range": [10, 20], "slow_range": [20, 30], "step": 5}),
        webhook_url="http://webhook-receiver:3000/webhook/sweep-callback",
        sweep=spec,
    )
    values.update(over)
    return results_pb2.SubmitJobRequest(**values)


def result_row(fast: int, slow: int, score: float | None, trades: int, ticker: str = "BTC-USD") -> results_pb2.SweepResult:
    row = results_pb2.SweepResult(
        ticker=ticker,
        strategy_type="SMA",
        fast_period=fast,
        slow_period=slow,
        total_trades=trades,
        sharpe_ratio=1.5,
        total_return_pct=12.5,
        max_drawdown_pct=-8.0,
        avg_trade_duration="5.2 days",
    )
    if score is not None:
        row.score = score
    return row


def daily_csv(n: int, start_price: float = 100.0) -> str:
    """n valid daily bars from 2020-01-01."""
    import datetime as dt

    lines = [CSV_HEADER]
    day = dt.date(2020, 1, 1)
    price = start_price
    for i in range(n):
        o = price
        c = price * (1.01 if i % 3 else 0.99)
        lines.append(f"{day + dt.timedelta(days=i)},{o:.4f},{max(o, c) + 1:.4f},{min(o, c) - 1:.4f},{c:.4f},{1000 + i}\n")
        price = c
    return "".join(lines)


def import_requests(tenant_id: str, ticker: str, csv: str | bytes, interval: str = "1d", chunk: int = 64, **meta):
    data = csv.encode() if isinstance(csv, str) else csv
    first = results_pb2.ImportDatasetRequest(tenant_id=tenant_id, ticker=ticker, interval=interval, **meta)
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
    first.data = pieces[0]
    return [first] + [results_pb2.ImportDatasetRequest(data=p) for p in pieces[1:]]


@contextmanager
def job_row_held(database_url: str, job_id: str) -> Iterator[psycopg.Connection]:
    """Another transaction holding a job's row (as a replica's completion does, jobs.locked_job)
    until the block ends."""
    with psycopg.connect(database_url) as holder:
        holder.execute("SELECT 1 FROM jobs WHERE job_id = %s FOR NO KEY UPDATE", (job_id,))
        yield holder
        holder.rollback()


def job_row_free(database_url: str, job_id: str) -> bool:
    """Whether no transaction holds a job's row now."""
    with psycopg.connect(database_url) as probe:
        try:
            probe.execute("SELECT 1 FROM jobs WHERE job_id = %s FOR NO KEY UPDATE NOWAIT", (job_id,))
        except psycopg.errors.LockNotAvailable:
            return False
        return True
