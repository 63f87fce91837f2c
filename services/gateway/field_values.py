"""Scalar field values of request bodies and forms, shared by the request validators
(services.gateway.sweep_request, services.gateway.backtest_request).

Each validator decides first how a field may arrive (its own `_single`: a JSON value, a
repeated form field); these check the one value.
"""

from __future__ import annotations

import math
import re
from typing import Any

# A decimal number as text (a form field, or a client that sends numbers as strings).
_NUMBER = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")


class FieldProblem(ValueError):
    """One field's problem; its text is the message shown for the field."""


def absent(value: Any) -> bool:
    """Not given: a JSON null, or an empty (or blank) form input."""
    return value is None or (isinstance(value, str) and value.strip() == "")


def has_control_characters(value: str) -> bool:
    """Whether `value` has an ASCII control character (C0 or DEL)."""
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def text(value: Any) -> str:
    """A string without control characters (as given, not stripped)."""
    if not isinstance(value, str):
        raise FieldProblem("expected a string")
    if has_control_characters(value):
        raise FieldProblem("must not contain control characters")
    return value


def number(value: Any) -> float:
    """A finite number: a JSON number (not a boolean) or its decimal text."""
    if isinstance(value, bool):
        raise FieldProblem("expected a number")
    if not isinstance(value, (int, float)) and not (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise FieldProblem("expected a number")
    out = float(value)
    if not math.isfinite(out):
        raise FieldProblem("expected a finite number")
    return out
