"""domain.shards: the shard size, the pair chunks and the shard ids results and engines share."""

from __future__ import annotations

from itertools import pairwise

import pytest

from domain.shards import (
    PAIR_CHUNKS_MAX,
    SHARD_BAR_PAIRS,
    chunk_bounds,
    fold_shard_id,
    pair_chunk_count,
    parse_fold_shard,
    parse_ticker_shard,
    ticker_shard_id,
)


def test_chunk_count_keeps_each_chunk_within_the_shard_size():
    assert pair_chunk_count(8, 1_000_000) == 1  # the seed-001 8-combination sweep: one message
    assert pair_chunk_count(590, 1_000_000) == 1  # S2: 5.9e8 bar-pairs
    assert pair_chunk_count(19_800, 1_000_000) == 10  # 1.98e10 over 2e9
    assert pair_chunk_count(590, 0) == 1 and pair_chunk_count(1, 10**12) == 1
    assert pair_chunk_count(100, 10, shard_bar_pairs=1) == 100  # never more chunks than pairs
    assert pair_chunk_count(124_750, 10**8) == PAIR_CHUNKS_MAX
    for pairs, bars in ((590, 10**7), (19_800, 250_000), (7, 10**9)):
        n = pair_chunk_count(pairs, bars)
        if n < min(pairs, PAIR_CHUNKS_MAX):
            assert max(hi - lo for lo, hi in (chunk_bounds(pairs, c, n) for c in range(n))) * bars <= SHARD_BAR_PAIRS


@pytest.mark.parametrize(("pairs", "chunks"), [(10, 3), (590, 7), (5, 5), (1, 1)])
def test_chunks_cover_the_grid_in_order_in_near_equal_parts(pairs, chunks):
    bounds = [chunk_bounds(pairs, c, chunks) for c in range(chunks)]
    assert bounds[0][0] == 0 and bounds[-1][1] == pairs
    assert all(a[1] == b[0] for a, b in pairwise(bounds))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    with pytest.raises(ValueError):
        chunk_bounds(pairs, chunks, chunks)


def test_shard_ids_round_trip():
    assert ticker_shard_id(7) == "t0007" and parse_ticker_shard("t0007") == (7, 0, 1)
    assert ticker_shard_id(7, 2, 5) == "t0007c002of005" and parse_ticker_shard("t0007c002of005") == (7, 2, 5)
    assert len(ticker_shard_id(499, PAIR_CHUNKS_MAX - 1, PAIR_CHUNKS_MAX)) <= 16  # the column's width
    assert fold_shard_id(3) == "f0003" and parse_fold_shard("f0003") == 3
    for bad in ("", "t7", "t0007c005of005", "f0003", "x0001", "t0007c001"):
        with pytest.raises(ValueError):
            parse_ticker_shard(bad)
    for bad in ("f0000", "t0001", "f12"):
        with pytest.raises(ValueError):
            parse_fold_shard(bad)
