"""Helpers of the gateway tests: SSE parsing, engine-side RPCs, request bodies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from hindsight.results.v1 import results_pb2

# Seed 001's form, verbatim (as `curl -d` / a form client sends it).
SEED_FORM = {
    "ticker": "BTC-USD",
    "fast_range": "[10, 20]",
    "slow_range": "[20, 30]",
    "step": "5",
    "min_trades": "50",
    "strategy_type": "SMA",
    "config_path": "minimum",
    "webhook_url": "http://webhook-receiver:3000/webhook/sweep-callback",
}

# Seed 001's "Via API" JSON body.
SEED_JSON = {
    "ticker": "BTC-USD",
    "fast_range": [10, 20],
    "slow_range": [20, 30],
    "step": 5,
    "min_trades": 50,
    "strategy_type": "SMA",
}


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Yield {id, data, event} of each SSE event from a line iterator (pings skipped)."""
    cur: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if "data" in cur:
                yield cur
            cur = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "data":
            cur["data"] = json.loads(value)
        elif key == "id":
            cur["id"] = int(value)
        elif key == "event":
            cur["event"] = value
    if "data" in cur:
        yield cur


def sweep_row(
    fast: int, slow: int, trades: int, score: float | None, **metrics: float | None
) -> results_pb2.SweepResult:
    """A combo's row as the engine would report it."""
    row = results_pb2.SweepResult(
        ticker="BTC-USD",
        strategy_type="SMA",
        fast_period=fast,
        slow_period=slow,
        total_trades=trades,
        avg_trade_duration="5.2 days",
    )
    values = {
        "score": score,
        "sharpe_ratio": None if score is None else score * 1.25,
        "sortino_ratio": 1.5,
        "total_return_pct": 12.5,
        "annualized_return": 4.2,
        "max_drawdown_pct": -20.0,
        "win_rate_pct": 55.0,
        "profit_factor": 1.8,
        "trades_per_month": 2.5,
    }
    values.update(metrics)
    for name, value in values.items():
        if value is not None:
            setattr(row, name, value)
    return row


def run_job(stub: Any, job_id: str, rows: list[results_pb2.SweepResult] | None = None) -> str:
    """Play the engine: start, report progress, complete; returns the sweep run id."""
    assert stub.StartJob(results_pb2.StartJobRequest(job_id=job_id), timeout=10).proceed
    stub.ReportProgress(
        results_pb2.ReportProgressRequest(job_id=job_id, percent=50, message="Processing 4/8"), timeout=10
    )
    resp = stub.CompleteSweep(
        results_pb2.CompleteSweepRequest(
            job_id=job_id,
            results=rows if rows is not None else [sweep_row(10, 20, 60, 1.0)],
            execution_time_seconds=1.5,
            bars=1000,
        ),
        timeout=10,
    )
    assert resp.stored
    return resp.sweep_run_id


def jobs_total(stub: Any, tenant: str) -> int:
    """The tenant's job count, asked of results directly."""
    return stub.ListJobs(results_pb2.ListJobsRequest(tenant_id=tenant, limit=1, offset=0), timeout=10).total


def assert_error(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is the JSON error model with this status (and code)."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in resp.text
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]
