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
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path

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
# Columns whose values repeat (the prices are untruncated floats: a dictionary would not pay).
_DEMO_DICTIONARY = ["timestamp", "expiry", "strike", "option_type", "volume", "iv"]


def _expiry_on_or_after(day: date) -> date:
    return day + timedelta(days=(DEMO_EXPIRY_WEEKDAY - day.weekday()) % 7)


def demo_chain_days() -> Iterator[tuple[date, pa.Table]]:
    """Each day of the demo chain as stored rows, sorted by (timestamp, expiry, strike, type),
    one day at a time."""
    demo = demo_minute()
    bars = demo.bars
    zone = demo.timezone
    local = pd.DatetimeIndex(bars.ts, tz="UTC").tz_convert(zone)
    day_of = np.asarray(local.normalize().tz_localize(None).date)
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
        yield day, table


class _Summing:
    """The summary of the days seen so far."""

    def __init__(self) -> None:
        self.contracts: set[tuple[date, float, str]] = set()
        self.rows = 0
        self.days = 0
        self.first_ts = np.iinfo(np.int64).max
        self.last_ts = np.iinfo(np.int64).min

    def add(self, table: pa.Table) -> None:
        frame = table.select(["expiry", "strike", "option_type"]).to_pandas().drop_duplicates()
        self.contracts.update(zip(frame["expiry"], frame["strike"].astype(float), frame["option_type"]))
        ts = table.column("timestamp").cast(pa.int64()).to_numpy()
        self.first_ts, self.last_ts = min(self.first_ts, int(ts.min())), max(self.last_ts, int(ts.max()))
        self.rows += table.num_rows
        self.days += 1

    def summary(self) -> ChainSummary:
        return ChainSummary(
            rows=self.rows,
            contracts=len(self.contracts),
            expiries=sorted({e for e, _, _ in self.contracts}),
            strike_steps=[DEMO_STRIKE_STEP],
            days=self.days,
            first_ts=self.first_ts,
            last_ts=self.last_ts,
            columns=[*CHAIN_SCHEMA.names],
            file_format="synthetic (Black-Scholes)",
        )


def ensure_demo_chain_files(store: MarketStore) -> tuple[str, ChainSummary, int]:
    """(storage key, summary, bytes) of the shared demo chain, generated if the store lacks it."""
    key = store.demo_version_key(DEMO_CHAIN_VERSION)
    final = store.path_of(key)
    if not (final / SUMMARY_FILE).exists():
        staging = store.new_staging()
        try:
            _generate(staging)
            store.publish(staging, key)
        except OSError:  # another process published it first
            discard(staging)
            if not (final / SUMMARY_FILE).exists():
                raise
        except BaseException:
            discard(staging)
            raise
    fields = json.loads((final / SUMMARY_FILE).read_text())
    fields["expiries"] = [date.fromisoformat(d) for d in fields["expiries"]]
    return key, ChainSummary(**fields), store.measure(final).bytes


def _generate(staging: Path) -> None:
    """The demo's day files and summary under `staging`: days are priced in this thread while the
    previous one is written in another (both release the GIL)."""
    summing = _Summing()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-chain-write") as pool:
        in_flight: deque[Future[None]] = deque()
        for day, table in demo_chain_days():
            summing.add(table)
            while len(in_flight) >= 2:  # a day or two ahead of the writer, no more
                in_flight.popleft().result()
            in_flight.append(pool.submit(_write_day, staging, day, table))
        for w in in_flight:
            w.result()
    summary = summing.summary()
    fields = asdict(summary)
    fields["expiries"] = [d.isoformat() for d in summary.expiries]
    (staging / SUMMARY_FILE).write_text(json.dumps(fields))


def _write_day(staging: Path, day: date, table: pa.Table) -> None:
    directory = staging / day_dir_name(day)
    directory.mkdir(mode=0o700)
    with day_writer(directory / PART, dictionary=_DEMO_DICTIONARY) as w:
        w.write_table(table)


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
