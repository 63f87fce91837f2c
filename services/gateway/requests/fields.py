"""Field types shared by request bodies: numbers, text, tickers, intervals, dates, URLs,
email addresses; and the SSRF check of webhook URLs (which needs DNS, so it runs after
the model, in the endpoint)."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field

from domain.market import INTERVALS, TICKER_MAX_LENGTH, TICKER_PATTERN, interval_name, ticker_problem
from libs import ssrf
from services.gateway.body import problem
from services.gateway.errors import invalid

log = logging.getLogger(__name__)

MAX_URL_LENGTH = 2048
MAX_EMAIL_LENGTH = 254
# Longest wait for DNS when checking a webhook host at submission.
WEBHOOK_RESOLVE_TIMEOUT = 5.0
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def has_control_characters(value: str) -> bool:
    """Whether `value` has an ASCII control character (C0 or DEL)."""
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def _text(value: str) -> str:
    if has_control_characters(value):
        raise problem("must not contain control characters")
    return value


def _ticker(value: str) -> str:
    why = ticker_problem(value)
    if why is not None:
        raise problem(why)
    return value


def _interval(value: Any) -> Any:
    # Other spellings of an interval ("60m", "1D") are that interval.
    return interval_name(value) or value


def http_url_problem(text: str) -> str | None:
    """Why `text` is not an absolute http(s) URL we would call, or None."""
    if len(text) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    if any(c.isspace() for c in text):
        return "must be a valid http(s) URL"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "must be a valid http(s) URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be a valid http(s) URL"
    return None


def _http_url(value: str) -> str:
    why = http_url_problem(value)
    if why is not None:
        raise problem(why)
    try:
        # Stored and sent in ASCII: a Unicode host IDNA-normalised (`①②⑦.0.0.1` is 127.0.0.1).
        return ssrf.normalize_url(value)
    except ssrf.UnsafeUrl as exc:
        raise problem(str(exc)) from None


def _email(value: str) -> str:
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL.match(value):
        raise problem("must be a valid email address")
    return value


def _iso_date(value: Any) -> Any:
    if isinstance(value, date):
        return value
    text = value.strip() if isinstance(value, str) else None
    if text is None or not _ISO_DATE.match(text):
        raise problem("must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise problem("must be a valid date YYYY-MM-DD") from None


def _uuid(value: str) -> str:
    try:
        canonical = str(uuid.UUID(value))
    except ValueError:
        canonical = ""
    if not canonical or canonical != value.lower():
        raise problem("must be a UUID")
    return canonical


# Text without control characters.
Text = Annotated[str, AfterValidator(_text)]
# A ticker by the domain's rule (case kept).
Ticker = Annotated[
    str,
    AfterValidator(_text),
    AfterValidator(_ticker),
    Field(json_schema_extra={"pattern": TICKER_PATTERN, "maxLength": TICKER_MAX_LENGTH}, examples=["BTC-USD"]),
]
# A bar interval of the domain (other spellings such as "60m" accepted as the interval they mean).
Interval = Annotated[Literal[INTERVALS], BeforeValidator(_interval)]  # type: ignore[valid-type]
# A calendar date written YYYY-MM-DD.
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
# An absolute http(s) URL.
HttpUrl = Annotated[
    str, AfterValidator(_text), AfterValidator(_http_url), Field(json_schema_extra={"format": "uri", "maxLength": MAX_URL_LENGTH})
]
Email = Annotated[
    str, AfterValidator(_text), AfterValidator(_email), Field(json_schema_extra={"format": "email", "maxLength": MAX_EMAIL_LENGTH})
]
# A UUID (canonical lower-case form).
Uuid = Annotated[str, AfterValidator(_uuid), Field(json_schema_extra={"format": "uuid"})]


async def check_webhook(
    url: str | None,
    policy: ssrf.AddressPolicy,
    *,
    message: str,
    field: str = "webhook_url",
    resolver: ssrf.Resolver | None = None,
) -> None:
    """SSRF check of a (syntactically valid) webhook URL: 400 `message` naming `field`.

    The host is resolved and every address must be public (or allow-listed):
    loopback, private, link-local, multicast, unspecified and cloud-metadata
    addresses are refused, in any spelling. A host that does not resolve now
    is accepted: nothing is known about where it points, and the notifier
    checks the address again when it connects.
    """
    if not url:
        return
    try:
        await asyncio.wait_for(ssrf.check_url(url, policy, resolver), WEBHOOK_RESOLVE_TIMEOUT)
    except ssrf.UnsafeUrl as exc:
        raise invalid(message, [{"field": field, "message": str(exc)}]) from None
    except (ssrf.UnresolvableHost, TimeoutError) as exc:
        log.info("webhook host not resolvable at submission; checked again at delivery: %s", exc)
