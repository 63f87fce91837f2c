"""The fused kernel against an independent plain-Python backtest + empyrical.

For every case the engine runs all combinations in one fused sweep; each
combination is then replayed by tests/engine/reference.py, and the metrics are
recomputed from the reference equity curve (Sharpe, Sortino, max drawdown, CAGR
with empyrical-reloaded) and from the reference trade list (trades, win rate,
profit factor, total return, trades/month, duration). Everything must agree to
1e-9 relative.
"""

from __future__ import annotations

import functools
import math

import empyrical
import numpy as np
import pytest

from libs.metric_fields import SWEEP_OPTIONAL_METRICS
from services.engine.sweep import run_sweep

from . import reference as ref
from .conftest import make_daily_bars, make_session_minute_bars

REL = 1e-9
ABS = 1e-12

DATASETS = {
    "daily-utc": (make_daily_bars, [(3, 8), (5, 20), (10, 30), (12, 26), (20, 60)]),
    "minute-sydney": (make_session_minute_bars, [(5, 15), (12, 26), (20, 60), (30, 90)]),
}


@functools.cache
def _dataset(name: str):
    bars = DATASETS[name][0]()
    return (
        bars,
        bars.ts.tolist(),
        bars.open.tolist(),
        bars.close.tolist(),
        ref.local_days(bars.ts.tolist(), bars.timezone),
    )


@functools.cache
def _lines(name: str, strategy: str, fast: int, slow: int):
    _, _, _, closes, _ = _dataset(name)
    return ref.signal_lines(strategy, closes, fast, slow)


def _close(actual, expected, what):
    if expected is None or (isinstance(expected, float) and not math.isfinite(expected)):
        assert actual is None, f"{what}: expected undefined, engine gave {actual!r}"
        return
    assert actual is not None, f"{what}: engine gave None, expected {expected!r}"
    assert actual == pytest.approx(expected, rel=REL, abs=ABS), f"{what}: {actual!r} != {expected!r}"


def _expected(name, strategy, fast, slow, direction, fill, commission, slippage, cash0):
    bars, ts, opens, closes, days = _dataset(name)
    a, b = _lines(name, strategy, fast, slow)
    res = ref.backtest(
        ts,
        opens,
        closes,
        a,
        b,
        direction=direction,
        fill=fill,
        commission_pct=commission,
        slippage_pct=slippage,
        initial_cash=cash0,
    )
    P = bars.periods_per_year
    daily = np.array(ref.daily_returns(res.equity, days, cash0))
    per_bar = np.array(ref.bar_returns(res.equity, cash0))
    trades = res.trades
    pnls = [t.pnl for t in trades]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    span_days = (ts[-1] - ts[0]) / 86_400e9

    sharpe = empyrical.sharpe_ratio(daily, annualization=P) if len(daily) >= 2 else None
    sortino = empyrical.sortino_ratio(daily, annualization=P) if any(r < 0 for r in daily) else None
    mdd = empyrical.max_drawdown(per_bar) * 100.0
    out = {
        "fast_period": fast,
        "slow_period": slow,
        "sharpe_ratio": sharpe,
        "sortino_ratio": sortino,
        "total_return_pct": math.fsum([cash0, *pnls]) / cash0 * 100.0 - 100.0,
        "annualized_return": empyrical.annual_return(daily, annualization=P) * 100.0,
        "max_drawdown_pct": mdd,
        "win_rate_pct": len(wins) / len(trades) * 100.0 if trades else None,
        "profit_factor": math.fsum(wins) / abs(math.fsum(losses)) if losses else None,
        "total_trades": len(trades),
        "trades_per_month": len(trades) / (span_days / 30.4375),
        "final_equity": res.equity[-1],
    }
    if trades:
        mean_ns = sum(t.exit_ts - t.entry_ts for t in trades) / len(trades)
        d = mean_ns / 86_400e9
        out["avg_trade_duration"] = f"{d:.1f} days" if d >= 1 else f"{mean_ns / 3_600e9:.1f} hours"
    else:
        out["avg_trade_duration"] = "0.0 days"
    out["score"] = None if sharpe is None or not math.isfinite(sharpe) else sharpe * (1 + mdd / 100.0)
    # the reference equity curve and the trade list must tell the same story
    assert res.equity[-1] == pytest.approx(cash0 + math.fsum(pnls), rel=1e-12)
    return out


CASES = [
    (name, strategy, direction, fill, fees)
    for name in DATASETS
    for strategy in ("SMA", "EMA", "MACD")
    for direction in ("long", "short", "both")
    for fill in ("next_open", "close")
    for fees in ((0.0, 0.0), (0.1, 0.05))
]


@pytest.mark.parametrize(
    "name,strategy,direction,fill,fees",
    CASES,
    ids=[f"{n}-{s}-{d}-{f}-{'fees' if fe[0] else 'nofees'}" for n, s, d, f, fe in CASES],
)
def test_sweep_matches_reference(name, strategy, direction, fill, fees):
    bars = _dataset(name)[0]
    combos = DATASETS[name][1]
    commission, slippage = fees
    cash0 = 10_000.0
    got = run_sweep(
        bars,
        strategy,
        combos,
        direction=direction,
        fill=fill,
        commission_pct=commission,
        slippage_pct=slippage,
        initial_cash=cash0,
    )
    assert len(got) == len(combos)
    traded = 0
    for (fast, slow), row in zip(combos, got, strict=True):
        exp = _expected(name, strategy, fast, slow, direction, fill, commission, slippage, cash0)
        where = f"{strategy} {fast}/{slow} {direction} {fill} fees={fees}"
        assert row["fast_period"] == fast and row["slow_period"] == slow
        assert row["total_trades"] == exp["total_trades"], where
        assert row["avg_trade_duration"] == exp["avg_trade_duration"], where
        for key in SWEEP_OPTIONAL_METRICS:
            _close(row[key], exp[key], f"{where} {key}")
        traded += row["total_trades"]
    assert traded > 0  # the case exercised real trades


def test_datasets_have_the_intended_shape():
    daily = _dataset("daily-utc")[0]
    minute = _dataset("minute-sydney")[0]
    assert daily.periods_per_year == 365 and minute.periods_per_year == 252
    # Sydney session 10:00-15:59 AEDT = 23:00-04:59 UTC: each local day spans two UTC days
    assert len(np.unique(minute.day_index())) == 6
    assert len(np.unique(minute.ts // 86_400_000_000_000)) == 8
