"""POST /api/v1/walkforward: validation (400, nothing queued), the queued job (one message
per fold), folds reported by a played engine, the view, and tenant scoping."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from hindsight.bus.v1 import bus_pb2
from hindsight.results.v1 import results_pb2

from domain.shards import fold_shard_id, parse_fold_shard
from domain.walkforward import Windows, folds
from services.engine.bars import Bars
from services.engine.walkforward import FoldSettings, run_fold
from tests.gateway.conftest import Results
from tests.gateway.helpers import assert_error, jobs_total

N_BARS = 400
SWEEP = {"ticker": "GW-WF", "interval": "1d", "fast_range": [2, 6], "slow_range": [8, 20], "step": 2, "min_trades": 10}
BODY = {"sweep": SWEEP, "train_bars": 120, "test_bars": 60, "step_bars": 60, "anchored": False, "objective": "score"}


def _prices(n: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    return 100.0 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))


def _csv(n: int) -> bytes:
    close = _prices(n).tolist()
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(n):
        d = date(2021, 1, 1) + timedelta(days=i)
        o = close[i - 1] if i else close[0]
        lines.append(f"{d.isoformat()},{o!r},{max(o, close[i]) * 1.01!r},{min(o, close[i]) * 0.99!r},{close[i]!r},5")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def dataset(gw: Any) -> dict[str, Any]:
    from tests.gateway.conftest import ALPHA_KEY

    with httpx.Client(base_url=gw.url, timeout=20, headers={"X-API-Key": ALPHA_KEY}) as c:
        r = c.post("/api/v1/datasets", files={"file": ("wf.csv", _csv(N_BARS), "text/csv")},
                   data={"ticker": "GW-WF", "interval": "1d", "calendar": "continuous"})
        assert r.status_code == 201, r.text
        return dict(r.json())


def _with(**over: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(BODY))
    for key, value in over.items():
        if key.startswith("sweep."):
            body["sweep"][key[6:]] = value
        elif value is None:
            body.pop(key)
        else:
            body[key] = value
    return body


BAD = [
    ("windows longer than the data", _with(train_bars=350, test_bars=60), "train_bars"),
    ("zero train", _with(train_bars=0), "train_bars"),
    ("negative test", _with(test_bars=-5), "test_bars"),
    ("zero step", _with(step_bars=0), "step_bars"),
    ("one-bar test window", _with(test_bars=1), "test_bars"),
    ("fractional sizes", _with(train_bars=12.5), "train_bars"),
    ("unknown objective", _with(objective="luck"), "objective"),
    ("anchored not a boolean", _with(anchored="sometimes"), "anchored"),
    ("missing windows", _with(train_bars=None), "train_bars"),
    ("no sweep", _with(sweep=None), "sweep"),
    ("a bad sweep", _with(**{"sweep.step": 99}), "step"),
    ("a sweep without a grid", _with(**{"sweep.fast_range": [30, 40]}), "fast_range"),
    ("no dataset for the ticker", _with(**{"sweep.ticker": "NOPE-WF"}), "NOPE-WF"),
    ("an RSI sweep (not a crossover)", _with(**{"sweep.strategy_type": "RSI", "sweep.fast_range": None,
                                                "sweep.slow_range": None, "sweep.period_range": [10, 14],
                                                "sweep.oversold_range": [25, 30], "sweep.overbought_range": [70, 75]}),
     "crossover sweeps"),
    ("a universe sweep (not one ticker)", _with(**{"sweep.ticker": None, "sweep.tickers": ["GW-WF", "OTHER"]}),
     "runs one ticker"),
]


@pytest.mark.parametrize("label, body, mention", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_400_and_nothing_is_queued(alpha: httpx.Client, results: Results, dataset: dict[str, Any],
                                                label: str, body: dict[str, Any], mention: str) -> None:
    before = jobs_total(results.stub(), "alpha")
    err = assert_error(alpha.post("/api/v1/walkforward", json=body), 400)
    assert mention in json.dumps(err), err
    # The job and its messages are written in one transaction: no job, no message.
    assert jobs_total(results.stub(), "alpha") == before


def test_not_json_is_400(alpha: httpx.Client) -> None:
    assert_error(alpha.post("/api/v1/walkforward", content=b"{nope", headers={"Content-Type": "application/json"}), 400)


def _play_fold(stub: Any, job_id: str, fold_number: int, bars: Bars) -> results_pb2.CompleteWalkForwardFoldResponse:
    windows = Windows(BODY["train_bars"], BODY["test_bars"], BODY["step_bars"])
    fold = folds(len(bars), windows)[fold_number - 1]
    settings = FoldSettings("SMA", [(f, s) for f in range(2, 7, 2) for s in range(8, 21, 2)], "score", 10)
    result = run_fold(bars, fold, settings, threads=1)
    return stub.CompleteWalkForwardFold(results_pb2.CompleteWalkForwardFoldRequest(
        job_id=job_id, fold_number=fold_number, result_json=json.dumps(result), execution_time_seconds=0.1,
    ), timeout=10)


def test_queued_job_runs_as_one_shard_per_fold(alpha: httpx.Client, beta: httpx.Client, results: Results,
                                               dataset: dict[str, Any]) -> None:
    r = alpha.post("/api/v1/walkforward", json=BODY)
    assert r.status_code == 202, r.text
    body = r.json()
    n_folds = (N_BARS - 180) // 60 + 1
    assert body["folds"] == n_folds == 4 and body["bars"] == N_BARS and body["combinations"] == 21
    job_id = body["job_id"]
    assert body["stream_url"] == f"/api/v1/jobs/{job_id}/stream"
    job = alpha.get(f"/api/v1/jobs/{job_id}").json()
    assert job["status"] == "queued"

    # Another tenant sees nothing of it.
    assert_error(beta.get(f"/api/v1/walkforward/{job_id}"), 404)
    assert_error(beta.get(f"/api/v1/jobs/{job_id}"), 404)

    # The same bars the dataset holds (the CSV's), for the played engine.
    close = _prices(N_BARS)
    opens = np.concatenate([[close[0]], close[:-1]])
    ts = np.array([np.datetime64(date(2021, 1, 1) + timedelta(days=i), "ns").astype(np.int64) for i in range(N_BARS)])
    bars = Bars(ts, opens, np.maximum(opens, close) * 1.01, np.minimum(opens, close) * 0.99, close, np.full(N_BARS, 5.0))

    stub = results.stub()
    start = stub.StartJob(results_pb2.StartJobRequest(job_id=job_id), timeout=10)
    assert start.proceed and start.job.walkforward.folds == n_folds
    assert start.job.walkforward.sweep.ticker == "GW-WF"
    # A second shard of the running job starts too.
    assert stub.StartJob(results_pb2.StartJobRequest(job_id=job_id), timeout=10).proceed
    # Folds arrive in any order; a redelivered fold is stored once.
    for k in (3, 1, 1, 4):
        resp = _play_fold(stub, job_id, k, bars)
        assert resp.stored and not resp.completed
    partial = alpha.get(f"/api/v1/walkforward/{job_id}").json()
    assert partial["folds_completed"] == 3 and partial["stitched"] is None
    assert [f["fold"] for f in partial["folds"]] == [0, 2, 3]
    last = _play_fold(stub, job_id, 2, bars)
    assert last.stored and last.completed

    view = alpha.get(f"/api/v1/walkforward/{job_id}")
    assert view.status_code == 200, view.text
    wf = view.json()
    assert wf["status"] == "completed" and wf["folds_total"] == wf["folds_completed"] == n_folds
    assert [(f["train_start"], f["train_end"], f["test_start"], f["test_end"]) for f in wf["folds"]] == [
        (60 * k, 60 * k + 120, 60 * k + 120, 60 * k + 180) for k in range(n_folds)
    ]
    assert wf["folds"][0]["test_start_time"] == "2021-05-01T00:00:00Z"
    growth = 1.0
    for f in wf["folds"]:
        if f["parameters"] is not None:
            growth *= 1 + f["out_of_sample"]["total_return_pct"] / 100
    assert wf["stitched"]["equity"][-1]["equity"] == pytest.approx(10_000.0 * growth, rel=1e-12)
    assert wf["stitched"]["metrics"]["total_return_pct"] == pytest.approx((growth - 1) * 100, rel=1e-9)
    # Buy and hold over the test windows: the last close over the close before the first window.
    assert wf["stitched"]["equity"][-1]["buy_and_hold"] == pytest.approx(10_000.0 * close[359] / close[119], rel=1e-12)
    chosen = [f for f in wf["folds"] if f["parameters"] is not None]
    assert chosen, "no fold chose parameters: the test would say nothing"
    mean_is = np.mean([f["in_sample"]["annualized_return"] for f in chosen])
    mean_oos = np.mean([f["out_of_sample"]["annualized_return"] for f in chosen])
    assert wf["walk_forward_efficiency"] == pytest.approx(mean_oos / mean_is, rel=1e-12)

    # The stream ends with the job.
    events = [json.loads(line[5:]) for line in alpha.get(f"/api/v1/jobs/{job_id}/stream").text.splitlines()
              if line.startswith("data:")]
    assert any(e.get("message") == "Fold 3/4 done" for e in events)
    assert events[-1]["status"] == "completed" and events[-1]["walk_forward_efficiency"] == wf["walk_forward_efficiency"]
    # A fold redelivered after the end changes nothing.
    assert _play_fold(stub, job_id, 2, bars).stored
    assert alpha.get(f"/api/v1/walkforward/{job_id}").json()["folds_completed"] == n_folds


def test_the_fold_messages_name_each_fold() -> None:
    # A fold is a shard: JobMessage.shard_id, as a universe sweep's tickers (domain.shards).
    msg = bus_pb2.JobMessage(job_id="j", shard_id=fold_shard_id(3))
    assert parse_fold_shard(bus_pb2.JobMessage.FromString(msg.SerializeToString()).shard_id) == 3


def test_docs_define_the_walkforward(gw: Any) -> None:
    spec = httpx.get(gw.url + "/openapi.json", timeout=20).json()
    post = spec["paths"]["/api/v1/walkforward"]["post"]
    get = spec["paths"]["/api/v1/walkforward/{job_id}"]["get"]
    for text in (post["description"], get["description"], spec["info"]["description"]):
        assert "[sₖ + train_bars, sₖ + train_bars + test_bars)" in text
        assert "decisions start at the\n  window's first bar, flat" in text
        assert "mean out-of-sample CAGR / mean in-sample CAGR" in text
    schema = json.dumps(spec["components"]["schemas"]["WalkForwardRequest"])
    assert "train_bars" in schema and "objective" in schema and "anchored" in schema
    assert set(spec["components"]["schemas"]["WalkForwardFold"]["properties"]) >= {
        "train_start", "train_end", "test_start", "test_end", "parameters", "in_sample", "out_of_sample"}
