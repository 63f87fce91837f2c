"""The option-leg rules of issue 15, on small hand-worked cases: the instrument's validation,
the expiry rules, ATM (a tie to the lower strike), ATM±N, OTM/ITM per option type."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from domain.option_legs import OptionLeg, atm_index, option_leg, pick_expiry, select_contract, validate_instrument
from domain.rules.strategy import StrategyInvalid, compile_strategy, validate_definition

STRIKES = np.array([23900.0, 23950.0, 24000.0, 24050.0, 24100.0])
EXPIRIES = [date(2024, 10, 24), date(2024, 10, 31), date(2024, 11, 7), date(2024, 11, 28)]


@pytest.mark.parametrize(("spot", "atm"), [
    (24010.0, 24000.0), (24025.0, 24000.0),  # a tie takes the lower strike
    (24025.01, 24050.0), (23974.99, 23950.0), (23975.0, 23950.0),
    (10.0, 23900.0), (99999.0, 24100.0),  # beyond the listed ones: the nearest end
])
def test_atm_is_the_nearest_listed_strike_ties_to_the_lower(spot, atm):
    assert STRIKES[atm_index(STRIKES, spot)] == atm


@pytest.mark.parametrize(("day", "rule", "expiry"), [
    (date(2024, 10, 21), "current_week", date(2024, 10, 24)),
    (date(2024, 10, 21), "next_week", date(2024, 10, 31)),
    (date(2024, 10, 21), "current_month", date(2024, 10, 31)),
    (date(2024, 10, 24), "current_week", date(2024, 10, 24)),  # on expiry day: that expiry
    (date(2024, 10, 31), "next_week", date(2024, 11, 7)),
    (date(2024, 10, 31), "current_month", date(2024, 10, 31)),
    (date(2024, 11, 1), "current_month", date(2024, 11, 28)),
    (date(2024, 11, 29), "current_month", None),  # November's last passed, no December expiry listed
    (date(2024, 11, 28), "next_week", None),
])
def test_expiry_rules(day, rule, expiry):
    assert pick_expiry(day, EXPIRIES, rule) == expiry


def test_current_month_after_the_months_last_takes_the_next_months_last():
    listed = [date(2024, 12, 5), date(2024, 12, 12), date(2024, 12, 26), date(2025, 1, 30)]
    assert pick_expiry(date(2024, 11, 29), listed, "current_month") == date(2024, 12, 26)
    assert pick_expiry(date(2024, 12, 27), listed, "current_month") == date(2025, 1, 30)  # across the year


@pytest.mark.parametrize(("otype", "strike", "chosen"), [
    ("CE", "ATM", 24000.0), ("PE", "ATM", 24000.0),
    ("CE", "ATM+2", 24100.0), ("PE", "ATM-2", 23900.0),
    ("CE", "OTM 1", 24050.0), ("PE", "OTM 1", 23950.0),  # out of the money: above for calls, below for puts
    ("CE", "ITM 2", 23900.0), ("PE", "ITM 2", 24100.0),
    ("CE", "ATM+3", None), ("PE", "OTM 3", None),  # not listed that far
])
def test_strike_selectors(otype, strike, chosen):
    leg = option_leg({"type": "option", "option_type": otype, "strike": strike, "expiry": "current_week"})
    sel = select_contract(leg, date(2024, 10, 21), {date(2024, 10, 24): STRIKES}, 24020.0)
    assert (sel.expiry, sel.atm_strike, sel.strike) == (date(2024, 10, 24), 24000.0, chosen)
    assert (sel.problem is None) == (chosen is not None)


def test_no_listed_expiry_is_a_problem_not_a_pick():
    leg = OptionLeg("CE", "ATM", 0, "next_week")
    sel = select_contract(leg, date(2024, 10, 21), {date(2024, 10, 24): STRIKES}, 24020.0)
    assert sel.strike is None and sel.expiry is None and "next_week" in (sel.problem or "")


@pytest.mark.parametrize(("given", "normal"), [
    ({"type": "option", "option_type": "ce", "strike": "atm", "expiry": "current_week"},
     {"type": "option", "option_type": "CE", "strike": "ATM", "expiry": "current_week"}),
    ({"option_type": "PE", "strike": "ATM + 3", "expiry": "Next_Week"},
     {"type": "option", "option_type": "PE", "strike": "ATM+3", "expiry": "next_week"}),
    ({"type": "option", "option_type": "PE", "strike": "otm2", "expiry": "current_month"},
     {"type": "option", "option_type": "PE", "strike": "OTM 2", "expiry": "current_month"}),
])
def test_instruments_normalise(given, normal):
    assert validate_instrument(given) == (normal, [])


@pytest.mark.parametrize(("instrument", "field"), [
    ({"type": "option", "option_type": "CE", "strike": "ATM+0", "expiry": "current_week"}, "strike"),
    ({"type": "option", "option_type": "CE", "strike": "NEAR", "expiry": "current_week"}, "strike"),
    ({"type": "option", "option_type": "CE", "strike": "OTM 101", "expiry": "current_week"}, "strike"),
    ({"type": "option", "option_type": "CE", "strike": 24000, "expiry": "current_week"}, "strike"),
    ({"type": "option", "option_type": "CE", "strike": "ATM", "expiry": "weekly"}, "expiry"),
    ({"type": "option", "option_type": "CE", "strike": "ATM"}, "expiry"),
    ({"type": "option", "option_type": "XE", "strike": "ATM", "expiry": "current_week"}, "option_type"),
    ({"type": "future", "option_type": "CE", "strike": "ATM", "expiry": "current_week"}, "type"),
    ({"type": "option", "option_type": "CE", "strike": "ATM", "expiry": "current_week", "lots": 2}, "lots"),
])
def test_bad_instruments_name_the_field(instrument, field):
    definition = {"name": "x", "dataset": {"ticker": "NIFTY"},
                  "entries": [{"id": "e", "condition": "time >= 09:20", "instrument": instrument}]}
    with pytest.raises(StrategyInvalid) as exc:
        validate_definition(definition)
    assert [e["field"] for e in exc.value.errors] == [f"entries[0].instrument.{field}"]


def test_an_instrument_is_kept_in_the_normal_form_and_compiled():
    definition = {"name": "x", "dataset": {"ticker": "NIFTY"}, "entries": [
        {"id": "ce", "condition": "time >= 09:20", "side": "sell",
         "instrument": {"type": "option", "option_type": "CE", "strike": "ITM 1", "expiry": "current_week"}},
        {"id": "spot", "condition": "time >= 09:20"}]}
    normal = validate_definition(definition)
    assert normal["entries"][0]["instrument"]["strike"] == "ITM 1" and "instrument" not in normal["entries"][1]
    strategy = compile_strategy(normal)
    assert strategy.option_legs and strategy.entries[0].instrument == OptionLeg("CE", "ITM 1", -1, "current_week")
    assert strategy.entries[1].instrument is None
