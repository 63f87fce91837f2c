"""Failed logins: logged (never the key) and throttled per client address and per key prefix.

Every check of an API key or a session cookie that fails takes one unit from two
allowances: the client address's (HINDSIGHT_AUTH_FAILURES_PER_ADDRESS) and, for
an API key, its prefix's (its first 8 characters, HINDSIGHT_AUTH_FAILURES_PER_KEY_PREFIX).
Each allowance comes back evenly over HINDSIGHT_AUTH_FAILURE_WINDOW_SECONDS. While
one is used up, every request from that address (or with a key of that prefix) that
presents credentials is a 429 with Retry-After, before anything is checked, so a
guess gets no answer. Requests without credentials (the standalone dev tenant) are
not affected.

The state is in memory, per gateway process: N replicas allow N times the burst.
The address is the TCP peer as uvicorn reports it (behind a proxy, set uvicorn's
FORWARDED_ALLOW_IPS to the proxy's address so X-Forwarded-For counts).
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from libs.settings import Settings
from services.gateway.errors import ApiError

log = logging.getLogger(__name__)

# Characters of a key that name its prefix bucket (what `admin list-keys` shows)...
PREFIX_CHARS = 8
# ...and those a log line may show.
LOGGED_PREFIX_CHARS = 4
# Buckets kept at most per kind (full ones go first, then the least recently used).
MAX_BUCKETS = 10_000


class FailureBuckets:
    """Token buckets of failures by name: `burst` failures at once, refilled over `window_seconds`."""

    def __init__(self, burst: int, window_seconds: float, clock: Callable[[], float] = time.monotonic,
                 max_buckets: int = MAX_BUCKETS) -> None:
        self.burst = float(burst)
        self.rate = burst / window_seconds  # units back per second
        self.clock = clock
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # name -> (units, at)

    def _units(self, name: str, now: float) -> float:
        held = self._buckets.get(name)
        if held is None:
            return self.burst
        units, at = held
        return min(self.burst, units + (now - at) * self.rate)

    def retry_after(self, name: str) -> float:
        """Seconds until `name` may try again (0: now)."""
        units = self._units(name, self.clock())
        return 0.0 if units >= 1 else (1 - units) / self.rate

    def fail(self, name: str) -> bool:
        """Take one unit for a failure; True when that used up the allowance."""
        now = self.clock()
        units = max(0.0, self._units(name, now) - 1)
        self._buckets[name] = (units, now)
        self._buckets.move_to_end(name)
        if len(self._buckets) > self.max_buckets:
            self._prune(now)
        return units < 1

    def _prune(self, now: float) -> None:
        for name in [n for n in self._buckets if self._units(n, now) >= self.burst]:
            del self._buckets[name]
        while len(self._buckets) > self.max_buckets:
            self._buckets.popitem(last=False)


def key_prefix(api_key: str) -> str:
    return api_key[:PREFIX_CHARS]


def too_many(retry_after: float) -> ApiError:
    seconds = max(1, math.ceil(retry_after))
    return ApiError(
        429,
        "too_many_requests",
        f"too many failed logins; retry in {seconds} s",
        {"retry_after_seconds": seconds},
        headers={"Retry-After": str(seconds)},
    )


class LoginThrottle:
    """The failed-login allowances of one gateway process."""

    def __init__(self, per_address: int, per_key_prefix: int, window_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.addresses = FailureBuckets(per_address, window_seconds, clock)
        self.prefixes = FailureBuckets(per_key_prefix, window_seconds, clock)

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottle:
        return cls(settings.hindsight_auth_failures_per_address, settings.hindsight_auth_failures_per_key_prefix,
                   settings.hindsight_auth_failure_window_seconds)

    def check(self, client: str, api_key: str | None = None) -> None:
        """429 when the address, or the key's prefix, has no failures left."""
        wait = self.addresses.retry_after(client)
        if api_key:
            wait = max(wait, self.prefixes.retry_after(key_prefix(api_key)))
        if wait > 0:
            raise too_many(wait)

    def failed(self, client: str, reason: str, path: str, api_key: str | None = None) -> None:
        """Log a failed login (never the key: its first characters at most) and count it."""
        logged = {"client": client, "reason": reason, "path": path}
        if api_key is not None:
            logged["key_prefix"] = api_key[:LOGGED_PREFIX_CHARS]
            logged["key_length"] = len(api_key)
        log.warning("failed login", extra=logged)
        if self.addresses.fail(client):
            log.warning("client address throttled after failed logins",
                        extra={"client": client, "retry_after_seconds": round(self.addresses.retry_after(client), 1)})
        if api_key and self.prefixes.fail(key_prefix(api_key)):
            log.warning("key prefix throttled after failed logins",
                        extra={"client": client, "key_prefix": api_key[:LOGGED_PREFIX_CHARS]})
