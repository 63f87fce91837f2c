"""One MACD: the rule language's ``MACD(f, s, g)``, ``indicators.macd`` and the
``macd_crossover`` strategy (the sweep kernel's streamed MACD) are the same series,
bar for bar, and all of them equal TA-Lib's ``MACD`` wherever TA-Lib defines a value
(NaN where it does not)."""

from __future__ import annotations

import numpy as np
import pytest
import talib  # a test dependency (requirements-dev.txt)

from domain.rules.expr import parse_condition
from services.engine import indicators
from services.engine import sweep as sweep_mod
from services.engine._core import sweep_kernel
from services.engine.rules.evaluate import SeriesContext, evaluate

from . import reference as ref
from .conftest import make_daily_bars, make_session_minute_bars

# (fast, slow, signal); (26, 12, 9) and (40, 10, 5): fast > slow, which TA-Lib swaps
# (only the low-level API takes it: strategies, sweeps and rules ask for fast < slow).
PARAMS = [(12, 26, 9), (5, 35, 5), (3, 4, 2), (2, 30, 1), (10, 11, 20), (8, 8, 3), (26, 12, 9), (40, 10, 5)]
RULE_PARAMS = [(12, 26, 9), (5, 35, 5), (3, 4, 2), (2, 30, 1), (10, 11, 20)]


@pytest.fixture(scope="module")
def close() -> np.ndarray:
    rng = np.random.default_rng(77)
    c = 500 * np.exp(np.cumsum(rng.normal(0, 0.002, 30_000)))
    c[10_000:10_050] = c[9_999]  # a flat stretch: the line decays towards 0
    return c


def strategy_macd(close: np.ndarray, fast: int, slow: int, signal: int, chunk: int = 65_536):
    """(line, signal) as the macd_crossover strategy sees them: the sweep kernel's streamed
    slow EMA, per-combination fast EMA and signal line (what ``_macd_want`` compares)."""
    return sweep_kernel.stream_macd(close, fast, slow, signal, chunk)


def rule_macd(close: np.ndarray, fast: int, slow: int, signal: int):
    """(line, signal, hist) of ``MACD(fast, slow, signal)`` evaluated by the rule language."""
    n = close.shape[0]
    ctx = SeriesContext(close, close, close, close, np.ones(n), np.zeros(n), np.zeros(n, dtype=np.int64))
    m = f"MACD({fast}, {slow}, {signal})"
    ev = evaluate(parse_condition(f"{m}.line > {m}.signal and {m}.hist > 0"), ctx)
    return ev.lhs[0], ev.rhs[0], ev.lhs[1]


def same_as_talib(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert np.array_equal(np.isnan(ours), np.isnan(theirs)), "NaN warm-up differs from TA-Lib's"
    m = ~np.isnan(theirs)
    assert m.any()
    np.testing.assert_allclose(ours[m], theirs[m], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("fast,slow,signal", RULE_PARAMS)
def test_rule_language_and_strategy_macd_are_the_same_series(close, fast, slow, signal):
    line, sig, hist = rule_macd(close, fast, slow, signal)
    s_line, s_sig = strategy_macd(close, fast, slow, signal)
    np.testing.assert_array_equal(line, s_line)  # bit for bit, NaN where NaN
    np.testing.assert_array_equal(sig, s_sig)
    np.testing.assert_array_equal(hist, s_line - s_sig)
    w_line, w_sig, w_hist = indicators.macd(close, fast, slow, signal)
    np.testing.assert_array_equal(line, w_line)
    np.testing.assert_array_equal(sig, w_sig)
    np.testing.assert_array_equal(hist, w_hist)


@pytest.mark.parametrize("fast,slow,signal", PARAMS)
def test_every_macd_equals_talib(close, fast, slow, signal):
    t_line, t_sig, t_hist = talib.MACD(close, fast, slow, signal)
    line, sig, hist = indicators.macd(close, fast, slow, signal)
    same_as_talib(line, t_line)
    same_as_talib(sig, t_sig)
    same_as_talib(hist, t_hist)
    for chunk in (7, 1_000, 65_536):  # the kernel streams in chunks; no chunk size changes a bit
        s_line, s_sig = strategy_macd(close[:5_000] if chunk == 7 else close, fast, slow, signal, chunk)
        np.testing.assert_array_equal(s_line, line[: s_line.shape[0]])
        np.testing.assert_array_equal(s_sig, sig[: s_sig.shape[0]])
    same_as_talib(s_line, t_line)
    same_as_talib(s_sig, t_sig)


@pytest.mark.parametrize("fast,slow,signal", PARAMS)
def test_the_reference_macd_is_talibs(close, fast, slow, signal):
    """tests/engine/reference.py's MACD (written from TA-Lib's definition) is TA-Lib's."""
    x = close[:3_000]
    r_line, r_sig = ref.macd(x.tolist(), fast, slow, signal)
    t_line, t_sig, _ = talib.MACD(x, fast, slow, signal)
    same_as_talib(np.array(r_line), t_line)
    same_as_talib(np.array(r_sig), t_sig)


def test_short_series_are_all_nan():
    x = np.linspace(1.0, 2.0, 33)  # TA-Lib's first MACD(12, 26, 9) value is at index 33
    for v in (*indicators.macd(x, 12, 26, 9), *strategy_macd(x, 12, 26, 9), *talib.MACD(x, 12, 26, 9)):
        assert np.isnan(v).all()
    assert not np.isnan(indicators.macd(np.linspace(1.0, 2.0, 34), 12, 26, 9)[1][33])


@pytest.mark.parametrize("bars_of", [make_daily_bars, make_session_minute_bars])
@pytest.mark.parametrize("direction,fill", [("long", "next_open"), ("both", "close"), ("short", "next_open")])
def test_the_strategy_trades_the_rule_language_crossovers(bars_of, direction, fill):
    """macd_crossover (kernel MACD) and the wanted positions read off the rule language's
    MACD line > signal make the very same trades, equity and metrics."""
    bars = bars_of()
    line, sig, _ = rule_macd(bars.close, 12, 26, 9)
    with np.errstate(invalid="ignore"):
        want = (line > sig).astype(np.int8) - (line < sig).astype(np.int8)
    kw = {"direction": direction, "fill": fill, "commission_pct": 0.1, "slippage_pct": 0.05}
    strat = sweep_mod.run_one(bars, "MACD", (12, 26), signal_period=9, **kw)
    rules = sweep_mod.run_one(bars, want=want, **kw)
    assert strat.metrics["total_trades"] > 3
    assert strat.metrics == rules.metrics
    np.testing.assert_array_equal(strat.equity, rules.equity)
    for key, value in strat.trades.items():
        np.testing.assert_array_equal(value, rules.trades[key], err_msg=key)
