"""domain.report against independent calculations written from its definitions with pandas
(group-by months, cummax, rolling windows, an event sweep for exposure): equal to 1e-9
relative on the same series."""

from __future__ import annotations

import itertools
import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from domain import report as rp
from domain.market import NS_PER_DAY

REL = 1e-9
CASH = 10_000.0


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


def _walk(n: int, seed: int, vol: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return CASH * np.exp(np.cumsum(rng.normal(0.0002, vol, n)))


def _days(n: int, seed: int, start: str = "2019-03-14") -> rp.DayEnds:
    idx = pd.date_range(start, periods=n, freq="D")
    ts = (idx + pd.Timedelta(hours=23)).tz_localize("UTC").as_unit("ns").asi8
    return rp.DayEnds.of([d.date() for d in idx], ts.tolist(), _walk(n, seed).tolist())


# ------------------------------------------------------------------ pandas references


def pandas_monthly(days: rp.DayEnds, cash: float) -> pd.Series:
    s = pd.Series(days.equity, index=pd.DatetimeIndex([pd.Timestamp(d) for d in days.dates]))
    last = s.groupby([s.index.year, s.index.month]).last()
    prev = last.shift(1)
    prev.iloc[0] = cash
    return (last / prev - 1.0) * 100.0


def pandas_yearly(days: rp.DayEnds, cash: float) -> pd.Series:
    s = pd.Series(days.equity, index=pd.DatetimeIndex([pd.Timestamp(d) for d in days.dates]))
    last = s.groupby(s.index.year).last()
    prev = last.shift(1)
    prev.iloc[0] = cash
    return (last / prev - 1.0) * 100.0


def pandas_returns(equity: np.ndarray, cash: float) -> pd.Series:
    s = pd.Series(np.concatenate(([cash], equity)))
    return s.pct_change().iloc[1:].reset_index(drop=True)


def pandas_drawdowns(ts: np.ndarray, equity: np.ndarray, cash: float) -> list[dict]:
    """Stretches below the running peak (which starts at the cash), from a cummax."""
    s = pd.Series(equity)
    peak = s.clip(lower=cash).cummax()
    under = s < peak
    group = (under != under.shift(fill_value=False)).cumsum()
    out = []
    for _, part in s[under].groupby(group[under]):
        first, last = part.index[0], part.index[-1]
        level = peak[first]
        trough = part.idxmin()
        start = ts[first - 1] if first > 0 else ts[0]
        recovery = ts[last + 1] if last + 1 < len(s) else None
        end = recovery if recovery is not None else ts[-1]
        out.append({"start": rp.iso(start), "trough": rp.iso(ts[trough]), "recovery": None if recovery is None
                    else rp.iso(recovery), "depth_pct": (part.min() / level - 1) * 100,
                    "length_days": (end - start) / NS_PER_DAY})
    return sorted(out, key=lambda d: (d["depth_pct"], d["start"]))[:5]


def pandas_in_market(bar_ts: np.ndarray, spans: list[tuple[int, int]]) -> int:
    """Bars at whose time some [entry, exit) span holds, by broadcasting every bar against every span."""
    if not spans:
        return 0
    frame = pd.DataFrame(spans, columns=["entry", "exit"])
    t = bar_ts[:, None]
    held = (frame["entry"].to_numpy()[None, :] <= t) & (t < frame["exit"].to_numpy()[None, :])
    return int(held.any(axis=1).sum())


# ------------------------------------------------------------------ tests


def test_monthly_and_yearly_returns_equal_pandas() -> None:
    days = _days(1500, seed=1)
    got = rp.monthly_returns(days, CASH)
    want = pandas_monthly(days, CASH)
    assert [(m["year"], m["month"]) for m in got] == list(want.index)
    assert all(close(m["return_pct"], float(w)) for m, w in zip(got, want.tolist()))
    years = rp.yearly_returns(days, CASH)
    want_y = pandas_yearly(days, CASH)
    assert [y["year"] for y in years] == list(want_y.index)
    assert all(close(y["return_pct"], float(w)) for y, w in zip(years, want_y.tolist()))
    # The months compound to the year (and the whole run to the total return).
    total = np.prod([1 + m["return_pct"] / 100 for m in got]) - 1
    assert math.isclose(total, days.equity[-1] / CASH - 1, rel_tol=1e-9)


def test_a_month_without_bars_is_left_out_and_the_next_is_over_the_last_with_bars() -> None:
    dates = [date(2024, 1, 30), date(2024, 1, 31), date(2024, 3, 1), date(2024, 3, 4)]
    days = rp.DayEnds.of(dates, [0, 1, 2, 3], [10_100.0, 10_200.0, 9_180.0, 9_690.0])
    got = rp.monthly_returns(days, 10_000.0)
    assert [(m["year"], m["month"]) for m in got] == [(2024, 1), (2024, 3)]
    assert close(got[0]["return_pct"], 2.0) and close(got[1]["return_pct"], (9_690 / 10_200 - 1) * 100)


def test_daily_returns_equal_pandas_pct_change() -> None:
    days = _days(400, seed=2)
    got = rp.daily_returns(days.equity, CASH)
    want = pandas_returns(days.equity, CASH).to_numpy()
    assert np.allclose(got, want, rtol=REL, atol=0)


def test_drawdown_table_equals_pandas() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    ts = np.cumsum(rng.integers(60, 7200, n)).astype(np.int64) * 1_000_000_000 + 1_600_000_000 * 10**9
    equity = _walk(n, seed=4, vol=0.008)
    got = rp.drawdowns(ts, equity, CASH)
    want = pandas_drawdowns(ts, equity, CASH)
    assert len(got) == len(want) == 5
    for g, w in zip(got, want):
        assert (g["start"], g["trough"], g["recovery"]) == (w["start"], w["trough"], w["recovery"])
        assert close(g["depth_pct"], w["depth_pct"]) and close(g["length_days"], w["length_days"])
    # The deepest is max_drawdown_pct's definition: min over points of E / peak - 1.
    peak = np.maximum.accumulate(np.maximum(equity, CASH))
    assert close(got[0]["depth_pct"], float((equity / peak - 1).min() * 100))


def test_drawdown_below_the_starting_cash_starts_at_the_first_point_and_may_not_recover() -> None:
    ts = np.arange(5, dtype=np.int64) * NS_PER_DAY
    got = rp.drawdowns(ts, np.array([9_900.0, 9_500.0, 10_050.0, 9_000.0, 9_800.0]), 10_000.0)
    assert got[0] == {"start": rp.iso(2 * NS_PER_DAY), "trough": rp.iso(3 * NS_PER_DAY), "recovery": None,
                      "depth_pct": pytest.approx((9_000 / 10_050 - 1) * 100, rel=REL), "length_days": 2.0}
    assert got[1] == {"start": rp.iso(0), "trough": rp.iso(NS_PER_DAY), "recovery": rp.iso(2 * NS_PER_DAY),
                      "depth_pct": pytest.approx(-5.0, rel=REL), "length_days": 2.0}
    assert rp.drawdowns(ts, np.full(5, 10_000.0), 10_000.0) == []


@pytest.mark.parametrize("window, periods", [(126, 252), (182, 365), (2, 365)])
def test_rolling_sharpe_equals_pandas_rolling(window: int, periods: int) -> None:
    days = _days(900, seed=5)
    r = rp.daily_returns(days.equity, CASH)
    got = rp.rolling_sharpe(r, window, periods)
    s = pd.Series(r)
    want = (s.rolling(window).mean() / s.rolling(window).std(ddof=1) * math.sqrt(periods)).iloc[window - 1:]
    assert got.shape[0] == want.shape[0] == len(r) - window + 1
    assert np.allclose(got, want.to_numpy(), rtol=REL, atol=0)
    # The last window's value is domain.metrics' Sharpe ratio of those days.
    tail = r[-window:]
    assert math.isclose(got[-1], tail.mean() / tail.std(ddof=1) * math.sqrt(periods), rel_tol=REL)


def test_rolling_sharpe_is_undefined_where_returns_do_not_vary() -> None:
    r = np.concatenate((np.zeros(10), np.random.default_rng(6).normal(0, 0.01, 10)))
    got = rp.rolling_sharpe(r, 5, 252)
    assert np.isnan(got[:6]).all() and np.isfinite(got[6:]).all()
    assert rp.rolling_sharpe(r, 30, 252).size == 0


def test_exposure_equals_a_bar_by_bar_count() -> None:
    rng = np.random.default_rng(7)
    bar_ts = np.cumsum(rng.integers(1, 5, 3000)).astype(np.int64) * 60 * 10**9
    entries = np.sort(rng.choice(bar_ts[:-1], 300))
    trades = [rp.TradeSpan("long" if i % 3 else "short", int(a), int(a + rng.integers(1, 200) * 60 * 10**9), 1.0, 1.0, 0.0)
              for i, a in enumerate(entries.tolist())]
    counts = rp.bars_in_market(bar_ts, trades)
    spans = [(t.entry_ts, t.exit_ts) for t in trades]
    assert counts.in_market == pandas_in_market(bar_ts, spans)
    assert counts.long_bars == pandas_in_market(bar_ts, [(t.entry_ts, t.exit_ts) for t in trades if t.side == "long"])
    assert counts.short_bars == pandas_in_market(bar_ts, [(t.entry_ts, t.exit_ts) for t in trades if t.side == "short"])
    got = rp.exposure(counts)
    assert close(got["exposure_pct"], counts.in_market / 3000 * 100)
    assert 0 < got["exposure_pct"] <= 100 and got["long_pct"] + got["short_pct"] >= got["exposure_pct"]


def test_exposure_counts_bars_from_the_entry_bar_to_the_one_before_the_exit() -> None:
    ts = np.arange(10, dtype=np.int64) * NS_PER_DAY
    trades = [rp.TradeSpan("long", 1 * NS_PER_DAY, 4 * NS_PER_DAY, 0, 0, 0),
              rp.TradeSpan("short", 4 * NS_PER_DAY, 6 * NS_PER_DAY, 0, 0, 0)]
    assert rp.exposure(rp.bars_in_market(ts, trades)) == {"exposure_pct": 50.0, "long_pct": 30.0, "short_pct": 20.0}
    assert rp.exposure(rp.bars_in_market(ts, [])) == {"exposure_pct": 0.0, "long_pct": 0.0, "short_pct": 0.0}
    assert rp.exposure(None) == {"exposure_pct": None, "long_pct": None, "short_pct": None}


def test_daily_pnl_only_below_two_months() -> None:
    short = _days(59, seed=8, start="2024-01-01")  # Jan 1 .. Feb 28
    assert rp.shorter_than_two_months(short)
    assert not rp.shorter_than_two_months(_days(61, seed=8, start="2024-01-01"))  # .. Mar 1
    pnl = rp.daily_pnl(short, CASH)
    assert len(pnl) == 59 and pnl[0]["date"] == "2024-01-01"
    assert close(pnl[0]["pnl"], short.equity[0] - CASH)
    assert close(sum(p["pnl"] for p in pnl), short.equity[-1] - CASH)
    report = rp.build_report(cash=CASH, periods_per_year=365, curve=rp.Curve.of(short.ts, short.equity, short.equity),
                             days=short, trades=[], market_bars=None)
    assert report["calendar"] == "daily" and len(report["daily_pnl"]) == 59
    assert report["rolling_sharpe"]["window"] == 29  # a short run: half its days


def test_the_default_window_is_half_a_year_or_half_a_short_run() -> None:
    assert (rp.default_window(252), rp.default_window(365)) == (126, 182)
    assert (rp.default_window(252, 252), rp.default_window(365, 5000)) == (126, 182)
    assert (rp.default_window(252, 200), rp.default_window(365, 40), rp.default_window(365, 3)) == (100, 20, 2)


def test_distribution_counts_every_day() -> None:
    days = _days(700, seed=9)
    r = rp.daily_returns(days.equity, CASH)
    d = rp.return_distribution(r)
    assert d["count"] == 700 == sum(d["histogram"]["counts"])
    assert len(d["histogram"]["edges_pct"]) == rp.HISTOGRAM_BINS + 1
    assert close(d["mean_pct"], float(pd.Series(r * 100).mean()))
    assert close(d["std_pct"], float(pd.Series(r * 100).std()))
    assert close(d["positive_pct"], float((r > 0).mean() * 100))


def test_keep_extremes_keeps_every_stretchs_lowest_and_highest() -> None:
    values = _walk(100_000, seed=10)
    keep = rp.keep_extremes([values], 2000)
    assert len(keep) <= 2000 and keep[0] == 0 and keep[-1] == len(values) - 1
    assert values[keep].min() == values.min() and values[keep].max() == values.max()
    edges = np.linspace(0, len(values), (2000 - 2) // 2 + 1).astype(int)
    for a, b in itertools.pairwise(edges):
        assert values[a:b].min() in values[keep] and values[a:b].max() in values[keep]
    assert rp.keep_extremes([values[:50]], 2000).tolist() == list(range(50))


def test_report_of_a_long_series_stays_small() -> None:
    n = 40_000  # 1,000,000 hourly bars are ~41,700 days
    days = _days(n, seed=11, start="1920-01-01")
    curve = rp.Curve.of(days.ts[:2000], days.equity[:2000], days.equity[:2000])
    trades = [rp.TradeSpan("long", int(days.ts[i]), int(days.ts[i + 1]), 1.0, 1.1, 10.0) for i in range(0, 20_000, 2)]
    report = rp.build_report(cash=CASH, periods_per_year=365, curve=curve, days=days, trades=trades,
                             market_bars=rp.MarketBars(1_000_000, 500_000, 500_000, 0))
    assert report["rolling_sharpe"]["points_total"] == n - 181 and len(report["rolling_sharpe"]["points"]) <= 2000
    assert len(report["trades"]) == rp.MAX_TRADE_MARKERS and report["trades_total"] == 10_000
    assert len(report["trade_returns_pct"]) == 10_000
    with pytest.raises(ValueError):
        rp.build_report(cash=CASH, periods_per_year=365, curve=curve, days=days, trades=[], market_bars=None,
                        window=1)
