"""The OpenAPI document (`/openapi.json`, `/docs`), completed where FastAPI cannot see:

- request bodies read by `BodyReader`s (a dependency, not a FastAPI body parameter, so
  that the seeds' leniencies hold): the model in components, under each media type the
  reader documents; a url-encoded form gets its own schema (lists and objects as text);
- errors: the API answers 400 with `ErrorResponse`, never FastAPI's 422 shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic.json_schema import models_json_schema

from services.gateway.body import FORM, BodyReader
from services.gateway.errors import ErrorResponse

REF = "#/components/schemas/{model}"


def _body_readers(dependant: Any) -> Iterable[BodyReader[Any]]:
    call = getattr(dependant, "call", None)
    if isinstance(call, BodyReader):
        yield call
    for sub in getattr(dependant, "dependencies", ()):
        yield from _body_readers(sub)


def document_request_bodies(schema: dict[str, Any], routes: Iterable[Any]) -> None:
    """Give each operation that reads its body with a BodyReader its request body:
    the model (in components) under each of the reader's media types."""
    readers: dict[tuple[str, str], BodyReader[Any]] = {}
    for route in iter_route_contexts(list(routes)):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema:
            for reader in _body_readers(route.dependant):
                for method in route.methods or ():
                    readers[(str(route.path_format), method.lower())] = reader
    if not readers:
        return
    models = {r.model for r in readers.values()}
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, value in defs.get("$defs", {}).items():
        components.setdefault(name, value)
    for (path, method), reader in readers.items():
        op = schema.get("paths", {}).get(path, {}).get(method)
        if op is None:
            continue
        name = reader.model.__name__
        content: dict[str, Any] = {}
        for media in reader.media_types:
            if media == FORM:
                # A url-encoded form carries text: its own schema, lists and objects as their text.
                components.setdefault(f"{name}Form", _form_schema(components[name]))
                content[media] = {"schema": {"$ref": REF.format(model=f"{name}Form")}}
            else:
                content[media] = {"schema": {"$ref": REF.format(model=name)}}
        op["requestBody"] = {"required": reader.required, "content": content}


def _form_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of a model's url-encoded form: list and object fields as their text
    (`"[10, 20]"`, `"10,20"`, JSON text); the other fields as in JSON."""
    out = json.loads(json.dumps(schema))
    out["title"] = f"{schema.get('title', '')} (form)".strip()
    for name, prop in out.get("properties", {}).items():
        variants = prop.get("anyOf", [prop])
        if not any(v.get("type") in ("array", "object") or "$ref" in v for v in variants):
            continue
        text: dict[str, Any] = {k: v for k, v in prop.items() if k in ("title", "description", "default")}
        text["type"] = "string"
        example = prop.get("examples", [None])[0]
        if isinstance(example, list):
            text["examples"] = [f"[{', '.join(str(x) for x in example)}]"]
        elif example is not None:
            text["examples"] = [json.dumps(example)]
        out["properties"][name] = text
    return out


def install_openapi(app: FastAPI) -> None:
    """Complete the app's generated OpenAPI document (once per generation)."""
    done: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        schema = FastAPI.openapi(app)
        if done.get("schema") is not schema:
            document_request_bodies(schema, app.routes)
            document_errors(schema)
            done["schema"] = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_errors(schema: dict[str, Any]) -> None:
    """OpenAPI: the 400 of every operation that takes parameters or a body is `ErrorResponse`
    (FastAPI would document a 422 of its own shape, which this API never answers)."""
    _, defs = models_json_schema([(ErrorResponse, "serialization")], ref_template=REF)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(defs.get("$defs", {}))
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            responses = op.get("responses", {})
            had_422 = responses.pop("422", None) is not None
            if had_422 or op.get("parameters") or op.get("requestBody"):
                responses.setdefault(
                    "400",
                    {"description": "Invalid request (every problem listed in `details.errors`)",
                     "content": {"application/json": {"schema": ref}}},
                )
    text = str(schema.get("paths", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{name}'" not in text:
            components.pop(name, None)
