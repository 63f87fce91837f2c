"""The option chain's rules, names and symbols (domain/option_chain.py), and Black–Scholes'
identities (domain/black_scholes.py; its values are checked against QuantLib in
tests/results/test_demo_chain.py)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from domain.black_scholes import black_scholes
from domain.option_chain import (
    Contract,
    contract_symbol,
    empty_chain,
    first_bad_row,
    format_strike,
    is_chain_frame,
    key_order,
    normalize_option_type,
    parse_contract_symbol,
    strike_steps,
)


@pytest.mark.parametrize("text, want", [
    ("CE", "CE"), ("ce", "CE"), ("C", "CE"), ("call", "CE"), (" Call ", "CE"),
    ("PE", "PE"), ("p", "PE"), ("PUT", "PE"), ("put", "PE"),
    ("X", None), ("", None), ("calls", None), ("CP", None),
])
def test_option_types(text: str, want: str | None) -> None:
    assert normalize_option_type(text) == want


def test_symbols_as_the_seeds_print_them() -> None:
    # The seeds' own symbols (seeds 002 and 004).
    assert contract_symbol("NIFTY", date(2024, 10, 31), 24350.0, "PE") == "NIFTY:2024-10-31:OPT:24350:PE"
    assert contract_symbol("NIFTY", date(2024, 10, 17), 25050, "call") == "NIFTY:2024-10-17:OPT:25050:CE"
    assert format_strike(24362.5) == "24362.5"
    assert parse_contract_symbol("NIFTY:2024-10-31:OPT:24350:PE") == Contract("NIFTY", date(2024, 10, 31), 24350.0, "PE")
    assert Contract("BANKNIFTY", date(2024, 1, 3), 47000.0, "CE").symbol == "BANKNIFTY:2024-01-03:OPT:47000:CE"
    for bad in ("NIFTY:2024-10-31:FUT:24350:PE", "NIFTY:2024-10-31:OPT:-5:PE", "NIFTY:2024-10-31:OPT:100:XX", "NIFTY"):
        with pytest.raises(ValueError):
            parse_contract_symbol(bad)
    with pytest.raises(ValueError):
        contract_symbol("NIFTY", date(2024, 1, 1), 100, "future")


def _rows(n: int = 4) -> dict:
    return dict(
        ts=np.arange(n, dtype=np.int64) * 60_000_000_000,
        ts_valid=np.ones(n, bool),
        local_day=np.full(n, 100, np.int64),
        expiry_day=np.full(n, 103, np.int64),
        expiry_valid=np.ones(n, bool),
        strike=np.full(n, 100.0),
        type_code=np.zeros(n, np.int64),
        open_=np.full(n, 5.0), high=np.full(n, 6.0), low=np.full(n, 4.0), close=np.full(n, 5.5),
        volume=np.full(n, 10.0),
    )


@pytest.mark.parametrize("column, value, index, message", [
    ("strike", 0.0, 2, "strike must be a number > 0"),
    ("strike", np.nan, 1, "strike must be a number > 0"),
    ("expiry_day", 99, 3, "expiry is before the bar's date"),
    ("high", 3.0, 2, "high is below low"),
    ("open_", 7.0, 1, "open lies outside [low, high]"),
    ("close", 3.5, 0, "close lies outside [low, high]"),
    ("volume", -1.0, 2, "volume must be a number >= 0"),
    ("type_code", -1, 3, "option_type must be CE or PE"),
    ("ts_valid", False, 1, "timestamp is not an ISO date-time"),
    ("expiry_valid", False, 2, "expiry is not a date"),
])
def test_first_bad_row(column: str, value: object, index: int, message: str) -> None:
    rows = _rows()
    assert first_bad_row(**rows) is None
    rows[column] = rows[column].copy()
    rows[column][index] = value
    problem = first_bad_row(**rows)
    assert problem is not None and problem.index == index and message in problem.message


def test_first_bad_row_is_the_lowest_and_optional_columns() -> None:
    rows = _rows()
    rows["volume"] = np.array([10.0, 10.0, -1.0, 10.0])
    rows["strike"] = np.array([100.0, 100.0, 100.0, -1.0])
    assert first_bad_row(**rows).index == 2
    rows = _rows()
    assert first_bad_row(**rows, optional={"oi": np.array([np.nan, 1.0, 2.0, 3.0])}) is None  # empty is fine
    bad = first_bad_row(**rows, optional={"iv": np.array([0.1, -0.2, 0.1, 0.1])})
    assert bad is not None and (bad.index, bad.column) == (1, "iv")
    # The expiry's own day is fine (an expiry-day bar).
    rows["expiry_day"] = rows["local_day"].copy()
    assert first_bad_row(**rows) is None


def test_key_order_and_strike_steps() -> None:
    ts = np.array([0, 0, 0, 1, 1], np.int64)
    exp = np.array([5, 5, 6, 5, 5], np.int64)
    strike = np.array([100.0, 100.0, 50.0, 100.0, 100.0])
    code = np.array([0, 1, 0, 0, 0], np.int64)
    rises, same = key_order(ts, exp, strike, code)
    assert rises.tolist() == [True, True, True, False] and same.tolist() == [False, False, False, True]
    assert strike_steps({1: {100.0, 150.0, 200.0, 300.0}, 2: {10.0, 20.0}}) == [10.0, 50.0, 100.0]


def test_shared_form() -> None:
    assert is_chain_frame(empty_chain())
    assert not is_chain_frame(empty_chain().drop(columns=["volume"]))


def test_black_scholes_identities() -> None:
    s, k, t, v, r = 100.0, np.array([80.0, 100.0, 120.0]), 0.25, 0.2, 0.05
    call = black_scholes(s, k, t, v, r, True)
    put = black_scholes(s, k, t, v, r, False)
    np.testing.assert_allclose(call - put, s - k * np.exp(-r * t), rtol=0, atol=1e-12)  # put-call parity
    assert (np.diff(call) < 0).all() and (np.diff(put) > 0).all()
    # Expired: the intrinsic value.
    assert black_scholes(110.0, 100.0, 0.0, 0.2, 0.05, True).tolist() == 10.0
    assert black_scholes(90.0, 100.0, -1.0, 0.2, 0.05, np.array([True, False])).tolist() == [0.0, 10.0]
