"""The standalone stack (one process) with tracing off, as `make run` starts it:
its one /metrics shows every service's metrics once, logs say tracing is off
and show no error from it, and neither the dev key nor a bootstrap key reaches
a log line (the start banner, which prints the dev key for the person at the
terminal as issue 2 asks, is plain stdout text, not a log line)."""

from __future__ import annotations

import json
import re
import secrets
import signal
import time

import pytest

from tests.stacks import DEV_KEY, start_standalone

OPS_KEY = "ops-key-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    env = {
        "HINDSIGHT_BOOTSTRAP_KEYS": f"ops:{OPS_KEY}",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_SDK_DISABLED": "",
        "HINDSIGHT_TRACE_FILE": "",
    }
    s = start_standalone(tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("logs"), extra_env=env)
    try:
        with s.client() as http:
            assert http.post("/api/v1/auth/login", json={"api_key": OPS_KEY}).status_code == 200
            resp = http.post(
                "/api/v1/strategy/sweep",
                headers={"X-API-Key": DEV_KEY},
                data={"ticker": "DEMO-DAILY", "fast_range": "[10, 20]", "slow_range": "[20, 30]", "step": "5",
                      "min_trades": "10", "strategy_type": "SMA"},
            )
            assert resp.status_code == 202, resp.text
            s.submitted = resp.json()
            job_url = f"/api/v1/jobs/{s.submitted['job_id']}"
            deadline = time.time() + 30
            while time.time() < deadline:
                s.job = http.get(job_url, headers={"Authorization": f"Bearer {DEV_KEY}"}).json()
                if s.job["status"] in ("completed", "failed"):
                    break
                time.sleep(0.1)
            # Results reads its database gauges shortly after a job ends.
            deadline = time.time() + 15
            while True:
                s.metrics_text = http.get("/metrics").text
                if "hindsight_sweep_best_sharpe_ratio{" in s.metrics_text or time.time() > deadline:
                    break
                time.sleep(0.2)
    finally:
        s.exit_codes = s.stop(signal.SIGINT)
    s.output = s.logs["standalone"].read_text(errors="replace")
    return s


def test_stopped_cleanly(stack):
    assert stack.exit_codes == {"standalone": 0}
    assert stack.job["status"] == "completed"


def test_one_metrics_endpoint_shows_every_service_once(stack):
    text = stack.metrics_text
    families = re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE)
    assert len(families) == len(set(families)), "a metric family is exposed twice"
    for name in (
        "pipeline_trading_sweep_jobs_queued_total",  # gateway
        "pipeline_trading_api_latency_seconds",
        "hindsight_sse_clients",
        "pipeline_trading_sweep_jobs_completed_total",  # results
        "pipeline_trading_sweep_duration_seconds",
        "hindsight_job_queue_depth",
        "hindsight_jobs",
        "hindsight_artifact_bytes",
        "hindsight_sweep_best_sharpe_ratio",
        "hindsight_engine_bar_pairs_per_second",  # engine
        "hindsight_notifier_events_total",  # notifier
        "process_resident_memory_bytes",  # the process
    ):
        assert name in families, name
    assert 'pipeline_trading_sweep_jobs_completed_total{status="completed"} 1.0' in text
    assert 'pipeline_trading_sweep_jobs_queued_total{strategy_type="SMA"} 1.0' in text
    assert re.search(r'^hindsight_sweep_best_sharpe_ratio\{strategy_type="SMA"\} ', text, re.MULTILINE)
    assert "DEMO-DAILY" not in text  # no ticker (a tenant's data) in any label


def test_tracing_is_off_and_says_so(stack):
    lines = [json.loads(line) for line in stack.output.splitlines() if line.startswith("{")]
    assert any(line["message"].startswith("tracing off") for line in lines)
    assert not [line for line in lines if line["level"] in ("warning", "error") and "otel" in line["logger"].lower()]
    assert all("trace_id" not in line for line in lines)
    assert stack.submitted["trace_id"] is None and stack.job["trace_id"] is None


def test_no_api_key_in_a_log_line(stack):
    json_lines = [line for line in stack.output.splitlines() if line.startswith("{")]
    assert json_lines
    for key in (DEV_KEY, OPS_KEY):
        assert not [line for line in json_lines if key in line]
    assert OPS_KEY not in stack.output
    # The dev key shows once, in the banner for the terminal.
    assert [line.strip() for line in stack.output.splitlines() if DEV_KEY in line] == [
        f"API key  {DEV_KEY}  (tenant 'dev'; header X-API-Key)"]
