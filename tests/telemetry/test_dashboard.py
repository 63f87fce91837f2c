"""The Grafana dashboard (deploy/grafana/hindsight-dashboard.json): seed 001's six
panels, every query naming only metrics and labels that our services expose,
queries that are at least well-formed, and a layout without overlaps.

No Grafana or Prometheus runs here, so the queries are not evaluated; importing
the JSON into Grafana with a Prometheus that scrapes the pods is the check that
needs a cluster."""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client import CollectorRegistry

from services.engine.metrics import EngineMetrics
from services.gateway.metrics import GatewayMetrics
from services.notifier.metrics import NotifierMetrics
from services.results.metrics import ResultsMetrics
from tests.stacks import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "hindsight-dashboard.json"
SEED_PANELS = {
    "Job Queue Depth": {"hindsight_job_queue_depth"},
    "Job Success Rate": {"pipeline_trading_sweep_jobs_completed_total"},
    "Average Job Duration (p50 / p95 / p99)": {"pipeline_trading_sweep_duration_seconds_bucket"},
    "Trading API Health": {"up", "pipeline_trading_api_latency_seconds_bucket"},
    # Per strategy type: a ticker is a tenant's data and no label carries one (issue 12).
    "Results Per Strategy Type": {"pipeline_trading_sweep_jobs_queued_total"},
    "Best Performing Strategies": {"hindsight_sweep_best_sharpe_ratio"},
}
# Labels Prometheus adds to every series (target labels), and histogram buckets' `le`.
TARGET_LABELS = {"instance", "job", "app", "le"}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "topk", "by", "without", "rate", "increase", "histogram_quantile",
    "max_over_time", "avg_over_time", "and", "or", "unless", "on", "ignoring",
}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _exposed() -> dict[str, set[str]]:
    """Every sample name our registries can expose -> its label names (plus `up`)."""
    out: dict[str, set[str]] = {"up": set()}
    for registry in (GatewayMetrics().registry, ResultsMetrics().registry, EngineMetrics().registry,
                     NotifierMetrics().registry):
        assert isinstance(registry, CollectorRegistry)
        for collector in list(registry._collector_to_names):  # every collector, with or without children yet
            for family in collector.describe() if hasattr(collector, "describe") else collector.collect():
                labels = set(getattr(collector, "_labelnames", ()))
                suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                            "gauge": ("",)}[family.type]
                for suffix in suffixes:
                    out[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return out


def _panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def _exprs(panel: dict) -> list[str]:
    return [t["expr"] for t in panel["targets"]]


def test_seed_001_panels_are_all_there(dashboard):
    titles = [p["title"] for p in _panels(dashboard)]
    assert titles[:6] == list(SEED_PANELS)
    for panel in _panels(dashboard)[:6]:
        names = set(re.findall(r"[a-z_:][a-z0-9_:]*", " ".join(_exprs(panel))))
        assert SEED_PANELS[panel["title"]] <= names, panel["title"]


def test_queries_use_only_metrics_and_labels_we_expose(dashboard):
    exposed = _exposed()
    for panel in _panels(dashboard):
        assert panel["targets"], panel["title"]
        for expr in _exprs(panel):
            groups = re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
            used = {label.strip() for group in groups for label in group.split(",") if label.strip()}
            used |= set(re.findall(r"([a-z_]+)\s*=~?\s*\"", expr))
            # What is left once matchers, ranges, groupings and numbers are gone: functions and metrics.
            bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b(?:by|without)\s*\([^)]*\)|\b\d+(?:\.\d+)?\b", " ", expr)
            metrics = [m for m in re.findall(r"[a-z_:][a-z0-9_:]*", bare) if m not in PROMQL_WORDS]
            assert metrics, (panel["title"], expr)
            for name in metrics:
                assert name in exposed, f"{panel['title']}: {name} is not a metric of ours"
            allowed = set().union(*(exposed[m] for m in metrics)) | TARGET_LABELS
            assert used <= allowed, f"{panel['title']}: labels {used - allowed} not on {metrics}"


def test_queries_are_well_formed(dashboard):
    pairs = {")": "(", "]": "[", "}": "{"}
    for panel in _panels(dashboard):
        for expr in _exprs(panel):
            stack = []
            for ch in re.sub(r'"[^"]*"', '""', expr):
                if ch in "([{":
                    stack.append(ch)
                elif ch in pairs:
                    assert stack and stack.pop() == pairs[ch], expr
            assert not stack, expr
            for rng in re.findall(r"\[([^\]]+)\]", expr):
                assert rng in ("$__range", "$__rate_interval") or re.fullmatch(r"\d+[smhd]", rng), expr


def test_layout_and_datasource(dashboard):
    assert dashboard["uid"] and dashboard["title"] == "Hindsight"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in dashboard["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in _panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}"
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
