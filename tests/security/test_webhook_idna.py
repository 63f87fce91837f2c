"""Issue 12, item 12: webhook hosts are IDNA-normalised at submission (stored in ASCII),
refused with a 400 when they cannot be normalised or normalise to a forbidden address,
and a URL already stored in any form never makes a delivery attempt raise.

Real stacks: distributed (processes, Postgres, RabbitMQ; loopback allow-listed for the
test's receiver, private and metadata ranges refused) and standalone in the dev case."""

from __future__ import annotations

import json

import pytest
from hindsight.jobs.v1 import jobs_pb2
from hindsight.results.v1 import results_pb2, results_pb2_grpc

from libs import grpc_util
from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.notifier.receivers import Receiver
from tests.security.conftest import settled_deliveries, start_standalone_at, stop, sweep
from tests.stacks import start_distributed

FAST_NOTIFY = {
    "HINDSIGHT_NOTIFY_RETRY_BASE_SECONDS": "0.2",
    "HINDSIGHT_NOTIFY_MAX_ATTEMPTS": "3",
    "HINDSIGHT_WEBHOOK_TIMEOUT_SECONDS": "2",
}
CIRCLED = str.maketrans("0123456789", "⓪①②③④⑤⑥⑦⑧⑨")


def circled(text: str) -> str:
    return text.translate(CIRCLED)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    db, db_url = create_database()
    vhost, amqp = create_vhost()
    s = start_distributed(db_url, amqp, tmp_path_factory.mktemp("idna-logs"),
                          extra_env={**FAST_NOTIFY, "HINDSIGHT_WEBHOOK_ALLOW": "127.0.0.0/8"})
    yield s
    s.stop()
    drop_database(db)
    delete_vhost(vhost)


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def test_unicode_hosts_are_normalised_or_refused_at_submission(stack, receiver):
    with stack.client(headers={"X-API-Key": stack.api_key}) as c:
        # Normalises to a forbidden address: 10.0.0.1, 169.254.169.254 (fullwidth digits).
        for url in (f"http://{circled('10.0.0.1')}/hook", "http://１６９.２５４.１６９.２５４/latest"):
            r = sweep(c, url)
            assert r.status_code == 400, (url, r.text)
            assert "private" in r.text or "metadata" in r.text, r.text
        # Cannot be normalised (an emoji, a hyphen-led label, a bare zero-width space).
        for url in ("http://💩.la/hook", "http://-a.bücher.example/", "http://\u200b/"):
            r = sweep(c, url)
            assert r.status_code == 400, (url, r.text)
            assert r.json()["error"]["details"]["errors"][0]["field"] == "webhook_url"
        run = {"user_id": "u1", "strategy_id": "5708424d-5962-4629-978c-05b3a174e104",
               "start_date": "2024-01-01", "end_date": "2024-01-02", "webhook_url": "http://💩.la/"}
        for method, path, body in (("PUT", "/api/v1/settings/notifications", {"webhook_url": "http://💩.la/"}),
                                   ("POST", "/api/v1/backtest/run", run)):
            r = c.request(method, path, json=body)
            assert r.status_code == 400 and "webhook_url" in r.text, (path, r.text)

        # Normalises to an allowed place: stored (and shown) in ASCII.
        r = sweep(c, f"http://{circled('127.0.0.1')}:{receiver.port}/hook/ü")
        assert r.status_code == 202, r.text
        job = c.get(f"/api/v1/jobs/{r.json()['job_id']}").json()
        assert job["webhook_url"] == f"http://127.0.0.1:{receiver.port}/hook/%C3%BC"
        (d,) = settled_deliveries(c, job["job_id"], stack=stack)
        assert d["state"] == "delivered" and d["target"].isascii(), d
        assert receiver.for_job(job["job_id"])[0].path == "/hook/%C3%BC"
        r = c.put("/api/v1/settings/notifications", json={"webhook_url": "https://Bücher.example/hook"})
        assert r.status_code == 200 and r.json()["webhook_url"] == "https://xn--bcher-kva.example/hook", r.text


def _submit_raw(stack, webhook_url: str) -> str:
    """A job whose stored webhook URL bypassed the gateway (a row from before normalisation)."""
    with grpc_util.blocking_channel(stack.env["RESULTS_ADDR"], stack.env["HINDSIGHT_INTERNAL_TOKEN"]) as chan:
        stub = results_pb2_grpc.ResultsServiceStub(chan)
        req = results_pb2.SubmitJobRequest(
            tenant_id="e2e", job_kind=jobs_pb2.JOB_KIND_SWEEP, webhook_url=webhook_url,
            parameters_json=json.dumps({"ticker": "BTC-USD"}),
            sweep=jobs_pb2.SweepSpec(ticker="BTC-USD", fast_min=10, fast_max=20, slow_min=20, slow_max=30, step=5,
                                     min_trades=10, strategy_type="SMA"),
        )
        return stub.SubmitJob(req, timeout=10).job.job_id


def test_delivery_never_raises_on_a_stored_url(stack, receiver):
    """The engine fails each job (no BTC-USD data); the notifier delivers to the stored URLs."""
    good = _submit_raw(stack, f"http://{circled('127.0.0.1')}:{receiver.port}/hook")
    bad = _submit_raw(stack, "http://💩.la/hook")
    with stack.client(headers={"X-API-Key": stack.api_key}) as c:
        (d,) = settled_deliveries(c, good, stack=stack)
        assert d["state"] == "delivered" and d["attempt_count"] == 1, d
        assert len(receiver.for_job(good)) == 1
        (d,) = settled_deliveries(c, bad, stack=stack)
        assert d["state"] == "failed" and d["attempt_count"] == 1, d  # failed cleanly, not retried for a day
        assert "internationalised domain name" in d["attempts"][0]["error"], d
    log = stack.logs["notifier"].read_text(errors="replace")
    assert "Traceback" not in log and "TypeError" not in log, log[-3000:]


def test_dev_case_delivers_to_a_unicode_spelling_of_loopback(tmp_path_factory, receiver):
    """The audit's `①②⑦.0.0.1`: accepted where loopback is (standalone, loopback, no
    HINDSIGHT_REQUIRE_AUTH), stored as 127.0.0.1, delivered."""
    s = start_standalone_at(tmp_path_factory.mktemp("idna-data"), tmp_path_factory.mktemp("idna-dev-logs"),
                            FAST_NOTIFY)
    try:
        with s.client() as c:
            r = sweep(c, f"http://①②⑦.0.0.1:{receiver.port}/hook")
            assert r.status_code == 202, r.text
            job_id = r.json()["job_id"]
            assert c.get(f"/api/v1/jobs/{job_id}").json()["webhook_url"] == f"http://127.0.0.1:{receiver.port}/hook"
            (d,) = settled_deliveries(c, job_id, stack=s)
            assert d["state"] == "delivered" and d["attempt_count"] == 1, d
    finally:
        stop(s)
    assert "Traceback" not in s.logs["standalone"].read_text(errors="replace")
