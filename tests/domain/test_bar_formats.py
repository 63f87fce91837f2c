"""The import formats' vocabulary: the columns= mapping, Unix time units, which format a first line looks like."""

from __future__ import annotations

import pytest

from domain.bar_formats import FormatError, check_import, detect_format, epoch_unit, parse_columns


def test_mapping_syntax():
    assert parse_columns(" Timestamp : Day , close:Adj Close,") == {"timestamp": "Day", "close": "Adj Close"}
    for text, message in [
        ("close", "'close' is not field:column"),
        ("close:", "'close:' is not field:column"),
        ("price:Last", "unknown field 'price'"),
        ("close:Last,CLOSE:Close", "close is mapped twice"),
        (" , ", "no field:column entries"),
    ]:
        with pytest.raises(FormatError, match=message):
            parse_columns(text)


def test_formats_and_mapping_go_together_only_for_generic():
    assert check_import("", "") == ("generic", {})
    assert check_import(" Yahoo ", "") == ("yahoo", {})
    assert check_import("generic", "close:Last") == ("generic", {"close": "Last"})
    with pytest.raises(FormatError, match=r"^unknown format 'csv' \(expected one of generic, yahoo, binance, metatrader\)$"):
        check_import("csv", "")
    with pytest.raises(FormatError, match="a Binance klines CSV has its own"):
        check_import("binance", "close:close")


@pytest.mark.parametrize("value,unit", [
    (1_704_205_800, "seconds"),                 # 2024 in seconds (10 digits)
    (1_704_205_800_000, "milliseconds"),        # Binance until 2024
    (1_735_689_600_000_000, "microseconds"),    # Binance spot from 2025
    (1_735_689_600_000_000_000, "nanoseconds"),
    (100_000_000, "seconds"),                   # 1973: the smallest 9-digit time
])
def test_unix_time_units_by_size(value, unit):
    assert epoch_unit(value)[0] == unit


@pytest.mark.parametrize("line,fmt", [
    ("Date,Open,High,Low,Close,Adj Close,Volume", "yahoo"),
    ("\ufefftimestamp,open,high,low,close,volume", "generic"),
    ("time,open,high,low,close,Volume,Volume MA", "generic"),
    ("1704067200000,42283.58,42554.57,42261.02,42475.23,1271.68,1704070799999,53957248.97,47134,682.57,28957416.82,0",
     "binance"),
    ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore",
     "binance"),
    ("<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>", "metatrader"),
    ("2024.01.02,09:30,1.1000,1.1010,1.0990,1.1005,123", "metatrader"),
    ("Day,First,Max,Min,Last,Shares", None),
    ("", None),
])
def test_detect_format(line, fmt):
    assert detect_format(line) == fmt
