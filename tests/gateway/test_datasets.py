"""Datasets: CSV upload streamed to results, list, delete, bad uploads."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest

from tests.gateway.helpers import assert_error


def daily_csv(n: int = 400) -> bytes:
    lines = ["timestamp,open,high,low,close,volume"]
    price = 100.0
    for i in range(n):
        d = date(2022, 1, 1) + timedelta(days=i)
        nxt = price * (1.01 if i % 3 else 0.985)
        lines.append(f"{d.isoformat()},{price:.4f},{max(price, nxt) * 1.002:.4f},{min(price, nxt) * 0.998:.4f},"
                     f"{nxt:.4f},1000")
        price = nxt
    return ("\n".join(lines) + "\n").encode()


def _upload(c: httpx.Client, csv: bytes, **fields: str) -> httpx.Response:
    data = {"ticker": "GW-TEST", "interval": "1d", "calendar": "continuous"}
    data.update(fields)
    return c.post("/api/v1/datasets", files={"file": ("bars.csv", csv, "text/csv")}, data=data)


def test_upload_list_delete(alpha: httpx.Client, beta: httpx.Client) -> None:
    r = _upload(alpha, daily_csv(400))
    assert r.status_code == 201, r.text
    ds = r.json()
    assert {"dataset_id", "ticker", "interval", "bars", "start", "end", "calendar", "timezone", "version"} <= set(ds)
    assert ds["ticker"] == "GW-TEST" and ds["interval"] == "1d" and ds["bars"] == 400
    assert ds["calendar"] == "continuous" and ds["version"] == 1
    assert ds["start"].startswith("2022-01-01")

    # Re-importing replaces it as a new version of the same dataset.
    r2 = _upload(alpha, daily_csv(500))
    assert r2.status_code == 201, r2.text
    assert r2.json()["dataset_id"] == ds["dataset_id"] and r2.json()["version"] == 2 and r2.json()["bars"] == 500

    listed = alpha.get("/api/v1/datasets").json()["datasets"]
    mine = [d for d in listed if d["dataset_id"] == ds["dataset_id"]]
    assert len(mine) == 1 and mine[0]["version"] == 2
    assert all(d["dataset_id"] != ds["dataset_id"] for d in beta.get("/api/v1/datasets").json()["datasets"])
    assert_error(beta.delete(f"/api/v1/datasets/{ds['dataset_id']}"), 404)

    r = alpha.delete(f"/api/v1/datasets/{ds['dataset_id']}")
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": True, "dataset_id": ds["dataset_id"], "versions_deleted": 2}
    assert_error(alpha.delete(f"/api/v1/datasets/{ds['dataset_id']}"), 404)


def test_upload_larger_than_one_chunk(alpha: httpx.Client) -> None:
    csv = daily_csv(40_000)  # ~2.5 MB: three chunks to results
    assert len(csv) > 2 * 1024 * 1024
    r = _upload(alpha, csv, ticker="GW-BIG")
    assert r.status_code == 201, r.text
    assert r.json()["bars"] == 40_000
    alpha.delete(f"/api/v1/datasets/{r.json()['dataset_id']}")


@pytest.mark.parametrize(
    "csv,fields",
    [
        (b"timestamp,open,high,low\n2022-01-01,1,2,0.5\n", {}),  # missing columns
        (b"timestamp,open,high,low,close,volume\n2022-01-02,1,2,0.5,1,1\n2022-01-01,1,2,0.5,1,1\n", {}),  # unsorted
        (b"timestamp,open,high,low,close,volume\n2022-01-01,1,2,0.5,abc,1\n", {}),  # not a number
        (b"timestamp,open,high,low,close,volume\n2022-01-01,1,0.5,2,1,1\n", {}),  # high < low
        (b"", {}),  # empty file
        (None, {"ticker": "bad ticker!"}),
        (None, {"ticker": "X" * 33}),
        (None, {"interval": "7h"}),
        (None, {"calendar": "lunar"}),
        (None, {"timezone": "Mars/Olympus"}),
    ],
    ids=["missing-columns", "unsorted", "not-a-number", "high-below-low", "empty", "ticker-chars",
         "ticker-long", "interval", "calendar", "timezone"],
)
def test_bad_uploads_are_400_and_store_nothing(alpha: httpx.Client, csv: bytes | None, fields: dict) -> None:
    before = alpha.get("/api/v1/datasets").json()["datasets"]
    r = _upload(alpha, daily_csv(30) if csv is None else csv, **fields)
    assert_error(r, 400)
    assert alpha.get("/api/v1/datasets").json()["datasets"] == before


def test_upload_needs_multipart_with_a_file(alpha: httpx.Client) -> None:
    assert_error(alpha.post("/api/v1/datasets", json={"ticker": "GW-TEST"}), 415, "unsupported_media_type")
    r = alpha.post("/api/v1/datasets", files={"ticker": (None, "GW-TEST"), "interval": (None, "1d")})
    err = assert_error(r, 400)
    assert any(e["field"] == "file" for e in err["details"]["errors"])


def test_a_huge_bad_value_is_a_400_naming_the_row(alpha: httpx.Client) -> None:
    # The bad value is quoted, clipped, in the message: a 100 kB cell must not turn into a
    # gRPC metadata overflow (it used to come back as a 413 "Stream removed ...").
    csv = b"timestamp,open,high,low,close,volume\n2022-01-01,1,2,0.5,1,1\n2022-01-02," + b"9x" * 50_000 + b",2,0.5,1,1\n"
    err = assert_error(_upload(alpha, csv, ticker="GW-HUGE"), 400)
    assert err["message"].startswith("row 3: open is not a number: '9x9x"), err["message"]
    assert len(err["message"]) < 200
    assert all(d["ticker"] != "GW-HUGE" for d in alpha.get("/api/v1/datasets").json()["datasets"])
