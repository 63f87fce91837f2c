"""Parameters of a rule strategy: declaration, `{name}` placeholders, substitution and sweep grids.

A definition may declare numeric parameters with their defaults and use them as
``{name}`` anywhere in a condition's text and as the value of a stop-loss or a
target::

    {"parameters": {"rsi_len": 14, "oversold": 30, "sl": 0.5},
     "entries": [{"condition": "RSI({rsi_len}) < {oversold}", "stop_loss": {"type": "percent", "value": "{sl}"}}],
     ...}

- A name is a letter or ``_`` then letters, digits or ``_`` (at most 32); at most
  ``MAX_PARAMETERS`` of them. A default is a number (not a boolean); a whole number
  (``14``, not ``14.0``) makes the parameter an integer one.
- Every placeholder must name a declared parameter. A backtest of the definition runs
  it with the defaults substituted, so the defaults must make every condition and
  level valid (``RSI({rsi_len})`` with ``rsi_len: 14.5`` is refused: a period is a
  whole number).
- Substitution writes an integer parameter as ``14`` and any other as Python's
  shortest round-trip text (``0.25``).

A sweep of a definition (`POST /api/v1/strategies/{id}/sweep`) gives every parameter
used by a placeholder a range ``[start, stop, step]``: the values start, start + step,
... up to stop inclusive (``[10, 20, 2]``: 10, 12, ..., 20). An integer parameter's
range is whole numbers. The grid is the product of the ranges, in the order the
parameters are declared, the last one varying fastest; it has at most
``MAX_SWEEP_COMBINATIONS`` combinations, and every combination must give a valid
definition.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

PARAMETER_NAME_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
PLACEHOLDER_RE: Final = re.compile(r"\{([^{}]*)\}")
MAX_PARAMETERS: Final = 8
# Combinations of one sweep of a rule strategy: each is a day-by-day run's worth of state
# machine over the range (its indicators are shared), so the limit keeps one job in minutes.
MAX_SWEEP_COMBINATIONS: Final = 1_000
# A float range is enumerated as start + i x step, rounded to this many decimals (so
# [0.1, 0.3, 0.1] gives 0.1, 0.2, 0.3, not 0.30000000000000004).
RANGE_DECIMALS: Final = 10

Number = int | float


def _number(value: Any) -> Number | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def is_integer_default(value: Number) -> bool:
    """An integer parameter: its default is written as a whole number (``14``, not ``14.0``)."""
    return isinstance(value, int)


def parameters_problems(raw: Any) -> tuple[dict[str, Number], list[tuple[str, str]]]:
    """The declared parameters (name -> default) and every (field, message) wrong with them."""
    problems: list[tuple[str, str]] = []
    out: dict[str, Number] = {}
    if raw is None:
        return out, problems
    if not isinstance(raw, dict):
        return out, [("parameters", 'must be an object of name: default number, e.g. {"rsi_len": 14}')]
    if len(raw) > MAX_PARAMETERS:
        problems.append(("parameters", f"at most {MAX_PARAMETERS} parameters"))
    for name, value in raw.items():
        field = f"parameters.{name}"
        if not isinstance(name, str) or not PARAMETER_NAME_RE.match(name):
            problems.append((field, "a parameter name is a letter or '_' then up to 31 letters, digits or '_'"))
            continue
        number = _number(value)
        if number is None:
            problems.append((field, f"the default must be a number, not {type(value).__name__} {value!r}"))
            continue
        out[name] = number
    return out, problems


def placeholders(text: str) -> list[tuple[str, int]]:
    """The ``{name}`` placeholders of a text: (name, 0-based position of its '{')."""
    return [(m.group(1), m.start()) for m in PLACEHOLDER_RE.finditer(text)]


def level_placeholder(value: Any) -> str | None:
    """The parameter a stop-loss or target value names (``"{sl}"``), or None when it is not one."""
    if isinstance(value, str):
        m = PLACEHOLDER_RE.fullmatch(value.strip())
        if m is not None:
            return m.group(1)
    return None


def format_value(value: Number) -> str:
    """A parameter's value as substitution writes it into a condition."""
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def substitute_text(text: str, values: Mapping[str, Number]) -> str:
    """``text`` with each declared ``{name}`` replaced by its value (others left as they are)."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        return format_value(values[name]) if name in values else m.group(0)

    return PLACEHOLDER_RE.sub(one, text)


def used_parameters(definition: Mapping[str, Any]) -> list[str]:
    """Names used by a placeholder in the conditions or the levels of a (raw or normal)
    definition, in order of first use."""
    seen: dict[str, None] = {}
    for group in ("entries", "exits"):
        nodes = definition.get(group)
        for node in nodes if isinstance(nodes, list) else []:
            if not isinstance(node, dict):
                continue
            cond = node.get("condition")
            if isinstance(cond, str):
                for name, _ in placeholders(cond):
                    seen.setdefault(name, None)
            for key in ("stop_loss", "target"):
                level = node.get(key)
                if isinstance(level, dict):
                    raw = level.get("value") if ("type" in level or "value" in level) else next(iter(level.values()), None)
                    named = level_placeholder(raw)
                    if named is not None:
                        seen.setdefault(named, None)
    return list(seen)


def substitute(definition: Mapping[str, Any], values: Mapping[str, Number]) -> dict[str, Any]:
    """A copy of a (raw or normal) definition with its placeholders replaced by ``values``
    (conditions textually, levels by the number) and ``parameters`` set to them merged over
    the defaults: the definition of one combination of a sweep."""
    out = dict(definition)
    declared = definition.get("parameters")
    merged: dict[str, Any] = dict(declared) if isinstance(declared, dict) else {}
    merged.update(values)
    for group in ("entries", "exits"):
        nodes = definition.get(group)
        if not isinstance(nodes, list):
            continue
        new_nodes: list[Any] = []
        for node in nodes:
            if not isinstance(node, dict):
                new_nodes.append(node)
                continue
            node = dict(node)
            if isinstance(node.get("condition"), str):
                node["condition"] = substitute_text(node["condition"], merged)
            for key in ("stop_loss", "target"):
                level = node.get(key)
                if isinstance(level, dict):
                    node[key] = _substitute_level(level, merged)
            new_nodes.append(node)
        out[group] = new_nodes
    if isinstance(declared, dict):
        out["parameters"] = merged
    return out


def _substitute_level(level: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    if "type" in level or "value" in level:
        name = level_placeholder(level.get("value"))
        if name is not None and name in values:
            return {**level, "value": values[name]}
        return dict(level)
    if len(level) == 1:
        kind, raw = next(iter(level.items()))
        name = level_placeholder(raw)
        if name is not None and name in values:
            return {kind: values[name]}
    return dict(level)


# ------------------------------------------------------------------ sweep grids


def range_values(spec: Any, default: Number) -> tuple[list[Number], str | None]:
    """The values of one parameter's range ``[start, stop, step]`` (inclusive), or a problem."""
    if not isinstance(spec, (list, tuple)) or len(spec) != 3:
        return [], "must be [start, stop, step], e.g. [10, 20, 2]"
    numbers = [_number(v) for v in spec]
    if any(v is None for v in numbers):
        return [], "start, stop and step must be numbers"
    start, stop, step = (float(v) for v in numbers)  # type: ignore[arg-type]
    integer = is_integer_default(default)
    if integer and not all(float(v).is_integer() for v in numbers):  # type: ignore[arg-type]
        return [], f"the parameter is a whole number (its default is {default}): start, stop and step must be whole numbers"
    if step <= 0:
        return [], "step must be above 0"
    if stop < start:
        return [], "stop must not be below start"
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_SWEEP_COMBINATIONS:
        return [], f"gives {count} values; a sweep has at most {MAX_SWEEP_COMBINATIONS} combinations"
    if integer:
        return [int(start) + i * int(step) for i in range(count)], None
    return [round(start + i * step, RANGE_DECIMALS) for i in range(count)], None


def grid_problems(declared: Mapping[str, Number], used: Sequence[str], ranges: Any) -> tuple[list[str], list[tuple[Number, ...]], list[tuple[str, str]]]:
    """The swept names (declaration order), every combination of their values (the grid, the
    last name fastest) and the problems of a sweep's ``parameters`` against a definition that
    declares ``declared`` and uses ``used`` in placeholders."""
    problems: list[tuple[str, str]] = []
    if not isinstance(ranges, dict) or not ranges:
        return [], [], [("parameters", 'required: a range per parameter, e.g. {"rsi_len": [10, 20, 2]}')]
    for name in ranges:
        if name not in declared:
            known = ", ".join(declared) or "none"
            problems.append((f"parameters.{name}", f"the strategy declares no parameter {name!r} (declared: {known})"))
    for name in used:
        if name in declared and name not in ranges:
            problems.append((f"parameters.{name}", f"the strategy uses {{{name}}} but the sweep gives it no range"))
    names = [n for n in declared if n in ranges]
    values: list[list[Number]] = []
    for name in names:
        vals, problem = range_values(ranges[name], declared[name])
        if problem is not None:
            problems.append((f"parameters.{name}", problem))
        values.append(vals)
    if problems:
        return names, [], problems
    total = math.prod(len(v) for v in values)
    if total > MAX_SWEEP_COMBINATIONS:
        return names, [], [("parameters", f"the grid has {total} combinations; at most {MAX_SWEEP_COMBINATIONS}")]
    return names, list(itertools.product(*values)), []
