"""Retry and failover policy for one submission across a route's carriers, best first.

- transient errors (5xx, timeouts, throttling) retry the same carrier after an exponential
  backoff with full jitter; a carrier's Retry-After wins over the backoff;
- ConnectionFailed (nothing reached the carrier) fails over to the next carrier at once, as do
  ``failover_after`` consecutive transient errors if set; after the last carrier, back off
  and start again from the first;
- permanent errors (opted out, rejected) stop at once: another try cannot change the answer;
- attempts are counted across all carriers; when they run out, the last error of each carrier
  is the reason;
- back-pressure (throttling, an unreachable carrier) is not failure: a throttled carrier is
  paused for everyone through ``throttled`` (Retry-After when given), and a wait longer than
  ``max_wait`` is not slept here: the caller gets RetryBudgetExhausted with ``retry_after``
  and parks the message until then (egress: ``services/egress/deferral.py``), so one slow
  carrier does not hold up a batch's other messages.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence

from services.carriers.base import (
    CarrierError,
    ConnectionFailed,
    Connector,
    Submission,
    SubmitResult,
    Throttled,
)


class DeliveryFailed(Exception):
    """The message could not be handed to any carrier."""

    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


class PermanentFailure(DeliveryFailed):
    """A carrier refused the message for good; ``error`` is its named error (e.g. opted out)."""

    def __init__(self, reason: str, carrier: str, *, error: CarrierError | None = None,
                 attempts: int = 1) -> None:
        super().__init__(reason, attempts)
        self.carrier = carrier
        self.error = error


class RetryBudgetExhausted(DeliveryFailed):
    """Every attempt failed transiently; ``errors`` holds the last error of each carrier tried."""

    def __init__(self, reason: str, attempts: int, *, errors: dict[str, CarrierError] | None = None,
                 retry_after: float = 0.0) -> None:
        super().__init__(reason, attempts)
        self.errors = dict(errors or {})
        self.retry_after = retry_after  # how long to wait before trying this message again


def backoff_delay(retry: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**retry)) for the ``retry``-th wait (from 0)."""
    return rng() * min(cap, base * 2**retry)


async def submit_with_failover(
    connectors: Sequence[Connector],
    sub: Submission,
    *,
    max_attempts: int,
    backoff_base: float,
    backoff_max: float = 10,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: Callable[[], float] = random.random,
    acquire: Callable[[str], Awaitable[float | None]] | None = None,
    failover_after: int | None = None,
    max_wait: float | None = None,
    throttled: Callable[[str, float | None], Awaitable[object]] | None = None,
) -> SubmitResult:
    """Submit ``sub`` through ``connectors`` (best first); see the module doc for the policy.

    ``acquire(carrier_name)`` is awaited before every attempt (the rate limiter's hook); when it
    returns a wait > 0 the carrier is paused: the next carrier is tried, or, none left, the
    attempts end with ``retry_after`` the shortest pause.
    ``failover_after``: after this many consecutive transient failures on one carrier, move on
    to the next as if it were unreachable (None: only ConnectionFailed fails over). A carrier
    that answers 503 while down (as the simulator does) is only left with this set.
    ``max_wait``: the longest wait slept here (None: any); a longer one ends the attempts at
    once with ``retry_after`` set. ``throttled(carrier, retry_after)`` is awaited on a 429.
    Raises PermanentFailure or RetryBudgetExhausted; exceptions that are not CarrierErrors
    (bugs) propagate unchanged.
    """
    if not connectors:
        raise ValueError("no connector to submit through")
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    if failover_after is not None and failover_after < 1:
        raise ValueError("failover_after must be >= 1 or None")
    last: dict[str, CarrierError] = {}
    index = 0
    retries = 0  # waits so far: the backoff exponent
    failures_here = 0  # consecutive transient failures on the current carrier
    retry_after = 0.0
    attempt = 0
    paused: dict[str, float] = {}  # carriers whose rate limiter asks for a wait over max_wait
    for attempt in range(1, max_attempts + 1):
        conn = connectors[index]
        if acquire is not None:
            wait = await acquire(conn.name)
            # A number > 0: not granted, the carrier is paused that long (throttled elsewhere).
            if isinstance(wait, int | float) and wait > 0:
                paused[conn.name] = float(wait)
                free = [i for i, c in enumerate(connectors) if c.name not in paused]
                if not free:
                    retry_after = min(paused.values())
                    break
                index = free[0]
                conn = connectors[index]
                wait = await acquire(conn.name)
                if isinstance(wait, int | float) and wait > 0:
                    paused[conn.name] = float(wait)
                    retry_after = min(paused.values())
                    break
        try:
            return await conn.submit(sub)
        except CarrierError as exc:
            if not exc.transient:
                raise PermanentFailure(exc.reason, conn.name, error=exc, attempts=attempt) from exc
            last[conn.name] = exc
            failures_here += 1
            if isinstance(exc, Throttled) and throttled is not None:
                await throttled(conn.name, exc.retry_after)
            if attempt == max_attempts:
                retry_after = backoff_delay(retries, backoff_base, backoff_max, rng)
                if isinstance(exc, Throttled) and exc.retry_after is not None:
                    retry_after = max(retry_after, exc.retry_after)
                break
            if isinstance(exc, ConnectionFailed) or (
                failover_after is not None and failures_here >= failover_after
            ):
                index = (index + 1) % len(connectors)
                failures_here = 0
                if index != 0:
                    continue  # the next carrier, at once
            if isinstance(exc, Throttled) and exc.retry_after is not None:
                delay = max(0.0, exc.retry_after)  # the carrier said when; jitter would only be wrong
            else:
                delay = backoff_delay(retries, backoff_base, backoff_max, rng)
            retries += 1
            if max_wait is not None and delay > max_wait:
                retry_after = delay  # parked by the caller instead of holding up its batch
                break
            await sleep(delay)
    reason = "; ".join([f"{name}: {type(e).__name__}: {e.reason}" for name, e in last.items()]
                       + [f"{name}: paused for {wait:.1f}s" for name, wait in paused.items()
                          if name not in last])
    raise RetryBudgetExhausted(f"no carrier took it after {attempt} attempt(s): {reason}", attempt,
                               errors=last, retry_after=retry_after)
