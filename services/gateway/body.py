"""Reading request bodies the way the seeds' clients send them.

Seed clients are loose about Content-Type: a JSON body may arrive labelled as
form data or text, and seed 001 posts its sweep as
`application/x-www-form-urlencoded`. So a body that parses as a JSON object is
JSON whatever its Content-Type; otherwise a form (url-encoded or multipart) is
read as a form. Size limits are enforced here and by `BodyLimitMiddleware`.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.errors import ApiError, error_response, invalid

# Bodies of JSON/form endpoints.
MAX_JSON_BODY = 1024 * 1024
# Dataset uploads.
MAX_UPLOAD_BODY = 512 * 1024 * 1024
UPLOAD_PATHS = frozenset({"/api/v1/datasets"})


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body exceeds {limit} bytes", {"limit_bytes": limit})


class BodyLimitMiddleware:
    """Refuse request bodies over the limit of their endpoint with 413.

    A declared Content-Length over the limit is answered at once; a body that
    turns out larger while it is read (chunked uploads) fails the read with the
    same 413, which the error handlers render.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = MAX_UPLOAD_BODY if scope.get("path", "").rstrip("/") in UPLOAD_PATHS else MAX_JSON_BODY
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        if declared is not None and declared > limit:
            await error_response(too_large(limit))(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)
            return message

        await self.app(scope, limited_receive, send)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON does not.
    raise ValueError(f"{name} is not valid JSON")


# Bounds of a JSON body: nesting depth and object members in all (a 400 past them).
MAX_JSON_DEPTH = 32
MAX_JSON_KEYS = 10_000
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')


def json_depth(raw: bytes) -> int:
    """The deepest nesting of [ and { in JSON text (string contents ignored)."""
    bare = np.frombuffer(_STRINGS.sub(b'""', raw), dtype=np.uint8)
    steps = np.zeros(bare.shape[0], dtype=np.int32)
    steps[(bare == ord("[")) | (bare == ord("{"))] = 1
    steps[(bare == ord("]")) | (bare == ord("}"))] = -1
    return int(np.cumsum(steps).max(initial=0))


def parse_json(raw: bytes) -> Any:
    """JSON text -> value; raises ValueError (also for NaN/Infinity, bad UTF-8, nesting
    deeper than MAX_JSON_DEPTH and more than MAX_JSON_KEYS object members)."""
    text = raw.decode("utf-8")
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    members = 0

    def counted(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal members
        members += len(pairs)
        if members > MAX_JSON_KEYS:
            raise ValueError(f"more than {MAX_JSON_KEYS} object members")
        return dict(pairs)

    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=counted)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None


async def read_fields(request: Request) -> dict[str, Any]:
    """The request's fields as a dict: JSON object values as sent, form values as
    strings (a list of strings for a repeated field)."""
    media = _media_type(request)
    if media == "multipart/form-data":
        form = await request.form(max_files=0, max_fields=100, max_part_size=MAX_JSON_BODY)
        try:
            return _group((k, v) for k, v in form.multi_items() if isinstance(v, str))
        finally:
            await form.close()
    raw = await request.body()
    if len(raw) > MAX_JSON_BODY:
        raise too_large(MAX_JSON_BODY)
    if not raw.strip():
        return {}
    try:
        value = parse_json(raw)
    except ValueError as exc:
        if media == "application/x-www-form-urlencoded" or (not media.endswith("json") and b"=" in raw):
            return _parse_urlencoded(raw)
        raise invalid("request body is not valid JSON", [{"field": "body", "message": str(exc)}]) from exc
    if not isinstance(value, dict):
        raise invalid("request body must be a JSON object", [{"field": "body", "message": "expected an object"}])
    return value


def _parse_urlencoded(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid("request body is not a valid form", [{"field": "body", "message": str(exc)}]) from exc
    return _group(pairs)


def _group(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            prev = out[key]
            out[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            out[key] = value
    return out
