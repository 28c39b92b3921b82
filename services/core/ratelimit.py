"""Token buckets per key, in one process: the send API's per-tenant message rate, the per-API-key
request rate of every /v1 API (ingress's and the console's), and sign-in attempts per address.

A key's bucket holds up to ``burst`` tokens and refills at ``rate`` per second; a request takes
``n``. A refused request takes nothing, so a client that keeps knocking is not starved for
longer than the refill needs. Each process keeps its own buckets: with N replicas behind a
balancer a key gets up to N times the rate (the carrier-side bucket egress shares across
workers is services/egress/ratelimit.py, in the database, because there the total matters).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class KeyedTokenBucket:
    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        """``rate`` tokens per second per key, at most ``burst`` saved up. Past ``max_keys``
        keys, those whose bucket is full again are forgotten (a new bucket is full too)."""
        if not rate > 0 or not burst >= 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst = float(rate), float(burst)
        self.max_keys = max_keys
        self._clock = clock
        self._state: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)
        self._lock = threading.Lock()

    def _tokens(self, key: str, now: float) -> float:
        tokens, last = self._state.get(key, (self.burst, now))
        return min(self.burst, tokens + max(0.0, now - last) * self.rate)

    def take(self, key: str, n: float = 1, now: float | None = None) -> float:
        """0.0 if ``n`` tokens were taken, else the seconds until they would be (nothing taken)."""
        now = self._clock() if now is None else now
        with self._lock:
            tokens = self._tokens(key, now)
            if tokens >= n:
                if len(self._state) >= self.max_keys and key not in self._state:
                    self._forget_full(now)
                self._state[key] = (tokens - n, now)
                return 0.0
            self._state[key] = (tokens, now)
            return (n - tokens) / self.rate

    def wait(self, key: str, n: float = 1, now: float | None = None) -> float:
        """Seconds until ``n`` tokens are there for ``key`` (0.0: now), taking nothing."""
        now = self._clock() if now is None else now
        with self._lock:
            return max(0.0, (n - self._tokens(key, now)) / self.rate)

    def _forget_full(self, now: float) -> None:
        self._state = {k: v for k, v in self._state.items()
                       if min(self.burst, v[0] + (now - v[1]) * self.rate) < self.burst}


def retry_after(wait_s: float) -> int:
    """A wait as the whole seconds of a Retry-After header: rounded up, at least 1."""
    return max(1, math.ceil(wait_s))


def per_key_limit_error(bucket: KeyedTokenBucket, prefix: str, wait_s: float) -> dict:
    """The JSON body of a 429 for an API key over its request rate: names the limit."""
    return {"error": f"rate limit of {bucket.rate:g} requests per second (burst {bucket.burst:g}) "
                     f"exceeded for API key {prefix}",
            "limit": "api_key_requests", "rate_per_second": bucket.rate, "burst": bucket.burst,
            "retry_after_s": round(wait_s, 3)}
