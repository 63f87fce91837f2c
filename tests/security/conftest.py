"""Shared by the security tests: real stacks started as processes with the environment a
test needs (tests/stacks.py), on any loopback address, and what their start printed."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.stacks import Stack, start_standalone


def start_standalone_at(data_dir: Path, log_dir: Path, env: dict | None = None, host: str = "127.0.0.1") -> Stack:
    """`make run` on `host` with extra environment, no dev key assumed, its own secret key."""
    return start_standalone(data_dir, log_dir, env, host=host, api_key="", own_secret_key=True)


def stop(stack: Stack) -> None:
    codes = stack.stop(signal.SIGINT)
    assert codes["standalone"] == 0, stack.log_text()


def banner(stack: Stack, timeout: float = 10) -> str:
    """What the stack printed at start (the banner follows the first /health by a moment)."""
    deadline = time.time() + timeout
    while True:
        text = stack.logs["standalone"].read_text(errors="replace")
        if ("Hindsight standalone is up" in text and "Ctrl-C stops everything." in text) or time.time() > deadline:
            return text
        time.sleep(0.1)


def wait_for(check, timeout: float, what: str, stack: Stack | None = None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout}s" + (f"\n{stack.log_text()}" if stack else ""))


def sweep(c: httpx.Client, webhook_url: str, ticker: str = "BTC-USD") -> httpx.Response:
    """A sweep that ends at once (no data for BTC-USD: sweep.failed) with `webhook_url`."""
    return c.post("/api/v1/strategy/sweep", json={"ticker": ticker, "fast_range": [10, 20], "slow_range": [20, 30],
                                                  "step": 5, "min_trades": 10, "webhook_url": webhook_url})


def settled_deliveries(c: httpx.Client, job_id: str, timeout: float = 60, stack: Stack | None = None) -> list[dict]:
    """The job's deliveries once one exists and none is pending."""

    def check():
        body = c.get(f"/api/v1/jobs/{job_id}/deliveries").json()
        ds = body["deliveries"]
        return ds if ds and all(d["state"] != "pending" for d in ds) else None

    return wait_for(check, timeout, f"deliveries of {job_id}", stack)
