"""Rule strategy definitions: validation, normalisation and the compiled form.

A definition is JSON::

    {
      "name": "RSI reversal",
      "dataset": {"ticker": "DEMO-MINUTE", "interval": "1m"},
      "session": {"timezone": "Asia/Kolkata", "start": "09:15", "end": "15:30", "square_off": "15:25"},
      "entries": [{"id": "entry-1", "name": "Oversold", "condition": "RSI(14) < 30", "side": "buy",
                   "quantity": 1, "stop_loss": {"type": "percent", "value": 0.5},
                   "target": {"type": "points", "value": 10}, "max_reentries": 2}],
      "exits": [{"id": "exit-1", "name": "Overbought", "condition": "RSI(14) > 70", "entries": ["entry-1"]}]
    }

- ``dataset.interval`` may be omitted (the finest interval of the ticker).
- ``session``: all optional. ``timezone`` defaults to the dataset's; ``start``/``end``
  (local HH:MM, end exclusive) restrict which bars belong to a day (default: all of
  the local day); ``square_off``: open positions close at the open of the first bar
  at or after it, and no entry fills from then on (default: at the last bar's close).
- entry ``side``: buy or sell (long or short); ``stop_loss`` / ``target``:
  ``{"type": "percent"|"points", "value": > 0}`` (or ``{"percent": x}`` / ``{"points": x}``),
  measured from the entry fill price; ``max_reentries``: entries allowed after a
  stop-out, per node and day (default 0).
- entry ``instrument`` (optional): an option leg, ``{"type": "option", "option_type":
  "CE"|"PE", "strike": "ATM"|"ATM+N"|"ATM-N"|"OTM N"|"ITM N", "expiry":
  "current_week"|"next_week"|"current_month"}`` (domain.option_legs): the node's condition
  is still evaluated on the underlying, and the position is the contract picked at the
  signal bar, traded on its own bars; its stop-loss and target are on the premium.
- exit ``entries``: the entry nodes it closes (default: all).
- ``parameters``: optional ``{name: default number}``; ``{name}`` placeholders in
  conditions and as stop-loss / target values (``domain.rules.parameters``). The
  normal form keeps the placeholders; `compile_strategy` substitutes the defaults.

`validate_definition` returns the normalised definition (defaults filled in) or
raises `StrategyInvalid` listing every problem with its field path, and for a
condition the character position of the error.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from domain.market import INTERVALS, normalize_ticker, ticker_problem
from domain.option_legs import OptionLeg, option_leg, validate_instrument
from domain.rules.expr import Condition, ExpressionError, parse_condition
from domain.rules.parameters import (
    Number,
    level_placeholder,
    parameters_problems,
    placeholders,
    substitute,
    substitute_text,
)

NODE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HHMM_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
MAX_NODES = 20
MAX_QUANTITY = 1e9

_TOP_KEYS = {"name", "description", "dataset", "session", "entries", "exits", "metadata", "parameters"}
_DATASET_KEYS = {"ticker", "interval"}
_SESSION_KEYS = {"timezone", "start", "end", "square_off"}
_ENTRY_KEYS = {"id", "name", "condition", "side", "quantity", "stop_loss", "target", "max_reentries", "instrument"}
_EXIT_KEYS = {"id", "name", "condition", "entries"}
_SIDES = {"buy": "buy", "long": "buy", "sell": "sell", "short": "sell"}


class StrategyInvalid(ValueError):
    """A definition with problems; `errors` is [{field, message[, position]}]."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class Level:
    """A stop-loss or target: `kind` percent or points, and its value."""

    kind: str
    value: float


def level_price(level: Level, entry: float, sign: float, *, stop: bool) -> float:
    """The price of a stop-loss (`stop`) or a target measured from the fill price `entry` of a
    position of `sign` (1 bought, -1 sold): a bought position's stop lies below, a sold one's above."""
    d = -sign if stop else sign
    return entry * (1 + d * level.value / 100) if level.kind == "percent" else entry + d * level.value


@dataclass(frozen=True)
class EntryNode:
    id: str
    name: str
    condition: Condition
    side: str  # buy / sell
    quantity: float
    stop_loss: Level | None
    target: Level | None
    max_reentries: int
    instrument: OptionLeg | None = None  # None: the underlying itself


@dataclass(frozen=True)
class ExitNode:
    id: str
    name: str
    condition: Condition
    entries: tuple[str, ...]


@dataclass(frozen=True)
class Strategy:
    """A validated strategy, its conditions parsed."""

    name: str
    ticker: str
    interval: str
    timezone: str  # empty: the dataset's
    session_start: int | None  # local minutes of day
    session_end: int | None
    square_off: int | None
    entries: tuple[EntryNode, ...]
    exits: tuple[ExitNode, ...]
    definition: dict[str, Any]

    @property
    def option_legs(self) -> bool:
        """Whether any entry node trades an option leg (the run needs the underlying's chain)."""
        return any(e.instrument is not None for e in self.entries)


def uses_option_legs(definition: dict[str, Any]) -> bool:
    """Whether a normalised definition has an entry node that trades an option leg."""
    return any(isinstance(e, dict) and e.get("instrument") for e in definition.get("entries") or [])


class _Errors:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, field: str, message: str, position: int | None = None) -> None:
        item: dict[str, Any] = {"field": field, "message": message}
        if position is not None:
            item["position"] = position
        self.items.append(item)


def _hhmm(value: Any, field: str, errors: _Errors) -> int | None:
    if value is None or value == "":
        return None
    m = HHMM_RE.match(str(value)) if isinstance(value, str) else None
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        errors.add(field, "must be a local time HH:MM (00:00-23:59)")
        return None
    return int(m.group(1)) * 60 + int(m.group(2))


def _unknown(obj: dict[str, Any], allowed: set[str], field: str, errors: _Errors) -> None:
    for key in sorted(set(obj) - allowed):
        errors.add(f"{field}.{key}" if field else key, f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _level(
    value: Any, field: str, errors: _Errors, *, percent_max: float | None, declared: dict[str, Number] | None = None
) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.add(field, 'must be {"type": "percent"|"points", "value": number} or null')
        return None
    if "type" in value or "value" in value:
        _unknown(value, {"type", "value"}, field, errors)
        kind, raw = value.get("type"), value.get("value")
    elif len(value) == 1 and next(iter(value)) in ("percent", "points"):
        kind, raw = next(iter(value.items()))
    else:
        errors.add(field, 'must be {"type": "percent"|"points", "value": number}')
        return None
    if kind not in ("percent", "points"):
        errors.add(f"{field}.type", "must be percent or points")
        return None
    name = level_placeholder(raw)
    where = ""
    if name is not None:
        if declared is None or name not in declared:
            errors.add(f"{field}.value", f"{{{name}}} names no declared parameter (declare it in parameters)")
            return None
        raw, where = declared[name], f" (the default of {{{name}}} is {declared[name]!r})"
    number = _number(raw)
    if number is None or number <= 0:
        errors.add(f"{field}.value", "must be a number above 0" + where)
        return None
    if kind == "percent" and percent_max is not None and number >= percent_max:
        errors.add(f"{field}.value", f"a percent stop-loss must be below {percent_max:g}" + where)
        return None
    return {"type": kind, "value": f"{{{name}}}" if name is not None else number}


def _condition(value: Any, field: str, errors: _Errors, declared: dict[str, Number] | None = None) -> str | None:
    if not isinstance(value, str) or not value.strip():
        errors.add(field, "a condition (text) is required, e.g. RSI(14) > 70")
        return None
    used = placeholders(value)
    missing = [(name, pos) for name, pos in used if declared is None or name not in declared]
    if missing:
        for name, pos in missing:
            errors.add(field, f"{{{name}}} names no declared parameter (declare it in parameters)", pos)
        return None
    text = substitute_text(value, declared or {}) if used else value
    try:
        parse_condition(text)
    except ExpressionError as exc:
        if used:  # positions are in the substituted text: say so rather than point beside the error
            errors.add(field, f"with the parameters' defaults ({text!r}): {exc.message} at position {exc.position}")
        else:
            errors.add(field, exc.message, exc.position)
        return None
    return value


def _node_head(
    node: dict[str, Any], field: str, allowed: set[str], default_id: str, ids: set[str], errors: _Errors,
    declared: dict[str, Number] | None = None,
) -> tuple[Any, Any, str | None]:
    """What entry and exit nodes share: known keys, an id unique among all nodes (added to
    `ids`), a name and a condition; (id, name, condition) as given (condition None if invalid)."""
    _unknown(node, allowed, field, errors)
    nid = node.get("id", default_id)
    if not isinstance(nid, str) or not NODE_ID_RE.match(nid):
        errors.add(f"{field}.id", "must be 1-64 letters, digits, '_', '.' or '-'")
    elif nid in ids:
        errors.add(f"{field}.id", f"duplicate node id {nid!r}")
    else:
        ids.add(nid)
    nname = node.get("name", nid if isinstance(nid, str) else "")
    if not isinstance(nname, str) or len(nname) > 200:
        errors.add(f"{field}.name", "must be text of at most 200 characters")
    return nid, nname, _condition(node.get("condition"), f"{field}.condition", errors, declared)


def validate_definition(definition: Any) -> dict[str, Any]:
    """The normalised definition, or StrategyInvalid listing every problem."""
    errors = _Errors()
    if not isinstance(definition, dict):
        raise StrategyInvalid([{"field": "body", "message": "a strategy is a JSON object"}])
    _unknown(definition, _TOP_KEYS, "", errors)
    out: dict[str, Any] = {}

    name = definition.get("name", "Untitled strategy")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        errors.add("name", "must be 1-200 characters of text")
    else:
        out["name"] = name.strip()
    if "description" in definition:
        desc = definition["description"]
        if desc is not None and (not isinstance(desc, str) or len(desc) > 5000):
            errors.add("description", "must be text of at most 5000 characters")
        else:
            out["description"] = desc
    if "metadata" in definition:
        if not isinstance(definition["metadata"], dict):
            errors.add("metadata", "must be an object")
        else:
            out["metadata"] = definition["metadata"]

    declared: dict[str, Number] | None = None
    if "parameters" in definition:
        declared, problems = parameters_problems(definition["parameters"])
        for pfield, pmessage in problems:
            errors.add(pfield, pmessage)
        out["parameters"] = declared

    ds = definition.get("dataset")
    if not isinstance(ds, dict):
        errors.add("dataset", 'required: {"ticker": "...", "interval": "1m"}')
    else:
        _unknown(ds, _DATASET_KEYS, "dataset", errors)
        ticker = ds.get("ticker")
        problem = ticker_problem(ticker.strip() if isinstance(ticker, str) else ticker)
        if problem is not None:
            errors.add("dataset.ticker", problem)
            ticker = None
        interval = ds.get("interval") or ""
        if interval and interval not in INTERVALS:
            errors.add("dataset.interval", f"must be one of {', '.join(INTERVALS)} (or omitted)")
        if ticker:
            out["dataset"] = {"ticker": normalize_ticker(ticker), "interval": interval}

    sess = definition.get("session") or {}
    norm_session: dict[str, Any] = {}
    if not isinstance(sess, dict):
        errors.add("session", "must be an object")
    else:
        _unknown(sess, _SESSION_KEYS, "session", errors)
        tz = sess.get("timezone") or ""
        if tz:
            try:
                ZoneInfo(str(tz))
                norm_session["timezone"] = str(tz)
            except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
                errors.add("session.timezone", f"unknown timezone {tz!r} (an IANA name such as Asia/Kolkata)")
        start = _hhmm(sess.get("start"), "session.start", errors)
        end = _hhmm(sess.get("end"), "session.end", errors)
        square = _hhmm(sess.get("square_off"), "session.square_off", errors)
        if start is not None and end is not None and end <= start:
            errors.add("session.end", "must be after session.start")
        if square is not None and start is not None and square <= start:
            errors.add("session.square_off", "must be after session.start")
        for key, value in (("start", start), ("end", end), ("square_off", square)):
            if value is not None:
                norm_session[key] = f"{value // 60:02d}:{value % 60:02d}"
    out["session"] = norm_session

    entries = definition.get("entries")
    norm_entries: list[dict[str, Any]] = []
    ids: set[str] = set()
    if not isinstance(entries, list) or not entries:
        errors.add("entries", "at least one entry node is required")
        entries = []
    elif len(entries) > MAX_NODES:
        errors.add("entries", f"at most {MAX_NODES} entry nodes")
        entries = []
    for i, node in enumerate(entries):
        f = f"entries[{i}]"
        if not isinstance(node, dict):
            errors.add(f, "an entry node is an object")
            continue
        nid, nname, cond = _node_head(node, f, _ENTRY_KEYS, f"entry-{i + 1}", ids, errors, declared)
        side = node.get("side", "buy")
        side_n = _SIDES.get(side.lower()) if isinstance(side, str) else None
        if side_n is None:
            errors.add(f"{f}.side", "must be buy or sell")
        qty = _number(node.get("quantity", 1))
        if qty is None or not 0 < qty <= MAX_QUANTITY:
            errors.add(f"{f}.quantity", "must be a number above 0")
        sl = _level(node.get("stop_loss"), f"{f}.stop_loss", errors, percent_max=100.0, declared=declared)
        tg = _level(node.get("target"), f"{f}.target", errors, percent_max=100.0 if side_n == "sell" else None,
                    declared=declared)
        max_re = node.get("max_reentries", 0)
        if isinstance(max_re, bool) or not isinstance(max_re, int) or not 0 <= max_re <= 100:
            errors.add(f"{f}.max_reentries", "must be a whole number from 0 to 100")
        instrument, problems = validate_instrument(node.get("instrument"))
        for sub, message in problems:
            errors.add(f"{f}.instrument.{sub}" if sub else f"{f}.instrument", message)
        norm_entry = {
            "id": nid,
            "name": nname,
            "condition": cond,
            "side": side_n,
            "quantity": int(qty) if qty is not None and qty.is_integer() else qty,
            "stop_loss": sl,
            "target": tg,
            "max_reentries": max_re,
        }
        if instrument is not None:
            norm_entry["instrument"] = instrument
        norm_entries.append(norm_entry)
    out["entries"] = norm_entries

    exits = definition.get("exits") or []
    norm_exits: list[dict[str, Any]] = []
    entry_ids = [e["id"] for e in norm_entries if isinstance(e.get("id"), str)]
    if not isinstance(exits, list):
        errors.add("exits", "must be a list of exit nodes")
        exits = []
    elif len(exits) > MAX_NODES:
        errors.add("exits", f"at most {MAX_NODES} exit nodes")
        exits = []
    for i, node in enumerate(exits):
        f = f"exits[{i}]"
        if not isinstance(node, dict):
            errors.add(f, "an exit node is an object")
            continue
        nid, nname, cond = _node_head(node, f, _EXIT_KEYS, f"exit-{i + 1}", ids, errors, declared)
        targets = node.get("entries")
        if targets is None:
            targets = list(entry_ids)
        elif not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
            errors.add(f"{f}.entries", "must be a non-empty list of entry node ids")
            targets = []
        else:
            for t in targets:
                if t not in entry_ids:
                    errors.add(f"{f}.entries", f"no entry node {t!r}")
        norm_exits.append({"id": nid, "name": nname, "condition": cond, "entries": list(dict.fromkeys(targets))})
    out["exits"] = norm_exits

    if errors.items:
        raise StrategyInvalid(errors.items)
    return out


def compile_strategy(definition: dict[str, Any]) -> Strategy:
    """A Strategy from a definition (validated again: stored ones were valid when stored); a
    definition with parameters runs with their values (its defaults) substituted."""
    normal = validate_definition(definition)
    d = substitute(normal, {}) if normal.get("parameters") else normal
    sess = d["session"]

    def minutes(key: str) -> int | None:
        v = sess.get(key)
        return None if v is None else int(v[:2]) * 60 + int(v[3:])

    entries = tuple(
        EntryNode(
            id=e["id"],
            name=e["name"],
            condition=parse_condition(e["condition"]),
            side=e["side"],
            quantity=float(e["quantity"]),
            stop_loss=Level(e["stop_loss"]["type"], float(e["stop_loss"]["value"])) if e["stop_loss"] else None,
            target=Level(e["target"]["type"], float(e["target"]["value"])) if e["target"] else None,
            max_reentries=int(e["max_reentries"]),
            instrument=option_leg(e["instrument"]) if e.get("instrument") else None,
        )
        for e in d["entries"]
    )
    exits = tuple(
        ExitNode(id=x["id"], name=x["name"], condition=parse_condition(x["condition"]), entries=tuple(x["entries"]))
        for x in d["exits"]
    )
    return Strategy(
        name=d["name"],
        ticker=d["dataset"]["ticker"],
        interval=d["dataset"]["interval"],
        timezone=sess.get("timezone", ""),
        session_start=minutes("start"),
        session_end=minutes("end"),
        square_off=minutes("square_off"),
        entries=entries,
        exits=exits,
        definition=normal,
    )
