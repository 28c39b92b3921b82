"""Ingress rules, free of HTTP and Kafka: parsing carrier webhooks (MO, DLR) into events, with a
clear reason for anything that cannot be accepted. Send requests are parsed by
services/core/sending.py, which the console's send page uses too."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from services.core.schemas import new_event, now_iso
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
from services.core.sending import text_field as _str
from services.core.sms_encoding import decode_carrier_text, segment

DLR_STATUS = {
    "delivered": "delivered", "delivrd": "delivered",
    "undeliverable": "undeliverable", "undeliv": "undeliverable", "failed": "undeliverable",
    "expired": "expired", "rejected": "rejected", "rejectd": "rejected",
    "accepted": "accepted", "enroute": "accepted", "unknown": "unknown",
}
_MO_NS = uuid.UUID("0c1f1d2e-8a33-4f7b-9b1e-2d4c6e8f0a11")


@dataclass(frozen=True)
class MoPart:
    ref: str
    seq: int
    total: int
    text: str


def mo_message_id(carrier: str, carrier_message_id: str) -> str:
    """A carrier retrying the same MO webhook gets the same platform id (router dedupes)."""
    return str(uuid.uuid5(_MO_NS, f"{carrier}\x1f{carrier_message_id}"))


def parse_mo(carrier: str, body: Any) -> tuple[dict[str, Any], MoPart | None]:
    """An MO webhook -> (sms.inbound event, concatenation part or None)."""
    body = require_object(body)
    cmid = _str(body, "id", max_len=128)
    sender = _str(body, "from", max_len=16)
    to = _str(body, "to", max_len=16)
    if not E164.match(sender):
        raise BadRequest(f"'from' must be an E.164 number like +8613812345678, got {sender!r}")
    if not ADDRESS.match(to):
        raise BadRequest(f"'to' must be an E.164 number or a short code, got {to!r}")
    raw = body.get("text")
    if not isinstance(raw, str):
        raise BadRequest("'text' is required and must be a string")
    try:
        text = decode_carrier_text(raw, body.get("coding"))
    except ValueError as exc:
        raise BadRequest(f"'text' cannot be decoded: {exc}") from None
    part = None
    concat = body.get("concat")
    if concat is not None:
        if not isinstance(concat, dict):
            raise BadRequest("'concat' must be an object with ref, total and seq")
        ref, total, seq = concat.get("ref"), concat.get("total"), concat.get("seq")
        if not isinstance(ref, (str, int)) or not isinstance(total, int) or not isinstance(seq, int):
            raise BadRequest("'concat' needs ref (string), total and seq (integers)")
        if not (1 <= total <= 255 and 1 <= seq <= total):
            raise BadRequest("'concat' needs 1 <= seq <= total <= 255")
        part = MoPart(str(ref), seq, total, text)
    if part is None and not text:
        raise BadRequest("'text' is empty")
    if len(text) > MAX_TEXT:
        raise BadRequest(f"'text' is longer than {MAX_TEXT} characters")
    coding = segment(text).encoding if text else None
    event = new_event(
        "sms.inbound", message_id=mo_message_id(carrier, cmid), carrier=carrier,
        carrier_message_id=cmid, received_at=_timestamp(body.get("received_at")),
        to=to, text=text or " ", encoding=coding, parts=part.total if part else None,
        **{"from": sender},
    )
    return event, part


def complete_mo(event: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    text = "".join(parts)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT]
    out = dict(event, text=text, parts=len(parts), encoding=segment(text).encoding)
    _check(out)
    return out


def parse_dlr(carrier: str, body: Any) -> dict[str, Any]:
    body = require_object(body)
    cmid = _str(body, "carrier_message_id", max_len=128)
    status = _str(body, "status", max_len=32)
    mapped = DLR_STATUS.get(status.strip().lower())
    if mapped is None:
        raise BadRequest(f"'status' {status!r} is not a known delivery status")
    ref = body.get("reference")
    if ref is not None:
        try:
            ref = str(uuid.UUID(str(ref)))
        except ValueError:
            ref = None  # a carrier's own reference, not ours: match by carrier id instead
    error_code = body.get("error_code")
    event = new_event("sms.delivery", carrier=carrier, carrier_message_id=cmid, status=mapped,
                      error_code=str(error_code)[:64] if error_code is not None else None,
                      reported_at=_timestamp(body.get("reported_at")), message_id=ref)
    _check(event)
    return event


def _timestamp(v: Any) -> str:
    if v is None:
        return now_iso()
    if not isinstance(v, str):
        raise BadRequest("timestamps must be ISO 8601 strings")
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{v!r} is not an ISO 8601 timestamp") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
