"""The market vocabulary: one interval list, one ticker rule (domain/market.py)."""

from __future__ import annotations

import pytest

from domain import market


@pytest.mark.parametrize("ticker", ["^GSPC", "BRK/B", "BTC-USD", "NIFTY24OCTFUT", "ES=F", "X", "eth-usd", "A" * 32])
def test_real_symbols_are_tickers(ticker: str) -> None:
    assert market.ticker_problem(ticker) is None


@pytest.mark.parametrize("ticker", ["", " BTC", "A B", "A" * 33, "..", "-", "a/../b", "/etc", "A/", "ÄPFEL", "a\x00b", 7])
def test_what_is_not_a_ticker_says_why(ticker: object) -> None:
    assert market.ticker_problem(ticker)


def test_intervals_are_ordered_finest_first_and_widened() -> None:
    assert market.INTERVALS == ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "1d", "1w")
    minutes = [market.INTERVAL_MINUTES[i] for i in market.INTERVALS]
    assert minutes == sorted(minutes)
    assert market.interval_ns("4h") == 4 * 3_600 * 10**9


@pytest.mark.parametrize("alias,name", [("60m", "1h"), ("240m", "4h"), ("1D", "1d"), ("7d", "1w"), ("9m", None), (None, None)])
def test_interval_aliases(alias: object, name: str | None) -> None:
    assert market.interval_name(alias) == name


@pytest.mark.parametrize("source,target,ok", [("1m", "3m", True), ("5m", "15m", True), ("15m", "1h", True),
                                              ("1h", "4h", True), ("1d", "1w", True), ("3m", "5m", False),
                                              ("1h", "1m", False), ("4h", "1d", True)])
def test_which_interval_builds_which(source: str, target: str, ok: bool) -> None:
    assert market.divides(source, target) is ok
