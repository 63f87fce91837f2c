"""`/openapi.json` is complete: every JSON operation has its response schema, every write
operation that takes a body has its request-body schema, and responses that are not JSON
(SSE, CSV, ZIP, Prometheus text) declare their media types. A client generated from it
works (tests/e2e/test_generated_client.py runs one)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.gateway.conftest import Gateway

JSON = "application/json"
# Write operations that take no body (their input is the path and the query).
BODILESS = {
    ("post", "/api/v1/auth/logout"),
    ("post", "/api/v1/jobs/{job_id}/deliveries/redeliver"),
    ("post", "/api/v1/backtest/cleanup/run"),
}
# Operations that answer something other than JSON, and what.
NON_JSON = {
    ("get", "/api/v1/jobs/{job_id}/stream"): "text/event-stream",
    ("get", "/sse-proxy/jobs/{job_id}/stream"): "text/event-stream",
    ("get", "/api/v1/backtest/{backtest_id}/stream"): "text/event-stream",
    ("get", "/runs/{run_id}/trades.csv"): "text/csv",
    ("get", "/runs/{run_id}/equity.csv"): "text/csv",
    ("get", "/api/v1/runs/{run_id}/trades.csv"): "text/csv",
    ("get", "/api/v1/runs/{run_id}/equity.csv"): "text/csv",
    ("get", "/runs/{run_id}/report.html"): "text/html",
    ("get", "/api/v1/runs/{run_id}/report.html"): "text/html",
    ("get", "/api/v1/backtest/{backtest_id}/day/{day}"): "application/zip",
    ("get", "/metrics"): "text/plain",
}
METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def spec(gw: Gateway) -> dict[str, Any]:
    r = httpx.get(gw.url + "/openapi.json", timeout=20)
    assert r.status_code == 200, r.text
    return r.json()


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, path, op) for path, ops in spec["paths"].items() for m, op in ops.items() if m in METHODS]


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/components/schemas/"), ref
    name = ref.rsplit("/", 1)[1]
    assert name in spec["components"]["schemas"], f"dangling $ref {ref}"
    return spec["components"]["schemas"][name]


def described(spec: dict[str, Any], schema: dict[str, Any] | None) -> bool:
    """A schema that says what the JSON is: an object with its properties (a model), or a
    list/union of such; not `{}` and not a bare "any object"."""
    if not schema:
        return False
    schema = resolve(spec, schema)
    if "anyOf" in schema or "oneOf" in schema:
        return all(described(spec, s) for s in schema.get("anyOf", schema.get("oneOf", [])) if s.get("type") != "null")
    if schema.get("type") == "array":
        return described(spec, schema.get("items"))
    if schema.get("type") == "object" or "properties" in schema:
        return bool(schema.get("properties"))
    return "type" in schema


def test_the_document_is_openapi_31_with_operations(spec):
    assert spec["openapi"].startswith("3.1")
    assert len(operations(spec)) > 50


def test_every_json_operation_has_a_response_schema(spec):
    missing = []
    for method, path, op in operations(spec):
        for status, response in op["responses"].items():
            if not status.startswith("2") or status == "204":
                continue
            content = response.get("content") or {}
            if JSON in content and not described(spec, content[JSON].get("schema")):
                missing.append(f"{method.upper()} {path} {status}")
    assert missing == [], "operations without a response schema:\n" + "\n".join(missing)


def test_every_write_with_a_body_has_a_request_body_schema(spec):
    missing, unexpected = [], []
    for method, path, op in operations(spec):
        if method not in ("post", "put", "patch"):
            continue
        body = op.get("requestBody")
        if (method, path) in BODILESS:
            if body is not None:
                unexpected.append(f"{method.upper()} {path}")
            continue
        content = (body or {}).get("content") or {}
        if not content or not all(described(spec, c.get("schema")) for c in content.values()):
            missing.append(f"{method.upper()} {path}")
    assert missing == [], "write operations without a request-body schema:\n" + "\n".join(missing)
    assert unexpected == [], f"listed as bodiless but documents a body: {unexpected}"


def test_non_json_responses_declare_their_media_type(spec):
    seen = {}
    for method, path, op in operations(spec):
        for status, response in op["responses"].items():
            if not status.startswith("2") or status == "204":
                continue
            content = response.get("content") or {}
            assert content, f"{method.upper()} {path} {status} declares no media type"
            media = set(content)
            if (method, path) in NON_JSON:
                assert media == {NON_JSON[(method, path)]}, (method, path, media)
                seen[(method, path)] = True
            else:
                assert media == {JSON}, f"{method.upper()} {path} {status}: {media}"
    assert set(seen) == set(NON_JSON)


def test_the_day_file_is_json_that_may_come_gzip_encoded(spec):
    op = spec["paths"]["/api/v1/backtest/day/{user_id}/{strategy_id}/{day}"]["get"]
    ok = op["responses"]["200"]
    assert described(spec, ok["content"][JSON]["schema"])
    assert "Content-Encoding" in ok["headers"]


def test_the_seed_form_and_json_bodies_of_a_sweep_are_documented(spec):
    for path in ("/api/v1/strategy/sweep", "/api/pipelines/trigger"):
        content = spec["paths"][path]["post"]["requestBody"]["content"]
        assert set(content) == {JSON, "application/x-www-form-urlencoded"}
        form = resolve(spec, content["application/x-www-form-urlencoded"]["schema"])
        assert form["properties"]["fast_range"]["type"] == "string"  # "[10, 20]" as the seed writes it
        body = resolve(spec, content[JSON]["schema"])
        step = body["properties"]["step"]
        assert (step["minimum"], step["maximum"]) == (1, 50)  # the domain's limits
    upload = spec["paths"]["/api/v1/datasets"]["post"]["requestBody"]["content"]
    assert set(upload) == {"multipart/form-data"}


def test_errors_are_documented_as_the_error_model_never_422(spec):
    for method, path, op in operations(spec):
        assert "422" not in op["responses"], f"{method.upper()} {path}"
        if "400" in op["responses"]:
            schema = op["responses"]["400"]["content"][JSON]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_every_reference_resolves(spec):
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(spec, node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
