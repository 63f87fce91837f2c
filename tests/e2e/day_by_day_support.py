"""Shared by the seed-002 and seed-004 end-to-end flows: one stack per mode for both
modules, a faithful EventSource, and the independent expectation of the trades of the
e2e strategy on the demo minute bars (TA-Lib RSI + the plain-Python bar loop)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.engine.day_by_day_reference import RefNode, local_days, simulate
from tests.stacks import _spawn, free_port, start_distributed, start_standalone

# The seeds' own strategy id: clients keep their ids (PUT creates under it).
SEED_STRATEGY_ID = "5708424d-5962-4629-978c-05b3a174e104"
SHARD_DAYS = 10
TZ = "Asia/Kolkata"
STRATEGY = {
    "name": "RSI mean reversion (e2e)",
    "dataset": {"ticker": "DEMO-MINUTE", "interval": "1m"},
    "session": {"square_off": "14:45"},
    "entries": [{"id": "entry-1", "name": "RSI oversold", "condition": "RSI(14) < 30", "side": "buy", "quantity": 10,
                 "stop_loss": {"type": "percent", "value": 0.3}, "target": {"type": "points", "value": 12},
                 "max_reentries": 2}],
    "exits": [{"id": "exit-1", "name": "RSI recovered", "condition": "RSI(14) > 60"}],
}


# One stack per mode for both modules (each module imports the fixture, so each has its
# own copy of it): started on first use, stopped when the test session ends.
_STACKS: dict[str, object] = {}


def _start(mode: str, tmp_path_factory, config):
    logs = tmp_path_factory.mktemp(f"dbd-logs-{mode}")
    # Ranges over 10 days are split into shards (the seed-004 flow's 30 days: three).
    shards = {"HINDSIGHT_DAY_SHARD_DAYS": str(SHARD_DAYS)}
    if mode == "standalone":
        s = start_standalone(tmp_path_factory.mktemp("dbd-data"), logs, shards)

        def stop() -> None:
            codes = s.stop(signal.SIGINT)
            assert codes["standalone"] == 0, s.log_text()

        config.add_cleanup(stop)
        return s
    db, db_url = create_database()
    vhost, amqp = create_vhost()
    artifacts = tmp_path_factory.mktemp("dbd-artifacts")
    s = start_distributed(db_url, amqp, logs, {"HINDSIGHT_ARTIFACT_DIR": str(artifacts), **shards})

    def stop_distributed() -> None:
        s.stop()
        drop_database(db)
        delete_vhost(vhost)

    config.add_cleanup(stop_distributed)
    # A second engine replica: the shards of one backtest are shared out between them.
    env = dict(s.env, ENGINE_PORT=str(free_port()))
    s.procs["engine2"], s.logs["engine2"] = _spawn("engine2", "services.engine", env, logs)
    deadline = time.time() + 60
    while "serving gRPC" not in s.logs["engine2"].read_text():
        assert s.procs["engine2"].poll() is None and time.time() < deadline, s.log_text()
        time.sleep(0.1)
    return s


@pytest.fixture(scope="session", params=["standalone", "distributed"], name="dbd_stack")
def dbd_stack_fixture(request, tmp_path_factory):
    if request.param not in _STACKS:
        _STACKS[request.param] = _start(request.param, tmp_path_factory, request.config)
    return _STACKS[request.param]


def auth_headers(stack) -> dict[str, str]:
    """The seeds' clients send no credentials: fine on `make run`'s loopback stack; the
    distributed mode always requires a key, so there (only) the key is added."""
    return {} if stack.mode == "standalone" else {"X-API-Key": stack.api_key}


@pytest.fixture(scope="session", name="seed_strategy")
def seed_strategy_fixture(dbd_stack) -> str:
    r = httpx.put(f"{dbd_stack.base_url}/api/v1/strategies/{SEED_STRATEGY_ID}", json=STRATEGY,
                  headers=auth_headers(dbd_stack), timeout=30)
    assert r.status_code in (200, 201), r.text
    return SEED_STRATEGY_ID


class EventSource:
    """What a browser's EventSource does with a text/event-stream: fields `event`, `data`
    (lines joined by newlines), `id` (kept as lastEventId), comments ignored; events
    dispatched by type ("message" when unnamed)."""

    def __init__(self, client: httpx.Client, url: str, headers: dict[str, str] | None = None) -> None:
        self.client = client
        self.url = url
        self.headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", **(headers or {})}
        self.last_event_id = ""
        self.listeners: dict[str, list] = {}
        self.closed = False
        self.status = 0

    def add_event_listener(self, name: str, fn) -> None:
        self.listeners.setdefault(name, []).append(fn)

    def close(self) -> None:
        self.closed = True

    def run(self, timeout: float = 120) -> None:
        headers = dict(self.headers)
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        with self.client.stream("GET", self.url, headers=headers, timeout=timeout) as resp:
            self.status = resp.status_code
            if resp.status_code != 200 or not resp.headers.get("content-type", "").startswith("text/event-stream"):
                self.closed = True
                return
            name, data = "", []
            for line in resp.iter_lines():
                if self.closed:
                    return
                if line == "":
                    if data:
                        event = {"type": name or "message", "data": "\n".join(data), "lastEventId": self.last_event_id}
                        for fn in self.listeners.get(event["type"], []):
                            fn(event)
                    name, data = "", []
                    continue
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "event":
                    name = value
                elif field == "data":
                    data.append(value)
                elif field == "id":
                    self.last_event_id = value


def demo_bars():
    from services.results.demo_datasets import demo_minute

    return demo_minute().bars


def expected_trades(start: str, end: str) -> dict[str, list[tuple]]:
    """Trades of STRATEGY per ISO date, computed without the engine: TA-Lib's RSI and the
    plain-Python bar loop of tests/engine/day_by_day_reference.py on the same demo bars.
    Each trade: (node, re_entry_num, entry ISO time, exit ISO time, entry price, exit price, reason)."""
    import talib

    b = demo_bars()
    zone = ZoneInfo(TZ)
    local = [datetime.fromtimestamp(ns / 1e9, UTC).astimezone(zone) for ns in b.ts.tolist()]
    minutes = [t.strftime("%H:%M") for t in local]
    rsi = talib.RSI(b.close, 14)
    with __import__("numpy").errstate(invalid="ignore"):
        entry, exit_ = (rsi < 30).tolist(), (rsi > 60).tolist()
    node = RefNode("entry-1", "buy", 10, ("percent", 0.3), ("points", 12.0), 2, entry, exit_)
    all_days = local_days(b.ts.tolist(), TZ, None, None)
    days = [d for d in all_days if start <= local[d[0]].date().isoformat() <= end]
    trades = simulate(b.open.tolist(), b.high.tolist(), b.low.tolist(), b.close.tolist(), days, minutes, "14:45", [node])
    out: dict[str, list[tuple]] = {local[d[0]].date().isoformat(): [] for d in days}
    for t in trades:
        entry_t = local[t.entry_bar]
        exit_t = local[t.exit_bar]
        if t.reason == "square_off" and minutes[t.exit_bar] < "14:45":  # closed at the day's last close
            exit_t = exit_t + timedelta(minutes=1)
        out[entry_t.date().isoformat()].append(
            (t.node, t.re_entry, entry_t.isoformat(timespec="seconds"), exit_t.isoformat(timespec="seconds"),
             t.entry_raw, t.exit_raw, t.reason)
        )
    for v in out.values():
        v.sort(key=lambda x: x[2])
    return out


def json_lines(items: Iterator) -> list:
    return [json.loads(x) for x in items]


def wait_completed(c: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    """The job once completed (failing if it ends otherwise or takes longer)."""
    deadline = time.time() + timeout
    while (job := c.get(f"/api/v1/jobs/{job_id}").json())["status"] != "completed":
        assert job["status"] in ("queued", "running") and time.time() < deadline, job
        time.sleep(0.2)
    return job


def run_of_job(c: httpx.Client, job_id: str) -> dict:
    """The saved run (its detail) that a day-by-day job left."""
    listed = c.get("/runs", params={"kind": "day_by_day", "limit": 1000}).json()["runs"]
    match = [r for r in listed if c.get(f"/runs/{r['id']}").json()["job_id"] == job_id]
    assert len(match) == 1, listed
    return c.get(f"/runs/{match[0]['id']}").json()


def completed_run(c: httpx.Client, strategy_id: str, user_id: str, start: str, end: str) -> tuple[str, dict]:
    """Run the strategy day by day for `user_id` over [start, end]; (job id, its saved run)."""
    r = c.post("/api/v1/backtest/run", json={"user_id": user_id, "strategy_id": strategy_id,
                                             "start_date": start, "end_date": end})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    wait_completed(c, job_id)
    return job_id, run_of_job(c, job_id)
