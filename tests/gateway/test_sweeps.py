"""Sweep submission (seed form, JSON, pipelines) and its validation; best results."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.gateway.conftest import ALPHA_KEY, DEV_KEY, Gateway, Results
from tests.gateway.helpers import SEED_FORM, SEED_JSON, assert_error, jobs_total, run_job, sweep_row

SEED_RESPONSE_KEYS = {
    "job_id",
    "status",
    "message",
    "parameters",
    "estimated_duration_seconds",
    "webhook_url",
    "created_at",
}


def test_seed_form_verbatim(gw: Gateway, results: Results) -> None:
    # Exactly the seed's request: X-API-Key and a url-encoded form with "[10, 20]" values.
    r = httpx.post(
        gw.url + "/api/v1/strategy/sweep",
        content=urlencode(SEED_FORM).encode(),
        headers={"X-API-Key": "dev-key-000000000000000000000000", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert set(body) >= SEED_RESPONSE_KEYS
    assert body["status"] == "queued"
    assert body["message"] == "Strategy sweep job queued successfully"
    assert body["parameters"] == {
        "ticker": "BTC-USD",
        "fast_range": [10, 20],
        "slow_range": [20, 30],
        "step": 5,
        "combinations": 8,
    }
    assert body["webhook_url"] == SEED_FORM["webhook_url"]
    assert isinstance(body["estimated_duration_seconds"], int) and body["estimated_duration_seconds"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", body["created_at"]), body["created_at"]
    assert body["job_id"].startswith("sweep_")
    assert body["stream_url"] == f"/api/v1/jobs/{body['job_id']}/stream"

    job = httpx.get(gw.url + f"/api/v1/jobs/{body['job_id']}", headers={"X-API-Key": DEV_KEY})
    assert job.status_code == 200, job.text
    j = job.json()
    assert j["status"] == "queued"
    assert j["parameters"]["fast_range"] == [10, 20] and j["parameters"]["min_trades"] == 50
    assert j["parameters"]["config_path"] == "minimum"
    assert j["webhook_url"] == SEED_FORM["webhook_url"]
    assert j["progress"]["percent"] == 0


def test_json_sweep_with_engine_extras(alpha: httpx.Client) -> None:
    body = dict(
        SEED_JSON,
        strategy_type="EMA",
        interval="1d",
        direction="both",
        fill="close",
        commission_pct=0.1,
        slippage_pct=0.05,
        initial_cash=5000,
        timeout_seconds=120,
        notify_email="ops@example.com",
        webhook_url="https://example.com/hook",
    )
    r = alpha.post("/api/v1/strategy/sweep", json=body)
    assert r.status_code == 202, r.text
    job = alpha.get(f"/api/v1/jobs/{r.json()['job_id']}").json()
    p = job["parameters"]
    assert (p["strategy_type"], p["interval"], p["direction"], p["fill"]) == ("EMA", "1d", "both", "close")
    assert p["commission_pct"] == 0.1 and p["slippage_pct"] == 0.05 and p["initial_cash"] == 5000
    assert job["timeout_seconds"] == 120
    assert job["notify_email"] == "ops@example.com"
    assert job["webhook_url"] == "https://example.com/hook"


@pytest.mark.parametrize(
    "content,content_type",
    [
        (json.dumps(SEED_JSON).encode(), "application/x-www-form-urlencoded"),  # JSON mislabelled as a form
        (json.dumps(SEED_JSON).encode(), "text/plain"),
        (json.dumps(SEED_JSON).encode(), None),
        (b"ticker=BTC-USD&fast_range=10,20&slow_range=20,30&step=5", "application/x-www-form-urlencoded"),
        (
            b"ticker=BTC-USD&fast_range=10&fast_range=20&slow_range=20&slow_range=30&step=5",
            "application/x-www-form-urlencoded",
        ),
    ],
    ids=["json-as-form", "json-as-text", "json-no-type", "comma-ranges", "repeated-fields"],
)
def test_body_encodings(alpha: httpx.Client, content: bytes, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = alpha.post("/api/v1/strategy/sweep", content=content, headers=headers)
    assert r.status_code == 202, r.text
    assert r.json()["parameters"]["combinations"] == 8


def test_multipart_form(alpha: httpx.Client) -> None:
    r = alpha.post("/api/v1/strategy/sweep", files={k: (None, v) for k, v in SEED_FORM.items()})
    assert r.status_code == 202, r.text
    assert r.json()["parameters"]["combinations"] == 8


VALID = {
    "ticker": "BTC-USD",
    "fast_range": [10, 20],
    "slow_range": [20, 30],
    "step": 5,
    "min_trades": 50,
    "strategy_type": "SMA",
    "config_path": "minimum",
    "webhook_url": "http://webhook-receiver:3000/webhook/sweep-callback",
}

# One rule broken at a time: (field to override or remove, value; None removes it).
VIOLATIONS: list[tuple[str, Any]] = [
    ("ticker", None),
    ("ticker", "A B"),
    ("ticker", "A" * 33),
    ("ticker", 12345),
    ("ticker", "BTC\x00USD"),
    ("fast_range", None),
    ("fast_range", [0, 20]),
    ("fast_range", [20, 10]),
    ("fast_range", [10]),
    ("fast_range", [5, 10, 15]),
    ("fast_range", ["a", "b"]),
    ("fast_range", [10.5, 20]),
    ("fast_range", "not-a-list"),
    ("fast_range", {"min": 10, "max": 20}),
    ("slow_range", None),
    ("slow_range", [20, 501]),
    ("slow_range", [0, 30]),
    ("slow_range", [30, 20]),
    ("step", None),
    ("step", 0),
    ("step", 51),
    ("step", 2.5),
    ("step", "five"),
    ("step", True),
    ("min_trades", 9),
    ("min_trades", 1001),
    ("min_trades", "many"),
    ("strategy_type", "WMA"),
    ("strategy_type", "buy_and_hold"),  # issue 16: "sma" is SMA now; a built-in that is no crossover is not
    ("config_path", "maximum"),
    ("fast_range+slow_range", ([20, 25], [20, 30])),  # fast min >= slow min
    ("fast_range+slow_range", ([10, 30], [20, 30])),  # fast max >= slow max
    ("webhook_url", "ftp://example.com/x"),
    ("webhook_url", "not a url"),
    ("webhook_url", "http://"),
    ("webhook_url", "http://example.com:99999/x"),
    ("webhook_url", 42),
    ("interval", "7h"),
    ("direction", "sideways"),
    ("fill", "open"),
    ("pbo_blocks", 15),
    ("pbo_blocks", 2),
    ("pbo_blocks", 0),
    ("pbo_blocks", 18),
    ("pbo_blocks", -16),
    ("pbo_blocks", 7.5),
    ("pbo_blocks", "sixteen"),
    ("commission_pct", 10.5),
    ("commission_pct", -1),
    ("slippage_pct", 11),
    ("initial_cash", 0),
    ("initial_cash", -5),
    ("initial_cash", "1e400"),
    ("timeout_seconds", 0),
    ("timeout_seconds", 86401),
    ("notify_email", "not-an-email"),
]


def _violating(field: str, value: Any) -> dict[str, Any]:
    body = dict(VALID)
    if field == "fast_range+slow_range":
        body["fast_range"], body["slow_range"] = value
    elif value is None:
        body.pop(field)
    else:
        body[field] = value
    return body


def _as_form(body: dict[str, Any]) -> dict[str, str]:
    return {k: (json.dumps(v) if isinstance(v, list) else str(v)) for k, v in body.items()}


@pytest.mark.parametrize("field,value", VIOLATIONS, ids=[f"{f}={v!r}"[:40] for f, v in VIOLATIONS])
def test_every_rule_one_at_a_time_json_and_form(
    gw: Gateway, results: Results, alpha: httpx.Client, field: str, value: Any
) -> None:
    stub = results.stub()
    before = jobs_total(stub, "alpha")
    body = _violating(field, value)
    for path in ("/api/v1/strategy/sweep", "/api/pipelines/trigger"):
        err = assert_error(alpha.post(path, json=body), 400, "invalid_request")
        fields = {e["field"] for e in err["details"]["errors"]}
        assert fields & set(field.split("+")), err
        # The same request as a form (where the value has a form spelling that is still wrong).
        if not isinstance(value, dict) and (field, value) != ("ticker", 12345):
            assert_error(alpha.post(path, data=_as_form(body)), 400, "invalid_request")
    assert jobs_total(stub, "alpha") == before


def test_non_finite_json_numbers_are_400(alpha: httpx.Client) -> None:
    text = json.dumps(SEED_JSON)[:-1]
    for extra in (', "initial_cash": 1e400', ', "commission_pct": -1e999', ', "initial_cash": Infinity'):
        r = alpha.post("/api/v1/strategy/sweep", content=(text + extra + "}").encode(),
                       headers={"Content-Type": "application/json"})
        assert_error(r, 400, "invalid_request")


def test_every_error_is_listed_at_once(alpha: httpx.Client) -> None:
    err = assert_error(alpha.post("/api/v1/strategy/sweep", json={"ticker": "X Y", "step": 99}), 400)
    fields = {e["field"] for e in err["details"]["errors"]}
    assert {"ticker", "fast_range", "slow_range", "step"} <= fields


@pytest.mark.parametrize(
    "content,content_type",
    [
        (b'{"ticker": "BTC-USD", ', "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b'"just a string"', "application/json"),
        (b'{"ticker": NaN}', "application/json"),
        (b"\xff\xfe=\x00", "application/x-www-form-urlencoded"),
        (b"ticker", "application/x-www-form-urlencoded"),
        (b"ticker=BTC-USD&step=5&step=6&fast_range=[10,20]&slow_range=[20,30]", "application/x-www-form-urlencoded"),
        (b"fast_range=[10, 20&slow_range=[20,30]&ticker=BTC-USD&step=5", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
        (b"--xyz\r\nbroken", "multipart/form-data; boundary=xyz"),
    ],
    ids=["truncated-json", "json-array", "json-string", "json-nan", "bad-utf8-form", "form-no-equals",
         "repeated-scalar", "broken-range", "empty", "broken-multipart"],
)
def test_malformed_bodies_are_400(
    alpha: httpx.Client, results: Results, content: bytes, content_type: str
) -> None:
    before = jobs_total(results.stub(), "alpha")
    assert_error(alpha.post("/api/v1/strategy/sweep", content=content, headers={"Content-Type": content_type}), 400)
    assert jobs_total(results.stub(), "alpha") == before


def test_json_body_over_1mb_is_413(alpha: httpx.Client, results: Results) -> None:
    before = jobs_total(results.stub(), "alpha")
    body = dict(SEED_JSON, padding="x" * (1024 * 1024 + 10))
    assert_error(alpha.post("/api/v1/strategy/sweep", json=body), 413, "payload_too_large")

    # Without a Content-Length (chunked), the limit holds while reading.
    def chunks() -> Any:
        data = json.dumps(body).encode()
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    assert_error(alpha.post("/api/v1/strategy/sweep", content=chunks()), 413, "payload_too_large")
    assert jobs_total(results.stub(), "alpha") == before


def test_pipeline_trigger_and_status(gw: Gateway, results: Results) -> None:
    # Seed 001 "Via API": JSON, Bearer credentials.
    with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {ALPHA_KEY}"}, timeout=20) as c:
        r = c.post("/api/pipelines/trigger", json=SEED_JSON)
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["status"] == "QUEUED"
        assert body["message"] == "Trading sweep job queued successfully"
        assert "webhook_url" in body and body["webhook_url"] is None
        job_id = body["job_id"]

        r = c.get(f"/api/pipelines/{job_id}")
        assert r.status_code == 200, r.text
        p = r.json()
        assert p["id"] == job_id and p["status"] == "QUEUED"
        assert p["parameters"]["ticker"] == "BTC-USD" and p["parameters"]["fast_range"] == [10, 20]
        assert p["metrics"] == {"duration_seconds": None, "combinations_tested": None} or set(p["metrics"]) >= {
            "duration_seconds",
            "combinations_tested",
        }
        assert p["results"] == [] and p["error_message"] is None

        rows = [sweep_row(f, s, 60, score=float(f + s) / 10) for f, s in [(10, 20), (10, 25), (10, 30), (15, 20),
                                                                            (15, 25), (15, 30), (20, 25), (20, 30)]]
        rows += [sweep_row(f, s, 60, score=0.1) for f, s in [(11, 21), (12, 22), (13, 23), (14, 24)]]
        run_job(results.stub(), job_id, rows)
        p = c.get(f"/api/pipelines/{job_id}").json()
        assert p["status"] == "COMPLETED"
        assert p["metrics"]["combinations_tested"] == len(rows)
        assert p["metrics"]["duration_seconds"] >= 0
        assert len(p["results"]) == 10
        assert (p["results"][0]["fast_period"], p["results"][0]["slow_period"]) == (20, 30)
        assert {"fast_period", "slow_period", "sharpe_ratio", "total_return_pct"} <= set(p["results"][0])

        assert_error(c.get("/api/pipelines/no-such-job"), 404, "not_found")


def test_best_has_the_seed_shape(alpha: httpx.Client, beta: httpx.Client, results: Results) -> None:
    job_id = alpha.post("/api/v1/strategy/sweep", json=SEED_JSON).json()["job_id"]
    rows = [
        sweep_row(10, 20, 87, 2.47),
        sweep_row(10, 25, 102, 2.31),
        sweep_row(15, 20, 60, None, sharpe_ratio=None, profit_factor=None),  # undefined -> null, last
        sweep_row(15, 25, 12, 9.99),  # fewer than min_trades (50): excluded
        sweep_row(20, 30, 55, 0.5),
    ]
    run_id = run_job(results.stub(), job_id, rows)
    r = alpha.get(f"/api/v1/sweeps/{run_id}/best", params={"ticker": "BTC-USD"})
    assert r.status_code == 200, r.text
    best = r.json()
    assert best["sweep_run_id"] == run_id and best["ticker"] == "BTC-USD"
    assert best["total_results"] == 4 and best["returned"] == 4
    assert best["excluded_below_min_trades"] == 1 and best["min_trades"] == 50
    assert best["job_id"] == job_id
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", best["query_timestamp"])
    scores = [row["score"] for row in best["results"]]
    assert scores == [2.47, 2.31, 0.5, None]
    top = best["results"][0]
    assert list(top) == [
        "ticker", "strategy_type", "fast_period", "slow_period", "score", "sharpe_ratio", "sortino_ratio",
        "total_return_pct", "annualized_return", "max_drawdown_pct", "win_rate_pct", "profit_factor",
        "total_trades", "trades_per_month", "avg_trade_duration",
    ]
    assert top["total_trades"] == 87 and top["avg_trade_duration"] == "5.2 days"
    assert best["results"][-1]["sharpe_ratio"] is None and best["results"][-1]["profit_factor"] is None

    limited = alpha.get(f"/api/v1/sweeps/{run_id}/best", params={"limit": 2}).json()
    assert limited["returned"] == 2 and limited["total_results"] == 4
    for bad in ("0", "1001", "x"):
        assert_error(alpha.get(f"/api/v1/sweeps/{run_id}/best", params={"limit": bad}), 400, "invalid_request")
    assert_error(alpha.get("/api/v1/sweeps/run_nonexistent/best"), 404)
    assert_error(beta.get(f"/api/v1/sweeps/{run_id}/best"), 404)


def test_best_shows_the_overfitting_statistics(alpha: httpx.Client, results: Results) -> None:
    import numpy as np
    from hindsight.results.v1 import results_pb2

    from domain import overfitting as of

    accepted = alpha.post("/api/v1/strategy/sweep", json=dict(SEED_JSON, pbo_blocks=4))
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    assert alpha.get(f"/api/v1/jobs/{job_id}").json()["parameters"]["pbo_blocks"] == 4
    rows = [sweep_row(10, 20, 87, 2.47), sweep_row(10, 25, 102, 2.31), sweep_row(15, 20, 12, 9.99)]
    r = np.random.default_rng(0).normal(0.0002, 0.01, (101, 3))
    st = of.sweep_statistics(of.returns_moments(r), of.block_sums(r, 4), 4)
    stub = results.stub()
    assert stub.StartJob(results_pb2.StartJobRequest(job_id=job_id), timeout=10).proceed
    stats = results_pb2.SweepStatistics(
        trials=3, days=101, pbo_blocks=4, sharpe_variance=st.sharpe_variance, expected_max_sharpe=st.expected_max_sharpe,
        pbo=st.pbo, logits=st.logits, sharpe=st.moments.sharpe.tolist(), skewness=st.moments.skewness.tolist(),
        kurtosis=st.moments.kurtosis.tolist(),
    )
    run_id = stub.CompleteSweep(
        results_pb2.CompleteSweepRequest(job_id=job_id, results=rows, execution_time_seconds=1.0, statistics=stats),
        timeout=10,
    ).sweep_run_id
    best = alpha.get(f"/api/v1/sweeps/{run_id}/best").json()
    o = best["overfitting"]
    assert list(o) == ["trials", "probabilistic_sharpe_ratio", "deflated_sharpe_ratio", "expected_max_sharpe", "pbo",
                       "pbo_blocks", "logits", "days", "sharpe_variance", "reason", "reading"]
    want = of.overfitting_view(st, 0)  # best's first row is (10, 20), the grid's first
    assert o == want  # doubles go through gRPC and JSON unchanged
    assert o["reason"] is None and len(o["logits"]) == 6 and 0 <= o["pbo"] <= 1

    # a run stored without statistics: null, the rest of the seed's shape as it was
    plain = alpha.post("/api/v1/strategy/sweep", json=SEED_JSON).json()["job_id"]
    assert "pbo_blocks" not in alpha.get(f"/api/v1/jobs/{plain}").json()["parameters"]
    best = alpha.get(f"/api/v1/sweeps/{run_job(stub, plain)}/best").json()
    assert best["overfitting"] is None


def test_the_shard_size_is_documented_in_the_vocabulary_and_docs(alpha: httpx.Client) -> None:
    from domain.shards import SHARD_BAR_PAIRS
    from domain.universe import UNIVERSE_MAX_TICKERS

    limits = alpha.get("/api/v1/vocabulary").json()["sweep"]
    assert limits["shard_bar_pairs"] == SHARD_BAR_PAIRS and limits["max_tickers"] == UNIVERSE_MAX_TICKERS
    doc = alpha.get("/openapi.json").json()["paths"]["/api/v1/strategy/sweep"]["post"]["description"]
    assert f"{SHARD_BAR_PAIRS:,}" in doc and "pair" in doc and "row for row" in doc
