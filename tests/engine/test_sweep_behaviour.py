"""Contract details of run_sweep beyond the reference comparison."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from domain.metrics import format_duration
from libs.metric_fields import SWEEP_RESULT_FIELDS
from services.engine import sweep as sweep_mod
from services.engine.bars import Bars
from services.engine.sweep import METRIC_KEYS, SweepCancelled, run_sweep

from . import reference as ref
from .conftest import NS_DAY, NS_MIN, make_daily_bars, random_walk_bars

SHORT_COMBOS = [(2, 3), (2, 5), (3, 7), (4, 9)]


def _with_last_bar(bars: Bars, open_: float, close: float) -> Bars:
    o, c = bars.open.copy(), bars.close.copy()
    h, lo = bars.high.copy(), bars.low.copy()
    o[-1], c[-1] = open_, close
    h[-1], lo[-1] = max(open_, close), min(open_, close)
    return dataclasses.replace(bars, open=o, close=c, high=h, low=lo)


@pytest.mark.parametrize("fill", ["next_open", "close"])
@pytest.mark.parametrize("strategy", ["SMA", "EMA", "MACD"])
def test_no_lookahead_last_bar_cannot_change_earlier_decisions(strategy, fill):
    """Decisions at bars <= t only see bars <= t: replacing bar t+1 (the last bar)
    by wild values changes fill prices and the final close-out, never which
    trades happened or when."""
    full = make_daily_bars(n=160, seed=3)
    combos = SHORT_COMBOS if strategy != "MACD" else [(2, 3), (3, 5), (5, 12)]
    for cut in range(40, 160, 7):
        prefix = Bars(
            full.ts[:cut], full.open[:cut], full.high[:cut], full.low[:cut], full.close[:cut], full.volume[:cut]
        )
        last_o, last_c = float(prefix.open[-1]), float(prefix.close[-1])
        # (a 1.5x jump cannot bust a short position, so the trade count is decided
        # only by the signals)
        variants = [
            prefix,
            _with_last_bar(prefix, last_o * 1.5, last_c * 1.5),
            _with_last_bar(prefix, last_o / 5, last_c / 5),
        ]
        runs = [run_sweep(b, strategy, combos, direction="both", fill=fill, commission_pct=0.1) for b in variants]
        for rows in zip(*runs, strict=True):
            assert len({r["total_trades"] for r in rows}) == 1, (cut, rows)
            assert len({r["avg_trade_duration"] for r in rows}) == 1, (cut, rows)
        # and the perturbation did matter for the money (the last bar is priced in)
        assert any(a["total_return_pct"] != b["total_return_pct"] for a, b in zip(runs[0], runs[1], strict=True))


def test_next_open_fills_at_the_next_open_not_at_the_signal_close():
    # a single up-cross: SMA(1) > SMA(2) from bar 2 on; bar 3's open is the fill
    closes = [10.0, 9.0, 11.0, 12.0, 13.0]
    opens = [10.0, 10.0, 9.0, 20.0, 12.0]
    ts = np.arange(5, dtype=np.int64) * NS_DAY
    b = Bars(ts, opens, np.maximum(opens, closes), np.minimum(opens, closes), closes, np.ones(5))
    (row,) = run_sweep(b, "SMA", [(1, 2)], fill="next_open")
    assert row["total_trades"] == 1
    assert row["total_return_pct"] == pytest.approx((13.0 / 20.0 - 1) * 100, rel=1e-12)
    assert row["avg_trade_duration"] == "1.0 days"  # entry bar 3, closed at bar 4
    (row,) = run_sweep(b, "SMA", [(1, 2)], fill="close")
    assert row["total_return_pct"] == pytest.approx((13.0 / 11.0 - 1) * 100, rel=1e-12)
    assert row["avg_trade_duration"] == "2.0 days"


def test_position_open_at_the_end_is_closed_and_counted():
    n = 50
    closes = 100.0 * 1.01 ** np.arange(n)  # steadily rising: fast > slow from bar 2 on
    opens = np.concatenate([[100.0], closes[:-1]])
    ts = np.arange(n, dtype=np.int64) * NS_DAY
    b = Bars(ts, opens, closes, opens, closes, np.ones(n))
    (row,) = run_sweep(b, "SMA", [(2, 3)], commission_pct=0.2, slippage_pct=0.1)
    assert row["total_trades"] == 1
    assert row["win_rate_pct"] == 100.0
    assert row["profit_factor"] is None  # no losing trade
    # entry at bar 3's open (signal at bar 2), exit at the last close, with costs
    units = 10_000.0 / (opens[3] * 1.001 * 1.002)
    final = units * closes[-1] * 0.999 * 0.998
    assert row["total_return_pct"] == pytest.approx((final / 10_000.0 - 1) * 100, rel=1e-12)
    assert row["avg_trade_duration"] == f"{n - 1 - 3:.1f} days"
    assert row["max_drawdown_pct"] == 0.0  # a 1% daily rise outweighs the costs: never below the peak


def test_fewer_than_two_days_gives_no_sharpe():
    ts = np.int64(1_700_000_000) * 1_000_000_000 + np.arange(300, dtype=np.int64) * NS_MIN
    ts -= ts[0] % NS_DAY  # 00:00 UTC: all 300 minutes on one day
    b = random_walk_bars(300, ts, seed=1, sigma=0.002, gap_sigma=0.0)
    rows = run_sweep(b, "EMA", [(3, 10), (5, 20)], direction="both")
    for row in rows:
        assert row["total_trades"] > 0
        assert row["sharpe_ratio"] is None
        assert row["sortino_ratio"] is None
        assert row["score"] is None
        assert row["annualized_return"] is not None


def test_single_bar_and_no_trades():
    b = Bars(np.array([0]), [1.0], [1.0], [1.0], [1.0], [1.0])
    (row,) = run_sweep(b, "SMA", [(2, 3)])
    assert row["total_trades"] == 0 and row["win_rate_pct"] is None and row["trades_per_month"] is None
    assert row["avg_trade_duration"] == "0.0 days"
    assert row["total_return_pct"] == 0.0 and row["max_drawdown_pct"] == 0.0


def test_cancellation_raises_and_progress_is_reported(monkeypatch):
    monkeypatch.setattr(sweep_mod, "CHUNK_BARS", 50)
    monkeypatch.setattr(sweep_mod, "PROGRESS_INTERVAL_S", 0.0)
    bars = make_daily_bars(n=400)
    calls: list[float] = []

    def stop_at_second(fraction: float) -> bool:
        calls.append(fraction)
        return len(calls) < 2

    with pytest.raises(SweepCancelled):
        run_sweep(bars, "SMA", SHORT_COMBOS, progress=stop_at_second)
    assert len(calls) == 2

    seen: list[float] = []
    rows = run_sweep(bars, "SMA", SHORT_COMBOS, progress=lambda f: seen.append(f) is None)
    assert len(rows) == len(SHORT_COMBOS)
    assert seen == sorted(seen) and 0 < seen[0] < 1 and seen[-1] == 1.0 and len(seen) >= 5


def test_progress_is_throttled_by_time(monkeypatch):
    monkeypatch.setattr(sweep_mod, "CHUNK_BARS", 10)
    monkeypatch.setattr(sweep_mod, "PROGRESS_INTERVAL_S", 3600.0)
    seen: list[float] = []
    run_sweep(make_daily_bars(n=400), "SMA", SHORT_COMBOS, progress=lambda f: seen.append(f) or True)
    assert len(seen) == 2 and seen[-1] == 1.0  # the first chunk boundary, then the end


@pytest.mark.parametrize("strategy", ["SMA", "EMA", "MACD"])
def test_chunking_and_fusion_do_not_change_results(monkeypatch, strategy):
    bars = make_daily_bars(n=500, seed=21)
    combos = [(3, 8), (5, 20), (10, 30), (12, 26), (20, 60), (8, 8), (30, 10)]
    kw = {"direction": "both", "commission_pct": 0.05, "slippage_pct": 0.02}
    whole = run_sweep(bars, strategy, combos, **kw)
    monkeypatch.setattr(sweep_mod, "CHUNK_BARS", 7)
    chunked = run_sweep(bars, strategy, combos, **kw)
    alone = [run_sweep(bars, strategy, [c], **kw)[0] for c in combos]
    assert whole == chunked == alone


def test_metric_keys_are_the_sweep_result_fields():
    # The engine keeps its own list (no gRPC in the kernel's module); the proto is the source.
    assert ("ticker", "strategy_type", *METRIC_KEYS) == SWEEP_RESULT_FIELDS


def test_result_shape_is_json_clean(daily_bars):
    rows = run_sweep(daily_bars, "MACD", [(12, 26), (5, 35)], direction="short", commission_pct=0.1)
    for row in rows:
        assert tuple(row) == METRIC_KEYS
        json.dumps(row, allow_nan=False)
        assert isinstance(row["total_trades"], int) and isinstance(row["fast_period"], int)
        assert row["score"] == pytest.approx(row["sharpe_ratio"] * (1 + row["max_drawdown_pct"] / 100))
        assert row["max_drawdown_pct"] <= 0


def test_bust_short_account_stops_trading_and_stays_defined():
    # a 3x gap wipes out a short account; the engine must not re-enter with
    # non-positive equity, and must still agree with the reference
    n = 120
    closes = np.concatenate([100.0 - np.arange(20) * 0.5, 300.0 + np.arange(n - 20) * np.sin(np.arange(n - 20))])
    opens = np.concatenate([[closes[0]], closes[:-1]])
    ts = np.arange(n, dtype=np.int64) * NS_DAY
    b = Bars(ts, opens, np.maximum(opens, closes), np.minimum(opens, closes), closes, np.ones(n))
    kw = {"direction": "both", "fill": "next_open", "commission_pct": 0.1, "slippage_pct": 0.0}
    (row,) = run_sweep(b, "SMA", [(2, 4)], **kw)
    a, s = ref.signal_lines("SMA", closes.tolist(), 2, 4)
    res = ref.backtest(ts.tolist(), opens.tolist(), closes.tolist(), a, s, initial_cash=10_000.0, **kw)
    assert res.equity[-1] < 0 and row["total_return_pct"] < -100  # bust, as intended
    assert row["total_trades"] == len(res.trades) == 1
    assert row["total_return_pct"] == pytest.approx((res.equity[-1] / 10_000.0 - 1) * 100, rel=1e-9)
    json.dumps(row, allow_nan=False)


def test_invalid_requests_are_rejected(daily_bars):
    with pytest.raises(ValueError):
        run_sweep(daily_bars, "RSI", [(2, 3)])
    with pytest.raises(ValueError):
        run_sweep(daily_bars, "SMA", [(2, 3)], direction="sideways")
    with pytest.raises(ValueError):
        run_sweep(daily_bars, "SMA", [(2, 3)], fill="vwap")
    with pytest.raises(ValueError):
        run_sweep(daily_bars, "SMA", [(0, 3)])
    with pytest.raises(ValueError):
        run_sweep(daily_bars, "SMA", [(2, 3)], commission_pct=-1)
    with pytest.raises(ValueError):
        run_sweep(daily_bars, "SMA", [(2, 3)], initial_cash=0)
    assert run_sweep(daily_bars, "sma", []) == []


def test_duration_format():
    assert format_duration(5.2 * NS_DAY) == "5.2 days"
    assert format_duration(1.0 * NS_DAY) == "1.0 days"
    assert format_duration(3.4 * 3600e9) == "3.4 hours"
    assert format_duration(0.0) == "0.0 hours"
    assert math.isclose(NS_DAY, 86_400e9)


def test_kernel_releases_the_gil(monkeypatch):
    """Another Python thread keeps running while one long chunk is computed."""
    import threading
    import time

    monkeypatch.setattr(sweep_mod, "CHUNK_BARS", 10**9)  # one chunk: no GIL hand-back between chunks
    n = 200_000
    bars = random_walk_bars(n, np.arange(n, dtype=np.int64) * NS_MIN, seed=2, sigma=0.001, gap_sigma=0.0)
    combos = [(f, s) for f in range(2, 40, 2) for s in range(10, 120, 5) if f < s]
    done = threading.Event()
    wakeups = 0

    def work():
        try:
            run_sweep(bars, "SMA", combos)
        finally:
            done.set()

    th = threading.Thread(target=work)
    start = time.perf_counter()
    th.start()
    while not done.is_set():
        time.sleep(0.002)
        wakeups += 1
    th.join()
    elapsed = time.perf_counter() - start
    assert elapsed > 0.05  # long enough to tell
    # a kernel holding the GIL lets the sleeper wake about once; released: dozens of times
    assert wakeups >= max(5, int(elapsed / 0.002 * 0.05)), (wakeups, elapsed)
