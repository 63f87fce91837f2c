"""`/api/v1/strategies`: CRUD over real results, invalid definitions as 400 with positions, tenant isolation."""

from __future__ import annotations

import json
import uuid

from .helpers import assert_error

STRATEGY = {
    "name": "RSI reversal",
    "dataset": {"ticker": "DEMO-MINUTE", "interval": "1m"},
    "session": {"timezone": "Asia/Kolkata", "square_off": "15:15"},
    "entries": [{"id": "entry-1", "condition": "RSI(14) < 30 and time >= 09:30", "side": "buy", "quantity": 2,
                 "stop_loss": {"type": "percent", "value": 0.5}, "target": {"type": "points", "value": 10},
                 "max_reentries": 1}],
    "exits": [{"id": "exit-1", "condition": "RSI(14) > 70", "entries": ["entry-1"]}],
}


def test_crud_roundtrip(alpha):
    # JSON whatever the Content-Type (a seed client's fetch sends text/plain).
    r = alpha.post("/api/v1/strategies", content=json.dumps(STRATEGY), headers={"Content-Type": "text/plain"})
    assert r.status_code == 201, r.text
    created = r.json()
    sid = created["strategy_id"]
    assert str(uuid.UUID(sid)) == sid and created["name"] == "RSI reversal"
    assert created["definition"]["entries"][0]["stop_loss"] == {"type": "percent", "value": 0.5}
    assert created["created_at"].endswith("Z")
    assert alpha.get(f"/api/v1/strategies/{sid}").json()["definition"] == created["definition"]
    assert sid in [s["strategy_id"] for s in alpha.get("/api/v1/strategies").json()["strategies"]]
    r = alpha.put(f"/api/v1/strategies/{sid}", json={**STRATEGY, "name": "v2"})
    assert r.status_code == 200 and r.json()["name"] == "v2"
    own = str(uuid.uuid4())
    r = alpha.put(f"/api/v1/strategies/{own}", json=STRATEGY)
    assert r.status_code == 201 and r.json()["strategy_id"] == own
    assert alpha.delete(f"/api/v1/strategies/{own}").json() == {"strategy_id": own, "deleted": True}
    assert_error(alpha.get(f"/api/v1/strategies/{own}"), 404, "not_found")
    assert_error(alpha.delete(f"/api/v1/strategies/{own}"), 404)


def test_invalid_definitions_point_at_the_problem_and_store_nothing(alpha):
    before = alpha.get("/api/v1/strategies").json()["total"]
    bad_condition = {**STRATEGY, "entries": [{**STRATEGY["entries"][0], "condition": "RSI(14) < 30 and FOO(3) > 1"}]}
    err = assert_error(alpha.post("/api/v1/strategies", json=bad_condition), 400, "invalid_request")
    (item,) = err["details"]["errors"]
    assert item["field"] == "entries[0].condition" and item["position"] == 17 and "unknown indicator" in item["message"]
    assert "position 17" in err["message"]
    cases = [
        {**STRATEGY, "entries": [{**STRATEGY["entries"][0], "condition": "RSI(14) <"}]},
        {**STRATEGY, "entries": [{**STRATEGY["entries"][0], "condition": "__import__('os').system('x')"}]},
        {**STRATEGY, "entries": []},
        {**STRATEGY, "dataset": {}},
        {**STRATEGY, "session": {"square_off": "26:00"}},
        {**STRATEGY, "exits": [{"condition": "close > 1", "entries": ["nope"]}]},
        {**STRATEGY, "entries": [{**STRATEGY["entries"][0], "stop_loss": {"type": "percent", "value": 150}}]},
        {**STRATEGY, "surprise": True},
    ]
    for body in cases:
        assert_error(alpha.post("/api/v1/strategies", json=body), 400)
    for raw in ("", "[]", "not json", "{\"name\": NaN}"):
        assert_error(alpha.post("/api/v1/strategies", content=raw, headers={"Content-Type": "application/json"}), 400)
    assert_error(alpha.put("/api/v1/strategies/not-a-uuid", json=STRATEGY), 400)
    assert_error(alpha.put("/api/v1/strategies/..%2F..%2Fetc", json=STRATEGY), 404)
    assert alpha.get("/api/v1/strategies").json()["total"] == before


def test_another_tenants_strategy_is_404(alpha, beta):
    sid = alpha.post("/api/v1/strategies", json=STRATEGY).json()["strategy_id"]
    assert_error(beta.get(f"/api/v1/strategies/{sid}"), 404)
    assert_error(beta.delete(f"/api/v1/strategies/{sid}"), 404)
    assert sid not in [s["strategy_id"] for s in beta.get("/api/v1/strategies").json()["strategies"]]
    # A PUT by another tenant makes that tenant's own strategy; alpha's is untouched.
    assert beta.put(f"/api/v1/strategies/{sid}", json={**STRATEGY, "name": "beta's"}).status_code == 201
    assert alpha.get(f"/api/v1/strategies/{sid}").json()["name"] == "RSI reversal"
