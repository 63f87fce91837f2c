"""Seeds 002 and 004 over the gateway with results playing for real and the test playing the
engine: refusals (bad bodies, path traversal, malformed dates, foreign user ids, other
tenants), 409 per user, gzip pass-through, the seed-002 SSE names/ids/resume and ZIPs."""

from __future__ import annotations

import gzip
import io
import json
import uuid
import zipfile

import httpx
import pytest
from hindsight.backtest.v1 import backtest_pb2, backtest_pb2_grpc
from hindsight.results.v1 import results_pb2

from .conftest import ALPHA_KEY
from .helpers import assert_error, jobs_total, sse_events
from .test_strategies import STRATEGY


@pytest.fixture(scope="module")
def days_stub(results):
    results.stub()  # opens the synchronous channel
    return backtest_pb2_grpc.DayBacktestServiceStub(results._channel)


@pytest.fixture()
def sid(alpha) -> str:
    return alpha.post("/api/v1/strategies", json=STRATEGY).json()["strategy_id"]


def day(date: str, n: int, positions: int = 1) -> backtest_pb2.DayArtifacts:
    files = [backtest_pb2.DayFile(name=name, data=gzip.compress(json.dumps({"date": date, "file": name}).encode()))
             for name in ("trades_daily.json.gz", "diagnostics_export.json.gz", "positions.json.gz")]
    summary = {"total_trades": positions, "total_pnl": "5.00", "winning_trades": positions, "losing_trades": 0, "win_rate": "100.00"}
    return backtest_pb2.DayArtifacts(date=date, day_number=n, summary_json=json.dumps(summary), positions=positions,
                                     pnl=5.0 * positions, winning_trades=positions, files=files)


def play_engine(results, days_stub, job_id: str, dates: list[str], complete: bool = True) -> None:
    assert results.stub().StartJob(results_pb2.StartJobRequest(job_id=job_id), timeout=10).proceed
    days_stub.StoreDays(backtest_pb2.StoreDaysRequest(job_id=job_id, days=[day(d, i + 1) for i, d in enumerate(dates)]), timeout=10)
    if complete:
        assert days_stub.CompleteDayBacktest(backtest_pb2.CompleteDayBacktestRequest(job_id=job_id, whole_range=True), timeout=10).stored


def test_bad_bodies_are_400_and_store_nothing(alpha, results, sid):
    before = jobs_total(results.stub(), "alpha")
    good = {"strategy_id": sid, "start_date": "2024-01-01", "end_date": "2024-01-05"}
    bad = [
        {},
        {**good, "strategy_id": "5708424d"},
        {**good, "strategy_id": 42},
        {**good, "start_date": "01-01-2024"},
        {**good, "start_date": "2024-02-30"},
        {**good, "end_date": "2023-12-31"},
        {**good, "initial_capital": -1},
        {**good, "initial_capital": "lots"},
        {**good, "slippage_percentage": -0.1},
        {**good, "commission_percentage": 90},
        {**good, "start_date": "2023-01-01", "end_date": "2023-01-31"},  # no bars: "Failed to fetch market data"
        {**good, "webhook_url": "http://10.0.0.7/hook"},  # SSRF: private address
        {**good, "webhook_url": "http://169.254.169.254/latest"},  # SSRF: cloud metadata
        {**good, "notify_email": "not-an-address"},
    ]
    for body in bad:
        assert_error(alpha.post("/api/v1/backtest/start", json=body), 400)
        assert_error(alpha.post("/api/v1/backtest/run", json={**body, "user_id": "user_123"}), 400)
    for user in ("", "..", "../x", "a/b", "x" * 65, None, 7):
        assert_error(alpha.post("/api/v1/backtest/run", json={**good, "user_id": user}), 400)
    assert_error(alpha.post("/api/v1/backtest/start", json={**good, "strategy_id": str(uuid.uuid4())}), 404)
    assert_error(alpha.post("/api/v1/backtest/start", content="{not json", headers={"Content-Type": "application/json"}), 400)
    assert jobs_total(results.stub(), "alpha") == before


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/api/v1/backtest/day/..%2F..%2Fetc/{sid}/01-01-2024"),
        ("GET", "/api/v1/backtest/day/../{sid}/01-01-2024"),
        ("GET", "/api/v1/backtest/day/user_1/{sid}/..%2F..%2F..%2Fetc%2Fpasswd"),
        ("GET", "/api/v1/backtest/day/user_1/{sid}/2024-01-01"),
        ("GET", "/api/v1/backtest/day/user_1/{sid}/32-01-2024"),
        ("GET", "/api/v1/backtest/day/user_1/{sid}/01-13-2024"),
        ("GET", "/api/v1/backtest/day/user_1/not-a-uuid/01-01-2024"),
        ("GET", "/api/v1/backtest/day/user_1/{sid}%2F..%2Fx/01-01-2024"),
        ("GET", "/api/v1/backtest/metadata/..%2Fother/{sid}"),
        ("GET", "/api/v1/backtest/metadata/user_1/..%2F..%2F{sid}"),
        ("GET", "/api/v1/backtest/metadata/user_1/{sid}/extra"),
        ("DELETE", "/api/v1/backtest/clear/..%2F..%2F/{sid}"),
        ("DELETE", "/api/v1/backtest/clear/user_1/*"),
        ("GET", "/api/v1/backtest/{sid}_2024-01-01_2024-01-05/day/..%2F..%2Fx"),
        ("GET", "/api/v1/backtest/{sid}_2024-01-01_2024-01-05/day/01-02-2024"),
        ("GET", "/api/v1/backtest/{sid}_2024-01-01_2024-01-05/day/2024-02-31"),
        ("GET", "/api/v1/backtest/..%2F..%2F_2024-01-01_2024-01-05/day/2024-01-02"),
        ("GET", "/api/v1/backtest/not-an-id/stream"),
    ],
)
def test_malformed_paths_are_400(gw, sid, method, path):
    url = gw.url + path.format(sid=sid)
    # Send the path as written: no client-side normalisation of '..' or '%2F'.
    with httpx.Client(headers={"X-API-Key": ALPHA_KEY}) as c:
        req = c.build_request(method, url)
        req.url = req.url.copy_with(raw_path=path.format(sid=sid).encode())
        resp = c.send(req)
    assert_error(resp, 400)


def test_seed004_run_status_metadata_day_clear(alpha, beta, results, days_stub, sid):
    r = alpha.post("/api/v1/backtest/run", json={"user_id": "user_123", "strategy_id": sid,
                                                 "start_date": "2024-01-01", "end_date": "2024-01-05"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued" and body["job_id"].startswith("bt_") and body["message"]
    job_id = body["job_id"]
    again = alpha.post("/api/v1/backtest/run", json={"user_id": "user_123", "strategy_id": sid,
                                                     "start_date": "2024-01-01", "end_date": "2024-01-05"})
    err = assert_error(again, 409, "conflict")
    assert "Job already running" in err["message"]
    status = alpha.get(f"/api/v1/backtest/status/{job_id}").json()
    assert status["status"] == "queued" and status["progress"] == {
        "current_date": None, "completed_days": 0, "total_days": 5, "percentage": 0.0}
    assert status["error"] is None and status["user_id"] == "user_123"
    play_engine(results, days_stub, job_id, ["2024-01-01", "2024-01-02"], complete=False)
    status = alpha.get(f"/api/v1/backtest/status/{job_id}").json()
    assert status["status"] == "running" and status["progress"]["percentage"] == 40.0
    assert status["progress"]["current_date"] == "2024-01-02" and status["estimated_completion"]
    days_stub.StoreDays(backtest_pb2.StoreDaysRequest(job_id=job_id, days=[day("2024-01-03", 3, 0)]), timeout=10)
    days_stub.CompleteDayBacktest(backtest_pb2.CompleteDayBacktestRequest(job_id=job_id, whole_range=True), timeout=10)
    assert alpha.get(f"/api/v1/backtest/status/{job_id}").json()["status"] == "completed"

    meta = alpha.get(f"/api/v1/backtest/metadata/user_123/{sid}").json()
    assert meta["strategy_name"] == "RSI reversal" and meta["status"] == "completed" and meta["total_days"] == 5
    assert meta["overall_summary"] == {"total_positions": 2, "total_pnl": 10.0, "win_rate": 100.0,
                                       "total_winning_trades": 2, "total_losing_trades": 0}
    assert [d["date"] for d in meta["daily_summaries"]] == ["01-01-2024", "02-01-2024", "03-01-2024"]
    assert meta["daily_summaries"][2]["has_data"] is False and meta["daily_summaries"][0]["file_size_kb"] > 0

    # Gzip as stored when accepted; plain JSON otherwise.
    raw = alpha.get(f"/api/v1/backtest/day/user_123/{sid}/02-01-2024", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip" and raw.headers["content-type"] == "application/json"
    assert raw.json() == {"date": "2024-01-02", "file": "positions.json.gz"}
    plain = alpha.get(f"/api/v1/backtest/day/user_123/{sid}/02-01-2024", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.json()["date"] == "2024-01-02"
    with httpx.stream("GET", f"{str(alpha.base_url).rstrip('/')}/api/v1/backtest/day/user_123/{sid}/02-01-2024",
                      headers={"X-API-Key": ALPHA_KEY, "Accept-Encoding": "gzip"}) as resp:
        stored = b"".join(resp.iter_raw())
    assert gzip.decompress(stored) == json.dumps({"date": "2024-01-02", "file": "positions.json.gz"}).encode()

    # A foreign user id, another tenant, a day without data: 404.
    assert_error(alpha.get(f"/api/v1/backtest/day/user_999/{sid}/02-01-2024"), 404)
    assert_error(alpha.get(f"/api/v1/backtest/metadata/user_999/{sid}"), 404)
    assert_error(beta.get(f"/api/v1/backtest/day/user_123/{sid}/02-01-2024"), 404)
    assert_error(beta.get(f"/api/v1/backtest/metadata/user_123/{sid}"), 404)
    assert_error(beta.get(f"/api/v1/backtest/status/{job_id}"), 404)
    assert_error(alpha.get(f"/api/v1/backtest/day/user_123/{sid}/06-01-2024"), 404)
    assert beta.delete(f"/api/v1/backtest/clear/user_123/{sid}").json()["deleted_files"] == 0
    assert alpha.get(f"/api/v1/backtest/metadata/user_123/{sid}").status_code == 200

    cleared = alpha.delete(f"/api/v1/backtest/clear/user_123/{sid}").json()
    assert cleared["deleted_files"] == 9 and cleared["freed_space_mb"] > 0 and sid in cleared["message"]
    assert_error(alpha.get(f"/api/v1/backtest/metadata/user_123/{sid}"), 404)


def test_cleanup_endpoints(alpha):
    assert alpha.get("/api/v1/backtest/cleanup/status").json() == {
        "cleanup_enabled": True, "ttl_hours": 12, "message": "Cleanup runs automatically on startup and periodically"}
    r = alpha.post("/api/v1/backtest/cleanup/run", params={"ttl_hours": 12}).json()
    assert r["message"] == "Cleanup completed" and r["cutoff_time"].endswith("Z") and "deleted_strategies" in r
    for bad in ("-1", "abc", "1e9"):
        assert_error(alpha.post("/api/v1/backtest/cleanup/run", params={"ttl_hours": bad}), 400)


def test_seed002_stream_names_ids_resume_and_zip(alpha, beta, results, days_stub, sid):
    r = alpha.post("/api/v1/backtest/start", content=json.dumps(
        {"strategy_id": sid, "start_date": "2024-01-01", "end_date": "2024-01-05"}), headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b == {"backtest_id": f"{sid}_2024-01-01_2024-01-05", "total_days": 5, "status": "ready",
                 "stream_url": f"/api/v1/backtest/{sid}_2024-01-01_2024-01-05/stream", "job_id": b["job_id"]}
    play_engine(results, days_stub, b["job_id"], ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"])
    with alpha.stream("GET", b["stream_url"]) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(resp.iter_lines()))
    assert [e["event"] for e in events] == ["day_started", "day_completed"] * 5 + ["backtest_completed"]
    assert events[0]["data"] == {"date": "2024-01-01", "day_number": 1, "total_days": 5}
    assert events[1]["data"]["has_detail_data"] is True and events[1]["data"]["summary"]["total_pnl"] == "5.00"
    assert events[-1]["data"]["backtest_id"] == b["backtest_id"]
    assert events[-1]["data"]["overall_summary"]["total_trades"] == 5
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    with alpha.stream("GET", b["stream_url"], headers={"Last-Event-ID": str(ids[5])}) as resp:
        resumed = list(sse_events(resp.iter_lines()))
    assert [e["id"] for e in resumed] == ids[6:]
    # After the last event a reconnecting EventSource is told to stop.
    assert alpha.get(b["stream_url"], headers={"Last-Event-ID": str(ids[-1])}).status_code == 204
    z = alpha.get(f"/api/v1/backtest/{b['backtest_id']}/day/2024-01-03")
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    assert z.headers["content-disposition"] == 'attachment; filename="backtest_2024-01-03.zip"'
    members = zipfile.ZipFile(io.BytesIO(z.content))
    assert sorted(members.namelist()) == ["diagnostics_export.json.gz", "trades_daily.json.gz"]
    assert json.loads(gzip.decompress(members.read("trades_daily.json.gz")))["date"] == "2024-01-03"
    assert_error(alpha.get(f"/api/v1/backtest/{b['backtest_id']}/day/2024-01-06"), 404)
    assert_error(beta.get(f"/api/v1/backtest/{b['backtest_id']}/day/2024-01-03"), 404)
    assert_error(beta.get(b["stream_url"]), 404)
    assert_error(alpha.get(f"/api/v1/backtest/{uuid.uuid4()}_2024-01-01_2024-01-05/stream"), 404)


def test_cancel_ends_the_stream_with_an_error_event(alpha, results, days_stub, sid):
    b = alpha.post("/api/v1/backtest/start", json={"strategy_id": sid, "start_date": "2024-01-08", "end_date": "2024-01-12"}).json()
    play_engine(results, days_stub, b["job_id"], ["2024-01-08"], complete=False)
    assert alpha.delete(f"/api/v1/jobs/{b['job_id']}").json()["status"] == "cancelled"
    stop = days_stub.StoreDays(backtest_pb2.StoreDaysRequest(job_id=b["job_id"], days=[day("2024-01-09", 2)]), timeout=10)
    assert stop.stop
    with alpha.stream("GET", b["stream_url"]) as resp:
        events = list(sse_events(resp.iter_lines()))
    assert [e["event"] for e in events] == ["day_started", "day_completed", "error"]
    assert events[-1]["data"] == {"date": "2024-01-08", "error": "Job cancelled"}


@pytest.mark.parametrize(
    "header,accepted",
    [
        ("gzip", True), ("GZIP", True), ("br, gzip;q=0.5", True), ("*", True),
        ("", False), ("identity", False), ("gzip;q=0", False), ("gzip;q=0, *", False), ("br", False),
        # An explicit gzip wins over the wildcard, whatever their order (RFC 9110 12.5.3).
        ("*;q=0, gzip", True), ("*;q=0, gzip;q=0.1", True), ("gzip;q=0.0, *;q=1", False),
        ("gzip;q=bogus", False), ("gzip ; q=1.0", True),
    ],
)
def test_accepts_gzip_reads_accept_encoding_like_a_server_should(header, accepted):
    from starlette.requests import Request

    from services.gateway.routes.day_by_day import accepts_gzip

    request = Request({"type": "http", "headers": [(b"accept-encoding", header.encode())]})
    assert accepts_gzip(request) is accepted
