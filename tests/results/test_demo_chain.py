"""DEMO-OPTIONS: every price of whole demo days equals QuantLib's Black–Scholes (an independent
implementation) to 1e-9 relative; expiries are Thursdays; the chain is in the store's sort order,
its bars valid, and its generation fast."""

from __future__ import annotations

import os
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest
import QuantLib as ql

from libs.option_chain_wire import chain_frame
from services.results.demo_chain import (
    DEMO_RATE,
    DEMO_VOLATILITY,
    demo_chain_days,
    ensure_demo_chain_files,
)
from services.results.demo_datasets import demo_minute
from services.results.market_store import STALE_STAGING_S, MarketStore

IST = "Asia/Kolkata"


@pytest.fixture(scope="module")
def days() -> list:
    return list(demo_chain_days())


def quantlib_price(kind: str, spot: float, strike: float, years: float) -> float:
    """QuantLib's Black formula on the forward: F = S e^(rT), σ√T, discount e^(-rT)."""
    discount = float(np.exp(-DEMO_RATE * years))
    forward = spot / discount
    std_dev = DEMO_VOLATILITY * float(np.sqrt(years))
    option = ql.Option.Call if kind == "CE" else ql.Option.Put
    return ql.BlackCalculator(ql.PlainVanillaPayoff(option, strike), forward, std_dev, discount).value()


def test_expiries_are_thursdays_current_and_next_week(days: list) -> None:
    assert len(days) == 40
    for day, table in days:
        expiries = sorted(pc.unique(table.column("expiry")).to_pylist())
        current = day + timedelta(days=(3 - day.weekday()) % 7)
        assert expiries == [current, current + timedelta(weeks=1)]
        assert all(e.weekday() == 3 for e in expiries)


# Below this price a float64 Black–Scholes cannot be relatively exact: S·N(d1) and K·e^(-rT)·N(d2)
# are each known to about S·ε (2000 × 2.2e-16), so their difference is known to ~1e-12 absolute.
RELATIVE_FROM = 1e-3
ABSOLUTE_BELOW = 1e-11


@pytest.mark.parametrize("which", [0, 3, 39])  # a Monday, the first expiry day (Thursday), the last day
def test_prices_equal_quantlib(days: list, which: int) -> None:
    _, table = days[which]
    frame = chain_frame(table)
    assert len(frame) == 375 * 2 * 41 * 2
    # Every 7th row: 7 is prime to the 164 contracts of a minute, so each contract is compared at
    # about 54 minutes spread over the day (QuantLib prices ~20 k rows a second in a Python loop).
    frame = frame.iloc[::7].reset_index(drop=True)
    spot = demo_minute().bars
    at = pd.Index(spot.ts).get_indexer(pd.DatetimeIndex(frame["timestamp"]).as_unit("ns").asi8)
    assert (at >= 0).all()
    # Years to the expiry (15:30 IST on its day), from the bar's start, over 365-day years.
    expiry_close = pd.DatetimeIndex(frame["expiry"]).tz_localize(IST) + pd.Timedelta(hours=15, minutes=30)
    years = ((expiry_close - pd.DatetimeIndex(frame["timestamp"])).total_seconds() / (365 * 86400)).to_numpy()
    call = (frame["option_type"] == "CE").to_numpy()
    spots = {
        "open": spot.open[at], "close": spot.close[at],
        "high": np.where(call, spot.high[at], spot.low[at]), "low": np.where(call, spot.low[at], spot.high[at]),
    }
    compared = 0
    for col, s in spots.items():
        got = frame[col].to_numpy()
        want = np.array([
            quantlib_price("CE" if c else "PE", float(x), float(k), float(t))
            for c, x, k, t in zip(call, s, frame["strike"].to_numpy(), years)
        ])
        big = want >= RELATIVE_FROM
        rel = np.abs(got[big] - want[big]) / want[big]
        assert rel.max() <= 1e-9, (col, rel.max())
        assert np.abs(got[~big] - want[~big]).max(initial=0.0) <= ABSOLUTE_BELOW, col
        compared += int(big.sum())
    assert compared > 0.7 * 4 * len(frame)  # most prices are compared relatively


def test_bars_valid_and_sorted(days: list) -> None:
    for _, table in days[:5]:
        f = chain_frame(table)
        assert (f["high"] >= f[["open", "close"]].max(axis=1)).all()
        assert (f["low"] <= f[["open", "close"]].min(axis=1)).all()
        assert (f["low"] >= 0).all()
        keys = list(zip(f["timestamp"], f["expiry"], f["strike"], f["option_type"]))
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
        assert set(np.diff(np.unique(f["strike"]))) == {10.0}
        assert table.column("iv").to_numpy().tolist() == [DEMO_VOLATILITY] * len(f)


def test_generated_once(tmp_path: Path) -> None:
    """The files are generated at the first call and reused after (how long the generation takes
    is measured by bench/option_chain.py: target < 10 s)."""
    store = MarketStore(tmp_path)
    key, summary, size = ensure_demo_chain_files(store)
    assert summary.rows == 40 * 375 * 2 * 41 * 2 and summary.days == 40 and size > 0
    assert summary.expiries[0] == date(2024, 1, 4) and summary.expiries[-1] == date(2024, 3, 7)
    assert len(summary.expiries) == 10 and summary.contracts > 0
    assert store.days(key)[0] == date(2024, 1, 1)
    files = sorted(store.path_of(key).rglob("*"))
    written = {f: f.stat().st_mtime_ns for f in files}
    assert ensure_demo_chain_files(store)[0] == key
    assert {f: f.stat().st_mtime_ns for f in sorted(store.path_of(key).rglob("*"))} == written  # not generated again


def test_clear_staging_keeps_an_import_in_progress(tmp_path):
    """Results clears what crashed imports left in .staging at start-up, but not a directory another
    process (a replica sharing the volume) is writing into now."""
    store = MarketStore(tmp_path)
    live = store.new_staging()
    (live / "day=2024-01-02").mkdir()
    crashed = store.new_staging()
    old = time.time() - STALE_STAGING_S - 60
    os.utime(crashed, (old, old))
    store.clear_staging()
    assert live.is_dir() and (live / "day=2024-01-02").is_dir()
    assert not crashed.exists()
