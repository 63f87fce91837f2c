"""OHLCV bars as the engine sees them.

A :class:`Bars` holds one instrument's bars as contiguous NumPy arrays, plus the
two facts the metrics need from the dataset: the IANA timezone that defines a
"day" (daily returns are taken at the last bar of each *local* day) and the
calendar kind that fixes the annualisation factor P (365 for markets that trade
around the clock, 252 for session-based ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from domain.market import BAR_PRICE_COLUMNS, NS_PER_DAY, PERIODS_PER_YEAR
from domain.sessions import local_wall


def _f64(name: str, a) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    return arr


# A Bars' price and volume columns (beside ts: domain.market); it may lack these three
# (fetched without them: services.engine.bars_cache), never open and close.
_MAY_LACK = ("high", "low", "volume")


@dataclass(frozen=True, eq=False)
class Bars:
    """One instrument's bars, oldest first.

    ``ts`` are int64 nanoseconds since the Unix epoch (UTC), strictly increasing;
    the price/volume arrays are float64 of the same length. Arrays are converted
    to contiguous float64/int64 on construction. Instances compare and hash by
    identity (arrays have no useful ``==``), which makes them usable as cache keys.
    """

    ts: np.ndarray
    open: np.ndarray
    # None: not fetched (a crossover sweep's bars: services.engine.bars_cache.SWEEP_COLUMNS),
    # so a use of them fails loudly instead of reading made-up values.
    high: np.ndarray | None
    low: np.ndarray | None
    close: np.ndarray
    volume: np.ndarray | None
    timezone: str = "UTC"
    calendar: str = "continuous"
    _day_index: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ts = np.ascontiguousarray(self.ts, dtype=np.int64)
        if ts.ndim != 1:
            raise ValueError("ts must be one-dimensional")
        object.__setattr__(self, "ts", ts)
        for name in BAR_PRICE_COLUMNS:
            if getattr(self, name) is None and name in _MAY_LACK:
                continue
            arr = _f64(name, getattr(self, name))
            if arr.shape != ts.shape:
                raise ValueError(f"{name} has {arr.shape[0]} values, ts has {ts.shape[0]}")
            object.__setattr__(self, name, arr)
        if ts.shape[0] > 1 and not bool(np.all(ts[1:] > ts[:-1])):
            raise ValueError("ts must be strictly increasing")
        if self.calendar not in PERIODS_PER_YEAR:
            raise ValueError(f"calendar must be one of {sorted(PERIODS_PER_YEAR)}, not {self.calendar!r}")
        try:
            pd.Timestamp(0, tz=self.timezone)
        except Exception as exc:  # unknown zone name
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @property
    def periods_per_year(self) -> int:
        """The annualisation factor P: 365 for "continuous", 252 for "sessions"."""
        return PERIODS_PER_YEAR[self.calendar]

    def day_index(self) -> np.ndarray:
        """The local calendar day (in ``timezone``) of each bar, as int64 days since
        1970-01-01. Computed once (vectorised tz conversion) and cached; the
        returned array is read-only."""
        cached = self._day_index
        if cached is None:
            cached = np.floor_divide(local_wall(self.ts, self.timezone), NS_PER_DAY).astype(np.int64, copy=False)
            cached.flags.writeable = False
            object.__setattr__(self, "_day_index", cached)
        return cached

    def day_ends(self) -> np.ndarray:
        """True at the last bar of each local day (where daily returns are taken)."""
        day = self.day_index()
        end = np.ones(day.shape[0], dtype=bool)
        if day.shape[0] > 1:
            end[:-1] = day[1:] != day[:-1]
        return end
