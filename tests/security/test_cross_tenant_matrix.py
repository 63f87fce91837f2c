"""Every route of /openapi.json × every method × another tenant's ids.

Tenant alpha owns one of everything (a dataset, a sweep job and its run, a saved run,
a rule strategy, a day-by-day backtest of a seed-004 user). Tenant bravo then calls
every operation the gateway documents with alpha's ids in the path (and a valid body
for writes). Nothing of alpha's may come back, and nothing of alpha's may change. The
route list comes from the spec, so a new route is covered without anyone adding it; a
path parameter this test has no id for fails the test until it is named here.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.stacks import Stack, start_standalone

ALPHA, BRAVO = "alpha-key-matrix-0123456789abcdef", "bravo-key-matrix-0123456789abcdef"
SECRET_TICKER = "ALPHA-SECRET"
STRATEGY_ID = "0f7a2c55-1d9e-4b7b-9a51-7f0c3d2e9b10"
USER_ID = "alpha_user"
START, END = "2024-01-01", "2024-01-12"
# Paths whose ids the client chooses: a strategy id (PUT creates it in the caller's tenant),
# a seed-004 user's data (clearing "alpha_user" as bravo clears bravo's nothing), a universe's
# name (PUT creates it in the caller's tenant).
CLIENT_CHOSEN_IDS = frozenset({"/api/v1/strategies/{strategy_id}", "/api/v1/backtest/clear/{user_id}/{strategy_id}",
                               "/api/v1/universes/{name}"})
UNIVERSE = "alpha-universe"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_standalone(
        tmp_path_factory.mktemp("matrix-data"),
        tmp_path_factory.mktemp("matrix-logs"),
        {"HINDSIGHT_REQUIRE_AUTH": "1", "HINDSIGHT_BOOTSTRAP_KEYS": f"alpha:{ALPHA},bravo:{BRAVO}"},
    )
    yield s
    s.stop(signal.SIGINT)


def _client(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(base_url=stack.base_url, timeout=60, headers={"X-API-Key": key})


def _wait_job(c: httpx.Client, job_id: str) -> dict:
    deadline = time.time() + 120
    while time.time() < deadline:
        job = c.get(f"/api/v1/jobs/{job_id}").json()
        if job.get("status") in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end")


STRATEGY = {
    "name": "alpha private strategy",
    "dataset": {"ticker": "DEMO-MINUTE", "interval": "1m"},
    "session": {"square_off": "15:15"},
    "entries": [{"id": "entry-1", "condition": "RSI(14) < 30", "side": "buy", "quantity": 10}],
    "exits": [{"id": "exit-1", "condition": "RSI(14) > 70"}],
}


@pytest.fixture(scope="module")
def alpha_ids(stack: Stack) -> dict[str, str]:
    """One of everything, owned by alpha; path parameter name -> alpha's value."""
    with _client(stack, ALPHA) as c:
        ts = pd.date_range("2020-01-01", periods=400, freq="D")
        close = 100 * np.exp(np.cumsum(np.random.default_rng(7).normal(0, 0.02, len(ts))))
        frame = pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d"), "open": close, "high": close * 1.01,
                              "low": close * 0.99, "close": close, "volume": 1000})
        up = c.post("/api/v1/datasets", files={"file": ("a.csv", frame.to_csv(index=False).encode())},
                    data={"ticker": SECRET_TICKER, "interval": "1d"})
        assert up.status_code in (200, 201), up.text
        dataset_id = up.json()["dataset_id"]
        chain_csv = "timestamp,expiry,strike,option_type,open,high,low,close,volume\n" + "".join(
            f"2024-01-02 09:{15 + m}:00,2024-01-04,{k},{t},10,11,9,10.5,5\n"
            for m in range(3) for k in (100, 110) for t in ("CE", "PE"))
        chain = c.post("/api/v1/datasets", files={"file": ("chain.csv", chain_csv.encode())},
                       data={"kind": "option_chain", "ticker": SECRET_TICKER, "interval": "1m"})
        assert chain.status_code == 201, chain.text
        sweep = c.post("/api/v1/strategy/sweep", json={"ticker": SECRET_TICKER, "fast_range": [5, 10],
                                                       "slow_range": [20, 30], "step": 5, "min_trades": 10})
        assert sweep.status_code == 202, sweep.text
        job = _wait_job(c, sweep.json()["job_id"])
        assert job["status"] == "completed", job
        bt = c.post("/backtest", json={"ticker": SECRET_TICKER, "strategy": "sma_crossover"})
        assert bt.status_code in (200, 201), bt.text
        run_id = str(bt.json().get("id") or bt.json().get("run_id"))
        put = c.put(f"/api/v1/strategies/{STRATEGY_ID}", json=STRATEGY)
        assert put.status_code in (200, 201), put.text
        days = c.post("/api/v1/backtest/run", json={"user_id": USER_ID, "strategy_id": STRATEGY_ID,
                                                    "start_date": START, "end_date": END})
        assert days.status_code in (200, 202), days.text
        day_job = _wait_job(c, days.json()["job_id"])
        assert day_job["status"] == "completed", day_job
        started = c.post("/api/v1/backtest/start", json={"strategy_id": STRATEGY_ID, "start_date": START, "end_date": END})
        assert started.status_code in (200, 202), started.text
        _wait_job(c, started.json().get("job_id") or started.json()["backtest_id"])
        wf = c.post("/api/v1/walkforward", json={
            "sweep": {"ticker": SECRET_TICKER, "fast_range": [5, 10], "slow_range": [20, 30], "step": 5, "min_trades": 10},
            "train_bars": 200, "test_bars": 100, "step_bars": 100})
        assert wf.status_code == 202, wf.text
        assert _wait_job(c, wf.json()["job_id"])["status"] == "completed"
        universe = c.put(f"/api/v1/universes/{UNIVERSE}", json={"tickers": [SECRET_TICKER, "MSFT"]})
        assert universe.status_code == 201, universe.text
        return {
            "wf_job_id": wf.json()["job_id"],
            "name": UNIVERSE,
            "day_job_id": days.json()["job_id"],
            "dataset_id": dataset_id,
            "chain_id": chain.json()["dataset_id"],
            "job_id": job["job_id"],
            "sweep_run_id": job.get("sweep_run_id") or job.get("result", {}).get("sweep_run_id", ""),
            "run_id": run_id,
            "strategy_id": STRATEGY_ID,
            "user_id": USER_ID,
            "day": "02-01-2024",
            "iso_day": "2024-01-02",
            "backtest_id": f"{STRATEGY_ID}_{START}_{END}",
        }


def _fill(path: str, ids: dict[str, str]) -> str:
    """`path` with alpha's id for each parameter (day-by-day routes take their own ids)."""
    day_route = path.startswith("/api/v1/backtest/")
    walkforward_route = path.startswith("/api/v1/walkforward/")
    url = path
    for name in re.findall(r"{(\w+)}", path):
        value = ids[name]
        if day_route and name == "job_id":
            value = ids["day_job_id"]
        if walkforward_route and name == "job_id":
            value = ids["wf_job_id"]
        if name == "day" and "{backtest_id}" in path:
            value = ids["iso_day"]  # seed 002's day is YYYY-MM-DD, seed 004's DD-MM-YYYY
        if name == "dataset_id" and path.endswith("/contracts"):
            value = ids["chain_id"]  # an option chain's route
        url = url.replace("{" + name + "}", value)
    if path.endswith("/contracts"):
        url += f"?date={ids['iso_day']}"  # the day it lists
    return url


def _snapshot(stack: Stack, ids: dict[str, str]) -> dict[str, object]:
    """What alpha sees of its own things (compared before and after bravo's calls)."""
    with _client(stack, ALPHA) as c:
        return {
            "datasets": sorted((d["dataset_id"], d.get("bars")) for d in _items(c.get("/api/v1/datasets").json())),
            "job": c.get(f"/api/v1/jobs/{ids['job_id']}").json().get("status"),
            "run": c.get(f"/api/v1/runs/{ids['run_id']}").status_code,
            "strategy": c.get(f"/api/v1/strategies/{STRATEGY_ID}").json().get("name"),
            "days": c.get(f"/api/v1/backtest/metadata/{USER_ID}/{STRATEGY_ID}").status_code,
            "universe": c.get(f"/api/v1/universes/{UNIVERSE}").json().get("tickers"),
        }


def _items(body: object) -> list[dict]:
    if isinstance(body, list):
        return body
    assert isinstance(body, dict)
    for value in body.values():
        if isinstance(value, list):
            return value
    return []


def _body_for(path: str, method: str) -> dict | None:
    if method not in ("post", "put", "patch"):
        return None
    if "/strategies/" in path:
        return {**STRATEGY, "name": "bravo overwrote this"}
    if path.endswith("/replay"):
        return {}
    if path.startswith("/api/v1/universes/"):
        return {"tickers": ["BRAVO-OWN"]}
    return {}


def test_no_route_lets_another_tenant_read_or_change_anything(stack: Stack, alpha_ids: dict[str, str]) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=30) as anon:
        spec = anon.get("/openapi.json").json()
    before = _snapshot(stack, alpha_ids)
    markers = [SECRET_TICKER, alpha_ids["dataset_id"], alpha_ids["chain_id"], alpha_ids["job_id"],
               alpha_ids["wf_job_id"], STRATEGY_ID,
               "alpha private strategy"]
    markers += [m for m in (alpha_ids["sweep_run_id"],) if m]
    probed = 0
    with _client(stack, BRAVO) as c:
        for path, operations in spec["paths"].items():
            params = re.findall(r"{(\w+)}", path)
            missing = [p for p in params if p not in alpha_ids]
            assert not missing, f"{path}: no id of alpha's for {missing}; name one in alpha_ids"
            url = _fill(path, alpha_ids)
            for method in operations:
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                if path.startswith("/api/v1/auth/") or path in ("/metrics",):
                    continue
                body = _body_for(path, method)
                with c.stream(method.upper(), url, json=body) as r:
                    text = r.read(), r.status_code
                content, status = text
                probed += 1
                shown = content[:20000].decode("utf-8", "replace")
                if params:
                    # A path naming alpha's thing: bravo must not get it (or change it).
                    if path in CLIENT_CHOSEN_IDS:
                        # Clients choose these ids (PUT creates): bravo's PUT makes bravo's own
                        # strategy under that id, which bravo may then read and delete. Alpha's
                        # stays as it was (the snapshot below).
                        assert status < 500, (method, path, status, shown)
                    else:
                        assert status in (204, 400, 401, 403, 404, 405, 409, 410, 422), (method, path, status, shown)
                        assert status != 204 or method == "get", (method, path, status)
                for marker in markers:
                    if marker == STRATEGY_ID and path in CLIENT_CHOSEN_IDS:
                        continue  # the id bravo itself sent is echoed in its own strategy
                    assert marker not in shown or (marker in url and status in (400, 404, 409, 422)), (
                        method, path, status, marker, shown[:500])
    assert probed >= 40
    assert _snapshot(stack, alpha_ids) == before


def test_alpha_reaches_every_one_of_its_ids(stack: Stack, alpha_ids: dict[str, str]) -> None:
    """The positive control: with alpha's key the same GETs answer, so bravo's 404s mean isolation."""
    assert all(alpha_ids.values()), alpha_ids
    with httpx.Client(base_url=stack.base_url, timeout=30) as anon:
        spec = anon.get("/openapi.json").json()
    checked = 0
    with _client(stack, ALPHA) as c:
        for path, operations in spec["paths"].items():
            params = re.findall(r"{(\w+)}", path)
            if not params or "get" not in operations or path.endswith("/stream"):
                continue
            url = _fill(path, alpha_ids)
            r = c.get(url)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
            checked += 1
    assert checked >= 10
