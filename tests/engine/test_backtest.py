"""Single backtests (services/engine/backtest.py) against independent implementations.

Every built-in strategy, direction, fill and cost setting is replayed by the
plain-Python reference (tests/engine/reference.py, nothing shared with the
engine) with positions from plain-Python indicators (RSI written out with
TA-Lib's arithmetic and checked against TA-Lib itself); the metrics are
recomputed from the reference equity curve with empyrical-reloaded and from the
reference trade list. Metrics, every trade and every bar's equity agree to 1e-9
relative. A single backtest and the sweep agree exactly on the same combination.
"""

from __future__ import annotations

import functools
import math
from datetime import date

import empyrical
import numpy as np
import pandas as pd
import pytest
from hindsight.results.v1 import results_pb2

from domain.backtest_spec import SpecInvalid, check_direction, lookback_bars, normalize_parameters, strategy_name
from domain.metrics import combo_metrics
from services.engine import backtest as bt
from services.engine.backtest_servicer import _Refused, choose_dataset
from services.engine.bars import Bars
from services.engine.sweep import run_one, run_sweep

from . import reference as ref
from .conftest import NS_DAY, make_daily_bars, make_session_minute_bars

REL = 1e-9
ABS = 1e-9
CASH = 10_000.0
DATASETS = {"daily-utc": make_daily_bars, "minute-sydney": make_session_minute_bars}
STRATEGIES = {
    "sma_crossover": [{"fast_period": 5, "slow_period": 20}],
    "ema_crossover": [{"fast_period": 12, "slow_period": 26}],
    "macd_crossover": [{}, {"fast_period": 8, "slow_period": 21, "signal_period": 5}],
    "rsi_reversion": [{}, {"period": 7, "oversold": 25, "overbought": 75}],
    "buy_and_hold": [{}],
}


@functools.cache
def _data(name: str):
    bars = DATASETS[name]()
    return bars, bars.ts.tolist(), bars.open.tolist(), bars.close.tolist(), ref.local_days(bars.ts.tolist(), bars.timezone)


# ------------------------------------------------------------ plain-Python positions


def rsi_plain(closes: list[float], n: int) -> list[float]:
    """TA-Lib's RSI, written out."""
    out = [math.nan] * len(closes)
    if len(closes) <= n:
        return out
    gain = loss = 0.0
    for t in range(1, n + 1):
        d = closes[t] - closes[t - 1]
        if d < 0:
            loss -= d
        else:
            gain += d
    gain, loss = gain / n, loss / n
    out[n] = 100.0 * (gain / (gain + loss)) if gain + loss != 0 else 0.0
    for t in range(n + 1, len(closes)):
        d = closes[t] - closes[t - 1]
        loss, gain = loss * (n - 1), gain * (n - 1)
        if d < 0:
            loss -= d
        else:
            gain += d
        loss, gain = loss / n, gain / n
        out[t] = 100.0 * (gain / (gain + loss)) if gain + loss != 0 else 0.0
    return out


def wants_plain(strategy: str, closes: list[float], p: dict, direction: str) -> list[int]:
    """The position each bar's close asks for, bar by bar."""
    if strategy == "buy_and_hold":
        return [1] * len(closes)
    if strategy == "rsi_reversion":
        rsi = rsi_plain(closes, p["period"])
        held, out = 0, []
        for r in rsi:
            if not math.isnan(r):
                if r < p["oversold"]:
                    held = {"long": 1, "short": 0, "both": 1}[direction]
                elif r > p["overbought"]:
                    held = {"long": 0, "short": -1, "both": -1}[direction]
            out.append(held)
        return out
    kind = {"sma_crossover": "SMA", "ema_crossover": "EMA"}.get(strategy)
    if kind:
        a, b = ref.signal_lines(kind, closes, p["fast_period"], p["slow_period"])
    else:
        a, b = ref.macd(closes, p["fast_period"], p["slow_period"], p["signal_period"])
    return [ref.target_position(x, y, direction) for x, y in zip(a, b)]


def as_lines(wants: list[int]) -> tuple[list[float], list[float]]:
    """Lines (a, b) whose crossover rule yields exactly these positions in every direction."""
    return [1.0 if w > 0 else 0.0 for w in wants], [1.0 if w < 0 else 0.0 for w in wants]


def expected(name: str, strategy: str, p: dict, direction: str, fill: str, fees: tuple[float, float]):
    bars, ts, opens, closes, days = _data(name)
    a, b = as_lines(wants_plain(strategy, closes, p, direction))
    res = ref.backtest(ts, opens, closes, a, b, direction=direction, fill=fill, commission_pct=fees[0],
                       slippage_pct=fees[1], initial_cash=CASH)
    P = bars.periods_per_year
    daily = np.array(ref.daily_returns(res.equity, days, CASH))
    pnls = [t.pnl for t in res.trades]
    wins, losses = [x for x in pnls if x > 0], [x for x in pnls if x < 0]
    sharpe = empyrical.sharpe_ratio(daily, annualization=P) if len(daily) >= 2 else None
    mdd = empyrical.max_drawdown(np.array(ref.bar_returns(res.equity, CASH))) * 100.0
    span = (ts[-1] - ts[0]) / 86_400e9
    m = {
        "sharpe_ratio": sharpe,
        "sortino_ratio": empyrical.sortino_ratio(daily, annualization=P) if any(r < 0 for r in daily) else None,
        "total_return_pct": math.fsum([CASH, *pnls]) / CASH * 100.0 - 100.0,
        "annualized_return": empyrical.annual_return(daily, annualization=P) * 100.0,
        "max_drawdown_pct": mdd,
        "win_rate_pct": len(wins) / len(pnls) * 100.0 if pnls else None,
        "profit_factor": math.fsum(wins) / abs(math.fsum(losses)) if losses else None,
        "total_trades": len(pnls),
        "winning_trades": len(wins),
        "losing_trades": len(losses),
        "trades_per_month": len(pnls) / (span / 30.4375),
        "final_equity": res.equity[-1],
        "pnl": res.equity[-1] - CASH,
        "score": None if sharpe is None or not math.isfinite(sharpe) else sharpe * (1 + mdd / 100.0),
    }
    if pnls:
        mean_ns = sum(t.exit_ts - t.entry_ts for t in res.trades) / len(pnls)
        d = mean_ns / 86_400e9
        m["avg_trade_duration"] = f"{d:.1f} days" if d >= 1 else f"{mean_ns / 3_600e9:.1f} hours"
    else:
        m["avg_trade_duration"] = "0.0 days"
    return m, res


def _close(actual, exp, what):
    if exp is None or (isinstance(exp, float) and not math.isfinite(exp)):
        assert actual is None, f"{what}: expected undefined, got {actual!r}"
        return
    assert actual is not None, f"{what}: got None, expected {exp!r}"
    assert actual == pytest.approx(exp, rel=REL, abs=ABS), f"{what}: {actual!r} != {exp!r}"


CASES = [
    (name, strategy, i, direction, fill, fees)
    for name in DATASETS
    for strategy, plist in STRATEGIES.items()
    for i in range(len(plist))
    for direction in (("long",) if strategy == "buy_and_hold" else ("long", "short", "both"))
    for fill in ("next_open", "close")
    for fees in ((0.0, 0.0), (0.1, 0.05))
]


@pytest.mark.parametrize(
    "name,strategy,i,direction,fill,fees", CASES,
    ids=[f"{n}-{s}{i}-{d}-{f}-{'fees' if fe[0] else 'nofees'}" for n, s, i, d, f, fe in CASES],
)
def test_backtest_matches_reference(name, strategy, i, direction, fill, fees):
    bars = _data(name)[0]
    p = normalize_parameters(strategy, STRATEGIES[strategy][i])
    got = bt.run_backtest(bars, strategy, p, direction=direction, fill=fill, commission_pct=fees[0],
                          slippage_pct=fees[1], initial_cash=CASH)
    exp, res = expected(name, strategy, p, direction, fill, fees)
    where = f"{name} {strategy} {p} {direction} {fill} {fees}"
    assert got.metrics["total_trades"] == exp["total_trades"] == len(got.trades), where
    for key in ("winning_trades", "losing_trades", "avg_trade_duration"):
        assert got.metrics[key] == exp[key], f"{where} {key}"
    for key in ("sharpe_ratio", "sortino_ratio", "total_return_pct", "annualized_return", "max_drawdown_pct",
                "win_rate_pct", "profit_factor", "trades_per_month", "final_equity", "pnl", "score"):
        _close(got.metrics[key], exp[key], f"{where} {key}")
    # every trade, and the equity of every bar
    for mine, theirs in zip(got.trades, res.trades):
        assert (mine.side, mine.entry_ts, mine.exit_ts) == (theirs.side, theirs.entry_ts, theirs.exit_ts), where
        assert mine.pnl == pytest.approx(theirs.pnl, rel=REL, abs=ABS), where
    np.testing.assert_allclose(got.equity, res.equity, rtol=REL, atol=ABS)
    assert got.trades or strategy == "rsi_reversion"  # the case exercised real trades


def test_rsi_kernel_matches_talib_and_plain_python():
    talib = pytest.importorskip("talib")
    from services.engine._core.ta_kernel import rsi

    closes = _data("minute-sydney")[3]
    for n in (2, 7, 14, 30):
        mine = rsi(np.asarray(closes), n)
        np.testing.assert_allclose(mine, talib.RSI(np.asarray(closes), n), rtol=1e-9, atol=1e-9, equal_nan=True)
        np.testing.assert_array_equal(mine, np.asarray(rsi_plain(closes, n)))


def curve_metrics(bars: Bars, equity: np.ndarray, trades: list[bt.Trade], cash0: float) -> dict:
    """The sweep's metrics recomputed from a per-bar equity curve and its trades, accumulated
    in the kernel's order (so the recorded curve and trades must reproduce the kernel's
    accumulators bit for bit)."""
    ndays, mean, m2, dsq, prev = 0, 0.0, 0.0, 0.0, cash0
    for e in equity[bars.day_ends()].tolist():
        r = e / prev - 1.0
        prev = e
        ndays += 1
        d = r - mean
        mean += d / ndays
        m2 += d * (r - mean)
        if r < 0.0:
            dsq += r * r
    peak = np.maximum.accumulate(np.maximum(equity, cash0))
    worst = float(np.min(equity / peak))
    wins = [t.pnl for t in trades if t.pnl > 0.0]
    gl = 0.0
    for t in trades:
        if t.pnl < 0.0:
            gl += t.pnl
    gp = 0.0
    for x in wins:
        gp += x
    return combo_metrics(
        periods_per_year=float(bars.periods_per_year), span_days=float(bars.ts[-1] - bars.ts[0]) / NS_DAY,
        growth=float(equity[-1]) / cash0, ndays=ndays, mean=mean, m2=m2, dsq=dsq,
        max_drawdown_pct=(min(worst, 1.0) - 1.0) * 100.0, ntrades=len(trades), nwins=len(wins),
        gross_profit=gp, gross_loss=gl, duration_ns=sum(t.exit_ts - t.entry_ts for t in trades),
    )


@pytest.mark.parametrize("strategy", ["SMA", "EMA", "MACD"])
@pytest.mark.parametrize("direction,fill,fees", [("long", "next_open", (0, 0)), ("both", "close", (0.1, 0.05)),
                                                  ("short", "next_open", (0.05, 0.0))])
def test_single_backtest_equals_the_sweep_exactly(strategy, direction, fill, fees):
    """The same combination in a sweep and alone: identical metrics, and the recorded
    per-bar curve and trades reproduce the kernel's metrics bit for bit."""
    bars = make_daily_bars(n=900, seed=5)
    combos = [(f, s) for f in (3, 8, 12) for s in (20, 26, 40)]
    rows = run_sweep(bars, strategy, combos, direction=direction, fill=fill, commission_pct=fees[0],
                     slippage_pct=fees[1], initial_cash=CASH)
    name = {"SMA": "sma_crossover", "EMA": "ema_crossover", "MACD": "macd_crossover"}[strategy]
    for (f, s), row in zip(combos, rows):
        p = normalize_parameters(name, {"fast_period": f, "slow_period": s})
        got = bt.run_backtest(bars, name, p, direction=direction, fill=fill, commission_pct=fees[0],
                              slippage_pct=fees[1], initial_cash=CASH)
        own = curve_metrics(bars, got.equity, got.trades, CASH)
        for key, value in row.items():
            if key in ("fast_period", "slow_period"):
                continue
            assert got.metrics[key] == value, (f, s, key)
            assert own[key] == value, (f, s, key, "curve metrics")
        assert got.metrics["total_trades"] == len(got.trades)


def test_a_bust_account_stops_trading_in_a_single_backtest_too():
    """A 3x gap wipes out a short account: the recorded trades and curve follow the
    reference (no entry with non-positive equity), through the crossover path and the
    wanted-positions path alike."""
    n = 120
    closes = np.concatenate([100.0 - np.arange(20) * 0.5, 300.0 + np.arange(n - 20) * np.sin(np.arange(n - 20))])
    opens = np.concatenate([[closes[0]], closes[:-1]])
    ts = np.arange(n, dtype=np.int64) * NS_DAY
    b = Bars(ts, opens, np.maximum(opens, closes), np.minimum(opens, closes), closes, np.ones(n))
    kw = {"direction": "both", "fill": "next_open", "commission_pct": 0.1, "slippage_pct": 0.0}
    got = bt.run_backtest(b, "sma_crossover", {"fast_period": 2, "slow_period": 4}, **kw)
    a, s = ref.signal_lines("SMA", closes.tolist(), 2, 4)
    res = ref.backtest(ts.tolist(), opens.tolist(), closes.tolist(), a, s, initial_cash=CASH, **kw)
    assert res.equity[-1] < 0  # bust, as intended
    assert [(t.side, t.entry_ts, t.exit_ts) for t in got.trades] == [(t.side, t.entry_ts, t.exit_ts)
                                                                     for t in res.trades]
    np.testing.assert_allclose(got.equity, res.equity, rtol=REL, atol=ABS)
    (row,) = run_sweep(b, "SMA", [(2, 4)], **kw)
    assert all(got.metrics[k] == v for k, v in row.items() if k not in ("fast_period", "slow_period"))
    want = np.array([ref.target_position(x, y, "both") for x, y in zip(a, s)], dtype=np.int8)
    rec = run_one(b, want=want, **kw)
    assert rec.metrics == {k: got.metrics[k] for k in rec.metrics}
    np.testing.assert_array_equal(rec.equity, got.equity)


def test_recording_mode_refuses_bad_requests():
    bars = make_daily_bars(n=50)
    for kw in ({"want": np.ones(49, dtype=np.int8)}, {"want": np.full(50, 2, dtype=np.int8)},
               {"want": np.ones(50, dtype=np.int8), "direction": "up"}, {}):
        with pytest.raises(ValueError):
            run_one(bars, **kw)
    with pytest.raises(ValueError):
        run_one(bars, "SMA", (3, 5), want=np.ones(50, dtype=np.int8))
    with pytest.raises(ValueError):
        run_one(bars, "RSI", (3, 5))


def test_trades_and_curve_tell_the_same_story():
    bars = make_daily_bars()
    p = normalize_parameters("rsi_reversion", {"period": 5})
    r = bt.run_backtest(bars, "rsi_reversion", p, direction="both", commission_pct=0.1, slippage_pct=0.1)
    assert r.trades
    assert math.fsum([CASH] + [t.pnl for t in r.trades]) == pytest.approx(r.equity[-1], rel=1e-12)
    for prev, t in zip(r.trades, r.trades[1:]):
        assert prev.exit_ts <= t.entry_ts
    for t in r.trades:
        assert t.exit_value == pytest.approx(t.entry_value + t.pnl, rel=1e-12)
        assert t.commission > 0 and t.units > 0
        # fills against the trade: a long buys above the open it fills at, sells below
        i = t.entry_index
        if t.side > 0:
            assert t.entry_price == pytest.approx(bars.open[i] * 1.001, rel=1e-12)
        else:
            assert t.entry_price == pytest.approx(bars.open[i] * 0.999, rel=1e-12)
    assert r.trades[-1].exit_reason == "end_of_data" and r.trades[-1].exit_index == len(bars) - 1
    assert {t.exit_reason for t in r.trades[:-1]} == {"signal"}


def test_buy_and_hold_is_its_own_benchmark_and_the_benchmark_of_others():
    bars = make_daily_bars()
    bh = bt.run_backtest(bars, "buy_and_hold", {}, commission_pct=0.1)
    sma = bt.run_backtest(bars, "sma_crossover", normalize_parameters("sma_crossover", {}), commission_pct=0.1)
    np.testing.assert_array_equal(bh.equity, bh.benchmark)
    np.testing.assert_array_equal(sma.benchmark, bh.equity)
    assert sma.metrics["buy_and_hold_return_pct"] == bh.metrics["total_return_pct"]
    assert len(bh.trades) == 1 and bh.trades[0].entry_index == 1  # signal at bar 0's close, filled at bar 1's open


def test_no_lookahead_for_rsi():
    full = make_daily_bars(n=300, seed=9)
    p = normalize_parameters("rsi_reversion", {"period": 5})
    base = bt.run_backtest(full, "rsi_reversion", p)
    o, c = full.open.copy(), full.close.copy()
    o[-1], c[-1] = o[-1] * 3, c[-1] * 0.2
    changed = Bars(full.ts, o, np.maximum(o, c), np.minimum(o, c), c, full.volume)
    other = bt.run_backtest(changed, "rsi_reversion", p)
    assert [(t.entry_ts, t.side) for t in other.trades] == [(t.entry_ts, t.side) for t in base.trades]


def test_too_many_trades_is_refused():
    bars = make_daily_bars()
    p = normalize_parameters("sma_crossover", {"fast_period": 1, "slow_period": 2})
    n = len(bt.run_backtest(bars, "sma_crossover", p).trades)
    assert bt.run_backtest(bars, "sma_crossover", p, max_trades=n).trades
    with pytest.raises(bt.TooLarge, match=f"makes {n} trades"):
        bt.run_backtest(bars, "sma_crossover", p, max_trades=n - 1)


# ------------------------------------------------------------ dates, resampling, downsampling


def test_select_dates_uses_local_days():
    bars = make_session_minute_bars()  # Sydney sessions: 10:00 local = 23:00 UTC of the day before
    days = sorted({d.date() for d in pd.DatetimeIndex(bars.ts).tz_localize("UTC").tz_convert(bars.timezone)})
    cut = bt.select_dates(bars, days[1], days[2])
    local = pd.DatetimeIndex(cut.ts).tz_localize("UTC").tz_convert(bars.timezone)
    assert sorted({d.date() for d in local}) == days[1:3] and len(cut) == 2 * 360
    assert len(bt.select_dates(bars, None, days[0])) == 360
    assert len(bt.select_dates(bars, date(2030, 1, 1), None)) == 0
    assert bt.select_dates(bars, None, None) is bars


@pytest.mark.parametrize("interval", ["5m", "30m", "1h", "4h", "1d"])
def test_resample_matches_pandas_on_the_local_clock(interval):
    bars = make_session_minute_bars()
    local = pd.DatetimeIndex(bars.ts).tz_localize("UTC").tz_convert(bars.timezone).tz_localize(None)
    df = pd.DataFrame({"ts": bars.ts, "open": bars.open, "high": bars.high, "low": bars.low, "close": bars.close,
                       "volume": bars.volume})
    key = local.normalize() if interval == "1d" else local.floor({"5m": "5min", "30m": "30min", "1h": "1h",
                                                                   "4h": "4h"}[interval])
    exp = df.groupby(key).agg(ts=("ts", "first"), open=("open", "first"), high=("high", "max"), low=("low", "min"),
                              close=("close", "last"), volume=("volume", "sum"))
    got = bt.resample(bars, interval)
    for col in ("ts", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(got, col), exp[col].to_numpy(), err_msg=col)
    assert (got.timezone, got.calendar) == (bars.timezone, bars.calendar)
    assert bt.resample(bars, "1m") is bars


def test_downsample_keeps_ends_extremes_and_the_drawdown():
    rng = np.random.default_rng(3)
    eq = 1000 * np.exp(np.cumsum(rng.normal(0, 0.01, 100_000)))
    keep = bt.downsample(eq, 2000)
    assert len(keep) <= 2000 and keep[0] == 0 and keep[-1] == len(eq) - 1
    assert np.all(np.diff(keep) > 0)
    assert int(np.argmin(eq)) in keep and int(np.argmax(eq)) in keep
    peak = np.maximum.accumulate(eq)
    trough = int(np.argmin(eq / peak))
    assert trough in keep and int(np.argmax(eq[: trough + 1])) in keep
    sub = eq[keep]
    assert np.min(sub / np.maximum.accumulate(sub)) == np.min(eq / peak)  # the same max drawdown
    np.testing.assert_array_equal(bt.downsample(eq[:1500]), np.arange(1500))


# ------------------------------------------------------------ parameters and datasets


def test_parameters_are_normalized_and_checked():
    assert normalize_parameters("sma_crossover", {}) == {"fast_period": 10, "slow_period": 30}
    assert normalize_parameters("macd_crossover", {"fast": 5, "slow": "13"}) == {
        "fast_period": 5, "slow_period": 13, "signal_period": 9}
    assert normalize_parameters("rsi_reversion", {"lower": 20}) == {"period": 14, "oversold": 20.0, "overbought": 70.0}
    for strategy, raw, field in [
        ("sma_crossover", {"fast_period": 30, "slow_period": 10}, "parameters.fast_period"),
        ("sma_crossover", {"fast_period": 2.5}, "parameters.fast_period"),
        ("sma_crossover", {"fast_period": True}, "parameters.fast_period"),
        ("sma_crossover", {"fast_period": 0}, "parameters.fast_period"),
        ("sma_crossover", {"window": 3}, "parameters.window"),
        ("sma_crossover", {"fast": 3, "fast_period": 4}, "parameters.fast_period"),
        ("rsi_reversion", {"oversold": 80}, "parameters.oversold"),
        ("rsi_reversion", {"period": 1}, "parameters.period"),
        ("buy_and_hold", {"x": 1}, "parameters.x"),
        ("sma_crossover", [1, 2], "parameters"),
    ]:
        with pytest.raises(SpecInvalid) as err:
            normalize_parameters(strategy, raw)
        assert err.value.errors[0]["field"] == field, (raw, err.value.errors)
    with pytest.raises(SpecInvalid):
        check_direction("buy_and_hold", "short")
    assert strategy_name("SMA") == "sma_crossover" and strategy_name("RSI") == "rsi_reversion"
    assert strategy_name("nope") is None
    assert lookback_bars("macd_crossover", normalize_parameters("macd_crossover", {})) == 33


def _ds(interval: str, ticker: str = "ABC") -> results_pb2.Dataset:
    return results_pb2.Dataset(dataset_id="ds_" + interval, ticker=ticker, interval=interval)


def test_choose_dataset_resamples_only_to_coarser_intervals():
    all_ = [_ds("1d"), _ds("1m"), _ds("15m"), _ds("1h", "OTHER")]
    assert choose_dataset(all_, "ABC", None).interval == "1m"  # finest
    assert choose_dataset(all_, "ABC", "1d").interval == "1d"  # exact
    assert choose_dataset(all_, "ABC", "1h").interval == "15m"  # coarsest finer one
    assert choose_dataset(all_, "ABC", "5m").interval == "1m"
    with pytest.raises(_Refused) as err:
        choose_dataset([_ds("1d")], "ABC", "1h")
    assert err.value.message.startswith("interval: 1h is finer than the data")
    with pytest.raises(_Refused) as err:
        choose_dataset(all_, "XYZ", None)
    assert err.value.message == "ticker: Insufficient historical data for ticker XYZ"


def test_one_bar_and_flat_data_give_nulls_not_nan():
    ts = np.arange(3, dtype=np.int64) * NS_DAY
    flat = Bars(ts, np.full(3, 5.0), np.full(3, 5.0), np.full(3, 5.0), np.full(3, 5.0), np.ones(3))
    r = bt.run_backtest(flat, "buy_and_hold", {})
    assert r.metrics["sharpe_ratio"] is None and r.metrics["profit_factor"] is None
    assert r.metrics["total_return_pct"] == 0.0 and r.metrics["total_trades"] == 1
    one = bt.run_backtest(Bars(ts[:1], [5.0], [5.0], [5.0], [5.0], [1.0]), "rsi_reversion",
                          normalize_parameters("rsi_reversion", {}))
    assert one.metrics["total_trades"] == 0 and one.metrics["trades_per_month"] is None
    assert all(v is None or math.isfinite(v) for v in one.metrics.values() if not isinstance(v, str))
