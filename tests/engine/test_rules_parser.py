"""The condition language: what parses, what it means, and errors that point at the text."""

from __future__ import annotations

import numpy as np
import pytest

from domain.rules.expr import ExpressionError, parse_condition
from domain.rules.strategy import StrategyInvalid, validate_definition
from services.engine.rules.evaluate import SeriesContext, evaluate


@pytest.mark.parametrize(
    "text",
    [
        "RSI(14) > 70",
        "SMA(close, 20) crosses_above SMA(close, 50)",
        "close > VWAP and time >= 09:30",
        "not (RSI(14) < 30 or MACD(12, 26, 9).signal > 0)",
        "MACD_HIST(12,26,9) > 0 AND BB_UPPER(20, 2) < high",
        "BBANDS(close, 20, 2).lower > close - 2 * ATR(14)",
        "ema(high, 10) / sma(10) >= 1.01",
        "-close < -100",
        "volume != 0",
        "time >= 9:30 and time < 15:00",
    ],
)
def test_valid_conditions_parse(text):
    cond = parse_condition(text)
    assert cond.root.kind == "bool"


@pytest.mark.parametrize(
    "text,position,fragment",
    [
        ("RSI(14) >", 9, "ends too early"),
        ("FOO(3) > 2", 0, "unknown indicator"),
        ("close > 3 and RSX(14) < 2", 14, "unknown indicator"),
        ("close > 5 and 3", 14, "needs conditions"),
        ("time > 5", 7, "time compares only"),
        ("RSI(0) > 1", 4, "whole number"),
        ("close >> 3", 7, "unexpected"),
        ("close $ 3", 6, "unexpected character"),
        ("(close > 3", 10, "expected ')'"),
        ("SMA(20)", 0, "must compare"),
        ("MACD(12,26,9).upper > 0", 14, "no output"),
        ("close > 1 > 0", 10, "chained"),
        ("__import__('os') > 1", 11, "unexpected character"),
        ("__import__ > 1", 0, "unknown indicator"),
        ("time >= 25:00", 8, "not a time of day"),
        ("SMA(close) > 1", 9, "needs a period"),
        ("", 0, "empty"),
    ],
)
def test_errors_point_at_the_text(text, position, fragment):
    with pytest.raises(ExpressionError) as err:
        parse_condition(text)
    assert err.value.position == position, err.value
    assert fragment in err.value.message


def _ctx(close, minute=None, day=None):
    close = np.asarray(close, dtype=float)
    n = close.size
    return SeriesContext(
        close, close + 1, close - 1, close, np.ones(n),
        np.asarray(minute if minute is not None else np.arange(n) + 555),
        np.asarray(day if day is not None else np.zeros(n, dtype=np.int64)),
    )


def test_crosses_and_logic_evaluate_per_bar():
    ctx = _ctx([1, 2, 3, 2, 1, 2, 3])
    ev = evaluate(parse_condition("close crosses_above 2"), ctx)
    assert ev.result.tolist() == [False, False, True, False, False, False, True]
    ev = evaluate(parse_condition("close crosses_below 2 or close >= 3"), ctx)
    assert ev.result.tolist() == [False, False, True, False, True, False, True]
    ev = evaluate(parse_condition("not close > 1 and time >= 09:18"), ctx)
    assert ev.result.tolist() == [False, False, False, False, True, False, False]


def test_warm_up_never_satisfies_a_condition():
    ctx = _ctx(np.linspace(100, 110, 30))
    for text in ("SMA(close, 20) < 1000", "SMA(close, 20) != 0", "not SMA(close, 20) > 1000"):
        ev = evaluate(parse_condition(text), ctx)
        if text.startswith("not"):
            # `not` of a false comparison is true: warm-up bars compare false first.
            assert ev.result[:19].all()
        else:
            assert not ev.result[:19].any() and ev.result[19:].all()


def _definition(**over):
    d = {
        "name": "t",
        "dataset": {"ticker": "DEMO-MINUTE", "interval": "1m"},
        "entries": [{"id": "e1", "condition": "RSI(14) < 30"}],
    }
    d.update(over)
    return d


def test_definition_defaults_and_errors():
    d = validate_definition(_definition(exits=[{"condition": "RSI(14) > 70"}]))
    assert d["entries"][0] == {
        "id": "e1", "name": "e1", "condition": "RSI(14) < 30", "side": "buy", "quantity": 1,
        "stop_loss": None, "target": None, "max_reentries": 0,
    }
    assert d["exits"][0]["entries"] == ["e1"] and d["exits"][0]["id"] == "exit-1"
    with pytest.raises(StrategyInvalid) as err:
        validate_definition(_definition(
            entries=[{"id": "e1", "condition": "RSI(14) >> 30", "side": "up", "stop_loss": {"type": "pct", "value": 1},
                      "max_reentries": -1, "quantity": 0}],
            exits=[{"condition": "close > 1", "entries": ["nope"]}],
            session={"square_off": "25:00", "timezone": "Mars/Olympus"},
            bogus=1,
        ))
    fields = {e["field"] for e in err.value.errors}
    assert {"entries[0].condition", "entries[0].side", "entries[0].stop_loss.type", "entries[0].max_reentries",
            "entries[0].quantity", "exits[0].entries", "session.square_off", "session.timezone", "bogus"} <= fields
    cond = next(e for e in err.value.errors if e["field"] == "entries[0].condition")
    assert cond["position"] == 9


@pytest.mark.parametrize(
    "text,position",
    [
        ("(" * 400 + "close > 1" + ")" * 400, 50),  # the 51st '('
        ("not " * 400 + "close > 1", 200),  # the 51st 'not'
        ("close > " + "-" * 1500 + "1", 58),  # the 51st '-'
        ("close > " + "+".join(["1"] * 990), 7 + 2 * 51),  # the 51st "+" makes it 51 deep
    ],
)
def test_deep_nesting_is_an_error_at_its_position_not_a_crash(text, position):
    # Deeper than a person writes, and deep enough to exhaust Python's recursion in the
    # parser or later in evaluation (a stored strategy that cannot run): refused here.
    with pytest.raises(ExpressionError) as err:
        parse_condition(text)
    assert "nests too deeply" in err.value.message
    assert err.value.position == position, err.value


def test_nesting_a_person_writes_still_parses_and_evaluates():
    text = "(" * 20 + "not " * 10 + "close > " + "+".join(["1"] * 30) + ")" * 20
    ev = evaluate(parse_condition(text), _ctx([10, 40]))
    assert ev.result.tolist() == [False, True]  # ten nots: close > 30


def test_division_by_zero_is_not_an_engine_error():
    # A constant 1/0 (Python floats raise) or a series that is zero: IEEE inf/NaN, and a
    # comparison with NaN is false, as for warm-up bars.
    ctx = _ctx([0.0, 1.0, 2.0])
    assert evaluate(parse_condition("close > 1/0"), ctx).result.tolist() == [False, False, False]
    assert evaluate(parse_condition("close < 1/0"), ctx).result.tolist() == [True, True, True]
    assert evaluate(parse_condition("1 / close > 0.9"), ctx).result.tolist() == [True, True, False]
    assert evaluate(parse_condition("close / (close - close) > 0"), ctx).result.tolist() == [False, True, True]
