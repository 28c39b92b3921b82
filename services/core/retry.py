"""Retrying what failed for a reason that passes: the database or the broker is away. Such a
failure means "try again later", never "the event is bad", so it is retried with backoff and
never dead-lettered. The one place for that loop (handlers of both processor cores, egress's
recording of send results)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger(__name__)

T = TypeVar("T")

# Infrastructure errors mean "try again later", never "the event is bad".
TRANSIENT: tuple[type[BaseException], ...] = (OperationalError, PoolTimeout, ConnectionError)

FIRST_DELAY_S = 0.2
MAX_DELAY_S = 10.0


async def until_done(attempt: Callable[[], Awaitable[T]], *, what: str,
                     first_delay: float = FIRST_DELAY_S, max_delay: float = MAX_DELAY_S) -> T:
    """Await ``attempt()`` until it returns; a TRANSIENT failure waits (doubling from
    ``first_delay`` up to ``max_delay``) and tries again, any other exception propagates."""
    delay = first_delay
    while True:
        try:
            return await attempt()
        except TRANSIENT as exc:
            log.warning("%s: transient failure, retrying in %.1fs: %s", what, delay,
                        type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
