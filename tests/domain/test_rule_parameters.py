"""Parameters of rule strategies: declaration, placeholders, substitution and sweep grids
(domain.rules.parameters, domain.rules.sweep)."""

from __future__ import annotations

import pytest

from domain.rules.parameters import MAX_SWEEP_COMBINATIONS, range_values, substitute, used_parameters
from domain.rules.strategy import StrategyInvalid, compile_strategy, validate_definition
from domain.rules.sweep import rule_grid

BASE = {
    "name": "p",
    "dataset": {"ticker": "DEMO-MINUTE"},
    "parameters": {"rsi_len": 14, "oversold": 30, "sl": 0.5},
    "entries": [{"id": "e", "condition": "RSI({rsi_len}) < {oversold}", "stop_loss": {"type": "percent", "value": "{sl}"},
                 "target": {"points": "{sl}"}}],
    "exits": [{"condition": "RSI({rsi_len}) > 70"}],
}


def errors(definition) -> list[tuple[str, str]]:
    with pytest.raises(StrategyInvalid) as exc:
        validate_definition(definition)
    return [(e["field"], e["message"]) for e in exc.value.errors]


def test_the_normal_form_keeps_placeholders_and_a_backtest_uses_the_defaults():
    normal = validate_definition(BASE)
    assert normal["parameters"] == {"rsi_len": 14, "oversold": 30, "sl": 0.5}
    assert normal["entries"][0]["condition"] == "RSI({rsi_len}) < {oversold}"
    assert normal["entries"][0]["stop_loss"] == {"type": "percent", "value": "{sl}"}
    s = compile_strategy(normal)
    assert s.entries[0].condition.text == "RSI(14) < 30" and s.exits[0].condition.text == "RSI(14) > 70"
    assert s.entries[0].stop_loss.value == 0.5 and s.entries[0].target.value == 0.5
    assert s.definition == normal
    assert used_parameters(normal) == ["rsi_len", "oversold", "sl"]


def test_substitution_writes_integers_as_integers_and_floats_round_trip():
    out = substitute(validate_definition(BASE), {"rsi_len": 21, "oversold": 27.5, "sl": 0.25})
    assert out["entries"][0]["condition"] == "RSI(21) < 27.5"
    assert out["entries"][0]["stop_loss"] == {"type": "percent", "value": 0.25}
    assert out["entries"][0]["target"] == {"type": "points", "value": 0.25}
    assert out["parameters"] == {"rsi_len": 21, "oversold": 27.5, "sl": 0.25}
    assert compile_strategy(out).entries[0].condition.text == "RSI(21) < 27.5"


@pytest.mark.parametrize(("change", "field", "text"), [
    ({"parameters": {"rsi_len": 14, "oversold": 30}}, "entries[0].stop_loss.value", "{sl} names no declared"),
    ({"parameters": {"rsi_len": 14.5, "oversold": 30, "sl": 0.5}}, "entries[0].condition", "whole number"),
    ({"parameters": {"rsi_len": "14", "oversold": 30, "sl": 0.5}}, "parameters.rsi_len", "must be a number"),
    ({"parameters": {"rsi_len": True, "oversold": 30, "sl": 0.5}}, "parameters.rsi_len", "must be a number"),
    ({"parameters": {"rsi_len": 14, "oversold": 30, "sl": -1}}, "entries[0].stop_loss.value", "above 0"),
    ({"parameters": {"1x": 3, "rsi_len": 14, "oversold": 30, "sl": 0.5}}, "parameters.1x", "parameter name"),
    ({"parameters": [14]}, "parameters", "must be an object"),
])
def test_bad_declarations_and_defaults(change, field, text):
    got = errors({**BASE, **change})
    assert any(f == field and text in m for f, m in got), got


def test_a_placeholder_without_a_declaration_points_at_itself():
    d = {k: v for k, v in BASE.items() if k != "parameters"}
    got = errors(d)
    assert ("entries[0].condition", "{rsi_len} names no declared parameter (declare it in parameters)") in got
    with pytest.raises(StrategyInvalid) as exc:
        validate_definition(d)
    assert exc.value.errors[0].get("position") == 4


def test_ranges():
    assert range_values([10, 20, 2], 14) == ([10, 12, 14, 16, 18, 20], None)
    assert range_values([0.1, 0.3, 0.1], 0.5) == ([0.1, 0.2, 0.3], None)
    assert range_values([10, 11, 2], 14) == ([10], None)
    assert "whole numbers" in (range_values([10.5, 20, 2], 14)[1] or "")
    assert "above 0" in (range_values([10, 20, 0], 14)[1] or "")
    assert "below start" in (range_values([20, 10, 1], 14)[1] or "")
    assert "[start, stop, step]" in (range_values([10, 20], 14)[1] or "")
    assert "numbers" in (range_values([10, "20", 1], 14)[1] or "")


def test_grid_order_and_problems():
    grid = rule_grid(BASE, {"rsi_len": [10, 12, 2], "oversold": [20, 30, 10], "sl": [0.5, 0.5, 1]})
    assert grid.names == ("rsi_len", "oversold", "sl")
    assert grid.combos == ((10, 20, 0.5), (10, 30, 0.5), (12, 20, 0.5), (12, 30, 0.5))
    assert grid.definition(validate_definition(BASE), 3)["entries"][0]["condition"] == "RSI(12) < 30"

    def problems(ranges) -> list[tuple[str, str]]:
        with pytest.raises(StrategyInvalid) as exc:
            rule_grid(BASE, ranges)
        return [(e["field"], e["message"]) for e in exc.value.errors]

    full = {"rsi_len": [10, 12, 2], "oversold": [20, 30, 10], "sl": [0.5, 0.5, 1]}
    assert problems({"rsi_len": [10, 12, 2], "oversold": [20, 30, 10]}) == [
        ("parameters.sl", "the strategy uses {sl} but the sweep gives it no range")]
    assert problems({**full, "nope": [1, 2, 1]})[0][0] == "parameters.nope"
    assert problems({**full, "rsi_len": [0, 2, 2]})[0][0] == "entries[0].condition"  # RSI(0) is invalid
    assert problems({**full, "sl": [50, 150, 100]})[0][0] == "entries[0].stop_loss.value"
    over = problems({**full, "rsi_len": [1, 40, 1], "oversold": [1, 30, 1]})
    assert over == [("parameters", f"the grid has 1200 combinations; at most {MAX_SWEEP_COMBINATIONS}")]
    assert problems({})[0][0] == "parameters"
    no_params = {k: v for k, v in BASE.items() if k != "parameters"} | {
        "entries": [{"condition": "RSI(14) < 30"}], "exits": []}
    with pytest.raises(StrategyInvalid, match="declares no parameters"):
        rule_grid(no_params, {"x": [1, 2, 1]})


def test_a_strategy_with_option_legs_is_not_swept():
    """A rule sweep prices positions on the underlying's bars; a leg trades its contract's, so
    sweeping one would drop its trades: refused, naming the reason."""
    legs = {**BASE, "entries": [{**BASE["entries"][0],
                                 "instrument": {"type": "option", "option_type": "CE", "strike": "ATM",
                                                "expiry": "current_week"}}]}
    with pytest.raises(StrategyInvalid) as exc:
        rule_grid(legs, {"rsi_len": [10, 12, 2], "oversold": [20, 30, 10], "sl": [0.5, 0.5, 1]})
    assert exc.value.errors == [{"field": "entries", "message": "a strategy that trades option legs cannot be swept "
                                 "yet: run it as a day-by-day backtest"}]
