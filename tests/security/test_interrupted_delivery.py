"""Issue 12, item 15: a webhook POST cut off by a crash of the notifier is sent again with
the same event id, and /deliveries shows every attempt: the cut-off one as "interrupted"
(and, while it hung, as "started": it is recorded before anything is sent).

The distributed stack as processes (Postgres, RabbitMQ); the notifier is SIGKILLed while
the receiver holds its POST unanswered, then started again."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.security.conftest import settled_deliveries, sweep, wait_for
from tests.stacks import start_distributed

NOTIFY_ENV = {
    "HINDSIGHT_WEBHOOK_ALLOW": "127.0.0.0/8",
    "HINDSIGHT_NOTIFY_RETRY_BASE_SECONDS": "0.5",
    # An attempt's claim lasts the timeout + 10 s: the next notifier takes over after it lapses.
    "HINDSIGHT_WEBHOOK_TIMEOUT_SECONDS": "5",
}


class HoldingReceiver:
    """Holds the first POST unanswered (until released); answers 200 to every later one."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({k.lower(): v for k, v in self.headers.items()})
                if len(receiver.requests) == 1:
                    receiver.first_arrived.set()
                    receiver.release.wait(60)
                    return  # never answered: the client is gone by now
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stack(tmp_path_factory):
    db, db_url = create_database()
    vhost, amqp = create_vhost()
    logs = tmp_path_factory.mktemp("interrupted-logs")
    s = start_distributed(db_url, amqp, logs, extra_env=NOTIFY_ENV)
    yield s
    s.stop()
    drop_database(db)
    delete_vhost(vhost)


@pytest.fixture
def receiver():
    r = HoldingReceiver()
    yield r
    r.close()


def test_attempt_cut_off_by_a_notifier_crash_is_listed_as_interrupted(stack, receiver):
    with stack.client(headers={"X-API-Key": stack.api_key}) as c:
        r = sweep(c, receiver.url)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        assert receiver.first_arrived.wait(60), "the first POST never came\n" + stack.log_text()

        # In flight: already listed.
        (d,) = c.get(f"/api/v1/jobs/{job_id}/deliveries").json()["deliveries"]
        assert d["state"] == "pending" and [a["outcome"] for a in d["attempts"]] == ["started"], d

        stack.kill("notifier")  # SIGKILL mid-POST: no outcome reported, the task goes back to the queue
        receiver.release.set()
        stack.restart("notifier")

        (d,) = settled_deliveries(c, job_id, timeout=90, stack=stack)
        assert d["state"] == "delivered" and d["attempt_count"] == 2, d
        first, second = d["attempts"]
        assert (first["attempt"], first["outcome"], first["status_code"]) == (1, "interrupted", None), first
        assert "interrupted" in first["error"] and first["url"] == receiver.url
        assert (second["attempt"], second["outcome"], second["status_code"]) == (2, "delivered", 200), second
        assert first["time"] < second["time"]

    # The same event, sent twice; the receiver's X-Hindsight-Delivery-Attempt says which try it is.
    assert len(receiver.requests) == 2
    assert receiver.requests[0]["x-hindsight-event-id"] == receiver.requests[1]["x-hindsight-event-id"] == d["event_id"]
    assert [h["x-hindsight-delivery-attempt"] for h in receiver.requests] == ["1", "2"]
    time.sleep(0.5)
    assert len(receiver.requests) == 2  # and nothing more
    assert wait_for(lambda: stack.procs["notifier"].poll() is None, 1, "the notifier running")
