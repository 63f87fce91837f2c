"""The `hindsight` CLI against a live standalone stack (credentials required, so the key
from the environment and from --api-key is exercised): --json outputs checked against
the API, exit codes, and the live progress bars captured once through a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.stacks import ROOT, Stack, start_standalone

pytestmark = pytest.mark.timeout(120)
LAUNCHER = ROOT / ".venv" / "bin" / "hindsight"
# Credentials are required, so the seeds' public dev key is refused: tenant 'dev' gets a key of its own.
DEV_KEY = "cli-key-" + "k" * 32


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_standalone(tmp_path_factory.mktemp("cli-data"), tmp_path_factory.mktemp("cli-logs"),
                         {"HINDSIGHT_REQUIRE_AUTH": "1", "HINDSIGHT_BOOTSTRAP_KEYS": f"dev:{DEV_KEY}"})
    yield s
    s.stop(signal.SIGINT)


def command() -> list[str]:
    """The installed command when `make build` made it, else the same module run directly."""
    return [str(LAUNCHER)] if LAUNCHER.exists() else [sys.executable, "-m", "cli"]


def env_for(stack: Stack, **extra: str) -> dict[str, str]:
    env = dict(os.environ, HINDSIGHT_URL=stack.base_url, HINDSIGHT_API_KEY=DEV_KEY, COLUMNS="100")
    env.update(extra)
    return env


def run(stack: Stack, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command(), *args], capture_output=True, text=True, timeout=90, cwd="/", check=False,
                          env=env if env is not None else env_for(stack))


def run_json(stack: Stack, *args: str) -> dict:
    r = run(stack, "--json", *args)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout)


def in_pty(stack: Stack, *args: str) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as stdout (and stderr); (exit code, output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*command(), *args], stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
                            env=env_for(stack), cwd="/", close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(30), b"".join(chunks).decode(errors="replace")


def test_the_command_is_installed() -> None:
    assert LAUNCHER.exists(), "run `make build`: it installs the hindsight command into .venv/bin"
    r = subprocess.run([str(LAUNCHER), "--help"], capture_output=True, text=True, timeout=30, cwd="/", check=False)
    assert r.returncode == 0 and "exit codes:" in r.stdout and "sweep" in r.stdout


def test_sweep_json_matches_the_api(stack: Stack) -> None:
    out = run_json(stack, "sweep", "DEMO-DAILY", "--strategy", "SMA", "--fast", "10:20", "--slow", "20:30",
                   "--step", "5", "--limit", "50")
    assert out["job"]["parameters"]["combinations"] == 8
    assert out["result"]["done"] is True and out["result"]["status"] == "completed"
    run_id = out["result"]["sweep_run_id"]
    with httpx.Client(base_url=stack.base_url, headers={"X-API-Key": DEV_KEY}) as c:
        best = c.get(f"/api/v1/sweeps/{run_id}/best", params={"ticker": "DEMO-DAILY", "limit": 50}).json()
    assert out["best"]["results"] == best["results"]
    scores = [r["score"] for r in out["best"]["results"]]
    assert scores == sorted(scores, reverse=True)
    # Issue 16: one default for min_trades, the API's (seed 001: 50), also in the CLI.
    assert best["min_trades"] == 50

    # Without --json on a pipe: no progress bar, just the table on stdout.
    r = run(stack, "sweep", "DEMO-DAILY", "--fast", "10:20", "--slow", "20:30", "--step", "5")
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stdout and "[#" not in r.stdout
    lines = r.stdout.splitlines()
    assert lines[1].split()[:3] == ["fast", "slow", "score"]
    assert len(lines) == 3 + best["total_results"]


def test_sweep_of_tickers_and_of_a_universe(stack: Stack) -> None:
    """Issue 11: --tickers A,B,C and --universe NAME run a universe sweep (standalone: its one
    engine takes every shard); a ticker without data fails alone."""
    out = run_json(stack, "sweep", "--tickers", "DEMO-DAILY,NO-SUCH-DATA", "--fast", "10:20", "--slow", "20:30",
                   "--step", "5", "--limit", "50")
    assert out["job"]["parameters"]["combinations"] == 16
    assert out["result"]["status"] == "completed"
    states = {t["ticker"]: (t["status"], t["error_message"]) for t in out["tickers"]}
    assert states == {"DEMO-DAILY": ("completed", None),
                      "NO-SUCH-DATA": ("failed", "Insufficient historical data for ticker NO-SUCH-DATA")}
    single = run_json(stack, "sweep", "DEMO-DAILY", "--fast", "10:20", "--slow", "20:30", "--step", "5", "--limit", "50")
    assert [r for r in out["best"]["results"]] == single["best"]["results"]

    with httpx.Client(base_url=stack.base_url, headers={"X-API-Key": DEV_KEY}) as c:
        assert c.put("/api/v1/universes/cli-two", json={"tickers": ["DEMO-DAILY", "DEMO-MINUTE"]}).status_code in (200, 201)
    r = run(stack, "sweep", "--universe", "cli-two", "--fast", "10:20", "--slow", "20:30", "--step", "5")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "Tickers, best first:"
    assert "DEMO-DAILY" in r.stdout and "DEMO-MINUTE" in r.stdout

    both = run(stack, "sweep", "DEMO-DAILY", "--tickers", "DEMO-MINUTE", "--fast", "10:20", "--slow", "20:30")
    assert both.returncode == 2 and "one of them" in both.stderr
    unknown = run(stack, "sweep", "--universe", "no-such-universe", "--fast", "10:20", "--slow", "20:30")
    assert unknown.returncode == 4 and "no-such-universe" in unknown.stderr


def test_progress_bars_through_a_terminal(stack: Stack, tmp_path: Path) -> None:
    code, text = in_pty(stack, "sweep", "DEMO-MINUTE", "--fast", "5:60", "--slow", "61:200", "--step", "1", "--limit", "3")
    assert code == 0, text
    redraws = [part for part in text.split("\r") if part.startswith("[")]
    assert len(redraws) >= 2, text  # redrawn in place as SSE events arrive
    assert any("100.0 %" in part for part in redraws), text
    assert "fast  slow  score" in text and "Best 3 of" in text

    csv = tmp_path / "big.csv"
    with csv.open("w") as fh:
        fh.write("timestamp,open,high,low,close,volume\n")
        for i in range(60_000):  # ~2.5 MB: the upload bar moves several times
            fh.write(f"{_ts(i)},{100 + i % 7},{101 + i % 7},{99 + i % 7},{100.5 + i % 7},1\n")
    code, text = in_pty(stack, "datasets", "import", str(csv), "--ticker", "CLI-BIG", "--interval", "1m")
    assert code == 0, text
    assert "upload [" in text and "100.0 %" in text
    assert "imported CLI-BIG 1m: 60,000 bars" in text


def _ts(minute: int) -> str:
    """Minute `minute` after 2020-01-01 00:00 (months of 28 days are enough here)."""
    day, rest = divmod(minute, 1440)
    return f"2020-{1 + day // 28:02d}-{1 + day % 28:02d}T{rest // 60:02d}:{rest % 60:02d}:00"


def test_runs_jobs_datasets_and_backtest_json(stack: Stack, tmp_path: Path) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("timestamp,open,high,low,close,volume\n" + "".join(
        f"2022-{1 + i // 28:02d}-{1 + i % 28:02d},{50 + i % 9},{51 + i % 9},{49 + i % 9},{50.5 + i % 9},10\n"
        for i in range(300)))
    ds = run_json(stack, "datasets", "import", str(csv), "--ticker", "CLI-T", "--interval", "1d")
    assert ds["ticker"] == "CLI-T" and ds["bars"] == 300 and ds["version"] == 1
    listed = run_json(stack, "datasets")
    assert ds["dataset_id"] in {d["dataset_id"] for d in listed["datasets"]}

    bt = run_json(stack, "backtest", "DEMO-DAILY", "--strategy", "sma_crossover", "-p", "fast_period=10",
                  "-p", "slow_period=30")
    assert bt["kind"] == "backtest" and bt["parameters"] == {"fast_period": 10, "slow_period": 30}
    assert bt["metrics"]["total_trades"] == len(bt["trades"]) > 0
    shown = run_json(stack, "runs", "show", str(bt["id"]))
    assert shown["id"] == bt["id"] and shown["metrics"] == bt["metrics"]
    replay = run_json(stack, "runs", "replay", str(bt["id"]), "-p", "fast_period=12")
    assert replay["replay_of"] == bt["id"] and replay["parameters"]["fast_period"] == 12
    cmp = run_json(stack, "runs", "compare", str(bt["id"]), str(replay["id"]))
    assert cmp["ids"] == [bt["id"], replay["id"]] and cmp["parameters"]["fast_period"] == [10, 12]

    runs = run_json(stack, "runs", "--kind", "backtest", "--limit", "1")
    assert runs["total"] >= 2 and len(runs["runs"]) == 1 and runs["runs"][0]["id"] == replay["id"]
    jobs = run_json(stack, "jobs", "--status", "completed")
    assert jobs["jobs"] and all(j["status"] == "completed" for j in jobs["jobs"])
    job = run_json(stack, "jobs", "show", jobs["jobs"][0]["job_id"])
    assert job["job_id"] == jobs["jobs"][0]["job_id"]
    watched = run_json(stack, "jobs", "watch", job["job_id"])
    assert watched["done"] is True

    # Cancelling an ended job is refused (409) with exit code 4 and the API's error as JSON on stderr.
    r = run(stack, "--json", "jobs", "cancel", job["job_id"])
    assert r.returncode == 4 and r.stdout == ""
    assert json.loads(r.stderr)["error"]["code"] == "conflict"


def test_datasets_import_format_and_columns(stack: Stack, tmp_path: Path) -> None:
    csv = tmp_path / "acme.csv"
    csv.write_text("Day,First,Max,Min,Last,Shares\n2024-01-02,10,11,9,10.5,100\n2024-01-03,10.5,12,10,11.5,200\n")
    ds = run_json(stack, "datasets", "import", str(csv), "--ticker", "CLI-MAP", "--interval", "1d",
                  "--columns", "timestamp:Day,open:First,high:Max,low:Min,close:Last,volume:Shares")
    assert ds["bars"] == 2 and ds["format"] == "generic" and ds["dropped"] == []
    assert ds["columns"] == {"timestamp": "Day", "open": "First", "high": "Max", "low": "Min", "close": "Last",
                             "volume": "Shares"}
    # Without the mapping the API's 400 names the missing columns (exit 4); an unknown format is a usage error.
    r = run(stack, "datasets", "import", str(csv), "--ticker", "CLI-MAP", "--interval", "1d")
    assert r.returncode == 4 and "the header lacks column(s) timestamp, open, high, low, close, volume" in r.stderr
    r = run(stack, "datasets", "import", str(csv), "--ticker", "CLI-MAP", "--interval", "1d", "--format", "csv")
    assert r.returncode == 2 and "invalid choice: 'csv'" in r.stderr


def test_exit_codes(stack: Stack) -> None:
    failed = run(stack, "--json", "sweep", "BTC-USD", "--fast", "10:20", "--slow", "20:30")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["result"]["message"] == "Insufficient historical data for ticker BTC-USD"
    # Issue 16: the seed's message stays word for word; what to do comes beside it.
    plain = run(stack, "sweep", "BTC-USD", "--fast", "10:20", "--slow", "20:30")
    assert plain.returncode == 1
    assert "sweep failed: Insufficient historical data for ticker BTC-USD" in plain.stderr
    assert "hint: No bars for BTC-USD yet: import a CSV with `hindsight datasets import FILE --ticker BTC-USD" in plain.stderr

    usage = run(stack, "sweep", "DEMO-DAILY", "--fast", "ten", "--slow", "20:30")
    assert usage.returncode == 2 and "MIN:MAX" in usage.stderr

    refused = run(stack, "sweep", "DEMO-DAILY", "--fast", "30:40", "--slow", "20:30")
    assert refused.returncode == 4
    assert "invalid sweep parameters" in refused.stderr and "fast_range" in refused.stderr

    no_key = run(stack, "jobs", env=env_for(stack, HINDSIGHT_API_KEY=""))
    assert no_key.returncode == 5 and "credentials required" in no_key.stderr
    wrong = run(stack, "--api-key", "wrong-key", "jobs")
    assert wrong.returncode == 5
    flag_key = run(stack, "--api-key", DEV_KEY, "jobs", env=env_for(stack, HINDSIGHT_API_KEY=""))
    assert flag_key.returncode == 0

    unreachable = run(stack, "--url", "http://127.0.0.1:9", "jobs")
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr


def test_json_mode_errors_are_json_too(stack: Stack) -> None:
    # Usage errors (argparse's and our own) and Ctrl-C keep the --json promise: one JSON object on stderr.
    for args in (["--json", "sweep", "DEMO-DAILY", "--fast", "ten", "--slow", "20:30"],
                 ["--json", "runs", "show"],
                 ["datasets", "import", "/nonexistent/file.csv", "--ticker", "X", "--interval", "1d", "--json"]):
        r = run(stack, *args)
        assert r.returncode == 2 and r.stdout == "", (args, r.stderr)
        err = json.loads(r.stderr)
        assert err["exit_code"] == 2 and err["error"]["code"] == "usage" and err["error"]["message"], err
    assert "hindsight sweep: error:" in run(stack, "sweep", "DEMO-DAILY", "--fast", "ten", "--slow", "1:2").stderr

    # Ctrl-C while the request hangs (a server that accepts the connection and never answers).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        proc = subprocess.Popen([*command(), "--json", "jobs"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env_for(stack, HINDSIGHT_URL=f"http://127.0.0.1:{silent.getsockname()[1]}"), cwd="/")
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and out == ""
    assert json.loads(err) == {"error": {"code": "interrupted", "message": "interrupted", "details": {}}, "exit_code": 130}


def test_a_closed_stdout_ends_quietly(stack: Stack) -> None:
    # `hindsight --json runs | head -1`: the reader goes away; no traceback, SIGPIPE's exit status.
    read, write = os.pipe()
    os.close(read)
    proc = subprocess.run([*command(), "--json", "datasets"], stdout=write, stderr=subprocess.PIPE, text=True,
                          env=env_for(stack), cwd="/", timeout=60, check=False)
    os.close(write)
    assert proc.returncode == 141 and proc.stderr == "", proc.stderr


def test_a_server_that_is_not_the_api_reads_as_such(stack: Stack) -> None:
    class NotHindsight(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html><h1>Nope</h1></html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotHindsight)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = run(stack, "--url", f"http://127.0.0.1:{server.server_port}", "jobs")
    finally:
        server.shutdown()
    assert r.returncode == 4
    assert "answered without an API error; is --url / HINDSIGHT_URL the Hindsight API? (HTTP 404)" in r.stderr
    assert "<html" not in r.stderr


DEMO_STRATEGY = {
    "name": "CLI RSI reversal",
    "dataset": {"ticker": "DEMO-MINUTE", "interval": "1m"},
    "session": {"timezone": "Asia/Kolkata", "start": "09:15", "end": "15:30", "square_off": "15:25"},
    "entries": [{"id": "entry-1", "condition": "RSI(14) < 30 and time >= 09:30", "side": "buy", "quantity": 1,
                 "stop_loss": {"type": "percent", "value": 0.5}, "target": {"type": "points", "value": 10},
                 "max_reentries": 2}],
    "exits": [{"id": "exit-1", "condition": "RSI(14) > 70", "entries": ["entry-1"]}],
}


def test_strategies_crud_json(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(DEMO_STRATEGY))
    made = run_json(stack, "strategies", "create", str(path))
    sid = made["strategy_id"]
    assert made["name"] == "CLI RSI reversal" and made["definition"]["entries"][0]["condition"].startswith("RSI(14)")
    with httpx.Client(base_url=stack.base_url, headers={"X-API-Key": DEV_KEY}) as c:
        assert run_json(stack, "strategies", "show", sid) == c.get(f"/api/v1/strategies/{sid}").json()
        listed = run_json(stack, "strategies")
        assert listed == c.get("/api/v1/strategies", params={"limit": 100}).json()
        assert sid in {s["strategy_id"] for s in listed["strategies"]}

        # `--json strategies show` output edited and fed back to update: its definition is taken.
        shown = tmp_path / "shown.json"
        shown.write_text(json.dumps({**made, "definition": {**made["definition"], "name": "CLI renamed"}}))
        updated = run_json(stack, "strategies", "update", sid, str(shown))
        assert updated["strategy_id"] == sid and updated["name"] == "CLI renamed"
        assert c.get(f"/api/v1/strategies/{sid}").json()["name"] == "CLI renamed"

        # Human output: the table, and what update did.
        r = run(stack, "strategies")
        assert r.returncode == 0 and r.stdout.splitlines()[0].split()[:3] == ["id", "name", "dataset"]
        assert sid in r.stdout and "CLI renamed" in r.stdout
        r = run(stack, "strategies", "update", sid, str(path))
        assert r.returncode == 0 and r.stdout.strip() == f"updated strategy {sid}: CLI RSI reversal"

        # An invalid definition: refused (4) with the problems; not JSON or no file: usage (2).
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**DEMO_STRATEGY, "entries": []}))
        r = run(stack, "--json", "strategies", "update", sid, str(bad))
        assert r.returncode == 4 and r.stdout == ""
        err = json.loads(r.stderr)
        assert err["exit_code"] == 4 and err["error"]["code"] == "invalid_request"
        assert "entries" in {e["field"] for e in err["error"]["details"]["errors"]}
        r = run(stack, "strategies", "create", str(bad))
        assert r.returncode == 4 and "invalid strategy" in r.stderr and "  - entries:" in r.stderr
        bad.write_text("{not json")
        r = run(stack, "--json", "strategies", "create", str(bad))
        assert r.returncode == 2 and json.loads(r.stderr)["error"]["code"] == "usage"
        assert run(stack, "strategies", "create", str(tmp_path / "missing.json")).returncode == 2

        deleted = run_json(stack, "strategies", "delete", sid)
        assert deleted == {"strategy_id": sid, "deleted": True}
        assert c.get(f"/api/v1/strategies/{sid}").status_code == 404
    gone = run(stack, "--json", "strategies", "show", sid)
    assert gone.returncode == 4 and json.loads(gone.stderr)["error"]["code"] == "not_found"
    assert run(stack, "strategies", "delete", sid).returncode == 4


def test_days_run_and_show(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(DEMO_STRATEGY))
    sid = run_json(stack, "strategies", "create", str(path))["strategy_id"]

    out = run_json(stack, "days", "run", sid, "--start", "2024-01-01", "--end", "2024-01-12", "--user", "cli-user")
    assert out["job"]["status"] == "queued"
    assert out["result"]["done"] is True and out["result"]["status"] == "completed"
    meta = out["metadata"]
    assert meta["job_id"] == out["job"]["job_id"] and meta["status"] == "completed"
    assert (meta["start_date"], meta["end_date"], meta["strategy_id"]) == ("2024-01-01", "2024-01-12", sid)
    with httpx.Client(base_url=stack.base_url, headers={"X-API-Key": DEV_KEY}) as c:
        api_meta = c.get(f"/api/v1/backtest/metadata/cli-user/{sid}").json()
        assert meta == api_meta
        job = c.get(f"/api/v1/jobs/{meta['job_id']}").json()
    assert job["kind"] == "day-backtest" and job["parameters"]["user_id"] == "cli-user"
    assert len(meta["daily_summaries"]) == meta["total_days"] > 0
    assert meta["overall_summary"]["total_positions"] == sum(d["positions"] for d in meta["daily_summaries"]) > 0
    assert run_json(stack, "days", "show", sid, "--user", "cli-user") == api_meta

    # Human output: the overall summary; `days show` adds a row for each day.
    r = run(stack, "days", "show", sid, "--user", "cli-user")
    assert r.returncode == 0, r.stderr
    assert f"for user cli-user: 2024-01-01 -> 2024-01-12, {meta['total_days']} days, completed" in r.stdout
    assert f"positions       {meta['overall_summary']['total_positions']}" in r.stdout
    lines = r.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:3] == ["date", "positions", "pnl"])
    assert len(lines) == head + 2 + meta["total_days"]

    # On a terminal: the sweep's progress bar, redrawn as the days complete, then the summary.
    code, text = in_pty(stack, "days", "run", sid, "--start", "2024-01-01", "--end", "2024-02-23")
    assert code == 0, text
    redraws = [part for part in text.split("\r") if part.startswith("[")]
    assert len(redraws) >= 2 and any("100.0 %" in part for part in redraws), text
    assert "for user dashboard: 2024-01-01 -> 2024-02-23" in text and "win rate %" in text

    # Exit codes: bad dates are usage errors (2); a refused run or unknown data is 4.
    r = run(stack, "--json", "days", "run", sid, "--start", "2024-02-30", "--end", "2024-03-01")
    assert r.returncode == 2 and "YYYY-MM-DD" in json.loads(r.stderr)["error"]["message"]
    r = run(stack, "days", "run", sid, "--start", "2024-02-01", "--end", "2024-01-01")
    assert r.returncode == 2 and "before --start" in r.stderr
    r = run(stack, "--json", "days", "run", "not-a-uuid", "--start", "2024-01-01", "--end", "2024-01-02")
    assert r.returncode == 4 and json.loads(r.stderr)["error"]["details"]["errors"][0]["field"] == "strategy_id"
    r = run(stack, "--json", "days", "show", sid, "--user", "nobody")
    assert r.returncode == 4 and r.stdout == "" and json.loads(r.stderr)["error"]["code"] == "not_found"
    assert run(stack, "days", "run", sid, "--start", "2024-01-01").returncode == 2  # --end is required


def test_strategies_builtin(stack: Stack) -> None:
    """Issue 16: the built-in strategies' parameters from the terminal."""
    listed = run_json(stack, "strategies", "builtin")
    assert [s["name"] for s in listed["strategies"]][:3] == ["sma_crossover", "ema_crossover", "macd_crossover"]
    r = run(stack, "strategies", "builtin")
    assert r.returncode == 0, r.stderr
    assert "sma_crossover  (also: SMA, sma)" in r.stdout
    assert "fast_period    int    default 10  range 1..5000" in r.stdout


def test_runs_report_writes_one_html_file(stack: Stack, tmp_path: Path) -> None:
    """Issue 13: `hindsight runs report ID -o run.html` saves the self-contained report."""
    bt = run_json(stack, "backtest", "DEMO-DAILY", "-p", "fast_period=10", "-p", "slow_period=30")
    target = tmp_path / "run.html"
    r = run(stack, "runs", "report", str(bt["id"]), "-o", str(target))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"wrote {target}" in r.stdout and "opens offline" in r.stdout
    page = target.read_text()
    assert page.startswith("<!doctype html>") and f"Run #{bt['id']}: sma_crossover on DEMO-DAILY" in page
    assert target.stat().st_size < 5_000_000
    with httpx.Client(base_url=stack.base_url, headers={"X-API-Key": DEV_KEY}, timeout=60) as c:
        api_report = c.get(f"/api/v1/runs/{bt['id']}/report", params={"window": 30}).json()
    report = run_json(stack, "runs", "report", str(bt["id"]), "--window", "30")
    assert report["monthly_returns"] == api_report["monthly_returns"] and report["rolling_sharpe"]["window"] == 30
    text = run(stack, "runs", "report", str(bt["id"]))
    assert text.returncode == 0 and "monthly returns %" in text.stdout and "worst drawdowns" in text.stdout
    missing = run(stack, "runs", "report", "999999", "-o", str(tmp_path / "x.html"))
    assert missing.returncode == 4 and "not found" in missing.stderr and not (tmp_path / "x.html").exists()
    bad = run(stack, "runs", "report", str(bt["id"]), "--window", "1")
    assert bad.returncode == 4 and "window" in bad.stderr


def test_runs_montecarlo(stack: Stack) -> None:
    """Issue 14: `hindsight runs montecarlo ID --resamples --seed --method` is the API's answer."""
    bt = run_json(stack, "backtest", "DEMO-DAILY", "-p", "fast_period=10", "-p", "slow_period=30")
    args = ("runs", "montecarlo", str(bt["id"]), "--resamples", "300", "--seed", "7", "--method", "block_bootstrap",
            "--block-days", "5")
    got = run_json(stack, *args)
    with httpx.Client(base_url=stack.base_url, headers={"X-API-Key": DEV_KEY}, timeout=60) as c:
        api = c.post(f"/api/v1/runs/{bt['id']}/montecarlo",
                     json={"resamples": 300, "seed": 7, "method": "block_bootstrap", "block_days": 5}).json()
    assert got == api and got["resamples"] == 300 and got["method"] == "block_bootstrap"
    other = run_json(stack, "runs", "montecarlo", str(bt["id"]), "--resamples", "300", "--seed", "8")
    assert other["method"] == "trades" and other["seed"] == 8
    text = run(stack, *args)
    assert text.returncode == 0, text.stderr
    p50 = api["total_return_pct"]["percentiles"]["p50"]
    assert "total return %" in text.stdout and "max drawdown %" in text.stdout and f"{p50:,.2f}" in text.stdout
    bad = run(stack, "runs", "montecarlo", str(bt["id"]), "--resamples", "0")
    assert bad.returncode == 4 and "resamples" in bad.stderr
    assert run(stack, "runs", "montecarlo", str(bt["id"]), "--method", "nope").returncode == 2


def test_strategies_sweep(stack: Stack, tmp_path: Path) -> None:
    """Issue 14: `hindsight strategies sweep ID -p name=START:STOP:STEP ...` follows the job and
    prints the best combinations with their parameters and the overfitting statistics."""
    definition = {
        "name": "RSI dip (CLI sweep)", "dataset": {"ticker": "DEMO-MINUTE", "interval": "1m"},
        "parameters": {"rsi_len": 14, "oversold": 30},
        "entries": [{"condition": "RSI({rsi_len}) < {oversold}", "side": "buy", "quantity": 1}],
        "exits": [{"condition": "RSI({rsi_len}) > 60"}],
    }
    path = tmp_path / "rsi.json"
    path.write_text(json.dumps(definition))
    sid = run_json(stack, "strategies", "create", str(path))["strategy_id"]
    args = ("strategies", "sweep", sid, "-p", "rsi_len=10:14:4", "-p", "oversold=25:35:10", "--start", "2024-01-08",
            "--end", "2024-01-19", "--min-trades", "1", "--limit", "10")
    got = run_json(stack, *args)
    assert got["result"]["status"] == "completed" and got["job"]["combinations"] == 4
    rows = got["best"]["results"]
    assert rows and {(r["parameters"]["rsi_len"], r["parameters"]["oversold"]) for r in rows} <= {
        (10, 25), (10, 35), (14, 25), (14, 35)}
    assert got["best"]["overfitting"]["trials"] == 4
    text = run(stack, *args)
    assert text.returncode == 0, text.stderr
    assert "rsi_len" in text.stdout and "oversold" in text.stdout and "deflated Sharpe ratio" in text.stdout
    bad = run(stack, "strategies", "sweep", sid, "-p", "rsi_len=10:14:4", "--start", "2024-01-08", "--end", "2024-01-19")
    assert bad.returncode == 4 and "oversold" in bad.stderr  # a placeholder with no range
    assert run(stack, "strategies", "sweep", sid, "-p", "rsi_len=10:14", "--start", "2024-01-08",
               "--end", "2024-01-19").returncode == 2


def test_sweep_of_rsi_reversion(stack: Stack) -> None:
    """Issue 14: `hindsight sweep TICKER --strategy RSI --period --oversold --overbought`."""
    args = ("sweep", "DEMO-DAILY", "--strategy", "RSI", "--period", "10:14", "--step", "2", "--oversold", "25:35",
            "--overbought", "65:75", "--threshold-step", "5", "--min-trades", "10", "--limit", "30")
    got = run_json(stack, *args)
    assert got["result"]["status"] == "completed" and got["job"]["parameters"]["combinations"] == 27
    rows = got["best"]["results"]
    assert rows and all(set(r["parameters"]) == {"period", "oversold", "overbought"} for r in rows)
    assert got["best"]["total_results"] + got["best"]["excluded_below_min_trades"] == 27
    text = run(stack, *args)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[1].split()[:3] == ["period", "oversold", "overbought"]
    missing = run(stack, "sweep", "DEMO-DAILY", "--strategy", "RSI", "--period", "10:14")
    assert missing.returncode == 2 and "--oversold" in missing.stderr
    assert run(stack, "sweep", "DEMO-DAILY", "--fast", "10:20").returncode == 2  # --slow is needed


def test_walkforward_json_table_and_progress_bar(stack: Stack) -> None:
    args = ["walkforward", "DEMO-DAILY", "--fast", "5:20", "--slow", "20:60", "--step", "5", "--min-trades", "10",
            "--train", "500", "--test", "250"]
    out = run_json(stack, *args)
    assert out["job"]["folds"] == (2000 - 750) // 250 + 1 == 6
    assert out["result"]["status"] == "completed"
    with httpx.Client(base_url=stack.base_url, headers={"X-API-Key": DEV_KEY}) as c:
        wf = c.get(f"/api/v1/walkforward/{out['job']['job_id']}").json()
    assert out["walkforward"] == wf and len(wf["folds"]) == 6 and wf["step_bars"] == 250  # --step-bars: --test

    # On a terminal: the progress bar redrawn as folds complete, then the folds table and the summary.
    code, text = in_pty(stack, *args, "--anchored", "--objective", "total_return_pct")
    assert code == 0, text
    redraws = [part for part in text.split("\r") if part.startswith("[")]
    assert any("100.0 %" in part for part in redraws), text
    assert "6 folds, chosen on total_return_pct" in text and "anchored" in text
    assert "OOS return %" in text and "walk-forward efficiency" in text

    # Windows longer than the data: the API's 400, exit 4, nothing queued.
    refused = run(stack, "walkforward", "DEMO-DAILY", "--fast", "5:20", "--slow", "20:60", "--train", "1900",
                  "--test", "250")
    assert refused.returncode == 4 and "longer than the data" in refused.stderr, refused.stderr
