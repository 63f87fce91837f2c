"""Vectorised evaluation of parsed conditions over whole bar series.

Each distinct indicator (name, source, parameters) is computed once per
context by the Cython kernels, over every bar given (so values on a day's first
bars use the bars before it). A condition evaluates to one boolean per bar; a
comparison involving a NaN (indicator warm-up) is false. The values of both
sides of every comparison are kept, so the diagnostics of a bar where a node
fired can say what was compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from domain.rules.expr import (
    Arith,
    BoolOp,
    Compare,
    Condition,
    Indicator,
    Neg,
    Node,
    Not,
    Num,
    Series,
    TimeLit,
    TimeOfDay,
)
from services.engine import indicators as ma
from services.engine._core import ta_kernel

Value = np.ndarray | float


class SeriesContext:
    """The bars a condition is evaluated on, and the indicator cache."""

    def __init__(
        self,
        open_: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
        minute_of_day: np.ndarray,
        day: np.ndarray,
    ) -> None:
        self.series = {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
        self.minute_of_day = minute_of_day
        # Where VWAP restarts: a new value starts a new accumulation (the caller's session days).
        self.day = np.ascontiguousarray(day, dtype=np.int64)
        self._cache: dict[tuple, object] = {}

    def __len__(self) -> int:
        return int(self.series["close"].shape[0])

    @property
    def computed(self) -> int:
        """Distinct indicator series computed so far (each once per context)."""
        return len(self._cache)

    def indicator(self, ind: Indicator) -> np.ndarray:
        key = ind.key
        value = self._cache.get(key)
        if value is None:
            value = self._compute(ind)
            self._cache[key] = value
        if ind.name == "MACD":
            line, signal, hist = value  # type: ignore[misc]
            return {"line": line, "signal": signal, "hist": hist}[ind.output or "line"]
        if ind.name == "BBANDS":
            upper, middle, lower = value  # type: ignore[misc]
            return {"upper": upper, "middle": middle, "lower": lower}[ind.output or "middle"]
        return value  # type: ignore[return-value]

    def _compute(self, ind: Indicator):
        s = self.series
        src = s[ind.source]
        p = ind.params
        if ind.name == "SMA":
            return ma.sma(src, int(p[0]))
        if ind.name == "EMA":
            return ma.ema(src, int(p[0]))
        if ind.name == "RSI":
            return ta_kernel.rsi(src, int(p[0]))
        if ind.name == "MACD":
            return ma.macd(src, int(p[0]), int(p[1]), int(p[2]))
        if ind.name == "BBANDS":
            return ta_kernel.bbands(src, int(p[0]), float(p[1]))
        if ind.name == "ATR":
            return ta_kernel.atr(s["high"], s["low"], s["close"], int(p[0]))
        if ind.name == "VWAP":
            return ta_kernel.vwap(s["high"], s["low"], s["close"], s["volume"], self.day)
        raise ValueError(f"unknown indicator {ind.name}")  # the parser only builds known ones


@dataclass
class Evaluated:
    """A condition's result per bar and both sides of each comparison."""

    condition: Condition
    result: np.ndarray  # bool
    lhs: list[Value]
    rhs: list[Value]


def _value(node: Node, ctx: SeriesContext) -> Value:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, TimeLit):
        return float(node.minutes)
    if isinstance(node, TimeOfDay):
        return ctx.minute_of_day
    if isinstance(node, Series):
        return ctx.series[node.name]
    if isinstance(node, Indicator):
        return ctx.indicator(node)
    if isinstance(node, Neg):
        return -_value(node.operand, ctx)
    if isinstance(node, Arith):
        a, b = _value(node.left, ctx), _value(node.right, ctx)
        if node.op == "+":
            return a + b
        if node.op == "-":
            return a - b
        if node.op == "*":
            return a * b
        # np.divide: IEEE inf/NaN for a zero divisor (Python floats would raise on `1/0`).
        return np.divide(a, b)
    raise TypeError(f"not a value: {type(node).__name__}")


def _previous(v: Value) -> Value:
    if isinstance(v, np.ndarray):
        out = np.empty_like(v, dtype=np.float64)
        out[0] = np.nan
        out[1:] = v[:-1]
        return out
    return v


def _truth(node: Node, ctx: SeriesContext, lhs: list, rhs: list) -> np.ndarray:
    n = len(ctx)
    if isinstance(node, Compare):
        a, b = _value(node.left, ctx), _value(node.right, ctx)
        lhs[node.index], rhs[node.index] = a, b
        op = node.op
        if op == ">":
            r = a > b
        elif op == ">=":
            r = a >= b
        elif op == "<":
            r = a < b
        elif op == "<=":
            r = a <= b
        elif op == "==":
            r = a == b
        elif op == "!=":
            # NaN != x is true in IEEE; a warm-up value must not satisfy a condition.
            r = (a != b) & ~np.isnan(a) & ~np.isnan(b)
        else:
            pa, pb = _previous(a), _previous(b)
            if op == "crosses_above":
                r = (a > b) & (pa <= pb)
            else:
                r = (a < b) & (pa >= pb)
        return np.broadcast_to(np.asarray(r, dtype=bool), (n,))
    if isinstance(node, BoolOp):
        parts = [_truth(item, ctx, lhs, rhs) for item in node.items]
        out = parts[0].copy()
        for p in parts[1:]:
            if node.op == "and":
                out &= p
            else:
                out |= p
        return out
    if isinstance(node, Not):
        return ~_truth(node.operand, ctx, lhs, rhs)
    raise TypeError(f"not a condition: {type(node).__name__}")


def evaluate(condition: Condition, ctx: SeriesContext) -> Evaluated:
    """The condition on every bar of `ctx`."""
    k = len(condition.compares)
    lhs: list[Value] = [0.0] * k
    rhs: list[Value] = [0.0] * k
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        result = np.ascontiguousarray(_truth(condition.root, ctx, lhs, rhs), dtype=bool)
    return Evaluated(condition, result, lhs, rhs)


def value_at(v: Value, i: int) -> float | None:
    """A side's value at bar i (None for NaN / infinities)."""
    x = float(v[i]) if isinstance(v, np.ndarray) else float(v)
    return x if np.isfinite(x) else None
