"""Plain functions of the notifier: the retry schedule, signatures, callback bodies, delay buckets."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hindsight.bus.v1 import bus_pb2

from libs.bus import delay_bucket_ms
from services.notifier import signing
from services.notifier.payloads import callback_body
from services.notifier.retry import RetryPolicy

T0 = datetime(2025, 1, 27, 10, 0, tzinfo=UTC)


def test_default_schedule_is_exponential_up_to_24_hours():
    policy = RetryPolicy()
    times = policy.nominal_schedule()
    gaps = [b - a for a, b in pairwise(times)]
    assert gaps[:6] == [10, 20, 40, 80, 160, 320]
    assert max(gaps) == 4 * 3600 and all(b >= a for a, b in pairwise(gaps))
    assert times[-1] <= 24 * 3600 < times[-1] + 4 * 3600
    assert len(times) == 16  # 1 try + 15 retries, the last ~21.7 h after the first


def test_jitter_stays_within_bounds_and_retry_after_lengthens_only():
    policy = RetryPolicy(base_seconds=10, jitter=0.2)
    rng = random.Random(7)
    delays = [policy.next_delay(1, T0, T0, rng=rng) for _ in range(500)]
    assert 8 <= min(delays) < 8.5 and 11.5 < max(delays) <= 12
    assert len({round(d, 3) for d in delays}) > 100  # actually spread
    assert policy.next_delay(1, T0, T0, retry_after=100, rng=rng) == 100
    assert policy.next_delay(1, T0, T0, retry_after=10**9, rng=rng) == policy.max_delay_seconds
    assert policy.next_delay(1, T0, T0, retry_after=0.5, rng=rng) >= 8


def test_gives_up_at_the_window_and_at_max_attempts():
    policy = RetryPolicy(jitter=0)
    assert policy.next_delay(3, T0, T0 + timedelta(hours=23, minutes=59, seconds=30)) is None
    assert policy.next_delay(3, T0, T0 + timedelta(hours=23, minutes=59)) == 40
    assert policy.next_delay(3, T0, T0 + timedelta(hours=1)) == 40
    capped = RetryPolicy(max_attempts=3, jitter=0)
    assert capped.next_delay(2, T0, T0) == 20 and capped.next_delay(3, T0, T0) is None
    with pytest.raises(ValueError):
        RetryPolicy(base_seconds=0)


def test_signature_round_trip_and_tamper():
    body = b'{"event_type":"sweep.completed"}'
    header = signing.signature("whsec_abc", 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=") and len(header.split("v1=")[1]) == 64
    assert signing.verify("whsec_abc", header, body, now=1_700_000_100)
    assert not signing.verify("whsec_abc", header, body, now=1_700_000_000 + 301)  # too old: replay
    assert not signing.verify("whsec_abd", header, body, now=1_700_000_000)
    assert not signing.verify("whsec_abc", header, body + b"x", now=1_700_000_000)
    assert not signing.verify("whsec_abc", "v1=deadbeef", body)


def test_callback_body_is_the_payload_compact_and_stable():
    payload = {"event_type": "sweep.failed", "job_id": "j", "status": "failed", "ticker": "BTC-USD",
               "error_message": "boom", "timestamp": "2025-01-27T10:31:30Z"}
    event = bus_pb2.JobEndedMessage(job_id="j", status="failed", event_type="sweep.failed",
                                    payload_json=json.dumps(payload), event_id="e1")
    assert callback_body(event) == json.dumps(payload, separators=(",", ":")).encode()
    assert callback_body(event) == callback_body(event)


def test_delay_buckets_round_to_two_significant_digits():
    assert [delay_bucket_ms(s) for s in (0.0004, 0.2, 0.234, 1.26, 37.4, 3612.0, 86400.0)] == [
        1, 200, 230, 1300, 37000, 3600000, 86000000]
