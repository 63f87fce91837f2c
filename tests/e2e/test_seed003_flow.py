"""The seed-003 client flow, end to end, against both modes of a real stack: the
seed's curl examples run verbatim by the real `curl` (standalone on the seed's
port 8086 when it is free; distributed with the credentials that mode always
requires), plus a synchronous backtest, a sweep saved as a run, replays that
reproduce their originals exactly, a comparison and the CSV exports."""

from __future__ import annotations

import json
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.seeds import seed_file
from tests.stacks import Stack, free_port, start_distributed, start_standalone

SEED_PORT = 8086
SEED_FILE = seed_file("003")

# The seed's "Usage Examples", copied verbatim (checked against the seed file when it is at hand).
SEED_CURLS = {
    "list": "curl http://localhost:8086/runs",
    "list_filtered": 'curl "http://localhost:8086/runs?ticker=AAPL&limit=10"',
    "get": "curl http://localhost:8086/runs/1",
    "replay_dates": """curl -X POST http://localhost:8086/runs/1/replay \\
  -H "Content-Type: application/json" \\
  -d '{
    "start_date": "2024-06-01",
    "end_date": "2024-12-31"
  }'""",
    "replay_cash": """curl -X POST http://localhost:8086/runs/1/replay \\
  -H "Content-Type: application/json" \\
  -d '{
    "cash": 50000.0
  }'""",
}
METRICS = ("total_return_pct", "annualized_return", "sharpe_ratio", "sortino_ratio", "max_drawdown_pct",
           "win_rate_pct", "profit_factor", "total_trades", "trades_per_month", "avg_trade_duration", "score")


def test_the_copied_examples_are_the_seeds():
    if SEED_FILE is None:
        pytest.skip("the seed documents are not on this machine (set HINDSIGHT_SEEDS_DIR)")
    blocks = re.findall(r"```bash\n(.*?)\n```", SEED_FILE.read_text(), re.DOTALL)
    assert sorted(blocks) == sorted(SEED_CURLS.values())


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_standalone_on(port: int, data_dir: Path, log_dir: Path) -> Stack:
    return start_standalone(data_dir, log_dir, port=port)


@pytest.fixture(scope="module", params=["standalone", "distributed"])
def stack(request, tmp_path_factory):
    logs = tmp_path_factory.mktemp(f"logs003-{request.param}")
    if request.param == "standalone":
        port = SEED_PORT if _port_free(SEED_PORT) else free_port()
        s = start_standalone_on(port, tmp_path_factory.mktemp("data003"), logs)
        yield s
        assert s.stop(signal.SIGINT)["standalone"] == 0, s.log_text()
    else:
        db, db_url = create_database()
        vhost, amqp = create_vhost()
        s = start_distributed(db_url, amqp, logs)
        yield s
        s.stop()
        drop_database(db)
        delete_vhost(vhost)


def curl(stack: Stack, command: str) -> dict | list | str:
    """Run a curl command line as a shell would; the seed's host:port becomes the stack's, and in the
    distributed mode (credentials always required) the API key is added. Returns parsed JSON."""
    port = stack.base_url.rsplit(":", 1)[1]
    command = command.replace("localhost:8086", f"localhost:{port}")
    if stack.mode == "distributed":
        command = command.replace("curl ", f"curl -H {shlex.quote('X-API-Key: ' + stack.api_key)} ", 1)
    proc = subprocess.run(["bash", "-c", command.replace("curl ", "curl -sS ", 1)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, (command, proc.stderr)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        return proc.stdout


def test_seed_curl_examples_verbatim(stack):
    if stack.mode == "distributed":  # no credentials: refused in this mode
        r = httpx.get(stack.base_url + "/runs")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"

    # A run to look at: the seed's app saved one per POST /backtest.
    made = curl(stack, """curl -X POST http://localhost:8086/backtest -H "Content-Type: application/json" \\
      -d '{"ticker": "DEMO-DAILY", "strategy": "sma_crossover", "parameters": {"fast_period": 10, "slow_period": 30},
           "start_date": "2019-01-01", "end_date": "2024-12-31", "interval": "1d", "cash": 10000}'""")
    assert made["id"] == 1 and made["total_trades"] > 0 and made["trades"] and made["equity_curve"], made

    listing = curl(stack, SEED_CURLS["list"])
    assert listing["total"] == 1 and listing["limit"] == 100 and listing["offset"] == 0
    row = listing["runs"][0]
    assert {"id", "ticker", "strategy", "interval", "pnl", "return_pct", "created_at"} <= set(row)
    assert (row["id"], row["ticker"], row["strategy"], row["pnl"]) == (1, "DEMO-DAILY", "sma_crossover", made["pnl"])

    assert curl(stack, SEED_CURLS["list_filtered"]) == {"runs": [], "total": 0, "limit": 10, "offset": 0}

    detail = curl(stack, SEED_CURLS["get"])
    for key in ("id", "ticker", "strategy", "parameters", "start_date", "end_date", "interval", "cash", "pnl",
                "return_pct", "sharpe_ratio", "max_drawdown", "total_trades", "winning_trades", "losing_trades",
                "created_at"):
        assert detail[key] == made[key], key
    assert detail["parameters"] == {"fast_period": 10, "slow_period": 30}

    dated = curl(stack, SEED_CURLS["replay_dates"])
    assert dated["id"] == 2 and dated["replay_of"] == 1
    assert (dated["start_date"], dated["end_date"]) == ("2024-06-01", "2024-12-31")
    assert dated["bars"] == 22  # the demo data ends on 2024-06-22
    assert dated["parameters"] == made["parameters"] and dated["cash"] == 10_000.0

    cash = curl(stack, SEED_CURLS["replay_cash"])
    assert cash["id"] == 3 and cash["replay_of"] == 1 and cash["cash"] == 50_000.0
    assert cash["start_date"] == "2019-01-01" and cash["total_trades"] == made["total_trades"]
    assert cash["pnl"] == pytest.approx(5 * made["pnl"], rel=1e-9)

    same = curl(stack, "curl -X POST http://localhost:8086/runs/1/replay")
    assert same["replay_of"] == 1 and same["metrics"] == made["metrics"]  # exactly the same numbers
    assert same["trades"] == made["trades"]

    after = curl(stack, SEED_CURLS["list"])
    assert [r["id"] for r in after["runs"]] == [4, 3, 2, 1] and after["total"] == 4
    assert curl(stack, "curl http://localhost:8086/api/v1/runs/4")["replay_of"] == 1
    missing = curl(stack, "curl http://localhost:8086/runs/999")
    assert missing["error"]["code"] == "not_found"


def test_sweep_is_a_run_and_replays_its_best_exactly(stack):
    headers = {"X-API-Key": stack.api_key}
    with httpx.Client(base_url=stack.base_url, headers=headers, timeout=30) as c:
        r = c.post("/api/v1/strategy/sweep", json={"ticker": "DEMO-DAILY", "fast_range": [5, 20],
                                                   "slow_range": [20, 40], "step": 5, "min_trades": 10,
                                                   "strategy_type": "EMA", "direction": "both"})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        deadline = time.time() + 60
        while (job := c.get(f"/api/v1/jobs/{job_id}").json())["status"] not in ("completed", "failed"):
            assert time.time() < deadline
            time.sleep(0.2)
        assert job["status"] == "completed", job
        runs = c.get("/runs", params={"kind": "sweep"}).json()["runs"]
        assert len(runs) == 1
        run = c.get(f"/runs/{runs[0]['id']}").json()
        assert run["sweep"]["sweep_run_id"] == job["sweep_run_id"] and run["sweep"]["job_id"] == job_id
        best = c.get(run["sweep"]["results_url"]).json()["results"][0]
        assert (run["parameters"]["fast_period"], run["parameters"]["slow_period"]) == (
            best["fast_period"], best["slow_period"])

        replay = c.post(f"/api/v1/runs/{run['id']}/replay")
        assert replay.status_code == 200, replay.text
        replay = replay.json()
        for key in METRICS:
            assert replay["metrics"][key] == run["metrics"][key] == (best[key] if key in best else run["metrics"][key]), key

        cmp = c.get("/runs/compare", params={"ids": f"1,{replay['id']}"}).json()
        assert cmp["ids"] == [1, replay["id"]] and len(cmp["equity"]["series"]) == 2
        assert cmp["metrics"]["score"][1] == run["metrics"]["score"]
        trades = c.get(f"/runs/{replay['id']}/trades.csv")
        assert trades.status_code == 200 and trades.text.count("\n") == replay["total_trades"] + 1
        equity = c.get(f"/api/v1/runs/{replay['id']}/equity.csv")
        assert equity.status_code == 200 and equity.text.startswith("timestamp,equity,buy_and_hold,drawdown_pct\n")
