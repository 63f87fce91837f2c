"""Shards: how one job becomes several queue messages that any engine replica may take (issue 11).

One home for the rules results and the engines share:

- the shard size: a universe sweep's ticker whose pairs x bars exceed ``SHARD_BAR_PAIRS``
  (and a single-ticker sweep as large) is split into chunks of its (fast, slow) pair list,
  in grid order, of near-equal size (``pair_chunks``);
- the shard ids a JobMessage names (JobMessage.shard_id) and what they mean: ``t0007``
  is the whole grid of tickers[7], ``t0007c002of005`` its third of five pair chunks
  (``ticker_shard_id``); ``f0003`` is a walk-forward's fold 3 (``fold_shard_id``).

Why ``SHARD_BAR_PAIRS`` is 2e9, measured: a shard costs about 0.2 s besides its kernel
time (its StartJob, bars from the engine's cache, progress reports, buy-and-hold and
CompleteSweep: wall minus kernel time of the small shards in tests/e2e/test_universe_sweeps.py,
on a loaded 2-vCPU machine), and the sweep kernel runs 670 M bar-pairs/s on one idle core
(164-280 M/s measured with the machine loaded by other work). A shard of 2e9 bar-pairs is then
about 3 s of one idle core (7-12 s loaded): the fixed cost stays under 10 %, and shards stay
short enough that replicas share the work evenly and a crash or a cancel loses little. At
2e8 the fixed cost would be 40 % of a shard; at 2e10, 30 s to minutes each. S2 (590 pairs x
1 M bars = 5.9e8) stays one shard, and so does the seed-001 8-combination sweep: the small
case costs nothing more.
"""

from __future__ import annotations

import math
import re
from typing import Final

# Pairs x bars above which one ticker's grid is split into pair chunks (see the module docstring).
SHARD_BAR_PAIRS: Final = 2_000_000_000
# Chunks of one ticker's grid at most (the shard id has room for 999).
PAIR_CHUNKS_MAX: Final = 999
SHARD_SIZE_RULE: Final = (
    f"a ticker whose pairs x bars exceed {SHARD_BAR_PAIRS:,} is split into chunks of its (fast, slow) pairs, "
    f"each at most {SHARD_BAR_PAIRS:,} bar-pairs (about 3 seconds of one core), which any engine replica takes; "
    "the results are the same row for row"
)

_TICKER_SHARD = re.compile(r"^t(\d{4})(?:c(\d{3})of(\d{3}))?$")
_FOLD_SHARD = re.compile(r"^f(\d{4})$")


def pair_chunk_count(pairs: int, bars: int, shard_bar_pairs: int = SHARD_BAR_PAIRS) -> int:
    """Chunks a grid of ``pairs`` over ``bars`` is split into: 1 when pairs x bars is at most
    ``shard_bar_pairs`` (or unknown: no bars), else enough that each is at most that, at most
    one per pair and ``PAIR_CHUNKS_MAX``."""
    if pairs <= 1 or bars <= 0 or shard_bar_pairs <= 0:
        return 1
    return max(1, min(pairs, PAIR_CHUNKS_MAX, math.ceil(pairs * bars / shard_bar_pairs)))


def chunk_bounds(pairs: int, chunk: int, chunks: int) -> tuple[int, int]:
    """[start, end) in the grid (grid order) of chunk ``chunk`` of ``chunks``: near-equal sizes."""
    if not 0 <= chunk < chunks:
        raise ValueError(f"chunk {chunk} of {chunks}")
    return pairs * chunk // chunks, pairs * (chunk + 1) // chunks


def ticker_shard_id(position: int, chunk: int = 0, chunks: int = 1) -> str:
    """The shard of tickers[position]: its whole grid (one chunk), or one of its pair chunks."""
    if chunks <= 1:
        return f"t{position:04d}"
    return f"t{position:04d}c{chunk:03d}of{chunks:03d}"


def parse_ticker_shard(shard_id: str) -> tuple[int, int, int]:
    """(position, chunk, chunks) of a ticker shard id (ValueError when it is not one)."""
    m = _TICKER_SHARD.match(shard_id)
    if m is None:
        raise ValueError(f"{shard_id!r} is not a ticker shard")
    position = int(m.group(1))
    if m.group(2) is None:
        return position, 0, 1
    chunk, chunks = int(m.group(2)), int(m.group(3))
    if not 0 <= chunk < chunks:
        raise ValueError(f"{shard_id!r}: chunk {chunk} of {chunks}")
    return position, chunk, chunks


def fold_shard_id(fold_number: int) -> str:
    """The shard of a walk-forward's fold (from 1)."""
    return f"f{fold_number:04d}"


def parse_fold_shard(shard_id: str) -> int:
    """The fold number (from 1) of a fold shard id (ValueError when it is not one)."""
    m = _FOLD_SHARD.match(shard_id)
    if m is None or int(m.group(1)) < 1:
        raise ValueError(f"{shard_id!r} is not a fold shard")
    return int(m.group(1))
