"""Walk-forward end to end on the distributed stack (Postgres, RabbitMQ, every service its
own process, two engine replicas): upload bars, POST /api/v1/walkforward, follow the job's
SSE stream to the end, GET the result, and compare every fold with the independent
reference of tests/engine/test_walkforward_reference.py (chosen parameters equal,
out-of-sample metrics to 1e-9 relative). Bad windows are a 400 and queue nothing."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pandas as pd
import pytest

from domain.sweep import sweep_combos
from services.engine.bars import Bars
from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.engine.test_walkforward_reference import METRICS, reference_fold
from tests.stacks import _spawn, free_port, start_distributed

N = 1500
START = datetime(2023, 1, 2, tzinfo=UTC)
SWEEP = {"ticker": "E2E-WF", "interval": "1h", "fast_range": [2, 14], "slow_range": [6, 40], "step": 4,
         "min_trades": 10, "commission_pct": 0.05}
WINDOWS = {"train_bars": 400, "test_bars": 200, "step_bars": 200, "anchored": False, "objective": "sharpe_ratio"}


def _bars() -> Bars:
    rng = np.random.default_rng(14)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.006, N)))
    opens = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0.0, 0.001, N))
    ts = pd.Timestamp(START).value + np.arange(N, dtype=np.int64) * 3_600 * 10**9
    return Bars(ts, opens, np.maximum(opens, close) * 1.002, np.minimum(opens, close) * 0.998, close, np.full(N, 7.0))


def _csv(b: Bars) -> bytes:
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(N):
        t = (START + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{t},{float(b.open[i])!r},{float(b.high[i])!r},{float(b.low[i])!r},{float(b.close[i])!r},7")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    db, db_url = create_database()
    vhost, amqp = create_vhost()
    logs = tmp_path_factory.mktemp("wf-logs")
    s = start_distributed(db_url, amqp, logs, {"HINDSIGHT_ENGINE_THREADS": "1"})
    try:
        # A second engine replica: the folds of one job are shared out between them.
        env = dict(s.env, ENGINE_PORT=str(free_port()))
        s.procs["engine2"], s.logs["engine2"] = _spawn("engine2", "services.engine", env, logs)
        deadline = time.time() + 60
        while "serving gRPC" not in s.logs["engine2"].read_text():
            assert s.procs["engine2"].poll() is None and time.time() < deadline, s.log_text()
            time.sleep(0.1)
        yield s
    finally:
        s.stop()
        drop_database(db)
        delete_vhost(vhost)


def _events(c: httpx.Client, job_id: str) -> list[dict]:
    """The job's SSE stream, followed to its final event."""
    out: list[dict] = []
    with c.stream("GET", f"/api/v1/jobs/{job_id}/stream", timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data:"):
                out.append(json.loads(line[5:]))
                if out[-1].get("done") or out[-1].get("error"):
                    break
    return out


def test_walkforward_through_the_stack_equals_the_reference(stack) -> None:
    bars = _bars()
    with httpx.Client(base_url=stack.base_url, timeout=60, headers={"X-API-Key": stack.api_key}) as c:
        r = c.post("/api/v1/datasets", files={"file": ("wf.csv", _csv(bars), "text/csv")},
                   data={"ticker": "E2E-WF", "interval": "1h", "calendar": "continuous"})
        assert r.status_code == 201, r.text

        # Windows longer than the data: 400, and nothing is queued.
        before = c.get("/api/v1/jobs").json()
        bad = c.post("/api/v1/walkforward", json={"sweep": SWEEP, **WINDOWS, "train_bars": 1400})
        assert bad.status_code == 400 and "longer than the data" in bad.json()["error"]["message"], bad.text
        assert c.get("/api/v1/jobs").json() == before

        r = c.post("/api/v1/walkforward", json={"sweep": SWEEP, **WINDOWS})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        assert r.json()["folds"] == (N - 600) // 200 + 1 == 5
        events = _events(c, job_id)
        assert events[-1].get("status") == "completed", (events[-1], stack.log_text())
        assert sum(1 for e in events if str(e.get("message", "")).startswith("Fold ")) == 4
        wf = c.get(f"/api/v1/walkforward/{job_id}").json()

    assert wf["status"] == "completed" and wf["folds_completed"] == 5
    combos = sweep_combos(2, 14, 6, 40, 4)
    sim = {"fill": "next_open", "commission": 0.0005, "slippage": 0.0, "cash0": 10_000.0}
    chosen = 0
    growth = 1.0
    for f in wf["folds"]:
        pair, _, oos = reference_fold(bars, "SMA", combos, (f["train_start"], f["train_end"]),
                                      (f["test_start"], f["test_end"]), "sharpe_ratio", 10, **sim)
        if pair is None:
            assert f["parameters"] is None
            continue
        chosen += 1
        assert f["parameters"] == {"fast_period": pair[0], "slow_period": pair[1]}
        for name in METRICS:
            got, want = f["out_of_sample"][name], oos[name]
            assert (got is None and want is None) or math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (name, f)
        assert f["out_of_sample"]["total_trades"] == oos["total_trades"]
        growth *= oos["equity"][-1] / 10_000.0
    assert chosen >= 3
    assert wf["stitched"]["equity"][-1]["equity"] == pytest.approx(10_000.0 * growth, rel=1e-9)
    assert wf["walk_forward_efficiency"] is not None

    # Both replicas ran folds: they are independent units of work.
    ran = {name: stack.logs[name].read_text().count("walk-forward fold done") for name in ("engine", "engine2")}
    assert sum(ran.values()) == 5 and all(ran.values()), ran
