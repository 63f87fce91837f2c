"""Trading days of a date range: the bars' local days, within session hours.

Shared by the engine (which trades them) and results (which counts them when a
backtest is submitted), so both agree on `total_days`. NumPy/pandas only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from domain.market import NS_PER_DAY as NS_DAY
from domain.market import NS_PER_MINUTE as NS_MIN


@dataclass(frozen=True)
class SessionDays:
    """Bars [0, n) cover everything up to the range's end; day j trades bars [starts[j], ends[j])."""

    n: int
    day: np.ndarray  # local epoch day of bars [0, n)
    minute: np.ndarray  # local minute of day of bars [0, n)
    days: np.ndarray  # epoch day of each trading day
    starts: np.ndarray
    ends: np.ndarray

    def dates(self) -> list[date]:
        return [date.fromordinal(date(1970, 1, 1).toordinal() + int(d)) for d in self.days]


def local_wall(ts: np.ndarray, tz: str) -> np.ndarray:
    """Local wall-clock time of UTC ns timestamps, as naive ns."""
    if tz in ("UTC", "Etc/UTC"):
        return ts
    local = pd.DatetimeIndex(ts.view("datetime64[ns]"), tz="UTC").tz_convert(tz)
    wall: np.ndarray = local.tz_localize(None).asi8
    return wall


def epoch_day(d: date) -> int:
    return d.toordinal() - date(1970, 1, 1).toordinal()


def session_days(
    ts: np.ndarray, tz: str, start: date, end: date, session_start: int | None = None, session_end: int | None = None
) -> SessionDays:
    """The trading days of [start, end]: local days (in `tz`) with bars inside [session_start, session_end)."""
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    d0, d1 = epoch_day(start), epoch_day(end)
    wall = local_wall(ts, tz)
    day_all = np.floor_divide(wall, NS_DAY)
    n = int(np.searchsorted(day_all, d1, side="right"))
    day = day_all[:n]
    minute = ((wall[:n] - day * NS_DAY) // NS_MIN).astype(np.int64)
    keep = (day >= d0) & (day <= d1)
    if session_start is not None:
        keep &= minute >= session_start
    if session_end is not None:
        keep &= minute < session_end
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return SessionDays(n, day, minute, empty, empty, empty)
    bounds = np.flatnonzero(np.diff(day[idx])) + 1
    starts = idx[np.concatenate(([0], bounds))].astype(np.int64)
    ends = (idx[np.concatenate((bounds - 1, [idx.size - 1]))] + 1).astype(np.int64)
    return SessionDays(n, day, minute, day[starts].astype(np.int64), starts, ends)
