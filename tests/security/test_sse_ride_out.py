"""Issue 12, finding 14: SSE streams ride out a results restart.

A stream open while results is SIGKILLed stays open (keep-alive comments) while the
gateway reconnects to results itself, then goes on from the last event it forwarded:
every event once, in order, then the terminal event. A client's reconnect with
Last-Event-ID during the outage waits for results instead of getting a 503 (after
which a browser's EventSource would stop reconnecting); so does the day-by-day stream,
and a request results would refuse (a wrong key, an unknown job) waits for its 401 or
404: nothing gets through without results' word.

The distributed stack as processes (Postgres, RabbitMQ); a sweep of a few seconds runs
while results is killed and started again."""

from __future__ import annotations

import itertools
import json
import threading
import time

import httpx
import pytest

from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.e2e.day_by_day_support import SEED_STRATEGY_ID, STRATEGY
from tests.e2e.test_seed001_flow import minute_csv
from tests.gateway.helpers import sse_events
from tests.security.conftest import wait_for
from tests.stacks import Stack, start_distributed, wait_healthy

TICKER = "RIDE-OUT"
# ~3,000 combinations x 150,000 bars: seconds of work, progress a few times a second.
SWEEP = {"ticker": TICKER, "fast_range": [5, 40], "slow_range": [41, 120], "step": 1, "min_trades": 10,
         "strategy_type": "SMA"}
OUTAGE_SECONDS = 4


class StreamReader(threading.Thread):
    """Reads one SSE response in the background: its status and every line with the time it came."""

    def __init__(self, stack: Stack, path: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=stack.base_url, timeout=httpx.Timeout(10, read=60),
                                   headers={"X-API-Key": stack.api_key, **(headers or {})})
        self.path = path
        self.status: int | None = None
        self.answered = threading.Event()
        self.lines: list[tuple[float, str]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.client.stream("GET", self.path) as resp:
                self.status = resp.status_code
                self.answered.set()
                for line in resp.iter_lines():
                    self.lines.append((time.monotonic(), line))
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.answered.set()
            self.client.close()

    def events(self) -> list[dict]:
        return list(sse_events(line for _, line in list(self.lines)))

    def comments_since(self, t: float) -> list[str]:
        return [line for at, line in list(self.lines) if at >= t and line.startswith(":")]

    def error_code(self) -> str:
        """The `error.code` of a JSON error answer."""
        return json.loads("".join(line for _, line in self.lines))["error"]["code"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    db, db_url = create_database()
    vhost, amqp = create_vhost()
    s = start_distributed(db_url, amqp, tmp_path_factory.mktemp("ride-out-logs"))
    try:
        with s.client(headers={"X-API-Key": s.api_key}) as c:
            r = c.post("/api/v1/datasets", files={"file": ("big.csv", minute_csv(150_000), "text/csv")},
                       data={"ticker": TICKER, "interval": "1m", "calendar": "continuous"})
            assert r.status_code == 201, r.text
        yield s
    finally:
        s.stop()
        drop_database(db)
        delete_vhost(vhost)


@pytest.fixture(autouse=True)
def results_back(stack):
    """Results running again after each test, whatever the test did (the next one needs it)."""
    yield
    if stack.procs["results"].poll() is not None:
        stack.restart("results")
    wait_healthy(stack)


def _submit(s: Stack) -> str:
    with s.client(headers={"X-API-Key": s.api_key}) as c:
        r = c.post("/api/v1/strategy/sweep", json=SWEEP)
        assert r.status_code == 202, r.text
        return r.json()["job_id"]


def _running(reader: StreamReader, s: Stack) -> int:
    """The id of a progress event of the running kernel (the sweep is well under way)."""

    def check():
        running = [e for e in reader.events() if "Processing" in e["data"].get("message", "")]
        return running[-1]["id"] if running else None

    return wait_for(check, 60, "a progress event of the running sweep", s)


def _results_outage(s: Stack) -> float:
    """SIGKILL results; returns when it was killed."""
    s.kill("results")
    return time.monotonic()


def _assert_complete(events: list[dict], after: int = 0) -> None:
    ids = [e["id"] for e in events]
    assert ids and ids[0] > after, ids
    assert all(a < b for a, b in itertools.pairwise(ids)), f"ids not strictly increasing: {ids}"
    assert events[-1]["data"].get("done") is True and events[-1]["data"]["status"] == "completed", events[-1]
    assert not any(e["data"].get("done") or e["data"].get("error") for e in events[:-1]), events


def test_open_stream_rides_out_a_results_restart(stack):
    s = stack
    job_id = _submit(s)
    reader = StreamReader(s, f"/api/v1/jobs/{job_id}/stream")
    reader.start()
    before = _running(reader, s)

    killed = _results_outage(s)
    time.sleep(OUTAGE_SECONDS)
    # Still open, kept alive by comments, nothing after the events it had.
    assert reader.is_alive(), f"the stream ended during the outage: {reader.events()[-3:]} {reader.error!r}"
    assert reader.comments_since(killed), "no keep-alive comment during the outage"
    during = reader.events()
    assert not any(e["data"].get("done") or e["data"].get("error") for e in during), during[-1]

    s.restart("results")
    reader.join(60)
    assert not reader.is_alive(), "the stream did not end after results came back\n" + s.log_text()
    assert reader.error is None and reader.status == 200, reader.error
    events = reader.events()
    _assert_complete(events)
    assert events[-1]["id"] > max(before, during[-1]["id"]), "no event after the restart"


def test_reconnect_during_the_outage_waits_for_results(stack):
    s = stack
    job_id = _submit(s)
    # Follow the stream until the sweep runs, then drop it (as a browser's connection drops).
    with httpx.Client(base_url=s.base_url, headers={"X-API-Key": s.api_key}, timeout=httpx.Timeout(10, read=60)) as c, \
            c.stream("GET", f"/sse-proxy/jobs/{job_id}/stream") as resp:
        for event in sse_events(resp.iter_lines()):
            last_id = event["id"]
            if "Processing" in event["data"].get("message", ""):
                break

    _results_outage(s)
    again = StreamReader(s, f"/sse-proxy/jobs/{job_id}/stream", headers={"Last-Event-ID": str(last_id)})
    again.start()
    time.sleep(OUTAGE_SECONDS)
    # Waiting for results, not answered with a 503 (which would stop an EventSource for good).
    assert again.status is None and again.is_alive(), f"answered {again.status} during the outage"

    s.restart("results")
    again.join(60)
    assert not again.is_alive(), "the resumed stream did not end after results came back\n" + s.log_text()
    assert again.error is None and again.status == 200, (again.status, again.error)
    _assert_complete(again.events(), after=last_id)


def test_day_by_day_stream_and_refusals_wait_for_results(stack):
    s = stack
    with s.client(headers={"X-API-Key": s.api_key}) as c:
        r = c.put(f"/api/v1/strategies/{SEED_STRATEGY_ID}", json=STRATEGY)
        assert r.status_code in (200, 201), r.text
        r = c.post("/api/v1/backtest/start",
                   json={"strategy_id": SEED_STRATEGY_ID, "start_date": "2024-01-01", "end_date": "2024-01-12"})
        assert r.status_code == 200, r.text
        stream_url = r.json()["stream_url"]
        with c.stream("GET", stream_url) as resp:
            whole = list(sse_events(resp.iter_lines()))
    assert whole[-1]["event"] == "backtest_completed", whole[-1]
    mid = whole[6]["id"]

    _results_outage(s)
    resumed = StreamReader(s, stream_url, headers={"Last-Event-ID": str(mid)})
    unknown_job = StreamReader(s, "/api/v1/jobs/sweep_20240101_000000_nosuch_abcdef/stream")
    wrong_key = StreamReader(s, stream_url, headers={"X-API-Key": "wrong-key-" + "x" * 24})
    for reader in (resumed, unknown_job, wrong_key):
        reader.start()
    time.sleep(OUTAGE_SECONDS)
    for reader in (resumed, unknown_job, wrong_key):
        assert reader.status is None and reader.is_alive(), f"{reader.path} answered {reader.status} during the outage"

    s.restart("results")
    for reader in (resumed, unknown_job, wrong_key):
        reader.join(60)
        assert not reader.is_alive() and reader.error is None, (reader.path, reader.error, s.log_text())
    assert resumed.status == 200
    assert resumed.events() == [e for e in whole if e["id"] > mid]
    assert (unknown_job.status, unknown_job.error_code()) == (404, "not_found")
    assert (wrong_key.status, wrong_key.error_code()) == (401, "unauthenticated")
