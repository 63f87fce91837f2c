"""GET /api/v1/datasets/{id}/bars: the chart's bars, downsampled without losing extremes."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import numpy as np

from services.gateway.routes.datasets import downsample_bars
from tests.gateway.helpers import assert_error


def _csv(n: int) -> bytes:
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(n):
        d = date(2022, 1, 1) + timedelta(days=i)
        p = 100.0 + i
        lines.append(f"{d.isoformat()},{p},{p + 0.5},{p - 0.5},{p + 0.25},10")
    return ("\n".join(lines) + "\n").encode()


def test_downsample_keeps_ohlcv_of_each_bucket() -> None:
    ts = np.arange(10, dtype=np.int64)
    o = np.arange(10, dtype=float)
    h, lo, c, v = o + 1, o - 1, o + 0.5, np.ones(10)
    out = downsample_bars(ts, o, h, lo, c, v, limit=3)
    assert [a.tolist() for a in out] == [
        [0, 3, 6], [0.0, 3.0, 6.0], [3.0, 6.0, 10.0], [-1.0, 2.0, 5.0], [2.5, 5.5, 9.5], [3.0, 3.0, 4.0]
    ]
    same = downsample_bars(ts, o, h, lo, c, v, limit=10)
    assert same[0] is ts


def test_bars_listing_downsampling_and_ranges(alpha: httpx.Client, beta: httpx.Client) -> None:
    r = alpha.post("/api/v1/datasets", files={"file": ("b.csv", _csv(100), "text/csv")},
                   data={"ticker": "GW-BARS", "interval": "1d", "calendar": "continuous"})
    assert r.status_code == 201, r.text
    ds = r.json()
    url = f"/api/v1/datasets/{ds['dataset_id']}/bars"

    full = alpha.get(url, params={"limit": 500}).json()
    assert full["total_bars"] == full["returned"] == 100 and full["downsampled"] is False
    assert full["bars"][0] == {"timestamp": "2022-01-01T00:00:00Z", "open": 100.0, "high": 100.5, "low": 99.5,
                               "close": 100.25, "volume": 10.0}

    small = alpha.get(url, params={"limit": 10}).json()
    assert small["returned"] == 10 and small["downsampled"] is True
    assert max(b["high"] for b in small["bars"]) == 199.5 and min(b["low"] for b in small["bars"]) == 99.5
    assert sum(b["volume"] for b in small["bars"]) == 1000.0

    window = alpha.get(url, params={"start": "2022-01-05", "end": "2022-01-07", "tz": "local"}).json()
    assert [b["timestamp"] for b in window["bars"]] == ["2022-01-05T00:00:00", "2022-01-06T00:00:00", "2022-01-07T00:00:00"]
    assert window["total_bars"] == 3

    assert_error(alpha.get(url, params={"start": "2022-02-30"}), 400)
    assert_error(alpha.get(url, params={"start": "2022-01-07", "end": "2022-01-05"}), 400)
    assert_error(alpha.get(url, params={"limit": 0}), 400)
    assert_error(alpha.get(url, params={"tz": "mars"}), 400)
    assert_error(beta.get(url), 404)  # another tenant's dataset
    assert_error(alpha.get("/api/v1/datasets/ds_nope/bars"), 404)
