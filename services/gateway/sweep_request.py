"""Validation of a sweep request: seed 001's Zod schema plus the engine's extras.

Plain functions over the fields a client sent (JSON values, or strings from a
form); nothing here knows HTTP or gRPC. Every problem is reported, one entry per
field, so a client can fix them all at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from libs import ssrf
from libs.sweep_grid import sweep_combos
from services.gateway import field_values

# A ValueError, so callers of `http_url` can catch it.
from services.gateway.field_values import FieldProblem as _Problem
from services.gateway.field_values import absent as _absent

STRATEGY_TYPES = ("SMA", "EMA", "MACD")
CONFIG_PATHS = ("minimum", "standard")
INTERVALS = ("1m", "5m", "15m", "1h", "1d")
DIRECTIONS = ("long", "short", "both")
FILLS = ("next_open", "close")
PERIOD_MIN, PERIOD_MAX = 1, 500
log = logging.getLogger(__name__)

MAX_URL_LENGTH = 2048
# Longest wait for DNS when checking a webhook host at submission.
WEBHOOK_RESOLVE_TIMEOUT = 5.0
MAX_EMAIL_LENGTH = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class SweepRequest:
    """A validated sweep."""

    ticker: str
    fast_range: tuple[int, int]
    slow_range: tuple[int, int]
    step: int
    min_trades: int
    strategy_type: str
    config_path: str | None
    webhook_url: str | None
    interval: str | None
    direction: str
    fill: str
    commission_pct: float
    slippage_pct: float
    initial_cash: float
    timeout_seconds: int | None
    notify_email: str | None
    combinations: int

    def parameters(self) -> dict[str, Any]:
        """The sweep's parameters as stored with the job and shown back (normalized)."""
        out: dict[str, Any] = {
            "ticker": self.ticker,
            "fast_range": list(self.fast_range),
            "slow_range": list(self.slow_range),
            "step": self.step,
            "min_trades": self.min_trades,
            "strategy_type": self.strategy_type,
        }
        if self.config_path is not None:
            out["config_path"] = self.config_path
        if self.interval is not None:
            out["interval"] = self.interval
        out.update(
            direction=self.direction,
            fill=self.fill,
            commission_pct=self.commission_pct,
            slippage_pct=self.slippage_pct,
            initial_cash=self.initial_cash,
        )
        return out


class SweepInvalid(Exception):
    """The request breaks one or more rules; `errors` has one {field, message} per problem."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def _single(value: Any) -> Any:
    # A repeated form field arrives as a list; scalar fields take one value.
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        if len(value) == 1:
            return value[0]
        raise _Problem("expected a single value")
    return value


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Problem("expected an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise _Problem("expected an integer")
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d{1,18}", text):
            return int(text)
        if re.fullmatch(r"[+-]?\d{1,18}\.0*", text):
            return int(float(text))
    raise _Problem("expected an integer")


def _int_between(value: Any, lo: int, hi: int) -> int:
    out = _as_int(_single(value))
    if not lo <= out <= hi:
        raise _Problem(f"must be an integer from {lo} to {hi}")
    return out


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    value = _single(value)
    if not isinstance(value, str) or value not in choices:
        raise _Problem(f"must be one of {', '.join(choices)}")
    return value


def _text(value: Any) -> str:
    return field_values.text(_single(value))


def _period_range(value: Any) -> tuple[int, int]:
    """`[10, 20]` (JSON array, or the form value "[10, 20]"), "10,20", or a repeated form field."""
    items: Any = value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except ValueError as exc:
                raise _Problem("expected [min, max], e.g. [10, 20]") from exc
        else:
            items = [p for p in re.split(r"[,\s]+", text) if p]
    if not isinstance(items, (list, tuple)) or len(items) != 2:
        raise _Problem("expected [min, max], e.g. [10, 20]")
    try:
        lo, hi = _as_int(items[0]), _as_int(items[1])
    except _Problem as exc:
        raise _Problem("expected two integers [min, max]") from exc
    if lo < PERIOD_MIN:
        raise _Problem(f"min must be at least {PERIOD_MIN}")
    if hi > PERIOD_MAX:
        raise _Problem(f"max must be at most {PERIOD_MAX}")
    if lo > hi:
        raise _Problem("min must not exceed max")
    return lo, hi


def http_url(value: Any) -> str:
    """A valid absolute http(s) URL, or a `_Problem`."""
    text = _text(value)
    if len(text) > MAX_URL_LENGTH:
        raise _Problem(f"must be at most {MAX_URL_LENGTH} characters")
    if any(c.isspace() for c in text):
        raise _Problem("must be a valid http(s) URL")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise _Problem("must be a valid http(s) URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Problem("must be a valid http(s) URL")
    try:
        # Stored and sent in ASCII: a Unicode host IDNA-normalised (`①②⑦.0.0.1` is 127.0.0.1).
        return ssrf.normalize_url(text)
    except ssrf.UnsafeUrl as exc:
        raise _Problem(str(exc)) from None


def _email(value: Any) -> str:
    text = _text(value)
    if len(text) > MAX_EMAIL_LENGTH or not _EMAIL.match(text):
        raise _Problem("must be a valid email address")
    return text


def parse_sweep(fields: dict[str, Any], *, require_webhook: bool = False) -> SweepRequest:
    """Validate a sweep request; raises `SweepInvalid` listing every problem."""
    errors: list[dict[str, str]] = []
    values: dict[str, Any] = {}

    def check(name: str, parse: Any, *, required: bool = False, default: Any = None) -> None:
        raw = fields.get(name)
        if _absent(raw) or (isinstance(raw, list) and not raw):
            if required:
                errors.append({"field": name, "message": "is required"})
            else:
                values[name] = default
            return
        try:
            values[name] = parse(raw)
        except _Problem as exc:
            errors.append({"field": name, "message": str(exc)})

    def ticker(v: Any) -> str:
        text = _text(v)
        if not 3 <= len(text) <= 20:
            raise _Problem("must be 3 to 20 characters")
        if text != text.strip():
            raise _Problem("must not start or end with whitespace")
        return text

    def money_pct(v: Any) -> float:
        out = field_values.number(_single(v))
        if not 0 <= out <= 10:
            raise _Problem("must be a number from 0 to 10")
        return out

    def cash(v: Any) -> float:
        out = field_values.number(_single(v))
        if not 0 < out <= 1e15:
            raise _Problem("must be a number greater than 0")
        return out

    check("ticker", ticker, required=True)
    check("fast_range", _period_range, required=True)
    check("slow_range", _period_range, required=True)
    check("step", lambda v: _int_between(v, 1, 50), required=True)
    check("min_trades", lambda v: _int_between(v, 10, 1000), default=50)
    check("strategy_type", lambda v: _choice(v, STRATEGY_TYPES), default="SMA")
    check("config_path", lambda v: _choice(v, CONFIG_PATHS))
    check("webhook_url", http_url, required=require_webhook)
    check("interval", lambda v: _choice(v, INTERVALS))
    check("direction", lambda v: _choice(v, DIRECTIONS), default="long")
    check("fill", lambda v: _choice(v, FILLS), default="next_open")
    check("commission_pct", money_pct, default=0.0)
    check("slippage_pct", money_pct, default=0.0)
    check("initial_cash", cash, default=10000.0)
    check("timeout_seconds", lambda v: _int_between(v, 1, 86400))
    check("notify_email", _email)

    fast, slow = values.get("fast_range"), values.get("slow_range")
    combinations = 0
    if fast is not None and slow is not None:
        if not fast[0] < slow[0]:
            errors.append({"field": "fast_range", "message": "Fast range min must be less than slow range min"})
        if not fast[1] < slow[1]:
            errors.append({"field": "fast_range", "message": "Fast range max must be less than slow range max"})
        step = values.get("step")
        if step is not None and not errors:
            combinations = len(sweep_combos(fast[0], fast[1], slow[0], slow[1], step))
            if combinations == 0:
                errors.append({"field": "step", "message": "no valid fast < slow combination on this grid"})
    if errors:
        raise SweepInvalid(errors)
    return SweepRequest(combinations=combinations, **values)


async def check_webhook_target(
    url: str | None, policy: ssrf.AddressPolicy, *, field: str = "webhook_url", resolver: ssrf.Resolver | None = None
) -> str | None:
    """SSRF check of a (syntactically valid) webhook URL; raises `SweepInvalid` naming `field`.
    Returns the URL in the ASCII form to store (`ssrf.normalize_url`).

    The host is resolved and every address must be public (or allow-listed):
    loopback, private, link-local, multicast, unspecified and cloud-metadata
    addresses are refused, in any spelling. A host that does not resolve now
    is accepted: nothing is known about where it points, and the notifier
    checks the address again when it connects.
    """
    if not url:
        return url
    try:
        url = ssrf.normalize_url(url)
        await asyncio.wait_for(ssrf.check_url(url, policy, resolver), WEBHOOK_RESOLVE_TIMEOUT)
    except ssrf.UnsafeUrl as exc:
        raise SweepInvalid([{"field": field, "message": str(exc)}]) from None
    except (ssrf.UnresolvableHost, TimeoutError) as exc:
        log.info("webhook host not resolvable at submission; checked again at delivery: %s", exc)
    return url
