"""The one reader of request bodies: raw fields, typed by a pydantic model.

Every JSON/form endpoint declares its body as one pydantic model (a `RequestModel`)
and reads it with a `BodyReader` dependency. The seeds' clients are loose, and the
reader keeps their leniencies in one place:

- a body that parses as a JSON object is JSON whatever its Content-Type (seed clients
  label JSON as a form or as text); otherwise a form (url-encoded or multipart) is read
  as a form, its values as strings (numbers as text are numbers: `step=5`);
- a list field may come as a JSON array, as its text (`fast_range: "[10, 20]"`, or
  `"10,20"`), or as a repeated form field; an object field may come as JSON text;
- a JSON null or an empty form input is "not given" (the default, or "is required").

A body that breaks rules is a 400 in the error model, `details.errors` listing every
problem once per field as `{"field", "message"}` (`parameters.fast_period`,
`entries[0].condition`, ...). Field rules are the model's (limits imported from
`domain`); rules between fields are the model's validators, which call the domain.
Size limits are enforced here and by `BodyLimitMiddleware`.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.errors import ApiError, error_response, invalid

# Bodies of JSON/form endpoints.
MAX_JSON_BODY = 1024 * 1024
# Dataset uploads.
MAX_UPLOAD_BODY = 512 * 1024 * 1024
UPLOAD_PATHS = frozenset({"/api/v1/datasets"})
# Form fields per request.
MAX_FORM_FIELDS = 100

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
# Documented media types of a body read as JSON or as a form (multipart forms are read too).
JSON_OR_FORM = (JSON, FORM)


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


# ---------------------------------------------------------------- raw fields


def media_type(request: Request) -> str:
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
    media = media_type(request)
    if media == MULTIPART:
        form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_JSON_BODY)
        try:
            return form_fields(form)
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
        if media == FORM or (not media.endswith("json") and b"=" in raw):
            return _parse_urlencoded(raw)
        raise invalid("request body is not valid JSON", [{"field": "body", "message": str(exc)}]) from exc
    if not isinstance(value, dict):
        raise invalid("request body must be a JSON object", [{"field": "body", "message": "expected an object"}])
    return value


def form_fields(form: FormData) -> dict[str, Any]:
    """A parsed form's fields (files included as UploadFile values)."""
    return _group(form.multi_items())


def _parse_urlencoded(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid("request body is not a valid form", [{"field": "body", "message": str(exc)}]) from exc
    return _group(pairs)


def _group(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            prev = out[key]
            out[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------- typed bodies


@dataclass(frozen=True)
class ErrorText:
    """Annotated metadata: the message shown for any malformed value of the field
    (its validators' own messages, "is required" and "expected a single value" excepted)."""

    text: str


def problem(message: str, **ctx: Any) -> PydanticCustomError:
    """A rule's failure, its message shown as is (`ctx`: extra keys of the entry, e.g. position)."""
    return PydanticCustomError("hindsight", message.replace("{", "{{").replace("}", "}}"), ctx or None)


def raise_problems(model: type[BaseModel], problems: Iterable[Any]) -> None:
    """Raise the problems (domain `Problem`s or {field, message[, position]} dicts) found
    by a validator between fields, each at its own field; nothing when there are none."""
    line_errors: list[Any] = []
    for p in problems:
        item = p if isinstance(p, dict) else {"field": p.field, "message": p.message}
        extra = {k: v for k, v in item.items() if k not in ("field", "message")}
        line_errors.append({"type": problem(str(item["message"]), **extra), "loc": (str(item["field"]),), "input": None})
    if line_errors:
        raise ValidationError.from_exception_data(model.__name__, line_errors)


def absent(value: Any) -> bool:
    """Not given: a JSON null, or an empty (or blank) form input."""
    return value is None or (isinstance(value, str) and value.strip() == "")


def _unwrap(annotation: Any) -> list[Any]:
    """The types a field accepts, without None, Annotated metadata and Literal."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [t for a in typing.get_args(annotation) if a is not type(None) for t in _unwrap(a)]
    return [annotation]


def _metadata(field: FieldInfo) -> list[Any]:
    """Every metadata object of a field, those inside Annotated members of a union too."""
    out = list(field.metadata)

    def walk(annotation: Any) -> None:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            args = typing.get_args(annotation)
            for meta in args[1:]:
                out.extend(meta.metadata if isinstance(meta, FieldInfo) else [meta])
            walk(args[0])
        elif origin is typing.Union or origin is types.UnionType:
            for a in typing.get_args(annotation):
                walk(a)

    walk(field.annotation)
    return out


def _shape(field: FieldInfo) -> str:
    """list, object or scalar: how a field's value may arrive."""
    kinds = set()
    for t in _unwrap(field.annotation):
        origin = typing.get_origin(t) or t
        if origin in (list, tuple, set, frozenset):
            kinds.add("list")
        elif origin is dict or (isinstance(origin, type) and issubclass(origin, BaseModel)):
            kinds.add("object")
        elif t is Any:
            kinds.add("any")
        else:
            kinds.add("scalar")
    return kinds.pop() if len(kinds) == 1 else "any"


def _numeric(field: FieldInfo) -> bool:
    accepted = _unwrap(field.annotation)
    return bool({int, float} & set(accepted)) and bool not in accepted


def _as_list(value: Any) -> Any:
    """`[10, 20]` given as text: "[10, 20]" (JSON) or "10,20" / "10 20"."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            return value  # left for the field's own message
    return [p for p in re.split(r"[,\s]+", text) if p]


def _as_object(value: Any) -> Any:
    """An object given as JSON text (a form field, or a client that double-encodes)."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if isinstance(parsed, dict) else value
    return value


class RequestModel(BaseModel):
    """A request body. Unknown fields are ignored (`extra="forbid"` in a subclass refuses
    them); numbers are finite; values arrive as the module docstring says."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _lenient(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out: dict[str, Any] = {}
        for key, value in data.items():
            if absent(value):
                continue
            field = cls.model_fields.get(key) if isinstance(key, str) else None
            shape = _shape(field) if field is not None else "any"
            if isinstance(value, bool) and field is not None and _numeric(field):
                value = str(value).lower()  # JSON true is not the number 1: fails as a number
            elif shape == "list":
                value = _as_list(value)
            elif shape == "object":
                value = _as_object(value)
            out[key] = value
        return out


M = TypeVar("M", bound=BaseModel)

# pydantic error types -> our messages.
_TYPE_MESSAGES = {
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_parsing_size": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "string_unicode": "expected a string",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "date_type": "must be a date YYYY-MM-DD",
    "date_parsing": "must be a date YYYY-MM-DD",
    "date_from_datetime_parsing": "must be a date YYYY-MM-DD",
}
_NUMERIC = ("int_", "float_", "greater_than", "less_than", "finite_number", "multiple_of")


def _field_at(model: type[BaseModel], loc: tuple[Any, ...]) -> FieldInfo | None:
    """The field a location points at (through nested models and list items)."""
    current: Any = model
    field: FieldInfo | None = None
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        nested = [t for t in _unwrap(field.annotation)]
        current = None
        for t in nested:
            for candidate in (t, *typing.get_args(t)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    current = candidate
    return field


def _fmt(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _bounds_message(field: FieldInfo) -> str | None:
    """"must be an integer from 1 to 50": a bounded number field's rule in words."""
    meta = _metadata(field)
    bounds = {name: getattr(m, name) for m in meta for name in ("ge", "gt", "le", "lt") if getattr(m, name, None) is not None}
    if not bounds:
        return None
    what = "an integer" if int in _unwrap(field.annotation) else "a number"
    lo = ("ge", bounds["ge"]) if "ge" in bounds else ("gt", bounds["gt"]) if "gt" in bounds else None
    hi = ("le", bounds["le"]) if "le" in bounds else ("lt", bounds["lt"]) if "lt" in bounds else None
    if lo and hi and lo[0] == "ge" and hi[0] == "le":
        return f"must be {what} from {_fmt(lo[1])} to {_fmt(hi[1])}"
    parts = []
    if lo:
        parts.append(f"at least {_fmt(lo[1])}" if lo[0] == "ge" else f"greater than {_fmt(lo[1])}")
    if hi:
        parts.append(f"at most {_fmt(hi[1])}" if hi[0] == "le" else f"less than {_fmt(hi[1])}")
    return f"must be {what} " + " and ".join(parts)


def _field_name(loc: tuple[Any, ...]) -> str:
    """("entries", 0, "condition") -> "entries[0].condition"; an index at the end (an item of
    a list of values) names the list."""
    parts = list(loc)
    while parts and isinstance(parts[-1], int):
        parts.pop()
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def problems_of(model: type[BaseModel], exc: ValidationError) -> list[dict[str, Any]]:
    """A model's validation errors as {field, message[, position]}, one per field."""
    out: dict[str, dict[str, Any]] = {}
    for e in exc.errors(include_url=False):
        loc = tuple(e.get("loc", ()))
        kind = e.get("type", "")
        ctx = e.get("ctx") or {}
        name = _field_name(loc)
        if name in out:
            continue
        field = _field_at(model, loc)
        item: dict[str, Any] = {"field": name}
        if kind == "hindsight":
            item["message"] = e["msg"]
            item.update(ctx)
        elif kind == "missing":
            item["message"] = "is required"
        elif kind == "extra_forbidden":
            known = ", ".join(model.model_fields) if len(loc) == 1 else ""
            item["message"] = f"unknown field (expected {known})" if known else "unknown field"
        elif isinstance(e.get("input"), list) and field is not None and _shape(field) == "scalar":
            item["message"] = "expected a single value"
        else:
            custom = next((m.text for m in _metadata(field) if isinstance(m, ErrorText)), None) if field else None
            bounds = _bounds_message(field) if field is not None and kind.startswith(_NUMERIC) else None
            if custom is not None:
                item["message"] = custom
            elif bounds is not None:
                item["message"] = bounds
            elif kind == "literal_error":
                choices = re.findall(r"'((?:[^'\\]|\\.)*)'", str(ctx.get("expected", "")))
                item["message"] = f"must be one of {', '.join(choices)}" if choices else e["msg"]
            elif kind in ("string_too_long", "too_long") and "max_length" in ctx:
                item["message"] = f"must be at most {ctx['max_length']} {'characters' if kind.startswith('string') else 'items'}"
            elif kind in ("string_too_short", "too_short") and "min_length" in ctx:
                item["message"] = f"must be at least {ctx['min_length']} {'characters' if kind.startswith('string') else 'items'}"
            else:
                item["message"] = _TYPE_MESSAGES.get(kind) or str(e.get("msg", "invalid value"))
        out[name] = item
    return list(out.values())


MessageText = str | Callable[[list[dict[str, Any]]], str]


def validate_fields(model: type[M], fields: dict[str, Any], message: MessageText) -> M:
    """`fields` as `model`; 400 with `message` (or message(problems)) listing every problem."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = problems_of(model, exc)
        raise invalid(message(problems) if callable(message) else message, problems) from None


class BodyReader(Generic[M]):
    """A FastAPI dependency: the request's body as `model` (400 listing every problem).

    `media_types` are the ones documented in the OpenAPI request body (JSON is read under
    any Content-Type anyway); `required=False` documents an optional body (an empty
    body is then `model()` with its defaults).
    """

    def __init__(
        self,
        model: type[M],
        *,
        message: MessageText,
        media_types: tuple[str, ...] = (JSON,),
        required: bool = True,
    ) -> None:
        self.model = model
        self.message = message
        self.media_types = media_types
        self.required = required

    async def __call__(self, request: Request) -> M:
        return validate_fields(self.model, await read_fields(request), self.message)


class UploadReader(BodyReader[M]):
    """A multipart body with files (the model's UploadFile fields); the form stays open
    while the endpoint runs (it streams the files) and is closed after."""

    def __init__(self, model: type[M], *, message: MessageText, max_files: int, max_fields: int, max_part_size: int) -> None:
        super().__init__(model, message=message, media_types=(MULTIPART,))
        self.limits = {"max_files": max_files, "max_fields": max_fields, "max_part_size": max_part_size}

    async def __call__(self, request: Request) -> AsyncIterator[M]:  # type: ignore[override]
        if media_type(request) != MULTIPART:
            raise ApiError(415, "unsupported_media_type", f"send the body as {MULTIPART}")
        form = await request.form(**self.limits)
        try:
            yield validate_fields(self.model, form_fields(form), self.message)
        finally:
            await form.close()
