"""The parameter grid of a moving-average sweep, shared by the gateway (to count
combinations at submission) and the engine (to run them)."""

from __future__ import annotations


def sweep_combos(fast_min: int, fast_max: int, slow_min: int, slow_max: int, step: int) -> list[tuple[int, int]]:
    """Every (fast, slow) pair on the step grid of both ranges with fast < slow.

    The seed's example: fast [10, 20], slow [20, 30], step 5 gives 8 pairs
    (10/20 ... 20/30 without 20/20).
    """
    fasts = range(fast_min, fast_max + 1, step)
    slows = range(slow_min, slow_max + 1, step)
    return [(f, s) for f in fasts for s in slows if f < s]
