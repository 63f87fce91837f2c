"""The sweep kernel's threads change nothing but the time: bit-identical results.

The same sweep runs with 1 thread, with 2, and with 3 (more than this machine's 2
cores, and a pair chunk count that does not divide the combinations evenly). Every
array the kernel returns (the result fields, the moments, the CSCV block sums)
must be the same bytes, and so must every row and statistic of
``run_sweep_with_statistics`` — equality, never approx: a combination's arithmetic
is the same operations in the same order whichever thread runs it.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os

import numpy as np
import pytest

from domain.overfitting import day_blocks
from libs.settings import Settings
from services.engine import service
from services.engine import sweep as sw
from services.engine._core import sweep_kernel as _k

from .conftest import make_daily_bars, make_session_minute_bars

# 7 x 10 = 61 pairs with fast < slow (many pair chunks of 8, a ragged last one)
FAST = [2, 3, 4, 5, 7, 9, 12]
SLOW = [6, 8, 10, 14, 19, 26, 30, 40, 55, 70]
COMBOS = [(f, s) for f in FAST for s in SLOW if f < s]
THREADS = (2, 3)
PBO_BLOCKS = 8

CASES = [
    (strategy, direction, fill, fees)
    for strategy in ("SMA", "EMA", "MACD")
    for direction in ("long", "short", "both")
    for fill in ("next_open", "close")
    for fees in ((0.0, 0.0), (0.1, 0.05))
]


@functools.cache
def _bars(name: str):
    return {"daily": lambda: make_daily_bars(900, seed=13),
            "minute": lambda: make_session_minute_bars(days=30, seed=17)}[name]()


def _bits(x):
    """x with every float as its exact bits (float.hex; NaN stays comparable)."""
    if isinstance(x, float):
        return x.hex()
    if isinstance(x, np.ndarray):
        return (x.dtype.str, x.shape, x.tobytes())
    if isinstance(x, dict):
        return {k: _bits(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_bits(v) for v in x]
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _bits(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, np.floating):
        return float(x).hex()
    return x


def _kernel(bars, strategy, direction, fill, fees, threads, chunk):
    kind, pairs = sw._prepare(bars, strategy, COMBOS, direction, fill)
    periods, fast_idx, slow_idx = sw._columns(pairs)
    day_end = bars.day_ends().astype(np.uint8)
    n_days = int(np.count_nonzero(day_end))
    return _k.sweep(bars.open, bars.close, bars.ts, day_end, periods, fast_idx, slow_idx, kind,
                    sw.DIRECTIONS[direction], sw.FILLS[fill], fees[0] / 100, fees[1] / 100, 10_000.0,
                    chunk=chunk, day_block=day_blocks(n_days, PBO_BLOCKS), blocks=PBO_BLOCKS, threads=threads)


@pytest.mark.parametrize(("strategy", "direction", "fill", "fees"), CASES)
def test_kernel_arrays_are_bit_identical_for_any_thread_count(strategy, direction, fill, fees):
    bars = _bars("daily")
    # a small chunk of bars: many parallel regions, each continuing the threads' state
    one = _kernel(bars, strategy, direction, fill, fees, 1, 97)
    assert set(one) >= {"final_equity", "max_dd", "mean", "m2", "m3", "m4", "dsq", "ndays", "nneg", "ntrades",
                        "nwins", "gross_profit", "gross_loss", "duration_ns", "block_sum", "block_sq"}
    assert one["ntrades"].sum() > 0
    for threads in THREADS:
        assert _bits(_kernel(bars, strategy, direction, fill, fees, threads, 97)) == _bits(one), threads


@pytest.mark.parametrize("strategy", ["SMA", "EMA", "MACD"])
def test_rows_and_statistics_are_bit_identical_for_any_thread_count(strategy):
    bars = _bars("minute")
    settings = {"pbo_blocks": PBO_BLOCKS, "direction": "both", "fill": "next_open", "commission_pct": 0.1,
                "slippage_pct": 0.05}
    one = sw.run_sweep_with_statistics(bars, strategy, COMBOS, threads=1, **settings)
    assert one.statistics.pbo is not None
    for threads in THREADS:
        other = sw.run_sweep_with_statistics(bars, strategy, COMBOS, threads=threads, **settings)
        assert _bits(other.rows) == _bits(one.rows), threads
        assert _bits(other.statistics) == _bits(one.statistics), threads
        assert _bits(sw.run_sweep(bars, strategy, COMBOS, threads=threads, **{
            k: v for k, v in settings.items() if k != "pbo_blocks"})) == _bits(one.rows), threads


@pytest.mark.parametrize("strategy", ["SMA", "EMA", "MACD"])
def test_many_period_chunks_and_a_window_are_bit_identical(strategy):
    # 32 periods: 2, 3 and 4 period chunks of near-equal size (the columns padded to cache
    # lines), a pair count no chunking divides, and a walk-forward window (the SMA's sums
    # start at the window, per period chunk)
    combos = [(f, s) for f in range(2, 30, 2) for s in range(31, 100, 4)][:-3]
    bars = _bars("daily")
    window = (300, 800)
    one = sw.run_window_sweep(bars, strategy, combos, window, direction="both", threads=1)
    assert sum(r["total_trades"] for r in one) > 0
    for threads in (2, 3, 4):
        assert _bits(sw.run_window_sweep(bars, strategy, combos, window, direction="both",
                                         threads=threads)) == _bits(one), threads


def _kernel_sweep(bars, threads, progress, chunk=50):
    kind, pairs = sw._prepare(bars, "SMA", COMBOS, "long", "next_open")
    periods, fast_idx, slow_idx = sw._columns(pairs)
    return _k.sweep(bars.open, bars.close, bars.ts, bars.day_ends().astype(np.uint8), periods, fast_idx, slow_idx,
                    kind, _k.DIR_LONG, _k.FILL_NEXT_OPEN, 0.0, 0.0, 10_000.0, progress=progress, chunk=chunk,
                    progress_interval=0.0, threads=threads)


def test_cancel_with_threads_still_stops_between_chunks():
    bars = _bars("daily")
    calls = []

    def progress(fraction):
        calls.append(fraction)
        return False

    out = _kernel_sweep(bars, 2, progress, chunk=100)
    assert out is None and len(calls) == 1


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_running_free_report_progress_forward_and_change_nothing(threads):
    # the threads have no barrier between chunks: whichever reaches a chunk boundary
    # reports the bar-pairs done so far, and the fraction only moves forward
    bars = _bars("daily")
    seen: list[float] = []
    out = _kernel_sweep(bars, threads, lambda f: seen.append(f) or True)
    assert _bits(out) == _bits(_kernel_sweep(bars, 1, None))
    assert len(seen) >= 5 and seen == sorted(seen) and seen[0] >= 0 and seen[-1] < 1


def test_a_progress_callback_that_raises_stops_every_thread_and_is_raised():
    bars = _bars("daily")
    calls = []

    def progress(fraction):
        calls.append(fraction)
        raise RuntimeError("progress broke")

    with pytest.raises(RuntimeError, match="progress broke"):
        _kernel_sweep(bars, 2, progress)
    assert len(calls) == 1


def test_threads_must_be_positive():
    bars = _bars("daily")
    with pytest.raises(ValueError, match="threads"):
        _kernel_sweep(bars, 0, None)


def test_threads_per_job():
    cpus = sw.available_cpus()
    assert 1 <= cpus <= len(os.sched_getaffinity(0))
    # HINDSIGHT_ENGINE_THREADS wins; otherwise the CPUs are shared by the concurrent jobs
    assert service.sweep_threads(Settings(hindsight_engine_threads=3, hindsight_engine_concurrency=2)) == 3
    assert service.sweep_threads(Settings(hindsight_engine_concurrency=1)) == cpus
    assert service.sweep_threads(Settings(hindsight_engine_concurrency=2)) == max(1, cpus // 2)
    assert service.sweep_threads(Settings(hindsight_engine_concurrency=64)) == 1


@pytest.mark.parametrize(("files", "expected"), [
    ({"/sys/fs/cgroup/cpu.max": "150000 100000\n"}, 2),  # cpu: 1.5 -> 2 threads
    ({"/sys/fs/cgroup/cpu.max": "50000 100000\n"}, 1),
    ({"/sys/fs/cgroup/cpu.max": "max 100000\n"}, None),
    ({"/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "100000\n", "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"}, 1),
    ({"/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n", "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_available_cpus_follows_the_cgroup_quota(monkeypatch, files, expected):
    def fake_open(path, *args, **kwargs):
        if path not in files:
            raise FileNotFoundError(path)
        return io.StringIO(files[path])

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(sw, "open", fake_open, raising=False)
    assert sw.available_cpus() == (4 if expected is None else expected)
