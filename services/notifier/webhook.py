"""Sending one webhook: signed POST, SSRF-guarded at connect time, classified answer.

The HTTP client is httpcore with a network backend that resolves the host
itself, checks every address against the address policy (libs.ssrf), connects
to an allowed address only, and checks the peer of the open socket again. So
the address the request actually goes to is the one checked: DNS rebinding
between submission and delivery (or between two lookups) gains nothing. TLS
still verifies the certificate against the URL's host name. No proxy from the
environment is used, and redirects are not followed.

2xx delivers; 429 and 5xx, timeouts, refused or reset connections and DNS
failures are retried; a forbidden address, a URL that cannot be sent (its host
has no valid IDNA form), a 3xx and any other 4xx end the delivery as failed.

Every network failure (refused, reset, timed out, DNS, a broken answer) is
recorded as the same `network error`: /deliveries is no port scanner. What
really happened goes to the notifier's log (`AttemptResult.detail`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpcore

from libs import ssrf, telemetry
from services.notifier.attempt import DELIVERED, NETWORK_ERROR, PERMANENT, RETRYABLE, AttemptResult
from services.notifier.signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, signature

log = logging.getLogger(__name__)

USER_AGENT = "Hindsight-Webhooks/1.0"
# The answer's body is not used; read this much of it at most.
MAX_RESPONSE_BYTES = 64 * 1024


def outgoing_trace_headers() -> dict[str, str]:
    """Trace context for the outgoing request (`traceparent`).

    The W3C headers of the current span (the worker's `webhook POST` span); empty
    with tracing off.
    """
    return telemetry.inject_headers({})


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the policy allows (checked on the resolved and on the connected address)."""

    def __init__(
        self,
        policy: ssrf.AddressPolicy,
        resolver: ssrf.Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        addrs = await ssrf.resolve_checked(host, port, self.policy, self.resolver)
        last: Exception | None = None
        for addr in addrs:
            try:
                stream = await self.inner.connect_tcp(
                    str(addr), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
                continue
            peer = stream.get_extra_info("server_addr")
            if peer:
                try:
                    self.policy.check_ip(str(peer[0]).split("%", 1)[0], host)
                except ssrf.UnsafeUrl:
                    await stream.aclose()
                    raise
            return stream
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None):
        raise ssrf.UnsafeUrl("webhooks are not sent to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def _retry_after(headers: list[tuple[bytes, bytes]]) -> float | None:
    """Seconds of a Retry-After header (delta seconds or an HTTP date), if any."""
    for name, value in headers:
        if name.lower() != b"retry-after":
            continue
        text = value.decode("latin-1").strip()
        if text.isdigit():
            return float(text)
        try:
            return max(0.0, parsedate_to_datetime(text).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
    return None


def classify_status(status: int) -> str:
    if 200 <= status < 300:
        return DELIVERED
    if status == 429 or status >= 500:
        return RETRYABLE
    return PERMANENT


class WebhookSender:
    """POSTs signed callbacks through one guarded connection pool."""

    def __init__(
        self,
        policy: ssrf.AddressPolicy,
        timeout_seconds: float = 10.0,
        resolver: ssrf.Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or ssl.create_default_context(),
            max_connections=64,
            keepalive_expiry=30.0,
            network_backend=GuardedBackend(policy, resolver),
        )

    async def close(self) -> None:
        await self.pool.aclose()

    def request_headers(
        self, body: bytes, secret: str, event_id: str, event_type: str, delivery_id: str, attempt: int
    ) -> list[tuple[str, str]]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_ID_HEADER: event_id,
            EVENT_TYPE_HEADER: event_type,
            "X-Hindsight-Delivery-Id": delivery_id,
            "X-Hindsight-Delivery-Attempt": str(attempt),
            SIGNATURE_HEADER: signature(secret, int(time.time()), body),
        }
        headers.update(outgoing_trace_headers())
        return list(headers.items())

    async def send(self, url: str, body: bytes, headers: list[tuple[str, str]]) -> AttemptResult:
        """One POST; never raises (every failure is an AttemptResult)."""
        t = self.timeout_seconds
        start = time.perf_counter()

        def done(kind: str, status: int | None = None, error: str = "", retry_after: float | None = None,
                 detail: str = ""):
            return AttemptResult(kind, status, error, (time.perf_counter() - start) * 1000, retry_after, detail)

        def network(detail: str) -> AttemptResult:
            return done(RETRYABLE, error=NETWORK_ERROR, detail=detail)

        try:
            # A URL stored before hosts were normalised (or by another writer): sent in ASCII, or not at all.
            url = ssrf.normalize_url(url)
        except ssrf.UnsafeUrl as exc:
            return done(PERMANENT, error=str(exc))
        try:
            async with asyncio.timeout(t):
                async with self.pool.stream(
                    "POST",
                    url,
                    headers=headers,
                    content=body,
                    extensions={"timeout": {"connect": t, "read": t, "write": t, "pool": t}},
                ) as resp:
                    read = 0
                    async for chunk in resp.aiter_stream():
                        read += len(chunk)
                        if read >= MAX_RESPONSE_BYTES:
                            break
                    status = resp.status
                    retry_after = _retry_after(resp.headers)
        except ssrf.UnsafeUrl as exc:
            return done(PERMANENT, error=str(exc))
        except ssrf.UnresolvableHost as exc:
            return network(str(exc))
        except (TimeoutError, httpcore.TimeoutException):
            return network(f"timed out after {t:g}s")
        except httpcore.UnsupportedProtocol as exc:
            return done(PERMANENT, error=f"unsupported URL: {exc}")
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.ProxyError, OSError) as exc:
            return network(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        except Exception as exc:  # a TLS oddity, a client bug: an attempt error, not a crash
            log.debug("webhook attempt failed unexpectedly", exc_info=True)
            return network(f"unexpected {type(exc).__name__}: {exc}")
        kind = classify_status(status)
        if 300 <= status < 400:
            return done(kind, status, f"HTTP {status}: redirects are not followed", retry_after)
        return done(kind, status, "" if kind == DELIVERED else f"HTTP {status}", retry_after)
