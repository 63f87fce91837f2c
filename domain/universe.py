"""Universes: a tenant's named lists of tickers, which a sweep may run over (issue 11).

One home for their rules: the name, the size limit, and what makes a ticker list valid.
Tickers are kept in their stored spelling (domain.market.normalize_ticker) and in the
order given; a ticker twice, in any spelling, is refused rather than dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from domain.market import normalize_ticker, ticker_problem

UNIVERSE_NAME_MAX_LENGTH: Final = 64
UNIVERSE_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_NAME_RE: Final = re.compile(UNIVERSE_NAME_PATTERN)
UNIVERSE_NAME_RULE: Final = (
    f"1-{UNIVERSE_NAME_MAX_LENGTH} letters, digits or . _ - starting with a letter or digit"
)
# Tickers in one universe, and so in one universe sweep.
UNIVERSE_MAX_TICKERS: Final = 500
# Universes a tenant may keep.
UNIVERSES_PER_TENANT_MAX: Final = 200


@dataclass(frozen=True)
class Problem:
    field: str
    message: str


def name_problem(value: object) -> str | None:
    """Why `value` is not a universe name, or None (names are compared as given: case matters)."""
    if not isinstance(value, str):
        return "must be a string"
    if not value:
        return "is required"
    if len(value) > UNIVERSE_NAME_MAX_LENGTH:
        return f"must be at most {UNIVERSE_NAME_MAX_LENGTH} characters"
    if not _NAME_RE.match(value):
        return f"must be {UNIVERSE_NAME_RULE}"
    return None


def ticker_list_problems(tickers: object, field: str = "tickers") -> list[Problem]:
    """What is wrong with a list of tickers for a universe or a sweep (empty: nothing)."""
    if not isinstance(tickers, list):
        return [Problem(field, "must be a list of tickers")]
    if not tickers:
        return [Problem(field, "must name at least one ticker")]
    if len(tickers) > UNIVERSE_MAX_TICKERS:
        return [Problem(field, f"must name at most {UNIVERSE_MAX_TICKERS} tickers, not {len(tickers)}")]
    problems: list[Problem] = []
    first_at: dict[str, int] = {}
    for i, ticker in enumerate(tickers):
        problem = ticker_problem(ticker.strip() if isinstance(ticker, str) else ticker)
        if problem:
            problems.append(Problem(f"{field}[{i}]", problem))
            continue
        key = normalize_ticker(ticker)
        if key in first_at:
            problems.append(Problem(f"{field}[{i}]", f"{key} is already {field}[{first_at[key]}]"))
        else:
            first_at[key] = i
    return problems


def normalize_tickers(tickers: list[str]) -> list[str]:
    """The stored spelling of a valid ticker list (ticker_list_problems found nothing), in order."""
    return [normalize_ticker(t) for t in tickers]


def sweep_target_problems(ticker: object, tickers: object, universe: object) -> list[Problem]:
    """What is wrong with what a sweep runs over: exactly one of one `ticker`, a list of
    `tickers` or a saved `universe` (None: not given), the list or the name valid."""
    given = [name for name, value in (("ticker", ticker), ("tickers", tickers), ("universe", universe))
             if value is not None]
    if not given:
        return [Problem("ticker", "give ticker, tickers or universe")]
    if len(given) > 1:
        return [Problem(given[1], f"give one of ticker, tickers or universe, not {' and '.join(given)}")]
    if tickers is not None:
        return ticker_list_problems(tickers)
    if universe is not None:
        problem = name_problem(universe)
        return [Problem("universe", problem)] if problem else []
    return []
