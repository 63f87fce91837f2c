"""Prometheus metrics of an engine replica, in a registry of its own.

Throughput is counted in bar-pairs: one (fast, slow) combination evaluated over
one bar. `rate(hindsight_engine_bar_pairs_total[5m]) /
rate(hindsight_engine_sweep_kernel_seconds_sum[5m])` is the kernel's throughput
while busy; the gauge is that of the last sweep.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

KERNEL_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class EngineMetrics:
    """Sweeps run by this replica: kernel time, bar-pairs evaluated, the last sweep's throughput."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.bar_pairs_per_second = Gauge(
            "hindsight_engine_bar_pairs_per_second",
            "Throughput of the last sweep: combinations x bars / kernel seconds",
            registry=self.registry,
        )
        self.bar_pairs = Counter(
            "hindsight_engine_bar_pairs_total", "Combination-bars evaluated by sweeps", registry=self.registry
        )
        self.kernel_seconds = Histogram(
            "hindsight_engine_sweep_kernel_seconds",
            "Time of a sweep's kernel (bars loaded, results not yet stored)",
            buckets=KERNEL_BUCKETS,
            registry=self.registry,
        )
        self.jobs_deferred = Counter(
            "hindsight_engine_jobs_deferred_total",
            "Jobs handed back to the queue for a while because their tenant already ran its limit of jobs",
            registry=self.registry,
        )

    def job_deferred(self) -> None:
        self.jobs_deferred.inc()

    def observe_sweep(self, combos: int, bars: int, seconds: float) -> None:
        pairs = combos * bars
        self.bar_pairs.inc(pairs)
        self.kernel_seconds.observe(seconds)
        if seconds > 0:
            self.bar_pairs_per_second.set(pairs / seconds)
