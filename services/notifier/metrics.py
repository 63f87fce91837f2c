"""Prometheus metrics of the notifier, in a registry of its own (several notifiers may share a process in tests)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class NotifierMetrics:
    """Deliveries by outcome, attempts, attempt latency, dead-lettered deliveries."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter(
            "hindsight_notifier_events_total", "Job-ended events taken from the broker", registry=self.registry
        )
        self.deliveries = Counter(
            "hindsight_notifier_deliveries_total",
            "Deliveries that ended, by channel and outcome (delivered, failed)",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.attempts = Counter(
            "hindsight_notifier_attempts_total",
            "Delivery attempts, by channel and result (delivered, retry, failed)",
            ["channel", "result"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hindsight_notifier_attempt_latency_seconds",
            "Time of one delivery attempt, from connect to answer or error",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "hindsight_notifier_dead_lettered_total",
            "Deliveries given up and sent to the dead-letter queue",
            ["channel"],
            registry=self.registry,
        )

    def collector(self) -> RegistryCollector:
        """A collector that exposes these metrics through another registry (the standalone gateway's)."""
        return RegistryCollector(self.registry)


class RegistryCollector:
    """Yields the metrics of a registry (for registering one registry into another)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
