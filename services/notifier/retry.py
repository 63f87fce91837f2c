"""When a failed delivery is tried again: exponential backoff with jitter, within a window.

The n-th retry (after n failed attempts) waits `base * factor**(n-1)` seconds,
capped at `max_delay`, times a random factor in `[1 - jitter, 1 + jitter]`
(so receivers that went down together are not hit together when they come
back). A `Retry-After` from the receiver lengthens the wait (up to
`max_delay`), never shortens it. No retry is scheduled past `window` seconds
after the delivery was created, nor past `max_attempts` (0: no limit).

With the defaults (10 s, ×2, at most 4 h, 24 h window) the nominal waits are
10 s, 20 s, 40 s, ... 2.8 h, then 4 h: 16 attempts over about 22 hours.
Plain functions, no clock or I/O of their own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from libs.settings import Settings


@dataclass(frozen=True)
class RetryPolicy:
    """The retry schedule of webhook and email deliveries."""

    base_seconds: float = 10.0
    factor: float = 2.0
    max_delay_seconds: float = 4 * 3600.0
    window_seconds: float = 24 * 3600.0
    jitter: float = 0.2
    max_attempts: int = 0

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.factor < 1 or self.max_delay_seconds < self.base_seconds:
            raise ValueError("retry schedule needs base > 0, factor >= 1 and max_delay >= base")
        if not 0 <= self.jitter < 1:
            raise ValueError("retry jitter must be in [0, 1)")
        if self.window_seconds <= 0 or self.max_attempts < 0:
            raise ValueError("retry window must be positive and max_attempts >= 0")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            base_seconds=settings.hindsight_notify_retry_base_seconds,
            factor=settings.hindsight_notify_retry_factor,
            max_delay_seconds=settings.hindsight_notify_retry_max_delay_seconds,
            window_seconds=settings.hindsight_notify_retry_window_seconds,
            jitter=settings.hindsight_notify_retry_jitter,
            max_attempts=settings.hindsight_notify_max_attempts,
        )

    def nominal_delay(self, failed_attempts: int) -> float:
        """The wait after `failed_attempts` (>= 1) failures, before jitter."""
        exponent = max(0, failed_attempts - 1)
        # Past the cap the power would only overflow: stop computing it.
        if self.factor > 1 and self.base_seconds * self.factor ** min(exponent, 64) >= self.max_delay_seconds:
            return self.max_delay_seconds
        return min(self.base_seconds * self.factor**exponent, self.max_delay_seconds)

    def next_delay(
        self,
        failed_attempts: int,
        created_at: datetime,
        now: datetime,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds until the next attempt, or None when the delivery should give up."""
        if self.max_attempts and failed_attempts >= self.max_attempts:
            return None
        delay = self.nominal_delay(failed_attempts)
        if self.jitter:
            delay *= (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None and retry_after > delay:
            delay = min(retry_after, self.max_delay_seconds)
        if (now - created_at).total_seconds() + delay > self.window_seconds:
            return None
        return delay

    def nominal_schedule(self) -> list[float]:
        """Start times (seconds after creation) of every attempt without jitter: [0, 10, 30, ...]."""
        times, t, n = [0.0], 0.0, 1
        while not self.max_attempts or n < self.max_attempts:
            t += self.nominal_delay(n)
            if t > self.window_seconds:
                break
            times.append(t)
            n += 1
        return times
