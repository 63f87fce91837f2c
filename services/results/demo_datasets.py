"""Synthetic demo datasets: deterministic geometric random walks with sane OHLC bars.

`DEMO-DAILY`: 2,000 consecutive days from 2019-01-01 (interval 1d, continuous
calendar, UTC). `DEMO-MINUTE`: 375 one-minute bars (09:15-15:29 local time)
on each of 40 weekdays from 2024-01-01 (interval 1m, sessions calendar,
Asia/Kolkata). The same seed always gives the same bars.

Their files are written once per market store and shared by every tenant's demo versions
(services/results/datasets.py, ensure_demo_files).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from services.results.bar_arrays import BarArrays

# Bump when a generator below changes: new shared files, so stores never mix the old and new bars.
DEMO_BARS_VERSION = 1


@dataclass(frozen=True)
class DemoDataset:
    """A demo dataset's description and its bars."""

    ticker: str
    interval: str
    calendar: str
    timezone: str
    bars: BarArrays


def random_walk_bars(ts: np.ndarray, seed: int, start_price: float, drift: float, vol: float) -> BarArrays:
    """OHLCV bars at `ts` whose closes follow a geometric random walk.

    Each bar opens at the previous close (with a small gap) and its high/low
    extend beyond max/min(open, close) by a non-negative random amount, so
    high >= max(open, close) >= min(open, close) >= low > 0 always holds.
    """
    rng = np.random.default_rng(seed)
    n = ts.shape[0]
    log_returns = rng.normal(drift, vol, n)
    close = start_price * np.exp(np.cumsum(log_returns))
    prev_close = np.concatenate(([start_price], close[:-1]))
    open_ = prev_close * np.exp(rng.normal(0.0, vol * 0.2, n))
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    high = top * (1.0 + np.abs(rng.normal(0.0, vol * 0.5, n)))
    low = bottom * (1.0 - np.minimum(np.abs(rng.normal(0.0, vol * 0.5, n)), 0.5))
    volume = np.round(rng.lognormal(mean=10.0, sigma=0.5, size=n))
    return BarArrays(
        ts=ts.astype(np.int64),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume.astype(np.float64),
    )


def demo_daily() -> DemoDataset:
    ts = pd.date_range("2019-01-01", periods=2000, freq="D", tz="UTC").as_unit("ns").asi8
    return DemoDataset("DEMO-DAILY", "1d", "continuous", "UTC", random_walk_bars(ts, 20190101, 100.0, 0.0003, 0.02))


def demo_minute() -> DemoDataset:
    tz = "Asia/Kolkata"
    days = pd.bdate_range("2024-01-01", periods=40)
    minutes = pd.timedelta_range(start="09:15:00", periods=375, freq="min")
    local = pd.DatetimeIndex([d + m for d in days for m in minutes]).tz_localize(tz)
    ts = local.tz_convert("UTC").as_unit("ns").asi8
    return DemoDataset("DEMO-MINUTE", "1m", "sessions", tz, random_walk_bars(ts, 20240101, 2000.0, 0.0, 0.0008))


def demo_datasets() -> list[DemoDataset]:
    return [demo_daily(), demo_minute()]
