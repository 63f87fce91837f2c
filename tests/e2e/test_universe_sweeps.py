"""Issue 11, items 1 and 2: universe sweeps, sharded per ticker and pair chunk, across 2 engine replicas.

One distributed stack as real processes (Postgres, RabbitMQ, results, gateway, notifier
and two competing engine replicas, each one job at a time on one thread), shared by the
module. Its shard size (HINDSIGHT_SHARD_BAR_PAIRS) is small, so that the HEAVY grid's
tickers are split into 4 pair chunks each while the small grid's stay one shard:
- a universe sweep: every shard taken, both replicas did work, each ticker's rows equal
  its own single-ticker sweep's row for row, progress monotone in the seed's shape,
  /best across tickers and per ticker, /tickers;
- a ticker without data (or too few bars) fails alone and the job completes; all fail:
  the job fails;
- a single-ticker sweep past the shard size: pair chunks over both replicas, its rows
  equal those of unsharded sweeps of the same pairs;
- one engine SIGKILLed mid-sweep: the job completes, rows = tickers x pairs exactly;
- a cancel mid-sweep: no shard starts afterwards;
- bad input: 400 and nothing queued.
"""

from __future__ import annotations

import json
import os
import signal
import time

import httpx
import psycopg
import pytest

from tests.conftest import create_database, create_vhost, delete_vhost, drop_database
from tests.e2e.test_seed001_flow import minute_csv, read_sse
from tests.security.conftest import wait_for
from tests.stacks import Stack, _spawn, free_port, start_distributed

ONE_ENGINE = {"HINDSIGHT_ENGINE_CONCURRENCY": "1", "HINDSIGHT_ENGINE_THREADS": "1"}
# 6 x 10 = 60 pairs per ticker.
GRID = {"fast_range": [5, 30], "slow_range": [35, 80], "step": 5, "min_trades": 10}
PAIRS = 60
# 99 x 200 = 19,800 pairs over 40,000 bars: about a second or more of one core per ticker.
HEAVY = {"fast_range": [2, 100], "slow_range": [101, 300], "step": 1, "min_trades": 10}
HEAVY_PAIRS = 99 * 200
# Pair-chunk shards past 2.5e8 bar-pairs: a HEAVY ticker (19,800 pairs x 40,000 bars = 7.92e8)
# is 4 chunks; a quarter of its fast periods (25 x 200 x 40,000 = 2e8) is one shard.
SHARD_BAR_PAIRS = 250_000_000
HEAVY_CHUNKS = 4
KEY, OTHER_KEY = "uni-key-" + os.urandom(8).hex(), "uni-other-" + os.urandom(8).hex()


def add_engine(stack: Stack, name: str) -> None:
    """Another engine replica: its own gRPC and metrics ports, the same queue."""
    env = dict(stack.env, ENGINE_PORT=str(free_port()), HINDSIGHT_METRICS_PORT="0", **ONE_ENGINE)
    stack.procs[name], stack.logs[name] = _spawn(name, "services.engine", env, stack.logs["engine"].parent)


@pytest.fixture(scope="module")
def uni(tmp_path_factory):
    db, db_url = create_database()
    vhost, amqp = create_vhost()
    logs = tmp_path_factory.mktemp("universe-logs")
    stack = start_distributed(db_url, amqp, logs, service_env={
                                  "engine": ONE_ENGINE, "results": {"HINDSIGHT_SHARD_BAR_PAIRS": str(SHARD_BAR_PAIRS)}},
                              extra_env={"HINDSIGHT_BOOTSTRAP_KEYS": f"e2e:{KEY},other:{OTHER_KEY}"})
    stack.api_key = KEY
    add_engine(stack, "engine-2")
    pg_url = db_url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with stack.client(headers={"X-API-Key": stack.api_key}) as c:
            for i, name in enumerate(("UA", "UB", "UC", "UD", "UE", "UF")):
                upload(c, name, minute_csv(6_000, seed=100 + i))
            upload(c, "USHORT", minute_csv(50, seed=5))
            for i in range(4):
                upload(c, f"HV{i}", minute_csv(40_000, seed=200 + i))
        yield stack, pg_url
    finally:
        stack.stop()
        drop_database(db)
        delete_vhost(vhost)


@pytest.fixture
def client(uni):
    stack, _ = uni
    with stack.client(headers={"X-API-Key": stack.api_key}) as c:
        yield c


def upload(c: httpx.Client, ticker: str, csv: bytes) -> None:
    r = c.post("/api/v1/datasets", files={"file": (f"{ticker}.csv", csv, "text/csv")},
               data={"ticker": ticker, "interval": "1m", "calendar": "continuous"})
    assert r.status_code == 201, r.text


def submit(c: httpx.Client, **body) -> str:
    r = c.post("/api/v1/strategy/sweep", json=body)
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def ended(c: httpx.Client, job_id: str, timeout: float, stack: Stack) -> dict:
    return wait_for(lambda: (j := c.get(f"/api/v1/jobs/{job_id}").json())["status"] in
                    ("completed", "failed", "cancelled") and j, timeout, f"job {job_id} ended", stack)


def shards(pg_url: str, job_id: str) -> list[dict]:
    with psycopg.connect(pg_url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute("SELECT * FROM sweep_shards WHERE job_id = %s ORDER BY position, chunk", (job_id,))
        return cur.fetchall()


def taken(stack: Stack, job_id: str) -> dict[str, list[str]]:
    """The shards of the job each engine took, from its log."""
    out: dict[str, list[str]] = {}
    for name in ("engine", "engine-2"):
        for line in stack.logs[name].read_text(errors="replace").splitlines():
            if '"sweep shard taken"' in line and job_id in line:
                out.setdefault(name, []).append(json.loads(line)["shard_id"])
    return out


def best_rows(c: httpx.Client, run_id: str, **params) -> dict:
    r = c.get(f"/api/v1/sweeps/{run_id}/best", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_universe_sweep_is_sharded_over_both_replicas_and_equals_single_sweeps(uni, client):
    stack, pg_url = uni
    tickers = ["UA", "UB", "UC", "UD", "UE", "UF"]
    r = client.put("/api/v1/universes/six", json={"tickers": tickers})
    assert r.status_code in (200, 201), r.text
    r = client.post("/api/v1/strategy/sweep", json={"universe": "six", **GRID})
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["parameters"]["combinations"] == PAIRS * len(tickers)
    assert accepted["parameters"]["tickers"] == tickers and accepted["parameters"]["universe"] == "six"
    assert accepted["parameters"]["ticker"] is None
    job_id = accepted["job_id"]
    with client.stream("GET", f"/api/v1/jobs/{job_id}/stream", timeout=180) as resp:
        events = read_sse(resp)
    final = events[-1]["data"]
    assert final.get("done") is True and final["status"] == "completed", events[-3:]
    percents = [e["data"]["percent"] for e in events if "percent" in e["data"]]
    # up to every ticker but the last two: the last one's end is the `done`, and the two
    # replicas' last completions may be told to the job in one step (a completion stores its
    # rows under its shard's lock, then tells the job, which then sees the other stored too)
    assert percents == sorted(percents) and percents[-1] >= round(100 * (len(tickers) - 2) / len(tickers), 1), percents
    assert all(set(e["data"]) == {"percent", "message", "timestamp"} for e in events[:-1]), events[:3]
    assert any("bar-pairs" in e["data"]["message"] for e in events[:-1])
    run_id = final["sweep_run_id"]

    rows = shards(pg_url, job_id)
    assert [s["ticker"] for s in rows] == tickers
    assert all(s["state"] == "completed" and s["attempts"] >= 1 for s in rows), rows
    by_engine = taken(stack, job_id)
    assert sorted(sid for ids in by_engine.values() for sid in ids) == [s["shard_id"] for s in rows]
    assert set(by_engine) == {"engine", "engine-2"}, f"both replicas take shards: {by_engine}"

    # Each ticker equals its own seed-001 sweep, row for row (the single sweeps run after).
    singles = {t: submit(client, ticker=t, **GRID) for t in tickers}
    for t, single_job in singles.items():
        job = ended(client, single_job, 120, stack)
        assert job["status"] == "completed", job
        single = best_rows(client, job["sweep_run_id"])
        mine = best_rows(client, run_id, ticker=t)
        assert mine["results"] == single["results"] and mine["results"], t
        assert mine["ticker"] == t
        assert (mine["total_results"], mine["excluded_below_min_trades"]) == \
            (single["total_results"], single["excluded_below_min_trades"])
        assert mine["total_results"] + mine["excluded_below_min_trades"] == PAIRS
        assert mine["overfitting"] == single["overfitting"]

    # Without ticker: every ticker's rows ranked together; no overfitting (it is per ticker).
    everything = best_rows(client, run_id)
    assert everything["ticker"] == "" and everything["overfitting"] is None
    assert everything["total_results"] == sum(best_rows(client, run_id, ticker=t)["total_results"] for t in tickers)
    scores = [row["score"] for row in everything["results"] if row["score"] is not None]
    assert scores == sorted(scores, reverse=True) and {row["ticker"] for row in everything["results"]} == set(tickers)

    table = client.get(f"/api/v1/sweeps/{run_id}/tickers")
    assert table.status_code == 200, table.text
    view = table.json()
    assert view["job_id"] == job_id and view["status"] == "completed" and view["universe"] == "six"
    assert [t["ticker"] for t in view["tickers"]] == tickers
    for t in view["tickers"]:
        top = best_rows(client, run_id, ticker=t["ticker"], limit=1)["results"][0]
        assert t["status"] == "completed" and t["best"] == top and t["best_score"] == top["score"]
        assert t["bars"] == 6_000 and t["buy_and_hold_return_pct"] is not None and t["overfitting"] is not None
    # The job id reads the same table; another tenant's or an unknown id is a 404.
    assert client.get(f"/api/v1/sweeps/{job_id}/tickers").json()["tickers"] == view["tickers"]
    assert client.get("/api/v1/sweeps/run_nosuchrun000/tickers").status_code == 404


def test_a_ticker_without_data_fails_alone(uni, client):
    stack, pg_url = uni
    job_id = submit(client, tickers=["UA", "NODATA", "USHORT"], **GRID)
    job = ended(client, job_id, 120, stack)
    assert job["status"] == "completed", job
    view = client.get(f"/api/v1/sweeps/{job_id}/tickers").json()
    states = {t["ticker"]: (t["status"], t["error_message"]) for t in view["tickers"]}
    assert states == {
        "UA": ("completed", None),
        "NODATA": ("failed", "Insufficient historical data for ticker NODATA"),
        "USHORT": ("failed", "Insufficient historical data for ticker USHORT"),
    }
    run_id = view["sweep_run_id"]
    assert {r["ticker"] for r in best_rows(client, run_id)["results"]} == {"UA"}

    # Every ticker fails: the job fails.
    failing = submit(client, tickers=["NODATA", "NODATA2"], **GRID)
    job = ended(client, failing, 60, stack)
    assert job["status"] == "failed" and "Insufficient historical data for ticker NODATA" in job["error_message"], job
    assert [s["state"] for s in shards(pg_url, failing)] == ["failed", "failed"]


def stored_rows(pg_url: str, *job_ids: str) -> dict[tuple[int, int], dict]:
    """Every stored row of the jobs' sweeps, by (fast, slow), without its ids."""
    with psycopg.connect(pg_url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute("SELECT r.* FROM sweep_results r JOIN sweep_runs s ON s.sweep_run_id = r.sweep_run_id "
                    "WHERE s.job_id = ANY(%s)", (list(job_ids),))
        rows = cur.fetchall()
    out = {(r["fast_period"], r["slow_period"]): {k: v for k, v in r.items() if k not in ("id", "sweep_run_id")}
           for r in rows}
    assert len(out) == len(rows), "no pair stored twice"
    return out


def test_a_large_single_ticker_sweep_is_pair_chunked_over_both_replicas(uni, client):
    stack, pg_url = uni
    r = client.post("/api/v1/strategy/sweep", json={"ticker": "HV0", **HEAVY})
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["parameters"]["combinations"] == HEAVY_PAIRS and accepted["parameters"]["ticker"] == "HV0"
    job_id = accepted["job_id"]
    with client.stream("GET", f"/api/v1/jobs/{job_id}/stream", timeout=300) as resp:
        events = read_sse(resp)
    final = events[-1]["data"]
    assert final.get("done") is True and final["status"] == "completed", events[-3:]
    percents = [e["data"]["percent"] for e in events if "percent" in e["data"]]
    assert percents == sorted(percents), percents
    assert all(set(e["data"]) == {"percent", "message", "timestamp"} for e in events[:-1]), events[:3]

    rows = shards(pg_url, job_id)
    assert [s["shard_id"] for s in rows] == [f"t0000c{c:03d}of{HEAVY_CHUNKS:03d}" for c in range(HEAVY_CHUNKS)]
    assert all(s["state"] == "completed" and s["ticker"] == "HV0" for s in rows), rows
    by_engine = taken(stack, job_id)
    assert sorted(sid for ids in by_engine.values() for sid in ids) == [s["shard_id"] for s in rows]
    assert set(by_engine) == {"engine", "engine-2"}, f"both replicas take chunks: {by_engine}"
    job = client.get(f"/api/v1/jobs/{job_id}").json()
    assert job["metrics"]["combinations_tested"] == HEAVY_PAIRS and job["metrics"]["bars"] == 40_000

    # The seed's shape: best of the one ticker, with the whole grid's overfitting statistics.
    best = best_rows(client, final["sweep_run_id"])
    assert best["ticker"] == "HV0" and best["results"]
    # 40,000 minutes are 28 days: fewer than the CSCV's 2 x 16 blocks, which the statistics of the whole grid say.
    overfitting = best["overfitting"]
    assert overfitting["trials"] == HEAVY_PAIRS and 20 < overfitting["days"] < 32
    assert f"{overfitting['days']} daily returns: 16 blocks need at least 32" in overfitting["reason"]
    assert best["total_results"] + best["excluded_below_min_trades"] == HEAVY_PAIRS

    # Row for row, the rows of unsharded sweeps of the same pairs (a quarter of the fast periods each: one shard).
    parts = [submit(client, ticker="HV0", **{**HEAVY, "fast_range": [lo, hi]})
             for lo, hi in ((2, 26), (27, 51), (52, 76), (77, 100))]
    for part in parts:
        assert ended(client, part, 180, stack)["status"] == "completed"
        assert len(shards(pg_url, part)) == 0, "under the shard size: one message, no shards"
    mine, theirs = stored_rows(pg_url, job_id), stored_rows(pg_url, *parts)
    assert len(mine) == HEAVY_PAIRS and mine == theirs


def test_an_engine_killed_mid_sweep_loses_and_duplicates_nothing(uni, client):
    stack, pg_url = uni
    tickers = [f"HV{i}" for i in range(4)]
    job_id = submit(client, tickers=tickers, **HEAVY)
    # engine-2 is running one of the shards: kill it there.
    wait_for(lambda: taken(stack, job_id).get("engine-2"), 120, "engine-2 takes a shard", stack)
    stack.kill("engine-2", signal.SIGKILL)
    try:
        job = ended(client, job_id, 300, stack)
    finally:
        add_engine(stack, "engine-2")
    assert job["status"] == "completed", job
    rows = shards(pg_url, job_id)
    assert len(rows) == len(tickers) * HEAVY_CHUNKS and all(s["chunks"] == HEAVY_CHUNKS for s in rows), rows
    assert all(s["state"] == "completed" and s["staged"] is None for s in rows), rows
    with psycopg.connect(pg_url) as conn:
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT (r.ticker, r.fast_period, r.slow_period)) FROM sweep_results r "
            "JOIN sweep_runs s ON s.sweep_run_id = r.sweep_run_id WHERE s.job_id = %s", (job_id,)).fetchone()
    assert total == distinct == len(tickers) * HEAVY_PAIRS
    # The killed engine's shard was taken again (by engine, or by the restarted engine-2).
    assert sum(s["attempts"] for s in rows) > len(rows), rows
    assert client.get(f"/api/v1/jobs/{job_id}").json()["metrics"]["combinations_tested"] == len(tickers) * HEAVY_PAIRS


def test_a_cancel_mid_sweep_starts_no_further_shard(uni, client):
    stack, pg_url = uni
    tickers = [f"HV{i}" for i in range(4)]
    job_id = submit(client, tickers=tickers, **HEAVY)
    wait_for(lambda: any(s["state"] == "running" for s in shards(pg_url, job_id)), 120, "a shard running", stack)
    r = client.delete(f"/api/v1/jobs/{job_id}")
    assert r.status_code == 200, r.text
    cancelled_at = wait_for(lambda: (j := client.get(f"/api/v1/jobs/{job_id}").json())["status"] == "cancelled" and j,
                            10, "cancelled", stack)
    assert cancelled_at["status"] == "cancelled"
    before = shards(pg_url, job_id)
    time.sleep(4)  # the engines take the remaining messages meanwhile: none may start
    after = shards(pg_url, job_id)
    assert [(s["state"], s["started_at"], s["attempts"]) for s in after] == \
        [(s["state"], s["started_at"], s["attempts"]) for s in before]
    assert any(s["started_at"] is None for s in after), "some shards had not started: they never do"
    assert any(s["chunks"] > 1 for s in after), "the HEAVY tickers are pair-chunked"
    assert all(s["state"] in ("completed", "cancelled") for s in after), after
    # The shards running at the cancel ended: stopped at their next progress step (or, caught
    # between the kernel's last step and their results, refused when storing them).
    def ends(name: str, message: str) -> int:
        return sum(1 for line in stack.logs[name].read_text(errors="replace").splitlines()
                   if f'"{message}"' in line and job_id in line)

    wait_for(lambda: sum(ends(n, "sweep shard ended") for n in ("engine", "engine-2"))
             == sum(len(ids) for ids in taken(stack, job_id).values()), 60, "the running shards ended", stack)
    assert sum(ends(n, "sweep stopped on request") for n in ("engine", "engine-2")) >= 1 or \
        all(s["state"] != "completed" for s in after), "a running shard stops, or its rows are refused"
    with psycopg.connect(pg_url) as conn:
        stored = conn.execute("SELECT count(DISTINCT r.ticker) FROM sweep_results r JOIN sweep_runs s "
                              "ON s.sweep_run_id = r.sweep_run_id WHERE s.job_id = %s", (job_id,)).fetchone()[0]
    # A ticker's rows go in with its last pair chunk: only the tickers whose every chunk completed.
    whole = {s["ticker"] for s in before} - {s["ticker"] for s in before if s["state"] != "completed"}
    assert stored == len(whole), "nothing stored after the cancel"
    probe = submit(client, ticker="UA", **GRID)
    assert ended(client, probe, 60, stack)["status"] == "completed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tickers": []}, "tickers"),
        ({"universe": "no-such-universe"}, "universe"),
        ({"tickers": ["UA", "ub", "UA"]}, "tickers[2]"),
        ({"tickers": [f"T{i}" for i in range(501)]}, "tickers"),
        ({"ticker": "UA", "tickers": ["UB"]}, "tickers"),
        ({"ticker": "UA", "universe": "six"}, "universe"),
        ({"tickers": ["UA"], "universe": "six"}, "universe"),
        ({"tickers": ["UA", "bad ticker!"]}, "tickers[1]"),
        ({}, "ticker"),
    ],
)
def test_bad_input_is_a_400_and_queues_nothing(uni, client, body, field):
    _, pg_url = uni
    client.put("/api/v1/universes/empty-check", json={"tickers": ["UA"]})
    with psycopg.connect(pg_url) as conn:
        jobs_before, outbox_before = conn.execute("SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM outbox)").fetchone()
    r = client.post("/api/v1/strategy/sweep", json={**body, **GRID})
    assert r.status_code == 400, r.text
    text = json.dumps(r.json())
    assert field.split("[")[0] in text, text
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM outbox)").fetchone() == \
            (jobs_before, outbox_before)


def test_another_tenant_sees_none_of_it(uni, client):
    stack, _ = uni
    job_id = submit(client, tickers=["UA"], **GRID)
    run_id = ended(client, job_id, 60, stack)["sweep_run_id"]
    with stack.client(headers={"X-API-Key": OTHER_KEY}) as other:
        assert other.get(f"/api/v1/sweeps/{run_id}/tickers").status_code == 404
        assert other.get(f"/api/v1/sweeps/{job_id}/tickers").status_code == 404
        assert other.get(f"/api/v1/sweeps/{run_id}/best").status_code == 404
        # Its universes are its own: "six" is not one of them.
        r = other.post("/api/v1/strategy/sweep", json={"universe": "six", **GRID})
        assert r.status_code == 400 and "six" in r.text, r.text
