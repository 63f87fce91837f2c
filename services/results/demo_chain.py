"""DEMO-OPTIONS: a synthetic weekly option chain on DEMO-MINUTE, so options strategies run
out of the box. It is not market data: every price is Black–Scholes
(domain/black_scholes.py) of the DEMO-MINUTE random walk.

- Underlying: DEMO-MINUTE (services/results/demo_datasets.py), 40 weekdays from
  2024-01-01, 375 one-minute bars a day (09:15–15:29 Asia/Kolkata).
- Expiries: every Thursday (DEMO_EXPIRY_WEEKDAY) at 15:30 local time; each day lists two, the
  current week's (the first Thursday on or after the day) and the next week's.
- Strikes: every DEMO_STRIKE_STEP (10) points, DEMO_STRIKES_EACH_SIDE (20) either side of the
  day's first open rounded to a step: 41 strikes, calls (CE) and puts (PE).
- Prices: σ = DEMO_VOLATILITY (15 % a year), r = DEMO_RATE (6.5 % continuously compounded),
  no dividends; T = time from the bar's start to the expiry / 365 days. A contract's open and
  close price the underlying's open and close; its high and low price the underlying's high and
  low (a call's high at the spot's high, a put's at the spot's low): the price is monotone in the
  spot, so each bar is a valid OHLC bar (where rounding puts the open or close a hair beyond,
  the high or low is that price). `iv` holds σ; volume is synthetic (thinner away from
  the money); `oi` is empty.

The files are generated once per store (about 1.2 M rows, a few seconds) and shared by every
tenant's DEMO-OPTIONS record.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.orm import Session

from domain.black_scholes import black_scholes
from services.results.chain_import import ChainSummary, day_writer, discard
from services.results.demo_datasets import demo_minute
from services.results.market_store import CHAIN_SCHEMA, PART, MarketStore, day_dir_name
from services.results.models_market import OptionChain
from services.results.option_chains import record_chain

DEMO_CHAIN_TICKER = "DEMO-OPTIONS"
DEMO_UNDERLYING = "DEMO-MINUTE"
DEMO_VOLATILITY = 0.15
DEMO_RATE = 0.065
DEMO_EXPIRY_WEEKDAY = 3  # Thursday
DEMO_EXPIRY_TIME = "15:30"
DEMO_STRIKE_STEP = 10.0
DEMO_STRIKES_EACH_SIDE = 20
DEMO_LIVE_EXPIRIES = 2
# Bump when the generator changes: a new directory, so stores keep consistent files.
DEMO_CHAIN_VERSION = "demo_00000002"
YEAR_NS = 365 * 86_400 * 1_000_000_000
SUMMARY_FILE = "summary.json"


def _expiry_on_or_after(day: date) -> date:
    return day + timedelta(days=(DEMO_EXPIRY_WEEKDAY - day.weekday()) % 7)


def demo_chain_days() -> list[tuple[date, pa.Table]]:
    """Each day of the demo chain as stored rows, sorted by (timestamp, expiry, strike, type)."""
    demo = demo_minute()
    bars = demo.bars
    zone = demo.timezone
    local = pd.DatetimeIndex(bars.ts, tz="UTC").tz_convert(zone)
    day_of = np.asarray(local.normalize().tz_localize(None).date)
    out = []
    offsets = np.arange(-DEMO_STRIKES_EACH_SIDE, DEMO_STRIKES_EACH_SIDE + 1) * DEMO_STRIKE_STEP
    n_strikes = offsets.size
    for day in sorted(set(day_of.tolist())):
        rows = np.flatnonzero(day_of == day)
        ts = bars.ts[rows]
        m = ts.size
        first = _expiry_on_or_after(day)
        expiries = [first + timedelta(weeks=k) for k in range(DEMO_LIVE_EXPIRIES)]
        expiry_ns = np.array(
            [pd.Timestamp(f"{e.isoformat()} {DEMO_EXPIRY_TIME}", tz=zone).tz_convert("UTC").value for e in expiries],
            dtype=np.int64,
        )
        atm = round(float(bars.open[rows[0]]) / DEMO_STRIKE_STEP) * DEMO_STRIKE_STEP
        strikes = atm + offsets
        # Axes: (bar, expiry, strike, type); C order is the store's sort order.
        shape = (m, DEMO_LIVE_EXPIRIES, n_strikes, 2)
        years = ((expiry_ns[None, :] - ts[:, None]) / YEAR_NS)[:, :, None, None]
        k = strikes[None, None, :, None]
        is_call = np.array([True, False])[None, None, None, :]

        def price(spot: np.ndarray, _k: np.ndarray = k, _t: np.ndarray = years, _c: np.ndarray = is_call) -> np.ndarray:
            return black_scholes(spot[:, None, None, None], _k, _t, DEMO_VOLATILITY, DEMO_RATE, _c)

        o = price(bars.open[rows])
        c = price(bars.close[rows])
        at_high, at_low = price(bars.high[rows]), price(bars.low[rows])
        # Monotone in the spot, but two prices a rounding apart may swap: the bar stays valid.
        high = np.maximum(np.where(is_call, at_high, at_low), np.maximum(o, c))
        low = np.minimum(np.where(is_call, at_low, at_high), np.minimum(o, c))
        distance = np.abs(offsets / DEMO_STRIKE_STEP)[None, None, :, None]
        volume = np.round(bars.volume[rows][:, None, None, None] / 50.0 * np.exp(-distance / 6.0))
        flat = {name: np.broadcast_to(a, shape).reshape(-1) for name, a in (
            ("open", o), ("high", high), ("low", low), ("close", c), ("volume", volume),
        )}
        n = m * DEMO_LIVE_EXPIRIES * n_strikes * 2
        expiry_days = np.array([(e - date(1970, 1, 1)).days for e in expiries], dtype=np.int32)
        table = pa.Table.from_arrays(
            [
                pa.array(np.repeat(ts, n // m)).cast(pa.timestamp("ns", tz="UTC")),
                pa.array(np.broadcast_to(expiry_days[None, :, None, None], shape).reshape(-1)).cast(pa.date32()),
                pa.array(np.broadcast_to(strikes[None, None, :, None], shape).reshape(-1)),
                pa.array(np.broadcast_to(np.array(["CE", "PE"])[None, None, None, :], shape).reshape(-1).tolist()),
                *(pa.array(flat[x]) for x in ("open", "high", "low", "close", "volume")),
                pa.nulls(n, pa.float64()),
                pa.array(np.full(n, DEMO_VOLATILITY)),
            ],
            schema=CHAIN_SCHEMA,
        )
        out.append((day, table))
    return out


def _summary(days: list[tuple[date, pa.Table]]) -> ChainSummary:
    contracts: set[tuple[date, float, str]] = set()
    for _, t in days:
        frame = t.select(["expiry", "strike", "option_type"]).to_pandas().drop_duplicates()
        contracts.update(zip(frame["expiry"], frame["strike"].astype(float), frame["option_type"]))
    ts = [t.column("timestamp").cast(pa.int64()).to_numpy() for _, t in days]
    return ChainSummary(
        rows=sum(t.num_rows for _, t in days),
        contracts=len(contracts),
        expiries=sorted({e for e, _, _ in contracts}),
        strike_steps=[DEMO_STRIKE_STEP],
        days=len(days),
        first_ts=int(min(a.min() for a in ts)),
        last_ts=int(max(a.max() for a in ts)),
        columns=[*CHAIN_SCHEMA.names],
        file_format="synthetic (Black-Scholes)",
    )


def ensure_demo_chain_files(store: MarketStore) -> tuple[str, ChainSummary, int]:
    """(storage key, summary, bytes) of the shared demo chain, generated if the store lacks it."""
    key = store.demo_version_key(DEMO_CHAIN_VERSION)
    final = store.path_of(key)
    if not (final / SUMMARY_FILE).exists():
        staging = store.new_staging()
        days = demo_chain_days()
        for day, table in days:
            directory = staging / day_dir_name(day)
            directory.mkdir(mode=0o700)
            with day_writer(directory / PART) as w:
                w.write_table(table)
        summary = _summary(days)
        fields = asdict(summary)
        fields["expiries"] = [d.isoformat() for d in summary.expiries]
        (staging / SUMMARY_FILE).write_text(json.dumps(fields))
        try:
            store.publish(staging, key)
        except OSError:  # another process published it first
            if not (final / SUMMARY_FILE).exists():
                raise
            discard(staging)
    fields = json.loads((final / SUMMARY_FILE).read_text())
    fields["expiries"] = [date.fromisoformat(d) for d in fields["expiries"]]
    return key, ChainSummary(**fields), store.measure(final).bytes



def ensure_demo_chain(session: Session, store: MarketStore, tenant_id: str) -> bool:
    """Give the tenant DEMO-OPTIONS (on DEMO-MINUTE) if it lacks it; the files are generated
    once per store and shared. Returns whether it was added."""
    exists = session.scalar(
        sa.select(OptionChain.chain_id).where(OptionChain.tenant_id == tenant_id, OptionChain.ticker == DEMO_CHAIN_TICKER)
    )
    if exists is not None:
        return False
    key, summary, size = ensure_demo_chain_files(store)
    demo = demo_minute()
    record_chain(session, tenant_id, DEMO_CHAIN_TICKER, DEMO_UNDERLYING, demo.interval, demo.timezone, summary, key, size,
                 demo=True)
    return True
