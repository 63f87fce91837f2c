"""What a sweep runs over (issue 11): exactly one of a ticker, a list of tickers or a saved
universe; the list and the name follow the universes' rules (domain.universe)."""

from __future__ import annotations

import pytest

from domain.universe import UNIVERSE_MAX_TICKERS, sweep_target_problems


@pytest.mark.parametrize(
    ("ticker", "tickers", "universe"),
    [("AAPL", None, None), (None, ["AAPL", "msft"], None), (None, None, "tech-10"),
     (None, [f"T{i}" for i in range(UNIVERSE_MAX_TICKERS)], None)],
)
def test_one_target_is_fine(ticker, tickers, universe) -> None:
    assert sweep_target_problems(ticker, tickers, universe) == []


@pytest.mark.parametrize(
    ("ticker", "tickers", "universe", "field", "message"),
    [
        (None, None, None, "ticker", "give ticker, tickers or universe"),
        ("AAPL", ["MSFT"], None, "tickers", "not ticker and tickers"),
        ("AAPL", None, "u", "universe", "not ticker and universe"),
        (None, ["MSFT"], "u", "universe", "not tickers and universe"),
        (None, [], None, "tickers", "must name at least one ticker"),
        (None, ["A", " a "], None, "tickers[1]", "A is already tickers[0]"),
        (None, [f"T{i}" for i in range(UNIVERSE_MAX_TICKERS + 1)], None, "tickers", f"at most {UNIVERSE_MAX_TICKERS}"),
        (None, None, "no spaces", "universe", "must be"),
        (None, None, "", "universe", "is required"),
    ],
)
def test_what_is_wrong_is_named_at_its_field(ticker, tickers, universe, field, message) -> None:
    problems = sweep_target_problems(ticker, tickers, universe)
    assert len(problems) == 1 and problems[0].field == field and message in problems[0].message, problems
