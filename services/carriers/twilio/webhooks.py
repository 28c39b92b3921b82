"""Twilio-style webhooks: form-encoded MO (``MessageSid``, ``From``, ``To``, ``Body``,
``NumSegments``) and status callbacks (``MessageSid``, ``MessageStatus``, ``ErrorCode``), signed
``X-Twilio-Signature: base64(HMAC-SHA1(auth token, URL + every POST parameter, sorted by name,
as name + value))``. The URL is the one the carrier was given; behind a proxy that rewrites it,
the carrier's ``options.public_url`` (e.g. ``https://sms.example.org``) replaces the scheme and
host ingress saw. The key is ``webhook_secret`` if declared, else the auth token (``api_token``).
The MO answer is empty TwiML: Herald replies through the router, never in the webhook's answer.
Fixtures: testdata/webhooks/."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

from services.core.carriers import Carrier
from services.core.schemas import new_event, now_iso
from services.core.sending import ADDRESS, E164, MAX_TEXT, BadRequest, check_event
from services.core.sms_encoding import segment

from ..base import Inbound, WebhookRequest, mo_message_id, register_webhooks

EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# MessageStatus -> sms.delivery's vocabulary. "sent" means handed to the network: not final.
STATUS = {
    "delivered": "delivered", "read": "delivered",
    "undelivered": "undeliverable", "failed": "rejected", "canceled": "rejected",
    "queued": "accepted", "accepted": "accepted", "scheduled": "accepted", "sending": "accepted",
    "sent": "accepted", "receiving": "accepted", "received": "accepted",
}


def signature(key: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's request signature (a repeated parameter signs each distinct value once, sorted,
    as Twilio's own validators do)."""
    data = url + "".join(k + v for k, v in sorted(set(params)))
    return base64.b64encode(hmac.new(key.encode(), data.encode(), hashlib.sha1).digest()).decode()


def form(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body),
                         max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"body is not a form (application/x-www-form-urlencoded): {exc}") from None


def _one(params: dict[str, str], name: str, max_len: int = 128) -> str:
    v = params.get(name, "").strip()
    if not v:
        raise BadRequest(f"'{name}' is required")
    if len(v) > max_len:
        raise BadRequest(f"'{name}' is longer than {max_len} characters")
    return v


@register_webhooks("twilio")
class TwilioWebhooks:
    def __init__(self, carrier: Carrier) -> None:
        self.carrier = carrier
        self.key = carrier.webhook_secret or carrier.api_token
        self.public = urlsplit(str(carrier.options.get("public_url", "")))

    def signed_url(self, url: str) -> str:
        if not self.public.netloc:
            return url
        u = urlsplit(url)
        return u._replace(scheme=self.public.scheme, netloc=self.public.netloc).geturl()

    def verify(self, req: WebhookRequest) -> bool:
        given = req.headers.get("x-twilio-signature", "")
        if not self.key or not given:
            return False
        try:
            params = form(req.body)
        except BadRequest:
            return False
        expected = signature(self.key, self.signed_url(req.url), params)
        return hmac.compare_digest(given.encode(), expected.encode())

    def parse(self, req: WebhookRequest) -> Inbound:
        params = dict(form(req.body))
        if req.kind == "mo":
            return Inbound(mo=((self._mo(params), None),), answer_type="text/xml",
                           answer_body=EMPTY_TWIML)
        return Inbound(deliveries=(self._status(params),), answer_type="text/plain")

    def _mo(self, p: dict[str, str]) -> dict:
        sid = _one(p, "MessageSid")
        sender, to = _one(p, "From", 16), _one(p, "To", 16)
        if not E164.match(sender):
            raise BadRequest(f"'From' must be an E.164 number, got {sender!r}")
        if not ADDRESS.match(to):
            raise BadRequest(f"'To' must be an E.164 number or a short code, got {to!r}")
        text = p.get("Body", "")
        if not text.strip():
            raise BadRequest("'Body' is empty")
        if len(text) > MAX_TEXT:
            raise BadRequest(f"'Body' is longer than {MAX_TEXT} characters")
        try:
            parts = int(p.get("NumSegments") or 1)
        except ValueError:
            raise BadRequest(f"'NumSegments' is not a number: {p['NumSegments']!r}") from None
        # Twilio reassembles a long MO itself: one callback, NumSegments says how many it was.
        event = new_event("sms.inbound", message_id=mo_message_id(self.carrier.name, sid),
                          carrier=self.carrier.name, carrier_message_id=sid, received_at=now_iso(),
                          to=to, text=text, encoding=segment(text).encoding,
                          parts=parts if 1 < parts <= 255 else None, **{"from": sender})
        check_event(event)
        return event

    def _status(self, p: dict[str, str]) -> dict:
        sid = _one(p, "MessageSid")
        raw = _one(p, "MessageStatus", 32)
        status = STATUS.get(raw.lower())
        if status is None:
            raise BadRequest(f"'MessageStatus' {raw!r} is not a known message status")
        code = p.get("ErrorCode", "").strip() or None
        event = new_event("sms.delivery", carrier=self.carrier.name, carrier_message_id=sid,
                          status=status, error_code=code[:64] if code else None,
                          reported_at=now_iso(), message_id=None)
        check_event(event)
        return event
