"""`/api/v1/universes` (issue 11): CRUD over real results, bad input as 400 with nothing
stored, tenant isolation."""

from __future__ import annotations

import uuid

from domain.universe import UNIVERSE_MAX_TICKERS

from .helpers import assert_error


def _name() -> str:
    return f"tech-{uuid.uuid4().hex[:8]}"


def test_crud_roundtrip(alpha, beta):
    name = _name()
    r = alpha.put(f"/api/v1/universes/{name}", json={"tickers": ["aapl", " msft", "BRK/B", "^GSPC"]})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["name"] == name and made["tickers"] == ["AAPL", "MSFT", "BRK/B", "^GSPC"]
    assert made["created_at"].endswith("Z") and made["updated_at"] == made["created_at"]
    assert alpha.get(f"/api/v1/universes/{name}").json() == made
    assert name in [u["name"] for u in alpha.get("/api/v1/universes").json()["universes"]]
    # Replace: 200, the new list in its order, created_at kept.
    r = alpha.put(f"/api/v1/universes/{name}", json={"tickers": ["NVDA", "AAPL"]})
    assert r.status_code == 200 and r.json()["tickers"] == ["NVDA", "AAPL"]
    assert r.json()["created_at"] == made["created_at"]
    # Another tenant sees none of it and cannot delete it.
    assert name not in [u["name"] for u in beta.get("/api/v1/universes").json()["universes"]]
    assert_error(beta.get(f"/api/v1/universes/{name}"), 404, "not_found")
    assert_error(beta.delete(f"/api/v1/universes/{name}"), 404, "not_found")
    # ... and its universe of the same name is its own.
    assert beta.put(f"/api/v1/universes/{name}", json={"tickers": ["X"]}).status_code == 201
    assert alpha.get(f"/api/v1/universes/{name}").json()["tickers"] == ["NVDA", "AAPL"]
    assert alpha.delete(f"/api/v1/universes/{name}").json() == {"name": name, "deleted": True}
    assert_error(alpha.get(f"/api/v1/universes/{name}"), 404, "not_found")
    assert_error(alpha.delete(f"/api/v1/universes/{name}"), 404, "not_found")
    assert beta.get(f"/api/v1/universes/{name}").json()["tickers"] == ["X"]
    beta.delete(f"/api/v1/universes/{name}")


def test_bad_input_is_a_400_and_stores_nothing(alpha):
    name = _name()
    cases = [
        ({"tickers": []}, "tickers", "at least one"),
        ({"tickers": ["AAPL", "MSFT", "aapl"]}, "tickers[2]", "AAPL is already tickers[0]"),
        ({"tickers": [f"T{i}" for i in range(UNIVERSE_MAX_TICKERS + 1)]}, "tickers", f"at most {UNIVERSE_MAX_TICKERS}"),
        ({"tickers": ["AAPL", "../etc"]}, "tickers[1]", "must not contain"),
        ({"tickers": ["AAPL", "x" * 40]}, "tickers[1]", "at most 32"),
        ({"tickers": {"a": 1}}, "tickers", ""),
        ({}, "tickers", ""),
        ({"tickers": ["AAPL"], "extra": 1}, "extra", ""),
    ]
    for body, field, words in cases:
        err = assert_error(alpha.put(f"/api/v1/universes/{name}", json=body), 400, "invalid_request")
        fields = {e["field"]: e["message"] for e in err["details"]["errors"]}
        assert field in fields and words in fields[field], (body, err)
    for bad_name in ("-starts-with-dash", "has space", "x" * 65, "semi;colon"):
        err = assert_error(alpha.put(f"/api/v1/universes/{bad_name}", json={"tickers": ["AAPL"]}), 400)
        assert err["details"]["errors"][0]["field"] == "name"
        assert_error(alpha.get(f"/api/v1/universes/{bad_name}"), 404, "not_found")
    assert_error(alpha.get(f"/api/v1/universes/{name}"), 404)
    assert name not in [u["name"] for u in alpha.get("/api/v1/universes").json()["universes"]]
