"""Issue 12, item 1: the dev key and loopback webhooks exist only in standalone bound to
loopback without HINDSIGHT_REQUIRE_AUTH, the start banner says which case holds, and
/deliveries tells no network failure from another (no loopback port scanner).

Real standalone stacks (processes): one in the dev case, its data directory restarted
with HINDSIGHT_REQUIRE_AUTH=1 (the dev key created earlier is still in the database),
and one bound to 127.0.0.2 (not a loopback bind for Hindsight)."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.security.conftest import banner, settled_deliveries, start_standalone_at, stop, sweep
from tests.stacks import DEV_KEY, free_port

OPS_KEY = "ops-key-" + "7" * 32
FAST_NOTIFY = {
    "HINDSIGHT_NOTIFY_RETRY_BASE_SECONDS": "0.2",
    "HINDSIGHT_NOTIFY_MAX_ATTEMPTS": "2",
    "HINDSIGHT_WEBHOOK_TIMEOUT_SECONDS": "1",
}


@pytest.fixture(scope="module")
def dev_then_locked(tmp_path_factory):
    """A data directory first run in the dev case (dev key created, a session cookie taken
    with it), then the same directory restarted with HINDSIGHT_REQUIRE_AUTH=1."""
    data, logs = tmp_path_factory.mktemp("devkey-data"), tmp_path_factory.mktemp("devkey-logs")
    dev = start_standalone_at(data, logs, FAST_NOTIFY)
    try:
        with dev.client() as c:
            assert c.get("/api/v1/jobs", headers={"X-API-Key": DEV_KEY}).status_code == 200
            login = c.post("/api/v1/auth/login", json={"api_key": DEV_KEY})
            assert login.status_code == 200, login.text
            cookie = login.headers["set-cookie"].split(";", 1)[0]
        dev_banner = banner(dev)
    finally:
        stop(dev)
    locked = start_standalone_at(data, tmp_path_factory.mktemp("locked-logs"),
                                 {"HINDSIGHT_REQUIRE_AUTH": "1", "HINDSIGHT_BOOTSTRAP_KEYS": f"ops:{OPS_KEY}"})
    yield locked, cookie, dev_banner
    stop(locked)


@pytest.fixture(scope="module")
def public_bind(tmp_path_factory):
    s = start_standalone_at(tmp_path_factory.mktemp("pub-data"), tmp_path_factory.mktemp("pub-logs"),
                            {"HINDSIGHT_BOOTSTRAP_KEYS": f"ops:{OPS_KEY}"}, host="127.0.0.2")
    yield s
    stop(s)


def test_dev_case_banner_says_dev_key_and_loopback_webhooks_hold(dev_then_locked):
    _, _, text = dev_then_locked
    assert f"API key  {DEV_KEY}  (tenant 'dev'; header X-API-Key)" in text
    assert "Webhooks to loopback receivers (127.0.0.0/8, ::1) are allowed in standalone mode" in text


def test_require_auth_refuses_the_stored_dev_key_and_its_sessions(dev_then_locked):
    locked, cookie, _ = dev_then_locked
    with locked.client() as c:
        for headers in ({"X-API-Key": DEV_KEY}, {"Authorization": f"Bearer {DEV_KEY}"}, {"Cookie": cookie}, {}):
            r = c.get("/api/v1/jobs", headers=headers)
            assert r.status_code == 401, (headers, r.text)
        assert c.post("/api/v1/auth/login", json={"api_key": DEV_KEY}).status_code == 401
        assert c.get("/api/v1/jobs", headers={"X-API-Key": OPS_KEY}).status_code == 200
    text = banner(locked)
    assert DEV_KEY not in text
    assert "the dev key is off (HINDSIGHT_REQUIRE_AUTH is set)" in text
    assert "Webhooks to loopback receivers are refused (HINDSIGHT_REQUIRE_AUTH is set)" in text


def test_require_auth_refuses_loopback_webhooks(dev_then_locked):
    locked, _, _ = dev_then_locked
    with locked.client(headers={"X-API-Key": OPS_KEY}) as c:
        for url in (f"http://127.0.0.1:{free_port()}/", f"http://localhost:{free_port()}/hook", "http://[::1]:9/"):
            r = sweep(c, url)
            assert r.status_code == 400, (url, r.text)
            assert "loopback" in r.text
        r = c.put("/api/v1/settings/notifications", json={"webhook_url": "http://127.0.0.1:8000/"})
        assert r.status_code == 400 and "loopback" in r.text


def test_non_loopback_bind_has_no_dev_key_and_no_loopback_webhooks(public_bind):
    with public_bind.client() as c:
        assert c.get("/api/v1/jobs", headers={"X-API-Key": DEV_KEY}).status_code == 401
        assert c.get("/api/v1/jobs").status_code == 401
    with public_bind.client(headers={"X-API-Key": OPS_KEY}) as c:
        r = sweep(c, f"http://127.0.0.1:{free_port()}/")
        assert r.status_code == 400 and "loopback" in r.text, r.text
    text = banner(public_bind)
    assert DEV_KEY not in text and "bound to 127.0.0.2, not loopback" in text


class _Silent:
    """A listener that accepts connections and never answers (the POST times out)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()


def test_deliveries_tell_no_network_failure_from_another(tmp_path_factory):
    """A closed port, a port that never answers and a name that does not resolve look the
    same in /deliveries: nothing there tells an open port from a closed one."""
    s = start_standalone_at(tmp_path_factory.mktemp("scan-data"), tmp_path_factory.mktemp("scan-logs"), FAST_NOTIFY)
    silent = _Silent()
    try:
        targets = {
            "refused": f"http://127.0.0.1:{free_port()}/hook",
            "timeout": f"http://127.0.0.1:{silent.port}/hook",
            "dns": "http://no-such-host.invalid/hook",
        }
        with s.client() as c:
            jobs = {}
            for what, url in targets.items():
                r = sweep(c, url)
                assert r.status_code == 202, r.text
                jobs[what] = r.json()["job_id"]
            seen = {}
            for what, job_id in jobs.items():
                (d,) = settled_deliveries(c, job_id, stack=s)
                assert d["state"] == "failed" and d["attempt_count"] == 2, d
                seen[what] = [(a["status_code"], a["error"], a["outcome"]) for a in d["attempts"]]
        assert seen["refused"] == seen["timeout"] == seen["dns"] == [
            (None, "network error", "retry"), (None, "network error (gave up after 2 attempts)", "failed")], seen
    finally:
        silent.close()
        stop(s)
