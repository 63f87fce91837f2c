"""Real data in: `POST /api/v1/datasets` with `format=yahoo|binance|metatrader|generic` or a
`columns=` mapping, each file made here in its source's real shape; the stored bars are read
back through `GET /api/v1/datasets/{id}/bars` (UTC), and the answer says which column gave
each field and what was dropped. Bad input is a 400 that names the problem and stores nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.gateway.helpers import assert_error

YAHOO_HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"
MT5_HEADER = "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>"


def _upload(c: httpx.Client, body: bytes, ticker: str, interval: str = "1d", name: str = "bars.csv",
            **fields: str) -> httpx.Response:
    data = {"ticker": ticker, "interval": interval, **fields}
    return c.post("/api/v1/datasets", files={"file": (name, body, "text/csv")}, data=data)


def _imported(c: httpx.Client, body: bytes, ticker: str, **kw: str) -> dict[str, Any]:
    r = _upload(c, body, ticker, **kw)
    assert r.status_code == 201, r.text
    return r.json()


def _bars(c: httpx.Client, ds: dict[str, Any]) -> list[dict[str, Any]]:
    body = c.get(f"/api/v1/datasets/{ds['dataset_id']}/bars", params={"limit": 5000}).json()
    assert body["downsampled"] is False
    return body["bars"]


def _bar(ts: str, o: float, h: float, lo: float, c: float, v: float) -> dict[str, Any]:
    return {"timestamp": ts, "open": o, "high": h, "low": lo, "close": c, "volume": v}


def _no_dataset(c: httpx.Client, ticker: str) -> None:
    assert all(d["ticker"] != ticker for d in c.get("/api/v1/datasets").json()["datasets"])


# ---------------------------------------------------------------- yahoo


def test_yahoo_daily_drops_null_rows_and_adj_close(alpha: httpx.Client) -> None:
    # A Yahoo Finance download: Close is the close, Adj Close is not used; a day without a
    # quote is a row of nulls. Dates are days in the exchange's zone.
    csv = "\n".join([
        YAHOO_HEADER,
        "2024-01-02,187.149994,188.440002,183.889999,185.639999,184.938217,82488700",
        "2024-01-03,184.220001,185.880005,183.429993,184.250000,183.553467,58414500",
        "2024-01-04,null,null,null,null,null,null",
        "2024-01-05,181.990005,182.759995,180.169998,181.179993,180.495087,62303300",
    ]) + "\n"
    ds = _imported(alpha, csv.encode(), "FMT-YAHOO", format="yahoo", calendar="sessions",
                   timezone="America/New_York")
    assert ds["format"] == "yahoo" and ds["bars"] == 3 and ds["calendar"] == "sessions"
    assert ds["columns"] == {"timestamp": "Date", "open": "Open", "high": "High", "low": "Low", "close": "Close",
                             "volume": "Volume"}
    assert ds["dropped"] == ["Adj Close"] and ds["rows_dropped"] == 1
    assert "1 row with null values dropped (the first: row 4)" in ds["notes"]
    assert "timestamps without a UTC offset read as America/New_York wall-clock time" in ds["notes"]
    bars = _bars(alpha, ds)
    assert [b["timestamp"] for b in bars] == ["2024-01-02T05:00:00Z", "2024-01-03T05:00:00Z", "2024-01-05T05:00:00Z"]
    assert bars[0] == _bar("2024-01-02T05:00:00Z", 187.149994, 188.440002, 183.889999, 185.639999, 82488700)
    assert bars[-1] == _bar("2024-01-05T05:00:00Z", 181.990005, 182.759995, 180.169998, 181.179993, 62303300)
    # The same file as generic: the null row is refused, and the message says which format drops it.
    err = assert_error(_upload(alpha, csv.encode(), "FMT-YAHOO-G"), 400)
    assert err["message"] == ("row 4: open is not a number: 'null' (Yahoo Finance's mark of a day without a quote: "
                              "format=yahoo drops those rows)")
    _no_dataset(alpha, "FMT-YAHOO-G")


def test_yahoo_intraday_datetime_with_offsets(alpha: httpx.Client) -> None:
    csv = "\n".join([
        "Datetime,Open,High,Low,Close,Adj Close,Volume",
        "2024-03-08 15:58:00-05:00,170.10,170.25,170.05,170.20,170.20,120000",
        "2024-03-08 15:59:00-05:00,170.20,170.30,170.00,170.05,170.05,310000",
        "2024-03-11 09:30:00-04:00,171.00,171.50,170.90,171.40,171.40,900000",  # daylight saving began
    ]) + "\n"
    ds = _imported(alpha, csv.encode(), "FMT-YAHOO-1M", interval="1m", format="yahoo", calendar="sessions",
                   timezone="America/New_York")
    assert ds["columns"]["timestamp"] == "Datetime" and ds["dropped"] == ["Adj Close"] and ds["rows_dropped"] == 0
    assert ds["notes"] == ["timestamps with a UTC offset (or Z) converted to UTC"]
    bars = _bars(alpha, ds)
    assert [b["timestamp"] for b in bars] == ["2024-03-08T20:58:00Z", "2024-03-08T20:59:00Z", "2024-03-11T13:30:00Z"]
    assert bars[-1] == _bar("2024-03-11T13:30:00Z", 171.0, 171.5, 170.9, 171.4, 900000)


# ---------------------------------------------------------------- binance


def _kline(open_ms: int, o: float, h: float, lo: float, c: float, v: float, micro: bool = False) -> str:
    """One line of a klines file: the open and close time in ms (µs in spot files from 2025 on)."""
    scale = 1000 if micro else 1
    close = (open_ms + 3_600_000) * scale - 1
    return (f"{open_ms * scale},{o:.8f},{h:.8f},{lo:.8f},{c:.8f},{v:.8f},{close},{v * c:.8f},"
            f"{int(v * 10)},{v / 2:.8f},{v * c / 2:.8f},0")


def test_binance_klines_milliseconds_then_microseconds(alpha: httpx.Client) -> None:
    # Hourly spot klines across the new year 2025: December's file in milliseconds, January's
    # in microseconds, concatenated. No header; UTC.
    t0 = int(datetime(2024, 12, 31, 22, tzinfo=UTC).timestamp() * 1000)
    lines = [
        _kline(t0, 93576.0, 94000.0, 93500.0, 93800.5, 512.25),
        _kline(t0 + 3_600_000, 93800.5, 94100.0, 93400.0, 93429.2, 498.5),
        _kline(t0 + 7_200_000, 93429.2, 93600.0, 93300.0, 93500.0, 600.0, micro=True),
        _kline(t0 + 10_800_000, 93500.0, 94200.0, 93450.0, 94100.0, 420.75, micro=True),
    ]
    ds = _imported(alpha, ("\n".join(lines) + "\n").encode(), "FMT-BTCUSDT", interval="1h", format="binance")
    assert ds["format"] == "binance" and ds["bars"] == 4 and ds["timezone"] == "UTC"
    assert ds["columns"] == {"timestamp": "open_time", "open": "open", "high": "high", "low": "low", "close": "close",
                             "volume": "volume"}
    assert ds["dropped"] == ["close_time", "quote_asset_volume", "number_of_trades", "taker_buy_base_asset_volume",
                             "taker_buy_quote_asset_volume", "ignore"]
    assert ds["notes"] == ["Unix times in milliseconds, UTC", "Unix times in microseconds, UTC"]
    bars = _bars(alpha, ds)
    assert [b["timestamp"] for b in bars] == ["2024-12-31T22:00:00Z", "2024-12-31T23:00:00Z", "2025-01-01T00:00:00Z",
                                              "2025-01-01T01:00:00Z"]
    assert bars[0] == _bar("2024-12-31T22:00:00Z", 93576.0, 94000.0, 93500.0, 93800.5, 512.25)
    assert bars[-1] == _bar("2025-01-01T01:00:00Z", 93500.0, 94200.0, 93450.0, 94100.0, 420.75)


def test_binance_futures_file_with_a_header_and_many_chunks(alpha: httpx.Client) -> None:
    # USD-M futures files carry a header row; 30,000 one-minute klines (~2.4 MB) travel in
    # three chunks to results.
    header = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
              "taker_buy_quote_volume,ignore")
    t0 = int(datetime(2024, 6, 1, tzinfo=UTC).timestamp() * 1000)
    lines = [header] + [
        f"{t0 + i * 60_000},{100 + i % 7:.2f},{101 + i % 7:.2f},{99 + i % 7:.2f},{100.5 + i % 7:.2f},"
        f"{10 + i % 3},{t0 + i * 60_000 + 59_999},1000.0,42,5.0,500.0,0"
        for i in range(30_000)
    ]
    body = ("\n".join(lines) + "\n").encode()
    assert len(body) > 2 * 1024 * 1024
    ds = _imported(alpha, body, "FMT-ETHUSDT", interval="1m", format="binance")
    assert ds["bars"] == 30_000 and ds["start"].startswith("2024-06-01T00:00:00")
    assert ds["end"].startswith((datetime(2024, 6, 1, tzinfo=UTC) + timedelta(minutes=29_999)).strftime("%Y-%m-%dT%H:%M"))
    assert ds["columns"]["timestamp"] == "open_time" and len(ds["dropped"]) == 6
    alpha.delete(f"/api/v1/datasets/{ds['dataset_id']}")


# ---------------------------------------------------------------- metatrader


def test_metatrader5_utf16_tab_separated_tick_volume(alpha: httpx.Client) -> None:
    # MT5's "Export bars" of a forex pair: tab-separated, saved as UTF-16 (with its byte-order mark), <VOL>
    # all zero (no exchange volume) so <TICKVOL> is the volume. Times are the broker's server
    # time, read in the dataset's timezone (here a fixed UTC+2: IANA's Etc/GMT-2).
    text = "\r\n".join([
        MT5_HEADER,
        "2024.01.02\t09:30:00\t1.10000\t1.10100\t1.09900\t1.10050\t123\t0\t2",
        "2024.01.02\t09:31:00\t1.10050\t1.10080\t1.10010\t1.10020\t98\t0\t2",
        "2024.01.02\t09:32:00\t1.10020\t1.10060\t1.09980\t1.10040\t141\t0\t3",
    ]) + "\r\n"
    ds = _imported(alpha, text.encode("utf-16"), "FMT-EURUSD", interval="1m", format="metatrader",
                   timezone="Etc/GMT-2")
    assert ds["format"] == "metatrader" and ds["bars"] == 3
    assert ds["columns"] == {"timestamp": "<DATE> <TIME>", "open": "<OPEN>", "high": "<HIGH>", "low": "<LOW>",
                             "close": "<CLOSE>", "volume": "<TICKVOL>"}
    assert ds["dropped"] == ["<SPREAD>", "<VOL>"]
    assert ds["notes"] == ["read as UTF-16 text", "MetaTrader server time read as Etc/GMT-2 wall-clock time",
                           "volume from <TICKVOL>: <VOL> is all zero"]
    bars = _bars(alpha, ds)
    assert bars[0] == _bar("2024-01-02T07:30:00Z", 1.1, 1.101, 1.099, 1.1005, 123)
    assert bars[-1] == _bar("2024-01-02T07:32:00Z", 1.1002, 1.1006, 1.0998, 1.1004, 141)


def test_metatrader5_daily_with_real_volume(alpha: httpx.Client) -> None:
    # An export without <TIME> (dates alone); an exchange-traded symbol has a real <VOL>, which is used.
    text = "\n".join([
        "<DATE>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>",
        "2024.01.02\t4745.25\t4760.00\t4720.50\t4742.75\t180000\t1650000\t25",
        "2024.01.03\t4742.75\t4750.00\t4700.25\t4705.00\t200000\t1820000\t25",
    ]) + "\n"
    ds = _imported(alpha, text.encode(), "FMT-ES", format="metatrader", calendar="sessions", timezone="America/Chicago")
    assert ds["columns"]["timestamp"] == "<DATE>" and ds["columns"]["volume"] == "<VOL>"
    assert ds["dropped"] == ["<SPREAD>", "<TICKVOL>"]
    assert "volume from <VOL>, not <TICKVOL>" in ds["notes"]
    bars = _bars(alpha, ds)
    assert bars == [_bar("2024-01-02T06:00:00Z", 4745.25, 4760.0, 4720.5, 4742.75, 1650000),
                    _bar("2024-01-03T06:00:00Z", 4742.75, 4750.0, 4700.25, 4705.0, 1820000)]


def test_metatrader4_csv_without_header(alpha: httpx.Client) -> None:
    csv = "2024.01.02,09:30,1.1000,1.1010,1.0990,1.1005,123\n2024.01.02,09:31,1.1005,1.1012,1.1001,1.1008,87\n"
    ds = _imported(alpha, csv.encode(), "FMT-MT4", interval="1m", format="metatrader", timezone="Etc/GMT-2")
    assert ds["columns"] == {"timestamp": "<DATE> <TIME>", "open": "<OPEN>", "high": "<HIGH>", "low": "<LOW>",
                             "close": "<CLOSE>", "volume": "<TICKVOL>"}
    assert ds["dropped"] == []
    bars = _bars(alpha, ds)
    assert bars == [_bar("2024-01-02T07:30:00Z", 1.1, 1.101, 1.099, 1.1005, 123),
                    _bar("2024-01-02T07:31:00Z", 1.1005, 1.1012, 1.1001, 1.1008, 87)]
    # A bad value is named by its line (no header: the first line is row 1).
    err = assert_error(_upload(alpha, csv.replace("1.1012", "x").encode(), "FMT-MT4-BAD", interval="1m",
                               format="metatrader"), 400)
    assert err["message"] == "row 2: high is not a number: 'x'"
    _no_dataset(alpha, "FMT-MT4-BAD")


# ---------------------------------------------------------------- generic: TradingView, the mapping


def test_tradingview_export_is_generic(alpha: httpx.Client) -> None:
    # "Export chart data": time in Unix seconds (or ISO), Volume with a capital V, the chart's
    # indicators as more columns.
    csv = "time,open,high,low,close,Volume,Volume MA\n1704205800,187.15,188.44,183.89,185.64,82488700,\n" \
          "1704292200,184.22,185.88,183.43,184.25,58414500,70451600\n"
    ds = _imported(alpha, csv.encode(), "FMT-TV", calendar="sessions", timezone="America/New_York")
    assert ds["format"] == "generic"
    assert ds["columns"] == {"timestamp": "time", "open": "open", "high": "high", "low": "low", "close": "close",
                             "volume": "Volume"}
    assert ds["dropped"] == ["Volume MA"] and ds["notes"] == ["Unix times in seconds, UTC"]
    assert _bars(alpha, ds)[0] == _bar("2024-01-02T14:30:00Z", 187.15, 188.44, 183.89, 185.64, 82488700)

    iso = "time,open,high,low,close,Volume\n2024-01-02T09:30:00-05:00,187.15,188.44,183.89,185.64,82488700\n"
    ds = _imported(alpha, iso.encode(), "FMT-TV", calendar="sessions", timezone="America/New_York", format="generic")
    assert ds["version"] == 2 and _bars(alpha, ds)[0]["timestamp"] == "2024-01-02T14:30:00Z"


def test_column_mapping(alpha: httpx.Client) -> None:
    csv = "Day,Note,First,Max,Min,Last,Shares\n2024-01-02,x,10,11,9,10.5,100\n2024-01-03,y,10.5,12,10,11.5,200\n"
    ds = _imported(alpha, csv.encode(), "FMT-MAP",
                   columns="timestamp:day, open:First,high:MAX,low:Min,close:Last,volume:Shares")
    assert ds["format"] == "generic"
    assert ds["columns"] == {"timestamp": "Day", "open": "First", "high": "Max", "low": "Min", "close": "Last",
                             "volume": "Shares"}
    assert ds["dropped"] == ["Note"]
    assert _bars(alpha, ds)[-1] == _bar("2024-01-03T00:00:00Z", 10.5, 12, 10, 11.5, 200)

    # Fields left out are found by their usual names: here only the close is mapped.
    csv = "Date,Open,High,Low,Close,Last,Volume\n2024-01-02,10,11,9,10.5,10.25,100\n"
    ds = _imported(alpha, csv.encode(), "FMT-MAP", columns="close:Last")
    assert ds["columns"]["close"] == "Last" and ds["columns"]["timestamp"] == "Date" and ds["dropped"] == ["Close"]
    assert _bars(alpha, ds)[0]["close"] == 10.25


def test_vocabulary_lists_the_formats(alpha: httpx.Client) -> None:
    assert alpha.get("/api/v1/vocabulary").json()["dataset_formats"] == ["generic", "yahoo", "binance", "metatrader"]


# ---------------------------------------------------------------- bad input


YAHOO_FILE = f"{YAHOO_HEADER}\n2024-01-02,10,11,9,10.5,10.4,100\n"
BAD = [
    ({"format": "nasdaq"}, YAHOO_FILE,
     "unknown format 'nasdaq' (expected one of generic, yahoo, binance, metatrader)"),
    ({"columns": "timestamp:Date,close:Adj Close,volume:Shares"}, YAHOO_FILE,
     "row 1: columns= maps volume to 'Shares', which the header does not have (its columns: 'Date', 'Open', "
     "'High', 'Low', 'Close', 'Adj Close', 'Volume')"),
    ({"columns": "price:Close"}, YAHOO_FILE,
     "columns: unknown field 'price' (fields are timestamp, open, high, low, close, volume)"),
    ({"columns": "close"}, YAHOO_FILE, "columns: 'close' is not field:column (e.g. timestamp:Date,close:Last)"),
    ({"columns": "close:Close", "format": "yahoo"}, YAHOO_FILE,
     "columns= names the columns of a generic file; a Yahoo Finance CSV has its own (leave format out, "
     "or give format=generic)"),
    ({"format": "binance"}, YAHOO_FILE,
     "row 1: not a Binance klines CSV: expected 12 columns (open_time, open, high, low, close, volume, close_time, "
     "quote_asset_volume, number_of_trades, taker_buy_base_asset_volume, taker_buy_quote_asset_volume, ignore) "
     "starting with the open time in Unix milliseconds or microseconds, saw 7 column(s); it looks like a Yahoo "
     "Finance CSV: import it with format=yahoo"),
    ({"format": "yahoo"}, "timestamp,open,high,low,close,volume\n2024-01-02,10,11,9,10.5,100\n",
     "row 1: not a Yahoo Finance CSV: the header lacks Date or Datetime (expected Date,Open,High,Low,Close,"
     "Adj Close,Volume); it looks like a generic CSV (timestamp,open,high,low,close,volume): import it with "
     "format=generic"),
    ({"format": "metatrader"}, _kline(1704067200000, 1, 2, 0.5, 1.5, 10) + "\n",
     "row 1: not a MetaTrader export: expected MT5's header <DATE> <TIME> <OPEN> <HIGH> <LOW> <CLOSE> <TICKVOL> "
     "<VOL> <SPREAD> (tab-separated) or MT4's rows 2024.01.02,09:30,open,high,low,close,volume; the first line is "
     "'1704067200000,1.00000000,2.00000000,0.50'... (123 characters); it looks like a Binance klines CSV: import "
     "it with format=binance"),
    ({}, MT5_HEADER + "\n2024.01.02\t09:30:00\t1.1\t1.2\t1.0\t1.1\t1\t0\t2\n",
     "row 1: the header lacks column(s) timestamp, open, high, low, close, volume (expected timestamp,open,high,"
     "low,close,volume, or name its columns with columns=field:Column); it looks like a MetaTrader export: "
     "import it with format=metatrader"),
]


@pytest.mark.parametrize("fields,body,message", BAD, ids=["unknown-format", "mapping-missing-column",
                                                        "mapping-unknown-field", "mapping-syntax",
                                                        "mapping-with-a-format", "not-binance", "not-yahoo",
                                                        "not-metatrader", "generic-but-metatrader"])
def test_bad_format_or_mapping_is_a_400_naming_it(alpha: httpx.Client, fields: dict[str, str], body: str,
                                                  message: str) -> None:
    err = assert_error(_upload(alpha, body.encode(), "FMT-BAD", **fields), 400)
    shown = err["message"] if err["message"] != "invalid dataset upload" else err["details"]["errors"][0]["message"]
    assert shown == message, err
    _no_dataset(alpha, "FMT-BAD")
