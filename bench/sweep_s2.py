"""S2 sweep benchmark: our fused Cython kernel vs vectorbt (Rust backend) vs plain NumPy.

    .venv/bin/python -m bench.sweep_s2            (what `make bench` runs; a few minutes)
    .venv/bin/python -m bench.sweep_s2 --skip-memory --vbt-pairs 59    (quicker look)

Scenario S2: SMA crossover, fast 5..100 step 5, slow 10..200 step 5, fast < slow
(590 pairs), long only, no fees, on 1,000,000 synthetic one-minute bars
(continuous calendar): ``rng = numpy.random.default_rng(42)``, close[0] = 100,
log-increment -sigma^2/2 + sigma*Z with sigma = 0.0005, open[t] = close[t-1]
(open[0] = close[0]), so a next-open fill and a close fill happen at the same
price.

The three engines run one after the other in this process on the same arrays,
timed with ``time.perf_counter`` (wall time, everything included: indicators,
simulation, results):

(a) ours: ``services.engine.sweep.run_sweep(..., fill="next_open", threads=1)`` —
    one fused pass over the bars for all pairs, single thread.
(b) vectorbt 1.2.0 with the vectorbt-rust backend (``vbt.settings["engine"] =
    "rust"``, which raises instead of silently falling back to Numba):
    ``vbt.MA.run`` for the 40 distinct windows, then
    ``vbt.Portfolio.from_signals(close, entries=fast > slow, exits=fast <= slow,
    init_cash=10_000)`` (all-in, fills at the signal bar's close) over chunks of
    pairs so the N x pairs signal matrices fit in memory. A signal on the last bar
    is masked: under next-open semantics there is no later bar to fill it (our
    engine and the NumPy version ignore it too).
(c) plain NumPy: SMA of each window once as a pairwise-summed sliding-window mean,
    then per pair, vectorised over the bars: position = signal shifted by one
    bar, trade entries/exits from its edges, total return = product of the trade
    price ratios.

All three must agree on every pair's total return (relative 1e-9) and trade
count (an open position at the end counts as a trade in all three).

(d) The overfitting statistics (issue 14): first in this process, ``run_sweep`` vs
``run_sweep_with_statistics`` (the kernel's extra moments and CSCV block sums, then
the CSCV of 12,870 splits x 590 trials); then S2 through the stack: two standalone
stacks side by side, one computing the statistics (the default) and one started with
``HINDSIGHT_SWEEP_STATISTICS=0``, each with the S2 bars uploaded as a CSV. One
sweep on each warms the engine's cache of bars; then ``--stack-runs`` rounds, each
timing one S2 sweep on each stack (which goes first alternates), from the POST to the
end of the job's event stream (GET /api/v1/jobs/{id}/stream, as the seed's client
follows a job) and its ``best`` read (limit 10, with the ``overfitting`` object). The ratio of the medians is the cost of the statistics end to end
(target: at most +20 %).

(e) Threads (issue 11): ours with 1 thread vs all the CPUs this process may use
(``available_cpus()``, HINDSIGHT_ENGINE_THREADS's default), interleaved, best of 3
each; the rows must be identical (exact float reprs) and the speed-up is the ratio
of the best times (target >= 1.8x on 2 cores).

Peak memory is measured separately per engine, each in a fresh subprocess
(``--probe ENGINE``): the child builds the same data, records its resident set
size (VmRSS), resets the kernel's high-water mark (``/proc/self/clear_refs``,
"5"), runs the engine and reads VmHWM. "Peak" below is VmHWM - VmRSS before
the run, i.e. the extra resident memory the engine needed on top of its inputs;
it includes memory not allocated through Python (Cython calloc, Rust), which
tracemalloc would miss. Our engine is also probed at fewer pairs and fewer bars
to show that its memory follows the number of bars, not bars x pairs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time

import numpy as np

from domain.sweep import sweep_combos
from services.engine.bars import Bars

N_BARS = 1_000_000
SIGMA = 0.0005
SEED = 42
CASH = 10_000.0
NS_MIN = 60 * 1_000_000_000
START_NS = 1_577_836_800 * 1_000_000_000  # 2020-01-01T00:00:00Z
REL_TOL = 1e-9

TARGET_SPEEDUP = 100.0
TARGET_BAR_PAIRS = 400e6


def s2_combos() -> list[tuple[int, int]]:
    combos = sweep_combos(5, 100, 10, 200, 5)
    assert len(combos) == 590, len(combos)
    assert all(f < s for f, s in combos)
    return combos


def make_bars(n: int = N_BARS) -> Bars:
    rng = np.random.default_rng(SEED)
    z = rng.standard_normal(n - 1)
    log_inc = -SIGMA * SIGMA / 2.0 + SIGMA * z
    close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(log_inc)]))
    close[0] = 100.0
    open_ = np.empty(n)
    open_[0] = close[0]
    open_[1:] = close[:-1]
    ts = START_NS + np.arange(n, dtype=np.int64) * NS_MIN
    return Bars(
        ts,
        open_,
        np.maximum(open_, close),
        np.minimum(open_, close),
        close,
        np.zeros(n),
        timezone="UTC",
        calendar="continuous",
    )


# ---------------------------------------------------------------------------- engines
def run_ours(bars: Bars, combos) -> dict[str, np.ndarray]:
    from services.engine.sweep import run_sweep

    rows = run_sweep(bars, "SMA", combos, direction="long", fill="next_open", initial_cash=CASH, threads=1)
    return {
        "total_return": np.array([r["total_return_pct"] / 100.0 for r in rows]),
        "trades": np.array([r["total_trades"] for r in rows], dtype=np.int64),
        "max_drawdown": np.array([r["max_drawdown_pct"] / 100.0 for r in rows]),
        "sharpe": np.array([np.nan if r["sharpe_ratio"] is None else r["sharpe_ratio"] for r in rows]),
    }


def numpy_sma(close: np.ndarray, n: int) -> np.ndarray:
    out = np.full(close.shape[0], np.nan)
    out[n - 1 :] = np.lib.stride_tricks.sliding_window_view(close, n).sum(axis=1) / n
    return out


def run_numpy(bars: Bars, combos) -> dict[str, np.ndarray]:
    """Per pair, vectorised over the bars: position, per-bar equity curve, trades,
    total return, max drawdown and daily Sharpe (a subset of our 13 metrics)."""
    close, open_ = bars.close, bars.open
    n = close.shape[0]
    ma = {p: numpy_sma(close, p) for p in sorted({p for c in combos for p in c})}
    # per-bar growth factors of a long position, shared by all pairs
    r_hold = np.ones(n)
    r_hold[1:] = close[1:] / close[:-1]  # held through bar t
    r_entry = close / open_  # entered at bar t's open
    r_exit = np.ones(n)
    r_exit[1:] = open_[1:] / close[:-1]  # exited at bar t's open
    day_last = np.flatnonzero(bars.day_ends())
    P = bars.periods_per_year
    out = {k: np.empty(len(combos)) for k in ("total_return", "max_drawdown", "sharpe")}
    out["trades"] = np.empty(len(combos), dtype=np.int64)
    pos = np.zeros(n + 1, dtype=bool)  # pos[t + 1]: position held during bar t
    for k, (f, s) in enumerate(combos):
        sig = ma[f] > ma[s]  # decision at each close (NaN warm-up -> False)
        pos[2:] = sig[: n - 1]  # filled at the next open; the last bar's signal is never filled
        cur, prev = pos[1:], pos[:-1]
        factor = np.where(cur, np.where(prev, r_hold, r_entry), np.where(prev, r_exit, 1.0))
        equity = CASH * np.cumprod(factor)  # marked at every close; the last close closes the position
        peak = np.maximum(np.maximum.accumulate(equity), CASH)
        eq_day = equity[day_last]
        daily = eq_day / np.r_[CASH, eq_day[:-1]] - 1.0
        sd = daily.std(ddof=1) if daily.shape[0] > 1 else 0.0
        out["total_return"][k] = equity[-1] / CASH - 1.0
        out["trades"][k] = np.count_nonzero(cur & ~prev)
        out["max_drawdown"][k] = (equity / peak - 1.0).min()
        out["sharpe"][k] = daily.mean() / sd * np.sqrt(P) if sd > 0 else np.nan
    return out


def run_vectorbt(bars: Bars, combos, chunk: int, verbose: bool = True) -> dict[str, np.ndarray]:
    import vectorbt as vbt

    vbt.settings["engine"] = "rust"  # raise rather than silently fall back to Numba
    close = bars.close
    periods = sorted({p for c in combos for p in c})
    col = {p: j for j, p in enumerate(periods)}
    t0 = time.perf_counter()
    ma = np.ascontiguousarray(vbt.MA.run(close, window=periods).ma.to_numpy())
    if verbose:
        print(f"    vectorbt MA.run ({len(periods)} windows): {time.perf_counter() - t0:.1f} s", flush=True)
    close2d = close.reshape(-1, 1)
    tr = np.empty(len(combos))
    nt = np.empty(len(combos), dtype=np.int64)
    for lo in range(0, len(combos), chunk):
        part = combos[lo : lo + chunk]
        fast = ma[:, [col[f] for f, _ in part]]
        slow = ma[:, [col[s] for _, s in part]]
        entries = fast > slow
        exits = fast <= slow
        entries[-1] = False  # no bar after the last one to fill at
        exits[-1] = False
        del fast, slow
        pf = vbt.Portfolio.from_signals(close2d, entries, exits, init_cash=CASH)
        tr[lo : lo + len(part)] = np.asarray(pf.total_return())
        nt[lo : lo + len(part)] = np.asarray(pf.trades.count())
        del pf, entries, exits
        gc.collect()
        if verbose:
            done = lo + len(part)
            el = time.perf_counter() - t0
            print(
                f"    vectorbt {done}/{len(combos)} pairs, {el:.0f} s elapsed, ~{el / done * (len(combos) - done):.0f} s left",
                flush=True,
            )
    return {"total_return": tr, "trades": nt}


ENGINES = {"ours": run_ours, "numpy": run_numpy, "vectorbt": None}


# ------------------------------------------------------------------------ memory probe
def _proc_status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, val = line.split(":")
                out[key] = int(val.split()[0]) * 1024
    return out


def probe(engine: str, n_bars: int, n_pairs: int, vbt_chunk: int) -> dict:
    bars = make_bars(n_bars)
    combos = s2_combos()[:n_pairs]
    if engine == "ours":  # import and warm the extension outside the measurement
        import services.engine.sweep  # noqa: F401
    elif engine == "vectorbt":
        import vectorbt  # noqa: F401
    gc.collect()
    before = _proc_status()["VmRSS"]
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        method = "VmHWM after clear_refs"
    except OSError:
        method = "ru_maxrss (includes setup)"
    t0 = time.perf_counter()
    if engine == "vectorbt":
        run_vectorbt(bars, combos, vbt_chunk, verbose=False)
    else:
        ENGINES[engine](bars, combos)
    seconds = time.perf_counter() - t0
    if method.startswith("VmHWM"):
        peak = _proc_status()["VmHWM"]
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "engine": engine,
        "bars": n_bars,
        "pairs": len(combos),
        "seconds": seconds,
        "rss_before": before,
        "hwm": peak,
        "peak_extra": peak - before,
        "method": method,
    }


def run_probe_subprocess(engine: str, n_bars: int, n_pairs: int, vbt_chunk: int) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "bench.sweep_s2",
        "--probe",
        engine,
        "--bars",
        str(n_bars),
        "--pairs",
        str(n_pairs),
        "--vbt-chunk",
        str(vbt_chunk),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=os.getcwd())
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- report
def _mb(b: float) -> str:
    return f"{b / 2**20:,.0f} MiB"


def _agree(name: str, ours: dict, other: dict, combos) -> bool:
    ok = True
    parts = []
    bad: set[int] = set()
    for key in ("total_return", "trades", "max_drawdown", "sharpe"):
        if key not in other:
            continue
        a, b = ours[key][: len(combos)], other[key]
        if key == "trades":
            wrong = np.flatnonzero(a != b)
            parts.append(f"trades equal {len(combos) - wrong.size}/{len(combos)}")
        else:
            rel = np.abs(a - b) / np.maximum(np.abs(a), 1e-300)
            wrong = np.flatnonzero(~(rel <= REL_TOL) & ~(np.isnan(a) & np.isnan(b)))
            parts.append(f"{key} max rel diff {np.nanmax(rel):.1e}")
        ok &= wrong.size == 0
        bad.update(wrong.tolist())
    print(f"  ours vs {name:8s}: {'; '.join(parts)} -> {'OK' if ok else 'MISMATCH'} (tolerance {REL_TOL:g})")
    for k in sorted(bad)[:10]:
        print(
            f"    {combos[k]}: " + ", ".join(f"{key} ours {ours[key][k]!r} {name} {other[key][k]!r}" for key in other)
        )
    return ok


def statistics_in_process(bars: Bars, combos, runs: int = 3) -> tuple[float, float]:
    """Best-of-``runs`` seconds of run_sweep and of run_sweep_with_statistics, interleaved."""
    from domain.overfitting import PBO_BLOCKS_DEFAULT
    from services.engine.sweep import run_sweep, run_sweep_with_statistics

    plain, stats = [], []
    for _ in range(runs):
        t = time.perf_counter()
        run_sweep(bars, "SMA", combos, initial_cash=CASH, threads=1)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_sweep_with_statistics(bars, "SMA", combos, initial_cash=CASH, pbo_blocks=PBO_BLOCKS_DEFAULT, threads=1)
        stats.append(time.perf_counter() - t)
    return min(plain), min(stats)


TARGET_THREADS_SPEEDUP = 1.8


def threads_report(bars: Bars, combos, runs: int = 3) -> bool:
    """(e): S2 with 1 thread vs every CPU this process may use; False if the rows differ."""
    from services.engine.sweep import available_cpus, run_sweep

    cpus = available_cpus()
    print(f"\n(e) ours, 1 thread vs {cpus} threads (the CPUs this process may use), interleaved", flush=True)
    times: dict[int, list[float]] = {1: [], cpus: []}
    cpu: dict[int, list[float]] = {1: [], cpus: []}  # the process's CPU seconds (user + system)
    rows: dict[int, str] = {}
    for _ in range(runs):
        for n in times:
            c, t = os.times(), time.perf_counter()
            out = run_sweep(bars, "SMA", combos, direction="long", fill="next_open", initial_cash=CASH, threads=n)
            times[n].append(time.perf_counter() - t)
            cpu[n].append(sum(os.times()[:2]) - sum(c[:2]))
            rows[n] = json.dumps(out)  # repr of every float: equal strings = the same bits
    for n, ts in times.items():
        print(f"    {n} thread{'s' if n > 1 else ''}: {', '.join(f'{x:.3f}' for x in ts)} s "
              f"(CPU {', '.join(f'{x:.2f}' for x in cpu[n])} s)", flush=True)
    same = rows[1] == rows[cpus]
    one, many = min(times[1]), min(times[cpus])
    print(f"  ours threads: 1 thread {one:.3f} s vs {cpus} threads {many:.3f} s (best of {runs}): "
          f"x{one / many:.2f} (target >= {TARGET_THREADS_SPEEDUP}x on 2 cores: "
          f"{'met' if one / many >= TARGET_THREADS_SPEEDUP else 'NOT met'}); results "
          f"{'identical' if same else 'DIFFER'}; load average {os.getloadavg()[0]:.1f} (other processes take "
          f"cores from the threads)", flush=True)
    if cpus > 1:
        from bench.machine_ceiling import parallel_ceiling

        print(f"  this machine's ceiling now: x{parallel_ceiling(cpus):.2f} ({cpus} independent CPU-bound "
              f"processes against one; bench/machine_ceiling.py)", flush=True)
    return same


def _write_csv(bars: Bars, path) -> None:
    import pandas as pd

    stamps = pd.to_datetime(bars.ts, utc=True).strftime("%Y-%m-%dT%H:%M:%SZ")
    pd.DataFrame({"timestamp": stamps, "open": bars.open, "high": bars.high, "low": bars.low, "close": bars.close,
                  "volume": 1}).to_csv(path, index=False, float_format="%.10g")


def _timed_sweep(client, ticker: str, body: dict) -> tuple[float, dict, float]:
    """(seconds from the POST to best read, best, seconds of the GET best alone)."""
    t = time.perf_counter()
    r = client.post("/api/v1/strategy/sweep", json=dict(body, ticker=ticker))
    if r.status_code != 202:
        raise SystemExit(f"the S2 sweep answered {r.status_code}: {r.text[:300]}")
    job_id = r.json()["job_id"]
    # Followed as the seed's client and the dashboard follow a job: its event stream, to the end.
    with client.stream("GET", f"/api/v1/jobs/{job_id}/stream") as events:
        for line in events.iter_lines():
            if line.startswith("data:") and ('"done"' in line or '"error"' in line):
                break
    job = client.get(f"/api/v1/jobs/{job_id}").json()
    if job["status"] != "completed":
        raise SystemExit(f"the S2 sweep ended {job['status']}: {job.get('error_message')}")
    t_best = time.perf_counter()
    best = client.get(f"/api/v1/sweeps/{job['sweep_run_id']}/best", params={"limit": 10}).json()
    end = time.perf_counter()
    best["engine_seconds"] = (job.get("metrics") or {}).get("engine_seconds")
    return end - t, best, end - t_best


def through_the_stack(bars: Bars, runs: int) -> float:
    """S2 through two standalone stacks, with and without the statistics; the ratio of the
    median end-to-end times (with / without)."""
    import shutil
    import signal
    import statistics
    import tempfile
    from pathlib import Path

    import httpx

    from bench.fairness import upload
    from tests.stacks import start_standalone

    body = {"fast_range": [5, 100], "slow_range": [10, 200], "step": 5, "min_trades": 10, "strategy_type": "SMA",
            "timeout_seconds": 3600}
    work = Path(tempfile.mkdtemp(prefix="bench-s2-stack-"))
    stacks = {}
    try:
        csv = work / "s2.csv"
        _write_csv(bars, csv)
        for name, flag in (("with", "1"), ("without", "0")):
            (work / name).mkdir()
            stacks[name] = start_standalone(work / name / "data", work / name, {"HINDSIGHT_SWEEP_STATISTICS": flag})
        clients = {n: httpx.Client(base_url=s.base_url, timeout=120, headers={"X-API-Key": s.api_key})
                   for n, s in stacks.items()}
        for name, c in clients.items():
            print(f"    {name} statistics: S2 bars uploaded in {upload(c, csv, 'S2-MIN'):.0f} s", flush=True)
        for name, c in clients.items():  # loads the bars into the engine's cache
            seconds, best, _ = _timed_sweep(c, "S2-MIN", body)
            o = best["overfitting"]
            shown = "null" if o is None else (f"DSR {o['deflated_sharpe_ratio']:.3f}, PBO {o['pbo']:.3f}, "
                                              f"{o['trials']} trials x {o['days']} days, {len(o['logits'])} splits")
            print(f"    {name} statistics, first sweep (bars loaded): {seconds:.2f} s; overfitting: {shown}",
                  flush=True)
        times: dict[str, list[float]] = {n: [] for n in clients}
        reads: dict[str, list[float]] = {n: [] for n in clients}
        engine: dict[str, list[float]] = {n: [] for n in clients}
        for i in range(runs):
            order = list(clients) if i % 2 == 0 else list(reversed(clients))  # neither always goes first
            for name in order:
                seconds, best, read = _timed_sweep(clients[name], "S2-MIN", body)
                times[name].append(seconds)
                engine[name].append(best["engine_seconds"] or 0.0)
                reads[name].append(read)
        for c in clients.values():
            c.close()
        for name, ts in times.items():
            print(f"    {name:7s} statistics: {', '.join(f'{t:.2f}' for t in ts)} s; median "
                  f"{statistics.median(ts):.2f} s (of which the engine's run {statistics.median(engine[name]):.2f} s, "
                  f"GET best {statistics.median(reads[name]) * 1000:.0f} ms)",
                  flush=True)
        print(f"    fastest runs: with {min(times['with']):.2f} s, without {min(times['without']):.2f} s "
              f"(x{min(times['with']) / min(times['without']):.3f})", flush=True)
        return statistics.median(times["with"]) / statistics.median(times["without"])
    finally:
        for s in stacks.values():
            s.stop(signal.SIGINT)
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bars", type=int, default=N_BARS)
    ap.add_argument("--pairs", type=int, default=590, help="use only the first N pairs of the grid")
    ap.add_argument("--vbt-chunk", type=int, default=59, help="pairs per vectorbt from_signals call")
    ap.add_argument("--vbt-pairs", type=int, default=None, help="run vectorbt on the first N pairs only (quick look)")
    ap.add_argument("--skip-memory", action="store_true", help="no per-engine memory subprocesses")
    ap.add_argument("--skip-stack", action="store_true", help="no S2 through the stack with/without the statistics")
    ap.add_argument("--only-statistics", action="store_true", help="only (d): the cost of the overfitting statistics")
    ap.add_argument("--only-threads", action="store_true", help="only (e): 1 thread vs all of them")
    ap.add_argument("--stack-runs", type=int, default=9, help="timed S2 sweeps per stack")
    ap.add_argument("--probe", choices=sorted(ENGINES), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.probe:
        print(json.dumps(probe(args.probe, args.bars, args.pairs, args.vbt_chunk)))
        return 0

    combos = s2_combos()[: args.pairs]
    print(
        f"S2: SMA crossover, {len(combos)} pairs (fast 5..100, slow 10..200, step 5, fast < slow), "
        f"long only, no fees, {args.bars:,} one-minute bars, sigma {SIGMA}, seed {SEED}"
    )
    t = time.perf_counter()
    bars = make_bars(args.bars)
    print(f"  data generated in {time.perf_counter() - t:.2f} s")
    bar_pairs = args.bars * len(combos)

    import services.engine.sweep  # noqa: F401  (load the extension before timing)

    if args.only_statistics:
        return statistics_report(bars, combos, args)
    if args.only_threads:
        return 0 if threads_report(bars, combos) else 1

    print("(a) ours: fused Cython kernel, one thread", flush=True)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        ours = run_ours(bars, combos)
        times.append(time.perf_counter() - t)
    t_ours = min(times)
    print(f"    runs: {', '.join(f'{x:.3f}' for x in times)} s (best is reported)", flush=True)

    print("(c) plain NumPy, vectorised per pair", flush=True)
    t = time.perf_counter()
    numpy_res = run_numpy(bars, combos)
    t_np = time.perf_counter() - t
    print(f"    {t_np:.1f} s", flush=True)

    vbt_combos = combos if args.vbt_pairs is None else combos[: args.vbt_pairs]
    print(
        f"(b) vectorbt {__import__('vectorbt').__version__} + vectorbt-rust, {len(vbt_combos)} pairs "
        f"in chunks of {args.vbt_chunk}",
        flush=True,
    )
    t = time.perf_counter()
    vbt_res = run_vectorbt(bars, vbt_combos, args.vbt_chunk)
    t_vbt = time.perf_counter() - t
    vbt_bar_pairs = args.bars * len(vbt_combos)
    print(f"    {t_vbt:.1f} s", flush=True)

    print("\nAgreement (every pair):")
    ok = _agree("numpy", ours, numpy_res, combos)
    ok &= _agree("vectorbt", ours, vbt_res, vbt_combos)
    nv = len(vbt_combos)

    mem = {}
    if not args.skip_memory:
        print("\nPeak memory, one fresh subprocess per engine (VmHWM - VmRSS before the run):", flush=True)
        plan = [  # (engine, bars, pairs, is the headline measurement)
            ("ours", args.bars, len(combos), True),
            ("ours", args.bars, max(1, len(combos) // 10), False),
            ("ours", args.bars // 4, len(combos), False),
            ("numpy", args.bars, len(combos), True),
            ("vectorbt", args.bars, nv, True),
        ]
        for engine, nb, npairs, headline in plan:
            r = run_probe_subprocess(engine, nb, npairs, args.vbt_chunk)
            if headline:
                mem[engine] = r
            print(
                f"  {engine:8s} {nb:>9,} bars x {npairs:>3} pairs: peak +{_mb(r['peak_extra'])} "
                f"(inputs+interpreter {_mb(r['rss_before'])}, run {r['seconds']:.1f} s)",
                flush=True,
            )

    def row(name, secs, bp):
        rate = bp / secs
        m = mem.get(name)
        return f"  {name:9s} {secs:10.2f} s {rate / 1e6:12,.1f} M {'+' + _mb(m['peak_extra']) if m else 'n/a':>12s}"

    print("\nResults")
    print(f"  {'engine':9s} {'wall':>12s} {'bar-pairs/s':>14s} {'peak mem':>12s}")
    print(row("ours", t_ours, bar_pairs))
    print(row("vectorbt", t_vbt, vbt_bar_pairs))
    print(row("numpy", t_np, bar_pairs))
    rate = bar_pairs / t_ours
    speed_vbt = rate / (vbt_bar_pairs / t_vbt)  # ratio of throughputs (= of wall times on the same work)
    speed_np = rate / (bar_pairs / t_np)
    print(
        f"\n  ours vs vectorbt: {speed_vbt:,.0f}x faster (target >= {TARGET_SPEEDUP:.0f}x: "
        f"{'met' if speed_vbt >= TARGET_SPEEDUP else 'NOT met'})"
    )
    print(f"  ours vs numpy:    {speed_np:,.0f}x faster")
    print(
        f"  ours throughput:  {rate / 1e6:,.0f} M bar-pairs/s on one core (target >= {TARGET_BAR_PAIRS / 1e6:.0f} M: "
        f"{'met' if rate >= TARGET_BAR_PAIRS else 'NOT met'})"
    )
    if mem:
        print("  ours memory follows bars, not bars x pairs: see the probes at 1/10 of the pairs and 1/4 of the bars")
    ok &= threads_report(bars, combos)
    statistics_report(bars, combos, args)
    return 0 if ok else 1


TARGET_STATISTICS_RATIO = 1.20


def statistics_report(bars: Bars, combos, args) -> int:
    """(d): what the overfitting statistics cost, in process and through the stack."""
    print("\n(d) overfitting statistics (PSR, DSR, PBO by CSCV over 16 blocks)", flush=True)
    plain, stats = statistics_in_process(bars, combos)
    print(f"    in process, best of 3: run_sweep {plain:.3f} s, run_sweep_with_statistics {stats:.3f} s "
          f"(x{stats / plain:.3f})", flush=True)
    if args.skip_stack:
        return 0
    ratio = through_the_stack(bars, args.stack_runs)
    print(f"  S2 through the stack, with the statistics vs without (medians): x{ratio:.3f} end to end "
          f"({(ratio - 1) * 100:+.1f} %; target at most +{(TARGET_STATISTICS_RATIO - 1) * 100:.0f} %: "
          f"{'met' if ratio <= TARGET_STATISTICS_RATIO else 'NOT met'})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
