"""The one in-process token bucket per key (services/core/ratelimit.py): what the send API's
per-tenant limit, every /v1 API's per-key limit and console sign-in share."""

import pytest

from services.core.ratelimit import KeyedTokenBucket, per_key_limit_error, retry_after


def test_a_key_spends_its_burst_then_waits_for_the_refill():
    b = KeyedTokenBucket(rate=2.0, burst=3, clock=lambda: 0.0)
    assert [b.take("k", now=10.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("k", now=10.0) == pytest.approx(0.5)
    assert b.take("k", now=10.25) == pytest.approx(0.25)  # a refused request takes nothing
    assert b.take("k", now=10.5) == 0.0
    assert b.take("other", now=10.5) == 0.0  # keys do not share a bucket


def test_the_refill_never_saves_more_than_the_burst():
    b = KeyedTokenBucket(rate=1.0, burst=2)
    assert b.take("k", now=0.0) == 0.0
    assert b.wait("k", 3, now=1000.0) == pytest.approx(1.0)  # 2 saved at most, not 1000
    assert b.take("k", 2, now=1000.0) == 0.0


def test_wait_looks_without_taking():
    b = KeyedTokenBucket(rate=1.0, burst=1)
    assert b.wait("k", now=0.0) == 0.0 and b.take("k", now=0.0) == 0.0
    assert b.wait("k", now=0.5) == pytest.approx(0.5)
    assert b.take("k", now=1.0) == 0.0


def test_past_max_keys_only_full_buckets_are_forgotten():
    b = KeyedTokenBucket(rate=1.0, burst=1, max_keys=2)
    assert b.take("a", now=0.0) == 0.0 and b.take("b", now=0.0) == 0.0
    assert b.take("c", now=0.5) == 0.0  # a and b are half full: kept
    assert b.take("a", now=0.5) > 0
    assert b.take("d", now=10.0) == 0.0  # all full again: forgotten, d fits
    assert len(b._state) <= 2


def test_retry_after_is_whole_seconds_at_least_one():
    assert retry_after(0.01) == 1 and retry_after(1.0) == 1 and retry_after(1.2) == 2


def test_the_429_body_names_the_limit_and_the_key_prefix_only():
    b = KeyedTokenBucket(rate=5, burst=10)
    body = per_key_limit_error(b, "abc123def0", 0.4)
    assert body["limit"] == "api_key_requests" and body["rate_per_second"] == 5 and body["burst"] == 10
    assert "abc123def0" in body["error"] and body["retry_after_s"] == 0.4


def test_a_bucket_needs_a_positive_rate_and_a_burst_of_at_least_one():
    with pytest.raises(ValueError):
        KeyedTokenBucket(rate=0, burst=1)
    with pytest.raises(ValueError):
        KeyedTokenBucket(rate=1, burst=0)
