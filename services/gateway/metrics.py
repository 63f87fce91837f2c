"""Prometheus metrics of the gateway (seed 001's names), one registry per app so
several apps in one process (tests, the standalone launcher) do not clash.

Labels take values from closed sets only (strategy types, route templates): never a
ticker, tenant, user or id, which would expose tenants' data to whoever reads the
metrics and let them grow the series without bound (issue 12)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Seed 001's tradingApiLatency buckets.
LATENCY_BUCKETS = (0.1, 0.5, 1, 2, 5, 10)


class GatewayMetrics:
    """The gateway's collectors in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.jobs_queued = Counter(
            "pipeline_trading_sweep_jobs_queued_total",
            "Total trading sweep jobs queued, by strategy type (day-by-day backtests: under their job kind)",
            ["strategy_type"],
            registry=self.registry,
        )
        self.api_latency = Histogram(
            "pipeline_trading_api_latency_seconds",
            "Trading API response time",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.sse_clients = Gauge("hindsight_sse_clients", "Open SSE job streams", registry=self.registry)


class LatencyMiddleware:
    """Observe each HTTP request's latency under its route template (never the raw
    path, which would make one series per job id)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        observed = False

        def observe() -> None:
            nonlocal observed
            if observed:
                return
            observed = True
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.api_latency.labels(endpoint=endpoint).observe(time.perf_counter() - start)

        async def timed_send(message: Message) -> None:
            # Time to the response's headers: for an SSE stream that is when it opened.
            if message["type"] == "http.response.start":
                observe()
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            observe()
