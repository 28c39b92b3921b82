"""Ingress rules, free of HTTP and Kafka: a concatenated MO made whole. Carrier webhooks are
parsed by the carrier's unit (services/carriers/<kind>/); send requests by
services/core/sending.py, which the console's send page uses too; the send API's rate limits
are services/core/ratelimit.py's token buckets."""

from __future__ import annotations

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
