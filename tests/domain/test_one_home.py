"""Each domain rule has one home: no copy of the interval list or a ticker regex outside domain/."""

from __future__ import annotations

import re
from pathlib import Path

from domain.market import INTERVALS

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for d in ("services", "libs", "cli") for p in (ROOT / d).rglob("*.py") if "gen" not in p.parts]
SOURCES += list((ROOT / "services/gateway/web/static").rglob("*.js"))
# A literal list of intervals: two interval names side by side in quotes (any two of them).
_NAME = "|".join(map(re.escape, INTERVALS))
INTERVAL_LIST = re.compile(rf"""["']({_NAME})["']\s*,\s*["']({_NAME})["']""")
# A ticker rule: a regular expression with the ticker's character class.
TICKER_REGEX = re.compile(r"""A-Za-z0-9\._\^=/-|A-Z0-9\._\^=/-|A-Za-z0-9\._-\]\{1,32""")


def test_no_copy_of_the_interval_list() -> None:
    found = [f"{p.relative_to(ROOT)}:{i}" for p in SOURCES for i, line in enumerate(p.read_text().splitlines(), 1)
             if INTERVAL_LIST.search(line)]
    assert not found, f"intervals are domain.market.INTERVALS; copies at {found}"


def test_no_copy_of_the_ticker_rule() -> None:
    found = [str(p.relative_to(ROOT)) for p in SOURCES if TICKER_REGEX.search(p.read_text())]
    assert not found, f"the ticker rule is domain.market.ticker_problem; copies in {found}"
