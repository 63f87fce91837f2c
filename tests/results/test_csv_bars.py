"""CSV parsing rules, without a server (the domain function alone)."""

from __future__ import annotations

import numpy as np
import pytest

from services.results.csv_bars import parse_bars_csv
from services.results.errors import InvalidArgument

H = "timestamp,open,high,low,close,volume\n"


def ns(iso: str) -> int:
    return int(np.datetime64(iso, "ns").astype(np.int64))


def test_aliases_bom_case_extra_columns_and_blank_lines():
    csv = "\ufeffDate,Open,High,Low,Close,Adj Close,Volume\n2024-01-02,1,2,0.5,1.5,1.4,10\n\n2024-01-03, 1 ,2,0.5,1.5,1.4,10\n"
    bars = parse_bars_csv(csv.encode())
    assert list(bars.ts) == [ns("2024-01-02"), ns("2024-01-03")]
    assert bars.open.tolist() == [1.0, 1.0] and bars.volume.dtype == np.float64


def test_naive_in_timezone_and_mixed_offsets():
    csv = H + "2024-03-09 12:00,1,2,0.5,1.5,1\n2024-03-11T12:00:00-04:00,1,2,0.5,1.5,1\n2024-03-12T16:00:00Z,1,2,0.5,1.5,1\n"
    bars = parse_bars_csv(csv.encode(), "America/New_York")
    assert list(bars.ts) == [ns("2024-03-09T17:00"), ns("2024-03-11T16:00"), ns("2024-03-12T16:00")]


def test_nonexistent_local_time_names_the_row():
    csv = H + "2024-03-09 12:00,1,2,0.5,1.5,1\n2024-03-10 02:30,1,2,0.5,1.5,1\n"
    with pytest.raises(InvalidArgument, match=r"^row 3: timestamp '2024-03-10 02:30' does not exist"):
        parse_bars_csv(csv.encode(), "America/New_York")


def test_the_first_bad_row_is_reported():
    csv = H + "2024-01-01,1,2,0.5,1.5,1\n2024-01-02,1,2,0.5,1.5,-4\n2024-01-03,x,2,0.5,1.5,1\n"
    with pytest.raises(InvalidArgument, match=r"^row 3: volume is negative"):
        parse_bars_csv(csv.encode())


def test_row_limit_and_not_utf8():
    with pytest.raises(InvalidArgument, match="more than 2 data rows"):
        parse_bars_csv((H + "2024-01-01,1,2,0.5,1.5,1\n2024-01-02,1,2,0.5,1.5,1\n2024-01-03,1,2,0.5,1.5,1\n").encode(), max_rows=2)
    with pytest.raises(InvalidArgument, match="not UTF-8"):
        parse_bars_csv(b"\xff\xfe\x00t\x00i")


def test_fast_and_checked_paths_agree():
    rng = np.random.default_rng(7)
    lines = [H]
    for i in range(500):
        o = 100 + rng.random()
        lines.append(f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z,{o},{o + 1},{o - 1},{o},{i}\n")
    data = "".join(lines).encode()
    fast = parse_bars_csv(data)
    from services.results.csv_bars import _parse_checked

    checked = _parse_checked(data, "UTC", 10_000)
    for name in ("ts", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(fast, name), getattr(checked, name))


def test_a_huge_bad_cell_is_clipped_in_the_message():
    csv = H + "2024-01-01,1,2,0.5,1.5,1\n2024-01-02,1,2,0.5," + "7" * 30_000 + "z,1\n"
    with pytest.raises(InvalidArgument, match=r"^row 3: close is not a number: '7{40}'\.\.\. \(30,001 characters\)$"):
        parse_bars_csv(csv.encode())


def test_status_messages_fit_in_a_grpc_header():
    from services.results.rpc import MAX_STATUS_MESSAGE_CHARS, status_message

    assert status_message(InvalidArgument("short")) == "short"
    long = status_message(InvalidArgument("é" * 50_000))
    assert len(long) == MAX_STATUS_MESSAGE_CHARS and long.endswith("...")
