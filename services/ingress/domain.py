"""Ingress rules, free of HTTP and Kafka: a concatenated MO made whole, and the send API's rate
limit. Carrier webhooks are parsed by the carrier's unit (services/carriers/<kind>/); send
requests by services/core/sending.py, which the console's send page uses too."""

from __future__ import annotations

import time
from typing import Any

from services.carriers.base import MoPart, mo_message_id  # noqa: F401  (ingress keeps MO parts)
from services.core.sending import (  # noqa: F401  (the send API's rules, shared with the console)
    ADDRESS,
    E164,
    MAX_BATCH,
    MAX_TEXT,
    REQUEST_ID,
    BadRequest,
    parse_send,
    preview,
    require_object,
    reused_key,
)
from services.core.sending import check_event as _check
from services.core.sms_encoding import segment


def complete_mo(event: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    text = "".join(parts)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT]
    out = dict(event, text=text, parts=len(parts), encoding=segment(text).encoding)
    _check(out)
    return out


class TokenBucket:
    """Per-tenant request rate limit of one ingress process."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self._state: dict[str, tuple[float, float]] = {}

    def take(self, key: str, n: int = 1) -> float:
        """0.0 if allowed, else seconds until it would be."""
        now = time.monotonic()
        tokens, last = self._state.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= n:
            self._state[key] = (tokens - n, now)
            return 0.0
        self._state[key] = (tokens, now)
        return (n - tokens) / self.rate
