"""Validation of synchronous backtests (`POST /backtest`) and replay overrides
(`POST /runs/{id}/replay`): plain functions over the fields a client sent, every
problem reported as one {field, message} entry. Nothing here knows HTTP or gRPC
beyond building the engine's BacktestSpec.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from hindsight.engine.v1 import engine_pb2

from domain.backtest_spec import (
    BUILTIN_STRATEGIES,
    DIRECTIONS,
    FILLS,
    PARAM_ALIASES,
    SpecInvalid,
    check_direction,
    normalize_parameters,
    strategy_name,
)
from domain.market import INTERVAL_MINUTES, interval_name, normalize_ticker, ticker_problem
from services.gateway import field_values
from services.gateway.field_values import FieldProblem as _Problem
from services.gateway.field_values import absent as _absent

STRATEGY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_CASH = 1e15
MAX_PCT = 10.0
DEFAULT_CASH = 10_000.0

# Fields of POST /backtest; `commission`/`slippage` are fractions (0.002 = 0.2 %, backtesting.py's
# convention), `*_pct` percents; `initial_cash` is the sweep's name for `cash`.
BACKTEST_FIELDS = frozenset({
    "ticker", "strategy", "strategy_id", "parameters", "start_date", "end_date", "interval", "cash",
    "initial_cash", "commission_pct", "slippage_pct", "commission", "slippage", "direction", "fill",
})
# What a replay may override.
REPLAY_FIELDS = frozenset({
    "start_date", "end_date", "interval", "cash", "parameters", "commission_pct", "slippage_pct",
    "commission", "slippage", "direction", "fill",
})


class RequestInvalid(Exception):
    """The request breaks one or more rules; `errors` lists them."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def _single(value: Any) -> Any:
    # A list is a JSON array or a repeated form field: never a scalar field's value.
    if isinstance(value, list):
        raise _Problem("expected a single value")
    return value


def _text(value: Any) -> str:
    return field_values.text(_single(value)).strip()


def _number(value: Any) -> float:
    return field_values.number(_single(value))


def _date(value: Any) -> date:
    text = _text(value)
    if not DATE.match(text):
        raise _Problem("must be a date YYYY-MM-DD")
    try:
        d = date.fromisoformat(text)
    except ValueError:
        raise _Problem("must be a valid date YYYY-MM-DD") from None
    if not 1900 <= d.year <= 2200:
        raise _Problem("must be a date between 1900 and 2200")
    return d


def _parameters(value: Any) -> dict[str, Any]:
    value = _single(value)
    if isinstance(value, str):  # a form field, or a client that double-encodes
        try:
            value = json.loads(value)
        except ValueError:
            raise _Problem("must be a JSON object") from None
    if not isinstance(value, dict):
        raise _Problem("must be a JSON object")
    return value


def _pct(value: Any, lo: float, hi: float, scale: float) -> float:
    out = _number(value)
    if not lo <= out <= hi:
        raise _Problem(f"must be a number from {lo:g} to {hi:g}")
    return out * scale


class _Fields:
    """Reads fields one by one, collecting problems."""

    def __init__(self, fields: dict[str, Any], allowed: frozenset[str]) -> None:
        self.fields = fields
        self.errors: list[dict[str, str]] = []
        for key in fields:
            if key not in allowed:
                self.errors.append({"field": str(key), "message": "unknown field"})

    def get(self, name: str, parse: Any) -> Any:
        raw = self.fields.get(name)
        if _absent(raw):
            return None
        try:
            return parse(raw)
        except _Problem as exc:
            self.errors.append({"field": name, "message": str(exc)})
            return None

    def add(self, field: str, message: str) -> None:
        self.errors.append({"field": field, "message": message})

    def one_of(self, a: str, b: str, parse_a: Any, parse_b: Any) -> Any:
        """Two spellings of one value (e.g. commission_pct and commission): at most one."""
        va, vb = self.get(a, parse_a), self.get(b, parse_b)
        if not _absent(self.fields.get(a)) and not _absent(self.fields.get(b)):
            self.add(b, f"give either {a} or {b}, not both")
        return va if va is not None else vb


def _common(f: _Fields) -> dict[str, Any]:
    """Fields shared by a backtest and a replay (None: not given)."""
    interval = f.get("interval", lambda v: interval_name(_text(v)) or _bad_interval())
    out = {
        "start_date": f.get("start_date", _date),
        "end_date": f.get("end_date", _date),
        "interval": interval,
        "commission_pct": f.one_of("commission_pct", "commission",
                                   lambda v: _pct(v, 0, MAX_PCT, 1.0), lambda v: _pct(v, 0, MAX_PCT / 100, 100.0)),
        "slippage_pct": f.one_of("slippage_pct", "slippage",
                                 lambda v: _pct(v, 0, MAX_PCT, 1.0), lambda v: _pct(v, 0, MAX_PCT / 100, 100.0)),
        "direction": f.get("direction", lambda v: _choice(v, DIRECTIONS)),
        "fill": f.get("fill", lambda v: _choice(v, FILLS)),
        "parameters": f.get("parameters", _parameters),
    }
    return out


def _bad_interval() -> str:
    raise _Problem(f"must be one of {', '.join(INTERVAL_MINUTES)}")


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    text = _text(value)
    if text not in choices:
        raise _Problem(f"must be one of {', '.join(choices)}")
    return text


def _cash(value: Any) -> float:
    out = _number(value)
    if not 0 < out <= MAX_CASH:
        raise _Problem("must be a number greater than 0 (at most 1e15)")
    return out


def _check_dates(f: _Fields, start: str, end: str, field: str = "start_date") -> None:
    if start and end and start > end:
        f.add(field, "must not be after end_date" if field == "start_date" else "must not be before start_date")


def _strategy_params(f: _Fields, strategy: str | None, raw: dict[str, Any] | None) -> dict[str, Any] | None:
    if strategy is None:
        return raw
    try:
        return normalize_parameters(strategy, raw or {})
    except SpecInvalid as exc:
        f.errors.extend(exc.errors)
        return None


def parse_backtest(fields: dict[str, Any]) -> engine_pb2.BacktestSpec:
    """A validated BacktestSpec from the fields of `POST /backtest`; raises RequestInvalid."""
    f = _Fields(fields, BACKTEST_FIELDS)

    def ticker(v: Any) -> str:
        text = _text(v)
        problem = ticker_problem(text)
        if problem is not None:
            raise _Problem(problem)
        return normalize_ticker(text)

    def strategy(v: Any) -> str:
        name = strategy_name(_text(v))
        if name is None:
            raise _Problem(f"must be one of {', '.join(BUILTIN_STRATEGIES)} (or give strategy_id)")
        return name

    def strategy_id(v: Any) -> str:
        text = _text(v)
        if not STRATEGY_ID.match(text):
            raise _Problem("must be 1-64 letters, digits, _ or -")
        return text

    tick = f.get("ticker", ticker)
    if _absent(fields.get("ticker")):
        f.add("ticker", "is required")
    name = f.get("strategy", strategy)
    sid = f.get("strategy_id", strategy_id)
    if _absent(fields.get("strategy")) and _absent(fields.get("strategy_id")):
        f.add("strategy", "is required (a built-in strategy, or strategy_id for a saved one)")
    elif not _absent(fields.get("strategy")) and not _absent(fields.get("strategy_id")):
        f.add("strategy_id", "give either strategy or strategy_id, not both")
    common = _common(f)
    cash = f.one_of("cash", "initial_cash", _cash, _cash)
    direction = common["direction"] or "long"
    if name is not None:
        try:
            check_direction(name, direction)
        except SpecInvalid as exc:
            f.errors.extend(exc.errors)
    params = _strategy_params(f, name, common["parameters"])
    start = common["start_date"].isoformat() if common["start_date"] else ""
    end = common["end_date"].isoformat() if common["end_date"] else ""
    _check_dates(f, start, end)
    if f.errors:
        raise RequestInvalid(f.errors)
    return engine_pb2.BacktestSpec(
        ticker=tick or "",
        strategy=name or "",
        strategy_id=sid or "",
        parameters_json=json.dumps(params or {}, separators=(",", ":")),
        start_date=start,
        end_date=end,
        interval=common["interval"] or "",
        cash=cash if cash is not None else DEFAULT_CASH,
        commission_pct=common["commission_pct"] or 0.0,
        slippage_pct=common["slippage_pct"] or 0.0,
        direction=direction,
        fill=common["fill"] or "next_open",
    )


def apply_overrides(base: engine_pb2.BacktestSpec, fields: dict[str, Any]) -> engine_pb2.BacktestSpec:
    """The spec of a replay: the original's, with the overrides a client sent (parameters
    merged into the original ones); raises RequestInvalid."""
    f = _Fields(fields, REPLAY_FIELDS)
    common = _common(f)
    cash = f.get("cash", _cash)
    spec = engine_pb2.BacktestSpec()
    spec.CopyFrom(base)
    if common["start_date"]:
        spec.start_date = common["start_date"].isoformat()
    if common["end_date"]:
        spec.end_date = common["end_date"].isoformat()
    for name in ("interval", "direction", "fill"):
        if common[name]:
            setattr(spec, name, common[name])
    for name in ("commission_pct", "slippage_pct"):
        if common[name] is not None:
            setattr(spec, name, common[name])
    if cash is not None:
        spec.cash = cash
    builtin = strategy_name(spec.strategy) if not spec.strategy_id else None
    if common["parameters"] is not None:
        try:
            original = json.loads(spec.parameters_json) if spec.parameters_json else {}
        except ValueError:
            original = {}
        merged = dict(original)
        for key, value in common["parameters"].items():
            merged[PARAM_ALIASES.get(key, key) if builtin else key] = value
        params = _strategy_params(f, builtin, merged)
        if params is not None:
            spec.parameters_json = json.dumps(params, separators=(",", ":"))
    if builtin is not None and common["direction"]:
        try:
            check_direction(builtin, spec.direction)
        except SpecInvalid as exc:
            f.errors.extend(exc.errors)
    field = "end_date" if common["end_date"] and not common["start_date"] else "start_date"
    _check_dates(f, spec.start_date, spec.end_date, field)
    if f.errors:
        raise RequestInvalid(f.errors)
    return spec
