"""Webhooks of Herald's own JSON dialect (what services/simulator speaks): MO and DLR as JSON
bodies, signed ``X-Herald-Signature: sha256=<hex HMAC of the body>`` or, with
``"webhook_auth": "token"``, a shared ``X-Herald-Token``. A DLR body is one report, or
``{"reports": [...]}`` carrying up to ``MAX_REPORTS`` of them (carriers that batch their
callbacks): the readable ones are published, and the answer names each one refused by its
index. Fixtures: testdata/webhooks/."""

from __future__ import annotations

import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from services.core.carriers import Carrier, sign
from services.core.schemas import new_event, now_iso
from services.core.sending import (
    ADDRESS,
    E164,
    MAX_TEXT,
    BadRequest,
    check_event,
    read_json,
    require_object,
)
from services.core.sending import text_field as _str
from services.core.sms_encoding import decode_carrier_text, segment

from ..base import Inbound, MoPart, WebhookRequest, mo_message_id, register_webhooks

MAX_REPORTS = 1000  # delivery reports in one batched DLR body

# The carrier's words for a delivery outcome -> sms.delivery's vocabulary.
DLR_STATUS = {
    "delivered": "delivered", "delivrd": "delivered",
    "undeliverable": "undeliverable", "undeliv": "undeliverable", "failed": "undeliverable",
    "expired": "expired", "rejected": "rejected", "rejectd": "rejected",
    "accepted": "accepted", "enroute": "accepted", "unknown": "unknown",
}


def verify(carrier: Carrier, body: bytes, headers: dict[str, str] | Any) -> bool:
    """Constant-time check of a webhook's signature (or shared token)."""
    if not carrier.webhook_secret:
        return False
    if carrier.webhook_auth == "token":
        given = headers.get("x-herald-token", "")
        return hmac.compare_digest(given.encode(), carrier.webhook_secret.encode())
    given = headers.get("x-herald-signature", "")
    return hmac.compare_digest(given.encode(), sign(carrier.webhook_secret, body).encode())


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
        carrier_message_id=cmid, received_at=timestamp(body.get("received_at")),
        to=to, text=text or " ", encoding=coding, parts=part.total if part else None,
        **{"from": sender},
    )
    return event, part


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
                      reported_at=timestamp(body.get("reported_at")), message_id=ref)
    check_event(event)
    return event


def timestamp(v: Any) -> str:
    if v is None:
        return now_iso()
    if not isinstance(v, str):
        raise BadRequest("timestamps must be ISO 8601 strings")
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{v!r} is not an ISO 8601 timestamp") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@register_webhooks("http")
class JsonWebhooks:
    def __init__(self, carrier: Carrier) -> None:
        self.carrier = carrier

    def verify(self, req: WebhookRequest) -> bool:
        return verify(self.carrier, req.body, req.headers)

    def parse(self, req: WebhookRequest) -> Inbound:
        if req.kind == "mo":
            return Inbound(mo=(parse_mo(self.carrier.name, read_json(req.body)),))
        body = read_json(req.body)
        if isinstance(body, dict) and "reports" in body:
            return parse_dlr_batch(self.carrier.name, body["reports"])
        return Inbound(deliveries=(parse_dlr(self.carrier.name, body),))


def parse_dlr_batch(carrier: str, reports: Any) -> Inbound:
    """``{"reports": [...]}`` -> the delivery events of the readable reports, and an answer that
    counts them and names each refused one (index and reason), so the carrier need not send the
    good ones again. Nothing readable at all: BadRequest with the first reasons."""
    if not isinstance(reports, list) or not reports:
        raise BadRequest("'reports' must be a non-empty list of delivery reports")
    if len(reports) > MAX_REPORTS:
        raise BadRequest(f"at most {MAX_REPORTS} reports per request, got {len(reports)}")
    events: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for i, report in enumerate(reports):
        try:
            events.append(parse_dlr(carrier, report))
        except BadRequest as exc:
            refused.append({"index": i, "reason": str(exc)})
    if not events:
        raise BadRequest("no readable report: " + "; ".join(
            f"#{r['index']}: {r['reason']}" for r in refused[:5]))
    answer = {"status": "accepted", "accepted": len(events), "refused": refused}
    return Inbound(deliveries=tuple(events), answer_type="application/json",
                   answer_body=json.dumps(answer, ensure_ascii=False).encode("utf-8"))
