"""Option-chain imports through the real stack: HTTP to a real gateway, gRPC to a real results
service on Postgres, Parquet files in its market store. CSV and Parquet, the option-type
aliases, listing beside bar datasets, a day's contracts, tenant scoping, deletion, and each bad
row: a 400 naming it, with nothing stored."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hindsight.results.v1 import results_pb2, results_pb2_grpc

from domain.option_chain import is_chain_frame
from libs.option_chain_wire import chain_frame, ipc_to_table
from tests.conftest import create_database, drop_database
from tests.gateway.conftest import ALPHA_KEY, BETA_KEY, Gateway, Harness, Results
from tests.gateway.helpers import assert_error, jobs_total

IST = ZoneInfo("Asia/Kolkata")
HEADER = "timestamp,expiry,strike,option_type,open,high,low,close,volume,oi"


@pytest.fixture(scope="module")
def pg_stack(harness: Harness) -> Iterator[tuple[Results, Gateway]]:
    name, url = create_database()
    try:
        results = harness.results(database_url=url, hindsight_demo_option_chain=True)
        yield results, harness.gateway(results.addr)
        harness.stop_results(results)
    finally:
        drop_database(name)


@pytest.fixture()
def alpha(pg_stack: tuple[Results, Gateway]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=pg_stack[1].url, timeout=60, headers={"X-API-Key": ALPHA_KEY}) as c:
        yield c


@pytest.fixture()
def beta(pg_stack: tuple[Results, Gateway]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=pg_stack[1].url, timeout=60, headers={"X-API-Key": BETA_KEY}) as c:
        yield c


def chain_rows(days: int = 2, minutes: int = 3, strikes: tuple[float, ...] = (24300, 24350, 24400)) -> list[dict[str, Any]]:
    """A small chain: each minute, two weekly expiries x strikes x CE/PE, sorted as the store sorts."""
    rows = []
    start = date(2024, 10, 28)  # a Monday; expiries on Thursdays
    for d in range(days):
        day = start + timedelta(days=d)
        expiries = [date(2024, 10, 31), date(2024, 11, 7)]
        for m in range(minutes):
            ts = datetime(day.year, day.month, day.day, 9, 15 + m)
            for e in expiries:
                for k in strikes:
                    for kind in ("CE", "PE"):
                        base = 100.0 + (k - 24300) / 10 + m + (5 if kind == "PE" else 0)
                        rows.append({
                            "timestamp": ts, "expiry": e, "strike": k, "option_type": kind,
                            "open": base, "high": base + 2, "low": base - 1.5, "close": base + 0.5,
                            "volume": 10.0 * (m + 1), "oi": 1000.0 + m,
                        })
    return rows


def to_csv(rows: list[dict[str, Any]], spell: dict[str, str] | None = None) -> bytes:
    spell = spell or {}
    lines = [HEADER]
    for r in rows:
        r = {k: ("" if v is None else v) for k, v in r.items()}
        lines.append(
            f"{r['timestamp'].isoformat(sep=' ')},{r['expiry'].isoformat()},{r['strike']:g},"
            f"{spell.get(r['option_type'], r['option_type'])},{r['open']},{r['high']},{r['low']},{r['close']},"
            f"{r['volume']},{r['oi']}"
        )
    return ("\n".join(lines) + "\n").encode()


def to_parquet(rows: list[dict[str, Any]], spell: dict[str, str] | None = None) -> bytes:
    spell = spell or {}
    table = pa.table({
        "timestamp": pa.array([r["timestamp"] for r in rows], pa.timestamp("s")),
        "expiry": pa.array([r["expiry"] for r in rows], pa.date32()),
        "strike": pa.array([int(r["strike"]) for r in rows], pa.int64()),
        "option_type": [spell.get(r["option_type"], r["option_type"]) for r in rows],
        **{c: [r[c] for r in rows] for c in ("open", "high", "low", "close", "volume", "oi")},
    })
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def upload(c: httpx.Client, data: bytes, name: str = "chain.csv", **fields: str) -> httpx.Response:
    form = {"kind": "option_chain", "ticker": "NIFTY", "interval": "1m", "timezone": "Asia/Kolkata"}
    form.update(fields)
    return c.post("/api/v1/datasets", files={"file": (name, data, "application/octet-stream")}, data=form)


def chains(c: httpx.Client) -> list[dict[str, Any]]:
    return [d for d in c.get("/api/v1/datasets").json()["datasets"] if d["kind"] == "option_chain"]


def stored_versions(results: Results) -> list[Path]:
    root = results.settings.market_root() / "option_chains"
    owners = [p for p in root.iterdir() if p.name != "_demo"] if root.exists() else []
    return sorted(v for o in owners for v in o.iterdir())


def day_frame(results: Results, tenant: str, chain_id: str, day: str):
    pieces = [m.arrow_ipc for m in results.stub().GetOptionChainDay(
        results_pb2.GetOptionChainDayRequest(tenant_id=tenant, chain_id=chain_id, date=day))]
    return chain_frame(ipc_to_table(pieces), with_optional=True)


def _expected_frame(rows: list[dict[str, Any]], day: date):
    mine = [r for r in rows if r["timestamp"].date() == day]
    return mine


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_import_list_read_delete(fmt: str, pg_stack, alpha: httpx.Client, beta: httpx.Client) -> None:
    results, _ = pg_stack
    rows = chain_rows()
    data = to_csv(rows) if fmt == "csv" else to_parquet(rows)
    r = upload(alpha, data, name=f"chain.{fmt}", ticker=f"NIFTY-{fmt.upper()}")
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["kind"] == "option_chain" and got["dataset_id"].startswith("oc_")
    assert got["underlying"] == got["ticker"] == f"NIFTY-{fmt.upper()}"
    assert got["rows"] == len(rows) == 2 * 3 * 2 * 3 * 2
    assert got["contracts"] == 2 * 3 * 2
    assert got["expiries"] == ["2024-10-31", "2024-11-07"]
    assert got["strike_steps"] == [50.0]
    assert got["days"] == 2
    assert got["start"] == "2024-10-28T03:45:00Z" and got["end"] == "2024-10-29T03:47:00Z"  # 09:15 / 09:17 IST
    assert got["format"] == fmt and got["columns"][-1] == "oi" and got["version"] == 1 and not got["demo"]
    assert got["bytes_stored"] > 0

    # Listed beside the bar datasets (the demo ones), for its tenant only.
    listed = alpha.get("/api/v1/datasets").json()["datasets"]
    assert {d["kind"] for d in listed} == {"bars", "option_chain"}
    assert [d for d in listed if d["dataset_id"] == got["dataset_id"]] == [got]
    assert all(d["dataset_id"] != got["dataset_id"] for d in beta.get("/api/v1/datasets").json()["datasets"])

    # The day's chain as stored: every row back, in the shared form, sorted.
    frame = day_frame(results, "alpha", got["dataset_id"], "2024-10-28")
    want = [r for r in rows if r["timestamp"].date() == date(2024, 10, 28)]
    assert len(frame) == len(want)
    assert frame["timestamp"].tolist() == [
        r["timestamp"].replace(tzinfo=IST).astimezone(ZoneInfo("UTC")) for r in want
    ]
    assert frame["expiry"].dt.date.tolist() == [r["expiry"] for r in want]
    assert frame["strike"].tolist() == [r["strike"] for r in want]
    assert frame["option_type"].tolist() == [r["option_type"] for r in want]
    for col in ("open", "high", "low", "close", "volume", "oi"):
        assert np.array_equal(frame[col].to_numpy(), np.array([r[col] for r in want]))

    # A day's contracts over HTTP.
    day = alpha.get(f"/api/v1/datasets/{got['dataset_id']}/contracts", params={"date": "2024-10-29"})
    assert day.status_code == 200, day.text
    contracts = day.json()["contracts"]
    assert len(contracts) == 12
    assert contracts[0] == {
        "symbol": f"NIFTY-{fmt.upper()}:2024-10-31:OPT:24300:CE", "expiry": "2024-10-31", "strike": 24300.0,
        "option_type": "CE", "bars": 3, "first": "2024-10-29T03:45:00Z", "last": "2024-10-29T03:47:00Z",
        "volume": 60.0,
    }
    assert alpha.get(f"/api/v1/datasets/{got['dataset_id']}/contracts", params={"date": "2024-10-30"}).json()[
        "contracts"] == []
    assert_error(beta.get(f"/api/v1/datasets/{got['dataset_id']}/contracts", params={"date": "2024-10-29"}), 404)
    assert_error(alpha.get(f"/api/v1/datasets/{got['dataset_id']}/contracts", params={"date": "2024-13-01"}), 400)

    # A second import is the next version; the first version's files go.
    before = stored_versions(results)
    again = upload(alpha, data, name=f"chain.{fmt}", ticker=f"NIFTY-{fmt.upper()}")
    assert again.status_code == 201 and again.json()["version"] == 2
    assert again.json()["dataset_id"] == got["dataset_id"]
    assert len(stored_versions(results)) == len(before)

    assert_error(beta.delete(f"/api/v1/datasets/{got['dataset_id']}"), 404)
    gone = alpha.delete(f"/api/v1/datasets/{got['dataset_id']}")
    assert gone.status_code == 200, gone.text
    assert all(d["dataset_id"] != got["dataset_id"] for d in chains(alpha))
    assert len(stored_versions(results)) == len(before) - 1


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("spell", [
    {"CE": "C", "PE": "P"}, {"CE": "call", "PE": "put"}, {"CE": "Call", "PE": "PUT"}, {"CE": "ce", "PE": " pe "},
])
def test_option_type_aliases(fmt: str, spell: dict[str, str], pg_stack, alpha: httpx.Client) -> None:
    results, _ = pg_stack
    rows = chain_rows(days=1, minutes=1)
    data = to_csv(rows, spell) if fmt == "csv" else to_parquet(rows, spell)
    r = upload(alpha, data, ticker="ALIAS")
    assert r.status_code == 201, r.text
    frame = day_frame(results, "alpha", r.json()["dataset_id"], "2024-10-28")
    assert frame["option_type"].tolist() == [x["option_type"] for x in rows]
    assert alpha.delete(f"/api/v1/datasets/{r.json()['dataset_id']}").status_code == 200


def _bad(rows: list[dict[str, Any]], i: int, **change: Any) -> list[dict[str, Any]]:
    out = [dict(r) for r in rows]
    out[i].update(change)
    return out


BAD_ROWS = {
    # case: (row index changed (0-based), change, what the message says)
    "strike zero": (7, {"strike": 0.0}, "strike must be a number > 0"),
    "strike negative": (7, {"strike": -50.0}, "strike must be a number > 0"),
    "expiry before the bar's date": (9, {"expiry": date(2024, 10, 27)}, "expiry is before the bar's date"),
    "high below low": (10, {"high": 90.0, "low": 95.0}, "high is below low"),
    "close above high": (11, {"close": 1e6}, "close lies outside [low, high]"),
    "negative volume": (5, {"volume": -1.0}, "volume must be a number >= 0"),
    "negative price": (5, {"open": -1.0, "low": -2.0}, "open must be a number >= 0"),
    "unknown option type": (6, {"option_type": "XX"}, "option_type must be CE or PE"),
    "missing option type": (6, {"option_type": None}, "option_type must be CE or PE"),
    "missing close": (4, {"close": None}, "close must be a number >= 0"),
}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_row_is_named_and_nothing_stored(case: str, fmt: str, pg_stack, alpha: httpx.Client) -> None:
    results, _ = pg_stack
    index, change, message = BAD_ROWS[case]
    rows = _bad(chain_rows(), index, **change)
    data = to_csv(rows) if fmt == "csv" else to_parquet(rows)
    listed, files = alpha.get("/api/v1/datasets").json(), stored_versions(results)
    r = upload(alpha, data, ticker="BAD")
    err = assert_error(r, 400)
    assert f"row {index + 1}:" in err["message"] and message in err["message"], err
    assert alpha.get("/api/v1/datasets").json() == listed
    assert stored_versions(results) == files
    assert not any((results.settings.market_root() / ".staging").glob("*"))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_duplicate_timestamp_and_contract(fmt: str, pg_stack, alpha: httpx.Client) -> None:
    results, _ = pg_stack
    rows = chain_rows()
    # Adjacent (the file is sorted) and far apart (a day out of order, sorted at the end).
    for dup_rows, first, second in (
        ([*rows[:8], dict(rows[7]), *rows[8:]], 8, 9),
        ([*rows[:40], dict(rows[3]), *rows[40:]], 4, 41),
    ):
        data = to_csv(dup_rows) if fmt == "csv" else to_parquet(dup_rows)
        files = stored_versions(results)
        err = assert_error(upload(alpha, data, ticker="DUP"), 400)
        assert err["message"].startswith(f"row {second}: duplicate (timestamp, contract) of row {first}:"), err
        r = dup_rows[second - 1]
        assert f"DUP:{r['expiry'].isoformat()}:OPT:{r['strike']:g}:{r['option_type']}" in err["message"]
        assert stored_versions(results) == files
        assert all(d["ticker"] != "DUP" for d in chains(alpha))


def test_unsorted_file_is_sorted_by_day(pg_stack, alpha: httpx.Client) -> None:
    results, _ = pg_stack
    rows = chain_rows()
    shuffled = [rows[i] for i in np.random.default_rng(7).permutation(len(rows))]
    r = upload(alpha, to_csv(shuffled), ticker="SHUFFLED")
    assert r.status_code == 201, r.text
    frame = day_frame(results, "alpha", r.json()["dataset_id"], "2024-10-29")
    want = [x for x in rows if x["timestamp"].date() == date(2024, 10, 29)]
    assert frame["strike"].tolist() == [x["strike"] for x in want]
    assert frame["close"].tolist() == [x["close"] for x in want]
    assert alpha.delete(f"/api/v1/datasets/{r.json()['dataset_id']}").status_code == 200


@pytest.mark.parametrize("data, message", [
    (b"timestamp,expiry,strike,open,high,low,close,volume\n2024-10-28 09:15,2024-10-31,1,1,1,1,1,1\n",
     "lacks the column(s) option_type"),
    (HEADER.encode() + b"\n", "has no rows"),
    (HEADER.encode() + b"\n2024-10-28 09:15:00,2024-10-31,abc,CE,1,1,1,1,1,\n", "row 1: strike is not a number ('abc')"),
    (HEADER.encode() + b"\nnot-a-time,2024-10-31,100,CE,1,1,1,1,1,\n", "row 1: the timestamp is not an ISO date-time"),
    (HEADER.encode() + b"\n2024-10-28 09:15:00,31/10/2024,100,CE,1,1,1,1,1,\n", "row 1: the expiry is not a date"),
    (b"PAR1 not really parquet", "cannot be read"),
])
def test_bad_files(data: bytes, message: str, pg_stack, alpha: httpx.Client) -> None:
    results, _ = pg_stack
    files = stored_versions(results)
    err = assert_error(upload(alpha, data, ticker="BADFILE"), 400)
    assert message in err["message"], err
    assert stored_versions(results) == files


def test_bad_fields(pg_stack, alpha: httpx.Client) -> None:
    data = to_csv(chain_rows(days=1, minutes=1))
    assert_error(upload(alpha, data, format="yahoo"), 400)
    assert_error(upload(alpha, data, kind="futures"), 400)
    assert_error(upload(alpha, data, timezone="Mars/Base"), 400)
    assert_error(upload(alpha, data, interval="7m"), 400)


def test_demo_chain_is_listed(pg_stack, alpha: httpx.Client) -> None:
    demo = [d for d in chains(alpha) if d["ticker"] == "DEMO-OPTIONS"]
    assert len(demo) == 1
    d = demo[0]
    assert d["demo"] and d["underlying"] == "DEMO-MINUTE" and d["interval"] == "1m"
    assert d["strike_steps"] == [10.0] and d["days"] == 40
    assert d["rows"] == 40 * 375 * 2 * 41 * 2
    day = alpha.get(f"/api/v1/datasets/{d['dataset_id']}/contracts", params={"date": "2024-01-04"}).json()
    # An expiry day lists that week's and the next week's Thursday.
    assert {c["expiry"] for c in day["contracts"]} == {"2024-01-04", "2024-01-11"}
    assert len(day["contracts"]) == 2 * 41 * 2
    assert all(c["bars"] == 375 for c in day["contracts"])


def test_engine_reads_a_day_by_underlying(pg_stack, harness: Harness, alpha: httpx.Client) -> None:
    """What the engine calls: the day's chain of an underlying over results' gRPC, streamed."""
    from libs.grpc_util import channel
    from libs.option_chain_wire import fetch_chain_day

    results, _ = pg_stack
    rows = chain_rows(days=2, minutes=2)
    r = upload(alpha, to_parquet(rows), name="c.parquet", ticker="ENGINE-UL")
    assert r.status_code == 201, r.text

    async def fetch(tenant: str, day: date, underlying: str):
        async with channel(results.addr) as ch:
            return await fetch_chain_day(results_pb2_grpc.ResultsServiceStub(ch), tenant, day, underlying=underlying)

    chain, frame = harness.loop.run(fetch("alpha", date(2024, 10, 29), "ENGINE-UL"))
    assert chain.chain_id == r.json()["dataset_id"] and chain.underlying == "ENGINE-UL"
    assert is_chain_frame(frame) and len(frame) == 2 * 2 * 3 * 2
    assert frame["timestamp"].min() == pd.Timestamp("2024-10-29 09:15", tz=IST)
    _, empty = harness.loop.run(fetch("alpha", date(2024, 11, 2), "ENGINE-UL"))
    assert is_chain_frame(empty) and len(empty) == 0
    # Another tenant's underlying is not found.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        harness.loop.run(fetch("beta", date(2024, 10, 29), "ENGINE-UL"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert alpha.delete(f"/api/v1/datasets/{r.json()['dataset_id']}").status_code == 200


# ---------------------------------------------------------------- bar datasets from Parquet


def bars_parquet(n: int = 300, aware: bool = False, **change: Any) -> tuple[bytes, dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    cols = {
        "Open": open_, "High": np.maximum(open_, close) * 1.01, "Low": np.minimum(open_, close) * 0.99,
        "Close": close, "Volume": rng.integers(1, 1000, n).astype(np.int64),
    }
    for k, (i, v) in change.items():
        cols[k] = cols[k].copy()
        cols[k][i] = v
    start = np.datetime64("2024-01-02T09:15", "s")
    stamps = start + np.arange(n).astype("timedelta64[m]")
    ts = pa.array(stamps, pa.timestamp("s", tz="Asia/Kolkata") if aware else pa.timestamp("s"))
    if aware:  # the values are UTC instants: make them the same wall-clock minutes
        ts = pa.array((stamps - np.timedelta64(330, "m")).astype("datetime64[s]"), pa.timestamp("s", tz="Asia/Kolkata"))
    table = pa.table({"Time": ts, **cols, "Note": ["x"] * n})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=100)
    return buf.getvalue(), cols


@pytest.mark.parametrize("aware", [False, True])
def test_bar_dataset_from_parquet(aware: bool, pg_stack, alpha: httpx.Client) -> None:
    data, cols = bars_parquet(aware=aware)
    r = alpha.post("/api/v1/datasets", files={"file": ("bars.parquet", data, "application/octet-stream")},
                   data={"ticker": f"PQ-BARS-{int(aware)}", "interval": "1m", "calendar": "sessions",
                         "timezone": "Asia/Kolkata"})
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["kind"] == "bars" and got["bars"] == 300 and got["format"] == "parquet"
    assert got["columns"] == {"timestamp": "Time", "open": "Open", "high": "High", "low": "Low", "close": "Close",
                              "volume": "Volume"}
    assert got["dropped"] == ["Note"]
    assert got["start"] == "2024-01-02T03:45:00Z"  # 09:15 IST
    bars = alpha.get(f"/api/v1/datasets/{got['dataset_id']}/bars", params={"limit": 5000}).json()["bars"]
    assert [b["close"] for b in bars] == cols["Close"].tolist()
    assert [b["volume"] for b in bars] == cols["Volume"].astype(float).tolist()
    assert bars[1]["timestamp"] == "2024-01-02T03:46:00Z"


@pytest.mark.parametrize("change, message", [
    ({"High": (150, 1.0)}, "row 151: high (1) is below low"),
    ({"Close": (7, -5.0)}, "row 8: prices must be positive"),
    ({"Open": (250, np.nan)}, "row 251: a price or the volume is missing"),
])
def test_bad_parquet_bars(change: dict, message: str, pg_stack, alpha: httpx.Client) -> None:
    data, _ = bars_parquet(**change)
    before = alpha.get("/api/v1/datasets").json()
    r = alpha.post("/api/v1/datasets", files={"file": ("bars.parquet", data, "application/octet-stream")},
                   data={"ticker": "PQ-BAD", "interval": "1m"})
    err = assert_error(r, 400)
    assert message in err["message"], err
    assert alpha.get("/api/v1/datasets").json() == before
    r = alpha.post("/api/v1/datasets", files={"file": ("bars.parquet", bars_parquet()[0], "application/octet-stream")},
                   data={"ticker": "PQ-BAD", "interval": "1m", "format": "yahoo"})
    assert "this file is Parquet" in assert_error(r, 400)["message"]


def _good_parquet_bytes() -> bytes:
    return to_parquet(chain_rows(days=1, minutes=2))


@pytest.mark.parametrize("data, message", [
    (HEADER.encode() + b"\n2024-10-28 09:15:00,2024-10-31,100,CE,1,1,1,1,1,\n2024-10-28 09:16:00,2024-10-31\n",
     "row 2: expected 10 columns (as the header), got 2"),
    (HEADER.encode() + b"\n2024-10-28 09:15:00,2024-10-31,100,C\xe9,1,1,1,1,1,\n", "not UTF-8 text"),
    (HEADER.encode() + b"\n9999-10-28 09:15:00,9999-10-31,100,CE,1,1,1,1,1,\n", "row 1: the timestamp is not"),
    (HEADER.encode() + b"\n2024-03-10 02:30:00,2024-03-14,100,CE,1,1,1,1,1,\n", "row 1: the timestamp is not"),
    (b"\x00\x01\x02binary\xff\n\x00", "lacks the column(s)"),
    (_good_parquet_bytes()[:20] + bytes(200) + _good_parquet_bytes()[220:], "cannot be read"),
])
def test_damaged_files_are_400(data: bytes, message: str, pg_stack, alpha: httpx.Client) -> None:
    results, _ = pg_stack
    files = stored_versions(results)
    err = assert_error(upload(alpha, data, ticker="DAMAGED", timezone="America/New_York"), 400)
    assert message in err["message"], err
    assert stored_versions(results) == files


def test_damaged_parquet_bars_are_400(pg_stack, alpha: httpx.Client) -> None:
    good = bars_parquet()[0]
    data = good[:20] + bytes(300) + good[320:]
    r = alpha.post("/api/v1/datasets", files={"file": ("bars.parquet", data, "application/octet-stream")},
                   data={"ticker": "PQ-DAMAGED", "interval": "1m"})
    assert "cannot be read" in assert_error(r, 400)["message"]


# ---- option legs on the chains (issue 15): strategies that trade the demo chain's contracts

STRADDLE = {
    "name": "Short straddle",
    "dataset": {"ticker": "DEMO-MINUTE", "interval": "1m"},
    "session": {"timezone": "Asia/Kolkata", "square_off": "15:15"},
    "entries": [
        {"id": f"entry-{t.lower()}", "condition": "time >= 09:20", "side": "sell", "quantity": 50,
         "instrument": {"type": "option", "option_type": t, "strike": "ATM", "expiry": "current_week"},
         "stop_loss": {"type": "percent", "value": 30}, "target": {"type": "percent", "value": 50}}
        for t in ("CE", "PE")
    ],
}


def test_option_legs_are_stored_and_bad_selectors_are_400(alpha):
    """Issue 15: entry nodes with an option instrument; an unknown strike or expiry selector is a
    400 naming the field, and nothing is stored or queued."""
    r = alpha.post("/api/v1/strategies", json={**STRADDLE, "entries": [
        {**STRADDLE["entries"][0], "instrument": {"option_type": "ce", "strike": "otm 2", "expiry": "next_week"}}]})
    assert r.status_code == 201, r.text
    assert r.json()["definition"]["entries"][0]["instrument"] == {
        "type": "option", "option_type": "CE", "strike": "OTM 2", "expiry": "next_week"}
    before = alpha.get("/api/v1/strategies").json()["total"]
    for instrument, field, words in [
        ({"type": "option", "option_type": "CE", "strike": "NEAR", "expiry": "current_week"}, "strike",
         "unknown strike selector"),
        ({"type": "option", "option_type": "CE", "strike": "ATM", "expiry": "monthly"}, "expiry",
         "unknown expiry selector"),
        ({"type": "option", "option_type": "XX", "strike": "ATM", "expiry": "current_week"}, "option_type", "CE or PE"),
    ]:
        body = {**STRADDLE, "entries": [{**STRADDLE["entries"][0], "instrument": instrument}]}
        err = assert_error(alpha.post("/api/v1/strategies", json=body), 400, "invalid_request")
        (item,) = err["details"]["errors"]
        assert item["field"] == f"entries[0].instrument.{field}" and words in item["message"], item
    assert alpha.get("/api/v1/strategies").json()["total"] == before


def test_option_legs_on_an_underlying_without_a_chain_are_400(alpha, pg_stack):
    """DEMO-DAILY has no option chain: a strategy trading its options is a 400 naming the
    nodes, stored when a chain was imported, and refused at submission (nothing queued) once the
    chain is deleted. DEMO-MINUTE has the demo chain (DEMO-OPTIONS): the same legs are queued."""
    results = pg_stack[0]
    daily = {**STRADDLE, "dataset": {"ticker": "DEMO-DAILY"}}
    before = alpha.get("/api/v1/strategies").json()["total"]
    err = assert_error(alpha.post("/api/v1/strategies", json=daily), 400, "invalid_request")
    assert [e["field"] for e in err["details"]["errors"]] == ["entries[0].instrument", "entries[1].instrument"]
    assert "no option chain of DEMO-DAILY" in err["message"]
    assert alpha.get("/api/v1/strategies").json()["total"] == before

    csv = "timestamp,expiry,strike,option_type,open,high,low,close,volume\n" + "".join(
        f"2024-01-02 09:15,2024-01-04,{k},{t},10,11,9,10.5,100\n" for k in (100, 110) for t in ("CE", "PE"))
    r = alpha.post("/api/v1/datasets", files={"file": ("chain.csv", csv.encode(), "text/csv")},
                   data={"kind": "option_chain", "ticker": "DEMO-DAILY", "interval": "1m", "timezone": "UTC"})
    assert r.status_code == 201, r.text
    sid = alpha.post("/api/v1/strategies", json=daily).json()["strategy_id"]
    assert alpha.delete(f"/api/v1/datasets/{r.json()['dataset_id']}").status_code == 200
    jobs_before = jobs_total(results.stub(), "alpha")
    body = {"strategy_id": sid, "start_date": "2024-01-01", "end_date": "2024-01-05"}
    err = assert_error(alpha.post("/api/v1/backtest/start", json=body), 400)
    assert "no option chain of DEMO-DAILY" in err["message"]
    assert_error(alpha.post("/api/v1/backtest/run", json={**body, "user_id": "user_1"}), 400)
    assert jobs_total(results.stub(), "alpha") == jobs_before

    sid = alpha.post("/api/v1/strategies", json=STRADDLE).json()["strategy_id"]
    r = alpha.post("/api/v1/backtest/start", json={**body, "strategy_id": sid})
    assert r.status_code == 200, r.text
    assert jobs_total(results.stub(), "alpha") == jobs_before + 1


# ---------------------------------------------------------------- selected reads (issue 15, the year's straddle)


def _day_table(results: Results, tenant: str, chain_id: str, day: str, columns=(), contracts=()) -> pa.Table:
    request = results_pb2.GetOptionChainDayRequest(
        tenant_id=tenant, chain_id=chain_id, date=day, columns=list(columns),
        contracts=[results_pb2.OptionContractKey(expiry=e, strike=k, option_type=t) for e, k, t in contracts])
    return ipc_to_table([m.arrow_ipc for m in results.stub().GetOptionChainDay(request)])


def _plain(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as plain values (option_type as text, whether it came dictionary-encoded or not)."""
    return table.cast(pa.schema([pa.field(f.name, pa.string() if f.name == "option_type" else f.type)
                                 for f in table.schema])).to_pylist()


SELECTIONS = [
    ((), ()),
    (("strike", "close"), ()),
    (("timestamp", "option_type", "open", "oi"), ()),
    ((), (("2024-10-31", 24350.0, "PE"),)),
    (("timestamp", "close"), (("2024-10-31", 24350.0, "ce"), ("2024-11-07", 24300.0, "P"), ("2024-11-07", 24400.0, "call"))),
    (("close",), (("2024-10-31", 24325.0, "CE"), ("2030-01-02", 24300.0, "PE"))),  # no such contracts: no rows
]


@pytest.mark.parametrize(("columns", "contracts"), SELECTIONS)
def test_a_selected_read_is_the_full_read_filtered(columns, contracts, pg_stack, alpha: httpx.Client) -> None:
    """Columns and contracts asked for return exactly the rows and values of a full read filtered
    the same way (in plain Python here), in the stored order."""
    results, _ = pg_stack
    rows = chain_rows(days=2, minutes=4)
    for i in (88, 65, 53):  # contracts missing a minute on the day read
        del rows[i]
    r = upload(alpha, to_parquet(rows), name="c.parquet", ticker="SELECT-UL")
    assert r.status_code == 201, r.text
    chain_id = r.json()["dataset_id"]
    try:
        full = _plain(_day_table(results, "alpha", chain_id, "2024-10-29"))
        assert len(full) == 4 * 2 * 3 * 2 - 3
        spelled = {"ce": "CE", "call": "CE", "P": "PE", "PE": "PE", "CE": "CE"}
        wanted = {(date.fromisoformat(e), k, spelled[t]) for e, k, t in contracts}
        expect = [
            {c: row[c] for c in (columns or row.keys())} for row in full
            if not wanted or (row["expiry"], row["strike"], row["option_type"]) in wanted
        ]
        got = _day_table(results, "alpha", chain_id, "2024-10-29", columns, contracts)
        assert got.column_names == (list(columns) if columns else list(full[0].keys()))
        assert _plain(got) == expect
        if "option_type" in got.column_names:
            assert pa.types.is_dictionary(got.schema.field("option_type").type)
    finally:
        assert alpha.delete(f"/api/v1/datasets/{chain_id}").status_code == 200


@pytest.mark.parametrize(("columns", "contracts", "message"), [
    (("close", "delta"), (), "unknown chain column(s) 'delta'"),
    (("close", "close"), (), "named twice"),
    ((), (("31-10-2024", 24300.0, "CE"),), "is not a YYYY-MM-DD date"),
    ((), (("2024-10-31", 0.0, "CE"),), "must be a number > 0"),
    ((), (("2024-10-31", float("nan"), "CE"),), "must be a number > 0"),
    ((), (("2024-10-31", 24300.0, "XX"),), "option_type must be CE or PE"),
])
def test_a_bad_selection_is_invalid_argument(columns, contracts, message, pg_stack) -> None:
    results, _ = pg_stack
    with pytest.raises(grpc.RpcError) as err:
        list(results.stub().GetOptionChainDay(results_pb2.GetOptionChainDayRequest(
                tenant_id="alpha", underlying="DEMO-MINUTE", date="2024-01-02", columns=list(columns),
                contracts=[results_pb2.OptionContractKey(expiry=e, strike=k, option_type=t) for e, k, t in contracts])))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.value.details()


def test_chain_only_answers_the_chain_without_rows(pg_stack) -> None:
    results, _ = pg_stack
    answers = list(results.stub().GetOptionChainDay(results_pb2.GetOptionChainDayRequest(
        tenant_id="alpha", underlying="DEMO-MINUTE", date="2024-01-02", chain_only=True)))
    assert len(answers) == 1 and answers[0].chain.ticker == "DEMO-OPTIONS" and answers[0].chain.version >= 1
    assert answers[0].arrow_ipc == b""


def _trades(run) -> list[tuple]:
    out = []
    for d in run.days:
        for t in d.trades:
            c = t.leg.contract
            out.append((d.date, t.node.id, c.expiry, c.strike, c.option_type, t.entry_ns, t.exit_ns, t.entry_raw,
                        t.exit_raw, t.reason, t.pnl))
        out += [(d.date, k, s.reason, s.signal_bar) for k, s in d.skips]
    return out


def test_the_engine_reading_through_results_trades_as_from_frames(pg_stack, harness: Harness, alpha: httpx.Client,
                                                                  monkeypatch) -> None:
    """The engine's ChainDays (selected columns, a day read ahead, the kept days) gives every
    case of tests/engine/test_option_legs.py the trades of the frames it was made from: the
    first run reads every day, the same strategy again reads no day, and another strategy with
    the same window on kept days reads only the contracts it lacks."""
    from domain.rules.strategy import compile_strategy
    from libs.grpc_util import channel
    from services.engine import option_chains
    from services.engine.day_by_day import run_day_by_day
    from tests.engine.test_option_legs import CASES, DAYS, TZ, make_market

    bars, frames = make_market()
    whole = pd.concat(frames.values(), ignore_index=True)
    local = pd.DatetimeIndex(whole["timestamp"]).tz_convert(TZ).tz_localize(None)
    table = pa.table({"timestamp": pa.array(local.to_numpy(), pa.timestamp("ns")),
                      "expiry": pa.array(whole["expiry"].dt.date.to_numpy(), pa.date32()),
                      **{c: whole[c].to_numpy() for c in ("strike", "open", "high", "low", "close", "volume")},
                      "option_type": whole["option_type"].to_numpy().astype(str)})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    r = upload(alpha, buf.getvalue(), name="legs.parquet", ticker="LEGS-UL")
    assert r.status_code == 201, r.text
    results, _ = pg_stack
    reads: list[tuple[date, int]] = []
    real = option_chains.fetch_chain_table

    async def counted(*args, **kw):
        if not kw.get("chain_only"):
            reads.append((args[2], len(tuple(kw.get("contracts", ())))))
        return await real(*args, **kw)

    monkeypatch.setattr(option_chains, "fetch_chain_table", counted)
    cache = option_chains.ChainDayCache()

    async def through_results(strategy, slip=0.0, comm=0.0):
        async with channel(results.addr) as ch:
            source = option_chains.ChainDays(results_pb2_grpc.ResultsServiceStub(ch), "alpha", "LEGS-UL",
                                             asyncio.get_running_loop(), cache)
            try:
                return await asyncio.to_thread(run_day_by_day, bars, strategy, DAYS[0], DAYS[-1], interval="1m",
                                               ticker="LEGS-UL", slippage_pct=slip, commission_pct=comm,
                                               chain_for=source)
            finally:
                source.close()

    try:
        for case, (definition, slip, comm) in sorted(CASES.items()):
            strategy = compile_strategy({"name": case, "dataset": {"ticker": "LEGS-UL"}, **definition})
            want = _trades(run_day_by_day(bars, strategy, DAYS[0], DAYS[-1], interval="1m", ticker="LEGS-UL",
                                          slippage_pct=slip, commission_pct=comm, chain_for=frames.get))
            assert want
            reads.clear()
            assert _trades(harness.loop.run(through_results(strategy, slip, comm))) == want, case
            assert sorted(d for d, n in reads if n == 0) == DAYS, case  # each day read once, whole
            reads.clear()
            assert _trades(harness.loop.run(through_results(strategy, slip, comm))) == want, case
            assert reads == [], case  # kept
        # Another strategy on the straddle's window (square-off 10:20), on kept days: its contracts alone.
        definition = dict(CASES["short_straddle"][0])
        definition["entries"] = [{**e, "instrument": {**e["instrument"], "strike": "OTM 2"}} for e in definition["entries"]]
        strategy = compile_strategy({"name": "otm", "dataset": {"ticker": "LEGS-UL"}, **definition})
        want = _trades(run_day_by_day(bars, strategy, DAYS[0], DAYS[-1], interval="1m", ticker="LEGS-UL",
                                      chain_for=frames.get))
        reads.clear()
        assert _trades(harness.loop.run(through_results(strategy))) == want
        assert reads and all(n == 1 for _, n in reads)
    finally:
        assert alpha.delete(f"/api/v1/datasets/{r.json()['dataset_id']}").status_code == 200


def test_parquet_text_columns_read_as_typed_ones(pg_stack, alpha: httpx.Client) -> None:
    """A Parquet file whose timestamp, expiry and option_type are text (read dictionary-encoded)
    stores the rows a file with typed columns does; a bad text is still the 400 naming its row."""
    results, _ = pg_stack
    rows = chain_rows(days=2, minutes=3)
    typed = pq.read_table(io.BytesIO(to_parquet(rows, {"CE": "call", "PE": "p"})))
    text = typed.set_column(0, "timestamp", pa.array([r["timestamp"].isoformat(sep=" ") for r in rows]))
    text = text.set_column(1, "expiry", pa.array([r["expiry"].isoformat() for r in rows]))
    ids = []
    try:
        for name, table in (("TYPED-UL", typed), ("TEXT-UL", text)):
            buf = io.BytesIO()
            pq.write_table(table, buf)
            r = upload(alpha, buf.getvalue(), name="c.parquet", ticker=name)
            assert r.status_code == 201, r.text
            ids.append(r.json()["dataset_id"])
        for day in ("2024-10-28", "2024-10-29"):
            want, got = (day_frame(results, "alpha", i, day) for i in ids)
            assert len(want) == 2 * 3 * 3 * 2
            pd.testing.assert_frame_equal(got, want)
        bad = text.set_column(1, "expiry", pa.array([r["expiry"].isoformat() for r in rows[:7]] + ["31/10/2024"]
                                                    + [r["expiry"].isoformat() for r in rows[8:]]))
        buf = io.BytesIO()
        pq.write_table(bad, buf)
        err = assert_error(upload(alpha, buf.getvalue(), name="c.parquet", ticker="BADTEXT-UL"), 400)
        assert "row 8" in err["message"] and "31/10/2024" in err["message"], err
    finally:
        for i in ids:
            alpha.delete(f"/api/v1/datasets/{i}")
