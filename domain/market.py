"""Market vocabulary: bar intervals, ticker syntax, calendars and annualisation.

Each rule is defined here once; the gateway, results, the engine and the CLI
import it. Plain Python: nothing here knows HTTP, gRPC or SQL.
"""

from __future__ import annotations

import re
from typing import Final

# A bar's values beside its ts (int64 ns, UTC): the market store's columns and GetBars' fields.
BAR_PRICE_COLUMNS: Final[tuple[str, ...]] = ("open", "high", "low", "close", "volume")

NS_PER_MINUTE: Final = 60 * 1_000_000_000
NS_PER_DAY: Final = 1_440 * NS_PER_MINUTE

# ------------------------------------------------------------------ intervals

# Every bar interval Hindsight knows, finest first, with its length in minutes.
# Datasets are imported at any of them; a backtest asking for a coarser one than
# its dataset's is resampled from the finest dataset whose interval divides it.
INTERVAL_MINUTES: Final[dict[str, int]] = {
    "1m": 1,
    "3m": 3,
    "5m": 5,
    "15m": 15,
    "30m": 30,
    "1h": 60,
    "2h": 120,
    "4h": 240,
    "1d": 1_440,
    "1w": 10_080,
}
INTERVALS: Final[tuple[str, ...]] = tuple(INTERVAL_MINUTES)
# Other spellings of the same intervals that clients send.
INTERVAL_ALIASES: Final[dict[str, str]] = {"60m": "1h", "120m": "2h", "240m": "4h", "24h": "1d", "7d": "1w"}
INTERVAL_RANK: Final[dict[str, int]] = {name: i for i, name in enumerate(INTERVALS)}


def interval_name(value: object) -> str | None:
    """The canonical interval a name means (``"60m"`` -> ``"1h"``, case-insensitive), or None."""
    key = value.strip().lower() if isinstance(value, str) else ""
    key = INTERVAL_ALIASES.get(key, key)
    return key if key in INTERVAL_MINUTES else None


def interval_ns(interval: str) -> int:
    """The length of one bar of ``interval`` in nanoseconds."""
    return INTERVAL_MINUTES[interval] * NS_PER_MINUTE


def divides(source: str, target: str) -> bool:
    """Whether bars of ``target`` can be built from bars of ``source`` (same or finer, dividing it)."""
    s, t = INTERVAL_MINUTES[source], INTERVAL_MINUTES[target]
    return s <= t and t % s == 0


def interval_message() -> str:
    return f"must be one of {', '.join(INTERVALS)}"


# ------------------------------------------------------------------ tickers

TICKER_MAX_LENGTH: Final = 32
# What real symbols look like: letters and digits with . _ ^ = / - (``^GSPC``,
# ``BRK/B``, ``BTC-USD``, ``ES=F``, ``NIFTY24OCTFUT``), at most 32 characters,
# at least one letter or digit, no path parts (``.``/``..`` segments). The pattern
# (also the OpenAPI schema's) leaves the length to TICKER_MAX_LENGTH.
TICKER_PATTERN: Final = r"^[._^=/-]*[A-Za-z0-9][A-Za-z0-9._^=/-]*$"
_TICKER_RE: Final = re.compile(TICKER_PATTERN)
TICKER_RULE: Final = f"1-{TICKER_MAX_LENGTH} letters, digits or . _ ^ = / - with at least one letter or digit"


def ticker_problem(value: object) -> str | None:
    """Why ``value`` is not a ticker, or None when it is one (case is kept; compare with normalize_ticker)."""
    if not isinstance(value, str):
        return "must be a string"
    if not value:
        return "is required"
    if len(value) > TICKER_MAX_LENGTH:
        return f"must be at most {TICKER_MAX_LENGTH} characters"
    if not _TICKER_RE.match(value):
        return f"must be {TICKER_RULE}"
    if any(part in (".", "..") for part in value.split("/")) or value.startswith("/") or value.endswith("/"):
        return "must not contain empty, '.' or '..' parts between '/'"
    return None


def normalize_ticker(value: str) -> str:
    """The stored spelling of a ticker: surrounding whitespace removed, upper case."""
    return value.strip().upper()


# ------------------------------------------------------------------ calendars

# A dataset's calendar fixes the annualisation factor P of its metrics:
# "continuous" markets trade around the clock (365 days a year), "sessions"
# markets trade on business days (252 a year).
PERIODS_PER_YEAR: Final[dict[str, int]] = {"continuous": 365, "sessions": 252}
CALENDARS: Final[tuple[str, ...]] = tuple(PERIODS_PER_YEAR)
DAYS_PER_MONTH: Final = 30.4375


# Seed 001's failure message for a ticker without (enough) bars: the public API keeps it word
# for word (job error_message, stream, webhook), so what to do about it travels beside it.
_INSUFFICIENT_DATA = "Insufficient historical data for ticker "
_INSUFFICIENT_DATA_RE = re.compile(re.escape(_INSUFFICIENT_DATA) + r"(\S{1,32})$")


def insufficient_data(ticker: str) -> str:
    """The seed's message for a ticker without (enough) bars."""
    return _INSUFFICIENT_DATA + ticker


def insufficient_data_ticker(message: str) -> str | None:
    """The ticker a failure message says lacks data (the message may carry a prefix), or None."""
    found = _INSUFFICIENT_DATA_RE.search(message or "")
    return found.group(1) if found else None
