from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.engine.bars import Bars


def _bars(ts, **kw) -> Bars:
    n = len(ts)
    one = np.ones(n)
    return Bars(np.asarray(ts, dtype=np.int64), one, one, one, one, one, **kw)


def test_day_index_uses_the_local_calendar_day_across_dst():
    # New York, across the 2024-03-10 spring-forward: 23:30 local is still the same day
    local = ["2024-03-09 23:30", "2024-03-10 00:30", "2024-03-10 23:30", "2024-03-11 00:10"]
    ts = [pd.Timestamp(s, tz="America/New_York").value for s in local]
    b = _bars(ts, timezone="America/New_York", calendar="sessions")
    epoch = pd.Timestamp("1970-01-01").date()
    expected = [(pd.Timestamp(s).date() - epoch).days for s in local]
    assert b.day_index().tolist() == expected
    assert b.day_index().dtype == np.int64
    assert b.periods_per_year == 252
    assert b.day_index() is b.day_index()  # cached


def test_utc_default_and_continuous_calendar():
    ts = np.array([0, 86_399_999_999_999, 86_400_000_000_000], dtype=np.int64)
    b = _bars(ts)
    assert b.timezone == "UTC" and b.calendar == "continuous" and b.periods_per_year == 365
    assert b.day_index().tolist() == [0, 0, 1]


def test_arrays_are_contiguous_float64():
    b = Bars(np.arange(4)[::1], [1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], np.arange(8.0)[::2], [0, 0, 0, 0])
    for name in ("open", "high", "low", "close", "volume"):
        arr = getattr(b, name)
        assert arr.dtype == np.float64 and arr.flags.c_contiguous
    assert b.ts.dtype == np.int64 and len(b) == 4


@pytest.mark.parametrize(
    "kwargs",
    [{"calendar": "weekly"}, {"timezone": "Mars/Olympus"}],
)
def test_bad_metadata_is_rejected(kwargs):
    with pytest.raises(ValueError):
        _bars([1, 2, 3], **kwargs)


def test_bad_arrays_are_rejected():
    with pytest.raises(ValueError):
        _bars([3, 2, 1])
    with pytest.raises(ValueError):
        Bars(np.arange(3), [1.0], [1.0], [1.0], [1.0], [1.0])
