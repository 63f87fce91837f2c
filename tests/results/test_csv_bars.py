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
        parse_bars_csv(b"\xff\xfftimestamp,open\n")


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


# ---------------------------------------------------------------- chunks (uploads are parsed from a file in chunks)

def _daily(n: int, start: str = "2024-01-01") -> list[str]:
    days = np.datetime64(start) + np.arange(n)
    return [f"{d},{10 + i % 3},{12 + i % 3},9,11,{i}\n" for i, d in enumerate(days.astype(str))]


CHUNK_CASES = [
    # (lines after the header, the error or None); the boundaries below fall on every row.
    (_daily(9), None),
    ([*_daily(4), "\n", "   \n", *_daily(4, "2024-02-01")], None),  # blank lines: the checked reader
    (_daily(4) + _daily(1, "2024-01-04") + _daily(3, "2024-03-01"), "row 6: duplicate timestamp 2024-01-04T00:00:00Z (same as row 5)"),
    ([*_daily(4), "\n", *_daily(1, "2023-12-01")], "row 7: timestamp 2023-12-01T00:00:00Z is earlier than row 5's (2024-01-04T00:00:00Z); rows must be sorted oldest first"),
    ([*_daily(6), "2024-02-01,10,11,9,10.5,1,7\n"], "row 8: expected 6 fields like the header, saw 7"),
    ([*_daily(6), "2024-02-01,10,11,9,x,1\n", *_daily(3, "2024-03-01")], "row 8: close is not a number: 'x'"),
    ([*_daily(5), "2024-02-01,10,8,9,10,1\n"], "row 7: high (8) is below low (9)"),
]


@pytest.mark.parametrize("lines,error", CHUNK_CASES)
@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 1000])
def test_chunk_boundaries_change_nothing(lines, error, chunk_rows):
    data = (H + "".join(lines)).encode()
    if error is None:
        whole = parse_bars_csv(data)
        chunked = parse_bars_csv(data, max_chunk_rows=chunk_rows)
        for name in ("ts", "open", "high", "low", "close", "volume"):
            assert np.array_equal(getattr(whole, name), getattr(chunked, name))
        assert len(chunked) == len([line for line in lines if line.strip()])
    else:
        with pytest.raises(InvalidArgument) as err:
            parse_bars_csv(data, max_chunk_rows=chunk_rows)
        assert str(err.value) == error


@pytest.mark.parametrize("chunk_rows", [1, 2, 1000])
def test_row_limit_counts_every_chunk_and_comes_first(chunk_rows):
    with pytest.raises(InvalidArgument, match=r"^the CSV file has more than 5 data rows"):
        parse_bars_csv((H + "".join(_daily(6))).encode(), max_rows=5, max_chunk_rows=chunk_rows)
    # Blank lines do not count, wherever they are.
    ok = parse_bars_csv((H + "".join([*_daily(3), "\n", *_daily(2, "2024-02-01")])).encode(), max_rows=5,
                        max_chunk_rows=chunk_rows)
    assert len(ok) == 5
    # A file over the limit is refused as such even with a bad value in it.
    bad = [*_daily(2), "2024-01-03,10,11,9,10.5,-1\n", *_daily(4, "2024-02-01")]
    with pytest.raises(InvalidArgument, match=r"^the CSV file has more than 5 data rows"):
        parse_bars_csv((H + "".join(bad)).encode(), max_rows=5, max_chunk_rows=chunk_rows)


def test_a_file_is_parsed_from_disk_in_chunks(tmp_path):
    from services.results.csv_bars import parse_bars_file

    lines = _daily(3000, "2000-01-01")
    path = tmp_path / "bars.csv"
    path.write_text(H + "".join(lines))
    with open(path, "rb") as f:
        bars = parse_bars_file(f, chunk_bytes=1, max_chunk_rows=128)  # 24 chunks
    assert len(bars) == 3000 and bars.volume[-1] == 2999.0
    assert np.all(np.diff(bars.ts) == 86_400 * 10**9)


def test_only_white_space_is_empty():
    for data in (b"", b"  \n\n\t\r\n"):
        with pytest.raises(InvalidArgument, match=r"^the CSV file is empty"):
            parse_bars_csv(data)
    with pytest.raises(InvalidArgument, match=r"^the CSV file has a header but no data rows"):
        parse_bars_csv((H + "\n\n").encode(), max_chunk_rows=1)


# ---------------------------------------------------------------- formats


def _import(data: bytes, fmt: str, max_chunk_rows: int = 1000, **kw):
    import io

    from services.results.csv_bars import import_bars_file

    return import_bars_file(io.BytesIO(data), fmt=fmt, max_chunk_rows=max_chunk_rows, **kw)


YAHOO = "Date,Open,High,Low,Close,Adj Close,Volume\n"


@pytest.mark.parametrize("chunk_rows", [1, 2, 1000])
def test_yahoo_null_rows_are_dropped_and_counted_in_every_chunk(chunk_rows):
    rows = [f"2024-01-{d:02d},10,11,9,10.5,10.4,{d}\n" if d % 3 else f"2024-01-{d:02d},null,null,null,null,null,null\n"
            for d in range(1, 11)]
    got = _import((YAHOO + "".join(rows)).encode(), "yahoo", chunk_rows)
    assert len(got.bars) == 7 and got.bars.volume.tolist() == [1, 2, 4, 5, 7, 8, 10]
    assert got.report.rows_dropped == 3
    assert got.report.notes[-1] == "3 rows with null values dropped (the first: row 4)"
    # Only nulls: nothing to store.
    with pytest.raises(InvalidArgument, match=r"^no bars left: every one of the 2 data rows holds null values$"):
        _import((YAHOO + "2024-01-01,null,null,null,null,null,null\n" * 2).encode(), "yahoo", chunk_rows)


@pytest.mark.parametrize("chunk_rows", [1, 2, 1000])
def test_files_without_a_header_number_rows_from_the_first_line(chunk_rows):
    mt4 = "".join(f"2024.01.02,09:{m:02d},1.1,1.2,1.0,1.1,{m}\n" for m in range(5))
    got = _import(mt4.encode(), "metatrader", chunk_rows)
    assert len(got.bars) == 5 and got.bars.volume.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(InvalidArgument, match=r"^row 4: duplicate timestamp 2024-01-02T09:02:00Z \(same as row 3\)$"):
        _import(mt4.replace("09:03", "09:02").encode(), "metatrader", chunk_rows)
    with pytest.raises(InvalidArgument, match=r"^row 3: expected 7 fields like the first row, saw 8$"):
        _import(mt4.replace(",2\n", ",2,9\n").encode(), "metatrader", chunk_rows)


def test_metatrader_volume_is_chosen_over_the_whole_file():
    # <VOL> is zero in the first chunks and not in the last: <VOL> is used.
    head = "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
    rows = [f"2024.01.02\t09:{m:02d}:00\t1.1\t1.2\t1.0\t1.1\t{m + 10}\t{m // 4 * 5}\t1\n" for m in range(6)]
    got = _import((head + "".join(rows)).encode(), "metatrader", 2)
    assert got.bars.volume.tolist() == [0, 0, 0, 0, 5, 5] and got.report.columns["volume"] == "<VOL>"
    zero = [r.replace(f"\t{m // 4 * 5}\t1\n", "\t0\t1\n") for m, r in enumerate(rows)]
    got = _import((head + "".join(zero)).encode(), "metatrader", 2)
    assert got.bars.volume.tolist() == [10, 11, 12, 13, 14, 15] and got.report.columns["volume"] == "<TICKVOL>"


def test_fast_and_checked_paths_agree_for_every_format():
    from services.results.csv_bars import _parse_checked

    files = {
        "yahoo": YAHOO + "".join(f"2024-01-{d:02d},10,11,9,10.5,10.4,{d}\n" for d in range(1, 20)),
        "binance": "".join(f"{1735689600000000 + i * 60_000_000},1,2,0.5,1.5,{i},0,0,0,0,0,0\n" for i in range(20)),
        "metatrader": "".join(f"2024.01.02,09:{m:02d},1.1,1.2,1.0,1.1,{m}\n" for m in range(20)),
        "generic": "time,open,high,low,close,Volume\n" + "".join(f"{1704205800 + i * 60},1,2,0.5,1.5,{i}\n"
                                                                  for i in range(20)),
    }
    for fmt, text in files.items():
        fast = _import(text.encode(), fmt).bars
        checked = _parse_checked(text.encode(), "UTC", 10_000, fmt)
        for name in ("ts", "open", "high", "low", "close", "volume"):
            assert np.array_equal(getattr(fast, name), getattr(checked, name)), (fmt, name)


def test_unix_times_and_iso_may_mix_and_bad_ones_are_named():
    got = _import((H + "1704205800,1,2,0.5,1.5,1\n2024-01-02T14:31:00Z,1,2,0.5,1.5,1\n1704205920000,1,2,0.5,1.5,1\n")
                  .encode(), "generic")
    assert list(got.bars.ts) == [ns("2024-01-02T14:30"), ns("2024-01-02T14:31"), ns("2024-01-02T14:32")]
    assert got.report.notes == ["timestamps with a UTC offset (or Z) converted to UTC", "Unix times in seconds, UTC",
                                "Unix times in milliseconds, UTC"]
    with pytest.raises(InvalidArgument, match=r"^row 3: timestamp '9999999999999999999' is outside the years"):
        parse_bars_csv((H + "1704205800,1,2,0.5,1.5,1\n9999999999999999999,1,2,0.5,1.5,1\n").encode())
    with pytest.raises(InvalidArgument, match=r"^row 2: timestamp '17042058' is not an ISO date or date-time"):
        parse_bars_csv((H + "17042058,1,2,0.5,1.5,1\n").encode())


def test_utf16_files_are_read():
    text = H + "2024-01-02,1,2,0.5,1.5,1\n"
    for codec in ("utf-16", "utf-16-be"):
        data = text.encode(codec) if codec == "utf-16" else b"\xfe\xff" + text.encode(codec)
        got = _import(data, "generic")
        assert list(got.bars.ts) == [ns("2024-01-02")] and got.report.notes[0] == "read as UTF-16 text"
    with pytest.raises(InvalidArgument, match="byte-order mark but is not UTF-16 text"):
        _import(b"\xff\xfe" + text.encode("utf-16-le") + b"\x00", "generic")
