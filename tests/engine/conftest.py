"""Shared synthetic datasets for the engine tests (the kernels must be built:
``.venv/bin/python services/engine/setup.py build_ext --inplace -q``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.engine.bars import Bars

NS_MIN = 60 * 1_000_000_000
NS_DAY = 86_400 * 1_000_000_000


def random_walk_bars(
    n: int,
    ts: np.ndarray,
    *,
    seed: int,
    sigma: float,
    gap_sigma: float,
    timezone: str = "UTC",
    calendar: str = "continuous",
) -> Bars:
    """Geometric random walk; each open differs from the previous close by a
    small gap so next-open and close fills give different results."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
    prev = np.concatenate([[100.0], close[:-1]])
    open_ = prev * np.exp(rng.normal(0.0, gap_sigma, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, sigma / 4, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, sigma / 4, n)))
    vol = rng.integers(100, 10_000, n).astype(np.float64)
    return Bars(ts.astype(np.int64), open_, high, low, close, vol, timezone=timezone, calendar=calendar)


def make_daily_bars(n: int = 700, seed: int = 7) -> Bars:
    """Daily 24/7 bars at 00:00 UTC (P = 365)."""
    ts = pd.Timestamp("2021-01-01", tz="UTC").value + np.arange(n, dtype=np.int64) * NS_DAY
    return random_walk_bars(n, ts, seed=seed, sigma=0.03, gap_sigma=0.004)


def make_session_minute_bars(days: int = 6, seed: int = 11, tz: str = "Australia/Sydney") -> Bars:
    """1-minute bars, 10:00-15:59 local time on weekdays (P = 252). In Sydney the
    session straddles midnight UTC, so UTC days would split each local day."""
    stamps = []
    for day in pd.bdate_range("2024-03-04", periods=days):
        start = pd.Timestamp(day.date().isoformat() + " 10:00", tz=tz)
        stamps.append(start.value + np.arange(360, dtype=np.int64) * NS_MIN)
    ts = np.concatenate(stamps)
    return random_walk_bars(ts.shape[0], ts, seed=seed, sigma=0.001, gap_sigma=0.0003, timezone=tz, calendar="sessions")


@pytest.fixture(scope="session")
def daily_bars() -> Bars:
    return make_daily_bars()


@pytest.fixture(scope="session")
def minute_bars() -> Bars:
    return make_session_minute_bars()
