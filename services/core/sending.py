"""Sending a tenant's message: one path for the send API (ingress ``POST /v1/messages``) and the
console's send page and inbox replies.

``parse_send`` turns a request into an ``sms.outbound`` event (or a ``BadRequest`` naming the
field), ``accept`` records the messages as accepted (idempotent by request id), and the caller
publishes the events with ``publish`` and answers only once the broker has acknowledged them.
``estimate`` gives the encoding, segments and cost of a send before it is made.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import topics
from .carriers import Carrier, route
from .db.models import Message
from .messages import insert_accepted, message_id_for, record_accepted, request_mismatch
from .schemas import EventInvalid, new_event, now_iso, parse_json, validate
from .sms_encoding import segment

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
ADDRESS = re.compile(r"^(\+[1-9][0-9]{6,14}|[0-9]{3,8})$")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_TEXT = 1600
MAX_BATCH = 1000
SEND_FIELDS = frozenset({"to", "text", "from", "request_id", "category", "expires_at",
                         "validity_seconds", "attributes", "carrier_preference", "priority"})


class BadRequest(ValueError):
    """Input that gets a 4xx with this reason; nothing is recorded or published. ``field`` names
    the request field at fault when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def read_json(body: bytes) -> Any:
    """A request body -> JSON values, or BadRequest saying why not (not UTF-8, not JSON, nested
    too deeply): what the send API and the carriers' webhooks read."""
    try:
        return parse_json(body, "body")
    except EventInvalid as exc:
        raise BadRequest(exc.reason) from None


def require_object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def text_field(body: dict, name: str, required: bool = True, max_len: int = 1024) -> str | None:
    v = body.get(name)
    if v is None:
        if required:
            raise BadRequest(f"'{name}' is required", name)
        return None
    if not isinstance(v, str):
        raise BadRequest(f"'{name}' must be a string", name)
    if len(v) > max_len:
        raise BadRequest(f"'{name}' is longer than {max_len} characters", name)
    return v


def check_event(event: dict[str, Any]) -> None:
    try:
        validate(event["event_type"], event)
    except EventInvalid as exc:
        raise BadRequest(exc.reason.split(": ", 1)[-1]) from None


def parse_send(tenant_id: str, body: Any, header_key: str | None = None,
               senders: set[str] | None = None, *, in_reply_to: str | None = None
               ) -> dict[str, Any]:
    """A send request -> an sms.outbound event (source ``api``). ``senders`` are the tenant's
    numbers (a numeric 'from' must be one of them); ``in_reply_to`` is set by the console when a
    message answers an inbound text (the API has no such field)."""
    body = require_object(body)
    extra = sorted(set(body) - SEND_FIELDS)
    if extra:
        raise BadRequest(f"unknown field(s): {', '.join(extra)}")
    to = text_field(body, "to", max_len=32)
    if not E164.match(to):
        raise BadRequest(f"'to' must be an E.164 number like +8613812345678, got {to!r}", "to")
    text = text_field(body, "text", max_len=100_000)
    if not text:
        raise BadRequest("'text' is empty", "text")
    if len(text) > MAX_TEXT:
        raise BadRequest(f"'text' has {len(text)} characters; the limit is {MAX_TEXT}", "text")
    sender = text_field(body, "from", required=False, max_len=16)
    if sender is not None and senders is not None and sender not in senders and (
            sender.lstrip("+").isdigit()):
        raise BadRequest(f"'from' {sender!r} is not one of this tenant's numbers", "from")
    request_id = body.get("request_id") or header_key or str(uuid.uuid4())
    if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
        raise BadRequest("'request_id' (or Idempotency-Key) must be 1-128 of A-Z a-z 0-9 . _ : -",
                         "request_id")
    expires_at = body.get("expires_at")
    if body.get("validity_seconds") is not None:
        v = body["validity_seconds"]
        if not isinstance(v, int) or not 1 <= v <= 7 * 86400:
            raise BadRequest("'validity_seconds' must be an integer from 1 to 604800",
                             "validity_seconds")
        expires_at = (datetime.now(timezone.utc) + timedelta(seconds=v)).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
    event = new_event(
        "sms.outbound", tenant_id=tenant_id, message_id=message_id_for(tenant_id, request_id),
        request_id=request_id, to=to, text=text, category=body.get("category", "transactional"),
        source="api", priority=body.get("priority"), expires_at=expires_at,
        attributes=body.get("attributes"), carrier_preference=body.get("carrier_preference"),
        in_reply_to=in_reply_to, accepted_at=now_iso(), **{"from": sender},
    )
    check_event(event)
    return event


def reused_key(request_id: str, differs: list[str]) -> str:
    """Why a request reusing an idempotency key with another body is refused (409)."""
    if "source" in differs:
        return (f"request_id {request_id!r} is already taken by a message this API did not "
                "accept; use another request_id")
    return (f"request_id {request_id!r} was already used for a different message (it differs in "
            f"{', '.join(differs)}); a retry must repeat the original request exactly, and a new "
            "message needs a new request_id")


def accept(s: Session, events: list[dict[str, Any]]) -> list[bool | str]:
    """Record the messages as accepted (idempotent). Per event: False when it is new, True
    when the same request was accepted before (its message stands), or the reason a reused
    idempotency key is refused (another request was accepted under it)."""
    # Two statements when every message is new (the usual case): the ORM's unit of work with a
    # savepoint per message cost about twice the CPU per API send (bench/bench_ingress.py).
    first: dict[str, dict[str, Any]] = {}
    for e in events:
        first.setdefault(e["message_id"], e)
    created = insert_accepted(s, list(first.values()))
    again = [e["message_id"] for e in events if e["message_id"] not in created]
    rows = {m.id: m for m in s.scalars(select(Message).where(Message.id.in_(again)))} if again else {}
    out: list[bool | str] = []
    for e in events:
        mid = e["message_id"]
        if mid in created:
            created.discard(mid)  # a second event with the same id is compared like a retry
            out.append(False)
            continue
        msg = rows.get(mid) or record_accepted(s, e)[0]  # the key taken under another id
        differs = request_mismatch(msg, e)
        out.append(reused_key(e["request_id"], differs) if differs else True)
    return out


class Producer(Protocol):
    async def send_many(self, items: list[tuple[str, dict[str, Any], str | None]]) -> None: ...


async def publish(producer: Producer, events: list[dict[str, Any]]) -> None:
    """Publish accepted events to sms.outbound, returning once the broker acknowledged them all.
    Published again on a duplicate too: if the first attempt died before the broker acknowledged
    it, this one delivers it; egress dedupes by message id."""
    await producer.send_many([(topics.SMS_OUTBOUND, e, e["to"]) for e in events])


def preview(text: str) -> dict[str, Any]:
    seg = segment(text)
    return {"encoding": seg.encoding, "segments": seg.count, "characters": len(text),
            "units": seg.units}


# -- recipients and cost -----------------------------------------------------------------------


def normalise_number(raw: str) -> str | None:
    """A number as typed (spaces, dashes, brackets, a leading 00) in E.164, or None."""
    v = re.sub(r"[\s().\-\u00a0]", "", raw or "")
    if v.startswith("00"):
        v = "+" + v[2:]
    return v if E164.match(v) else None


def split_numbers(raw: str) -> tuple[list[str], list[str]]:
    """Numbers pasted one per line or separated by commas/semicolons -> (E.164 numbers in order,
    without repeats; what could not be read as a number)."""
    good: dict[str, None] = {}
    bad: list[str] = []
    for piece in re.split(r"[\n,;，；]+", raw or ""):
        piece = piece.strip()
        if not piece:
            continue
        n = normalise_number(piece)
        if n is None:
            bad.append(piece)
        else:
            good.setdefault(n, None)
    return list(good), bad


def price_of(carriers: dict[str, Carrier], number: str, preference: list[str] | None = None
             ) -> tuple[Decimal, str] | None:
    """Price of one segment to ``number``: the ``price_per_segment`` (and ``currency``) in the
    ``options`` of the carrier egress would try first (HERALD_CARRIERS_FILE); None if unpriced."""
    for c in route(carriers, number, preference)[:1]:
        raw = c.options.get("price_per_segment")
        if raw is not None:
            return Decimal(str(raw)), str(c.options.get("currency", ""))
    return None


@dataclass
class Estimate:
    """What a send will be: messages, segments and encoding, and its cost where priced."""

    messages: int = 0
    segments: int = 0
    encodings: set[str] = field(default_factory=set)
    cost: dict[str, Decimal] = field(default_factory=dict)  # currency -> amount
    unpriced: int = 0  # messages to numbers no carrier price covers

    @property
    def encoding(self) -> str | None:
        if not self.encodings:
            return None
        return "ucs2" if "ucs2" in self.encodings else "gsm7"


def estimate(messages: list[tuple[str, str]], carriers: dict[str, Carrier],
             preference: list[str] | None = None) -> Estimate:
    """Cost of sending each (number, text): segments times the first carrier's segment price."""
    est = Estimate()
    for number, text in messages:
        seg = segment(text)
        est.messages += 1
        est.segments += seg.count
        est.encodings.add(seg.encoding)
        price = price_of(carriers, number, preference)
        if price is None:
            est.unpriced += 1
        else:
            amount, currency = price
            est.cost[currency] = est.cost.get(currency, Decimal(0)) + amount * seg.count
    return est
