"""Ingress rules, free of HTTP and Kafka: parsing carrier webhooks (MO, DLR) and send requests
into events, with a clear reason for anything that cannot be accepted."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from services.core.messages import message_id_for
from services.core.schemas import EventInvalid, new_event, now_iso, validate
from services.core.sms_encoding import decode_carrier_text, segment

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
ADDRESS = re.compile(r"^(\+[1-9][0-9]{6,14}|[0-9]{3,8})$")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_TEXT = 1600
MAX_BATCH = 1000
DLR_STATUS = {
    "delivered": "delivered", "delivrd": "delivered",
    "undeliverable": "undeliverable", "undeliv": "undeliverable", "failed": "undeliverable",
    "expired": "expired", "rejected": "rejected", "rejectd": "rejected",
    "accepted": "accepted", "enroute": "accepted", "unknown": "unknown",
}
_MO_NS = uuid.UUID("0c1f1d2e-8a33-4f7b-9b1e-2d4c6e8f0a11")


class BadRequest(ValueError):
    """Input that gets a 4xx with this reason; nothing is published."""


@dataclass(frozen=True)
class MoPart:
    ref: str
    seq: int
    total: int
    text: str


def _str(body: dict, field: str, required: bool = True, max_len: int = 1024) -> str | None:
    v = body.get(field)
    if v is None:
        if required:
            raise BadRequest(f"'{field}' is required")
        return None
    if not isinstance(v, str):
        raise BadRequest(f"'{field}' must be a string")
    if len(v) > max_len:
        raise BadRequest(f"'{field}' is longer than {max_len} characters")
    return v


def require_object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


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


def parse_send(tenant_id: str, body: Any, header_key: str | None = None,
               senders: set[str] | None = None) -> dict[str, Any]:
    """A send request -> an sms.outbound event (with preview fields for the response)."""
    body = require_object(body)
    allowed = {"to", "text", "from", "request_id", "category", "expires_at", "validity_seconds",
               "attributes", "carrier_preference", "priority"}
    extra = sorted(set(body) - allowed)
    if extra:
        raise BadRequest(f"unknown field(s): {', '.join(extra)}")
    to = _str(body, "to", max_len=32)
    if not E164.match(to):
        raise BadRequest(f"'to' must be an E.164 number like +8613812345678, got {to!r}")
    text = _str(body, "text", max_len=100_000)
    if not text:
        raise BadRequest("'text' is empty")
    if len(text) > MAX_TEXT:
        raise BadRequest(f"'text' has {len(text)} characters; the limit is {MAX_TEXT}")
    sender = _str(body, "from", required=False, max_len=16)
    if sender is not None and senders is not None and sender not in senders and (
            sender.lstrip("+").isdigit()):
        raise BadRequest(f"'from' {sender!r} is not one of this tenant's numbers")
    request_id = body.get("request_id") or header_key or str(uuid.uuid4())
    if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
        raise BadRequest("'request_id' (or Idempotency-Key) must be 1-128 of A-Z a-z 0-9 . _ : -")
    expires_at = body.get("expires_at")
    if body.get("validity_seconds") is not None:
        v = body["validity_seconds"]
        if not isinstance(v, int) or not 1 <= v <= 7 * 86400:
            raise BadRequest("'validity_seconds' must be an integer from 1 to 604800")
        expires_at = (datetime.now(timezone.utc) + timedelta(seconds=v)).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
    event = new_event(
        "sms.outbound", tenant_id=tenant_id, message_id=message_id_for(tenant_id, request_id),
        request_id=request_id, to=to, text=text, category=body.get("category", "transactional"),
        source="api", priority=body.get("priority"), expires_at=expires_at,
        attributes=body.get("attributes"), carrier_preference=body.get("carrier_preference"),
        accepted_at=now_iso(), **{"from": sender},
    )
    _check(event)
    return event


def reused_key(request_id: str, differs: list[str]) -> str:
    """Why a request reusing an idempotency key with another body is refused (409)."""
    if "source" in differs:
        return (f"request_id {request_id!r} is already taken by a message this API did not "
                "accept; use another request_id")
    return (f"request_id {request_id!r} was already used for a different message (it differs in "
            f"{', '.join(differs)}); a retry must repeat the original request exactly, and a new "
            "message needs a new request_id")


def preview(text: str) -> dict[str, Any]:
    seg = segment(text)
    return {"encoding": seg.encoding, "segments": seg.count, "characters": len(text),
            "units": seg.units}


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


def _check(event: dict[str, Any]) -> None:
    try:
        validate(event["event_type"], event)
    except EventInvalid as exc:
        raise BadRequest(exc.reason.split(": ", 1)[-1]) from None


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
