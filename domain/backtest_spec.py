"""The built-in strategies of backtests and their parameters, shared by the gateway
(to answer 400 field by field), results and the engine (to run them).

Plain data and functions; nothing here knows HTTP or gRPC.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

DIRECTIONS = ("long", "short", "both")
FILLS = ("next_open", "close")
PERIOD_MAX = 5000
# Limits of a synchronous backtest (bars backtested, at the requested interval; trades made);
# larger ones are refused (HTTP 413) in favour of a job. Measured: 1,000,000 one-minute bars
# backtest in 0.14 s (SMA 10/30) to 0.2 s (MACD) on one core; 10,000 trades are ~3 MB of JSON.
# Resampling a coarser interval reads the dataset's bars in the date range: at most
# MAX_SYNC_SOURCE_BARS of them (10,000,000 one-minute bars resample in ~0.6 s).
MAX_SYNC_BARS = 1_000_000
MAX_SYNC_SOURCE_BARS = 10_000_000
MAX_SYNC_TRADES = 10_000
# Day-by-day backtests of rule strategies: the capital they start with unless told, and the
# most their slippage and commission may be (percent of traded value, per side).
DAY_BY_DAY_CAPITAL_DEFAULT = 100_000.0
DAY_BY_DAY_COST_PCT_MAX = 50.0
# A day-by-day backtest's user (seed 004's partition inside a tenant): its id's rule.
USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
USER_ID_RULE = "1-64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit"
_USER_ID = re.compile(USER_ID_PATTERN)


def user_id_problem(value: str) -> str | None:
    """Why `value` is not a user id (no path parts either), or None."""
    return None if _USER_ID.match(value) and ".." not in value else USER_ID_RULE


@dataclass(frozen=True)
class Param:
    """One strategy parameter: integer periods or float thresholds, with bounds (inclusive)."""

    name: str
    kind: type
    default: float
    lo: float
    hi: float


def _cross(fast: int, slow: int) -> tuple[Param, Param]:
    return Param("fast_period", int, fast, 1, PERIOD_MAX), Param("slow_period", int, slow, 1, PERIOD_MAX)


# name -> parameters. Crossovers: long while fast > slow (strict). MACD: fast/slow EMAs of
# the line, signal EMA of the line. RSI reversion: long below `oversold`, out above `overbought`.
BUILTIN_STRATEGIES: dict[str, tuple[Param, ...]] = {
    "sma_crossover": _cross(10, 30),
    "ema_crossover": _cross(12, 26),
    "macd_crossover": (*_cross(12, 26), Param("signal_period", int, 9, 1, 1000)),
    "rsi_reversion": (
        Param("period", int, 14, 2, 1000),
        Param("oversold", float, 30.0, 0.0, 100.0),
        Param("overbought", float, 70.0, 0.0, 100.0),
    ),
    "buy_and_hold": (),
}
# What each built-in does, in one sentence (GET /api/v1/strategies/builtin, /docs).
BUILTIN_DESCRIPTIONS: dict[str, str] = {
    "sma_crossover": "Long while the simple moving average of fast_period closes is above that of slow_period.",
    "ema_crossover": "Long while the exponential moving average of fast_period closes is above that of slow_period.",
    "macd_crossover": "Long while the MACD line (EMA fast_period - EMA slow_period) is above its signal_period EMA.",
    "rsi_reversion": "Buys when RSI(period) falls below oversold, sells when it rises above overbought.",
    "buy_and_hold": "Buys at the first bar and holds to the end: the benchmark of every run.",
}
# Other spellings clients use for the built-ins (the sweep's strategy_type names among them).
STRATEGY_ALIASES = {
    "sma": "sma_crossover",
    "ema": "ema_crossover",
    "macd": "macd_crossover",
    "rsi": "rsi_reversion",
    "buy_hold": "buy_and_hold",
    "buyandhold": "buy_and_hold",
}
PARAM_ALIASES = {
    "fast": "fast_period",
    "slow": "slow_period",
    "signal": "signal_period",
    "rsi_period": "period",
    "lower": "oversold",
    "upper": "overbought",
}
# The sweep's strategy_type of each crossover built-in (a sweep's run is replayed as one of these).
SWEEP_STRATEGY = {"SMA": "sma_crossover", "EMA": "ema_crossover", "MACD": "macd_crossover", "RSI": "rsi_reversion"}


class SpecInvalid(Exception):
    """One or more problems, each {field, message}."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def strategy_aliases(name: str) -> list[str]:
    """The other names a built-in answers to (the sweep's strategy_type among them)."""
    sweep = [t for t, n in SWEEP_STRATEGY.items() if n == name]
    return sweep + sorted(a for a, n in STRATEGY_ALIASES.items() if n == name)


def param_aliases(name: str) -> list[str]:
    """The other names a parameter answers to."""
    return sorted(a for a, n in PARAM_ALIASES.items() if n == name)


def strategy_name(value: str) -> str | None:
    """The built-in a name means (case-insensitive, aliases allowed), or None."""
    key = value.strip().lower() if isinstance(value, str) else ""
    key = STRATEGY_ALIASES.get(key, key)
    return key if key in BUILTIN_STRATEGIES else None


def _number(value: Any, kind: type) -> float:
    if isinstance(value, bool):
        raise TypeError("expected a number")
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*", value):
        value = float(value)
    if not isinstance(value, (int, float)):
        raise TypeError("expected an integer" if kind is int else "expected a number")
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    if kind is int:
        if float(value) != int(value):
            raise ValueError("expected an integer")
        return int(value)
    return float(value)


def normalize_parameters(strategy: str, raw: Any, field: str = "parameters") -> dict[str, Any]:
    """Every parameter of `strategy` with its value (defaults filled in, aliases resolved);
    raises SpecInvalid naming each bad field (`parameters.fast_period`, ...)."""
    specs = {p.name: p for p in BUILTIN_STRATEGIES[strategy]}
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecInvalid([{"field": field, "message": "must be a JSON object"}])
    errors: list[dict[str, str]] = []
    given: dict[str, Any] = {}
    for key, value in raw.items():
        name = PARAM_ALIASES.get(key, key) if isinstance(key, str) else key
        if name not in specs:
            accepted = ", ".join(specs) or "none"
            errors.append({"field": f"{field}.{key}", "message": f"unknown parameter of {strategy} (accepted: {accepted})"})
        elif name in given:
            errors.append({"field": f"{field}.{key}", "message": f"given twice (as {name} and an alias)"})
        else:
            given[name] = value
    out: dict[str, Any] = {}
    for name, p in specs.items():
        if name not in given or given[name] is None:
            out[name] = p.kind(p.default)
            continue
        try:
            v = _number(given[name], p.kind)
        except (TypeError, ValueError) as exc:
            errors.append({"field": f"{field}.{name}", "message": str(exc)})
            continue
        if not p.lo <= v <= p.hi:
            what = "an integer" if p.kind is int else "a number"
            errors.append({"field": f"{field}.{name}", "message": f"must be {what} from {p.kind(p.lo)} to {p.kind(p.hi)}"})
            continue
        out[name] = v
    if not errors:
        if "fast_period" in out and not out["fast_period"] < out["slow_period"]:
            errors.append({"field": f"{field}.fast_period", "message": "must be less than slow_period"})
        if "oversold" in out and not out["oversold"] < out["overbought"]:
            errors.append({"field": f"{field}.oversold", "message": "must be less than overbought"})
    if errors:
        raise SpecInvalid(errors)
    return out


def check_direction(strategy: str, direction: str) -> None:
    """buy_and_hold only buys; the others take any direction."""
    if direction not in DIRECTIONS:
        raise SpecInvalid([{"field": "direction", "message": f"must be one of {', '.join(DIRECTIONS)}"}])
    if strategy == "buy_and_hold" and direction != "long":
        raise SpecInvalid([{"field": "direction", "message": "buy_and_hold is long only"}])


def lookback_bars(strategy: str, params: dict[str, Any]) -> int:
    """Bars before the strategy's first possible signal (its indicators' warm-up)."""
    if strategy in ("sma_crossover", "ema_crossover"):
        return int(params["slow_period"]) - 1
    if strategy == "macd_crossover":
        return int(max(params["fast_period"], params["slow_period"]) + params["signal_period"] - 2)
    if strategy == "rsi_reversion":
        return int(params["period"])
    return 0
