"""Walk-forward benchmark (issue 14): a 10-fold walk-forward on S2 vs one S2 sweep.

    .venv/bin/python -m bench.walkforward          (what `make bench` runs; under a minute)

S2 is bench/sweep_s2.py's: SMA crossover, 590 (fast, slow) pairs, long only, no fees,
1,000,000 synthetic one-minute bars. The walk-forward cuts them into 10 rolling folds
(domain.walkforward): train 200,000 bars, test = step = 80,000 bars, objective `score`,
min_trades 10. Each fold is what one engine replica runs for one shard
(services.engine.walkforward.run_fold): the 590-pair sweep over its training window
(its indicators see every earlier bar: an SMA's running sum starts n bars before the
window, an EMA streams them all), the choice, and the chosen pair over its
test window in trade-recording mode.

Both run here, one after the other, single-threaded (``threads=1``), timed with
``time.perf_counter``, interleaved over ``--runs`` rounds; the ratio is the median of the
rounds' ratios (each round's two runs share the machine's load of the moment), the
best times are shown beside it. The 10 folds run one after
the other, as on one engine (with R replicas they share out, so the wall time is about
1/R of this). The ratio walk-forward / sweep is the price of the walk-forward (target:
at most 3x). The training windows hold 2,000,000 bars in all: twice the sweep's bars.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.sweep_s2 import N_BARS, make_bars, s2_combos
from domain.walkforward import Windows, folds
from services.engine.sweep import run_sweep
from services.engine.walkforward import FoldSettings, run_fold

TARGET_RATIO = 3.0
WINDOWS = Windows(train_bars=200_000, test_bars=80_000, step_bars=80_000, objective="score")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="timed rounds")
    args = ap.parse_args(argv)

    bars = make_bars(N_BARS)
    combos = s2_combos()
    cut = folds(len(bars), WINDOWS)
    assert len(cut) == 10, len(cut)
    settings = FoldSettings("SMA", combos, WINDOWS.objective, min_trades=10)
    print(f"walk-forward on S2: {len(combos)} pairs, {len(bars):,} bars, {len(cut)} folds (train "
          f"{WINDOWS.train_bars:,}, test {WINDOWS.test_bars:,}, step {WINDOWS.step_bars:,} bars), one thread", flush=True)

    sweep_s, wf_s = [], []
    results = []
    for _ in range(max(1, args.runs)):
        t = time.perf_counter()
        run_sweep(bars, "SMA", combos, threads=1)
        sweep_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        results = [run_fold(bars, fold, settings, threads=1) for fold in cut]
        wf_s.append(time.perf_counter() - t)
        print(f"  round: sweep {sweep_s[-1]:.2f} s, walk-forward {wf_s[-1]:.2f} s", flush=True)

    chosen = [r["parameters"] for r in results]
    print("  chosen per fold: " + ", ".join(f"{p['fast_period']}/{p['slow_period']}" if p else "-" for p in chosen))
    sweep, wf = min(sweep_s), min(wf_s)
    ratio = statistics.median(w / s for w, s in zip(wf_s, sweep_s, strict=True))
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(f"one S2 sweep: {sweep:.2f} s; 10-fold walk-forward: {wf:.2f} s ({wf / len(cut):.2f} s per fold)")
    print(f"ratio walk-forward / sweep (median of {len(wf_s)} rounds): {ratio:.2f}x ({verdict} the target of at most "
          f"{TARGET_RATIO:.0f}x; best times: {wf / sweep:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
