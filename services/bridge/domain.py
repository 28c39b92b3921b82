"""The bridge between the pipeline and tenants' business systems (ERPs). No Kafka here.

- ``Gateway.request`` turns what an ERP published to ``tenant.<id>.outbound`` into an
  ``sms.outbound`` event: the tenant comes from the topic (a body naming another tenant is
  rejected), the platform fields are stamped (message id from the idempotency key, source
  ``erp``, acceptance time), a reply by ``in_reply_to`` is addressed from the inbound message it
  answers, and the result is validated against the ``sms.outbound`` schema.
- ``record_inbound`` keeps the inbound texts forwarded to a tenant, so a reply can find them.
- ``status_copy`` is the tenant's copy of an ``sms.status`` event.

What an ERP publishes is an ``sms.outbound`` event without the fields the platform stamps:
``tenant_id``, ``message_id``, ``source``, ``accepted_at`` and the envelope (``event_id``,
``event_type``, ``produced_at``, ``schema_version``) may be left out; if present, ``tenant_id``
must be the topic's tenant, and the others are replaced (a platform message id is always
``message_id_for(tenant, request_id)``). ``request_id`` is required: it is the idempotency key.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.core import topics
from services.core.db.bridge_models import BridgeInbound
from services.core.db.models import SenderNumber, Tenant
from services.core.ids import stable_uuid
from services.core.messages import message_id_for, parse_ts, record_accepted, request_mismatch
from services.core.processor import Out, Rejected
from services.core.schemas import EventInvalid, now_iso, parse_object, validate

TENANT_TOPIC = re.compile(r"tenant\.([a-z0-9][a-z0-9_-]*)\.(outbound|inbound|status|dlq)")
# Patterns for the pattern consumers: simple enough to read the same as POSIX and Python regexes.
OUTBOUND_PATTERN = r"tenant\.[a-z0-9][a-z0-9_-]*\.outbound$"
INBOUND_PATTERN = r"tenant\.[a-z0-9][a-z0-9_-]*\.inbound$"

# Fields the platform sets on an ERP request, whatever the body says.
STAMPED = ("event_id", "event_type", "produced_at", "schema_version", "message_id", "source",
           "accepted_at")
_NS = uuid.UUID("a3c1f6e2-58b4-4d0f-9a7e-1c2b3d4e5f60")


def tenant_of(topic: str) -> str:
    """The tenant of a tenant topic's catalogue name (``tenant.<id>.<kind>``)."""
    m = TENANT_TOPIC.fullmatch(topic)
    if m is None:
        raise ValueError(f"{topic!r} is not a tenant topic")
    return m.group(1)


def parse_request(_topic: str, raw: bytes | None) -> dict[str, Any]:
    """Bytes an ERP published -> a JSON object (the schema is checked after stamping)."""
    return parse_object(raw)


class InboundNotSeen(Exception):
    """A reply to an inbound message the bridge has not recorded (yet, or at all)."""

    def __init__(self, message_id: str) -> None:
        super().__init__(message_id)
        self.message_id = message_id


@dataclass(frozen=True)
class TenantView:
    id: str
    active: bool
    numbers: frozenset[str]


class Directory:
    """Tenants and their sender numbers, cached for ``ttl`` seconds."""

    def __init__(self, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.clock = ttl, clock
        self._cache: dict[str, tuple[float, TenantView | None]] = {}

    def tenant(self, s: Session, tenant_id: str) -> TenantView | None:
        now = self.clock()
        hit = self._cache.get(tenant_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        t = s.get(Tenant, tenant_id)
        view = None
        if t is not None:
            nums = frozenset(s.scalars(select(SenderNumber.number)
                                       .where(SenderNumber.tenant_id == tenant_id)))
            view = TenantView(t.id, bool(t.active), nums)
        self._cache[tenant_id] = (now, view)
        return view


class Gateway:
    def __init__(self, directory: Directory | None = None) -> None:
        self.directory = directory or Directory()

    def request(self, s: Session, tenant_id: str, body: dict[str, Any]) -> Out:
        """An ERP request published to ``tenant.<tenant_id>.outbound`` -> the sms.outbound event.

        Raises Rejected (with the reason for the tenant's DLQ), or InboundNotSeen for a reply to
        an inbound message that is not recorded (the caller may wait for it a little)."""
        claimed = body.get("tenant_id")
        if claimed is not None and claimed != tenant_id:
            raise Rejected(f"the request names tenant {str(claimed)[:63]!r} but was published to "
                           f"tenant.{tenant_id}.outbound; a request is always for the tenant of "
                           "its topic", "tenant_mismatch")
        tenant = self.directory.tenant(s, tenant_id)
        if tenant is None or not tenant.active:
            raise Rejected(f"tenant {tenant_id} is unknown or inactive", "unknown_tenant")
        request_id = body.get("request_id")
        if not isinstance(request_id, str) or not _valid_request_id(request_id):
            raise Rejected("request_id (the idempotency key) is required: 1-128 of A-Z a-z 0-9 "
                           ". _ : -", "schema_violation")

        event = {k: v for k, v in body.items() if k not in STAMPED}
        reply_to = body.get("in_reply_to")
        if reply_to is not None:
            self._address_reply(s, tenant_id, reply_to, event)
        sender = event.get("from")
        if isinstance(sender, str) and sender.lstrip("+").isdigit() and sender not in tenant.numbers:
            raise Rejected(f"'from' {sender!r} is not one of tenant {tenant_id}'s numbers",
                           "sender_not_owned")

        now = now_iso()
        event.update(
            event_id=stable_uuid(_NS, f"{tenant_id}\x1f{request_id}"),
            event_type=topics.SMS_OUTBOUND, produced_at=now, schema_version=1,
            tenant_id=tenant_id, message_id=message_id_for(tenant_id, request_id), source="erp",
            accepted_at=now)
        try:
            validate(topics.SMS_OUTBOUND, event)
        except EventInvalid as exc:
            raise Rejected(exc.reason, "schema_violation") from None
        # Recorded here, as the send API does, so that a reused idempotency key with another
        # request is refused to the ERP's DLQ instead of vanishing as egress's duplicate.
        msg, created = record_accepted(s, event)
        differs = [] if created else request_mismatch(msg, event)
        if differs:
            raise Rejected(f"request_id {request_id!r} was already used for a different message "
                           f"(it differs in {', '.join(differs)}); a new message needs a new "
                           "request_id", "idempotency_conflict")
        return Out(topics.SMS_OUTBOUND, event["to"], event)

    @staticmethod
    def _address_reply(s: Session, tenant_id: str, reply_to: Any, event: dict[str, Any]) -> None:
        """A reply goes to whoever sent the inbound, from the number they texted."""
        if not isinstance(reply_to, str):
            return  # the schema check names the problem
        inbound = s.get(BridgeInbound, reply_to)
        if inbound is None or inbound.tenant_id != tenant_id:
            # Another tenant's inbound is indistinguishable from none: nothing leaks.
            raise InboundNotSeen(reply_to)
        to = event.setdefault("to", inbound.subscriber)
        if to != inbound.subscriber:
            raise Rejected(f"in_reply_to {reply_to} came from another number than 'to' {to!r}; "
                           "leave 'to' out of a reply or give the sender's number",
                           "reply_mismatch")
        sender = event.setdefault("from", inbound.number)
        if sender != inbound.number:
            raise Rejected(f"a reply to {reply_to} goes from {inbound.number}, the number that was "
                           f"texted, not from {sender!r}", "reply_mismatch")


def unknown_inbound(tenant_id: str, message_id: str, retention_days: int) -> Rejected:
    return Rejected(f"in_reply_to {message_id}: no inbound message with that id was forwarded to "
                    f"tenant {tenant_id} in the last {retention_days} days", "unknown_inbound")


def _valid_request_id(value: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", value))


# -- inbound messages for replies ---------------------------------------------------------------

def record_inbound(s: Session, tenant_id: str, event: dict[str, Any]) -> bool:
    """Keep a forwarded inbound so that its tenant can reply to it by id. Idempotent."""
    mid = event["message_id"]
    if s.get(BridgeInbound, mid) is not None:
        return False
    try:
        with s.begin_nested():
            s.add(BridgeInbound(message_id=mid, tenant_id=tenant_id, subscriber=event["from"],
                                number=event["to"],
                                received_at=parse_ts(event["received_at"]).astimezone(UTC)))
    except IntegrityError:  # another worker recorded it first
        return False
    return True


def prune_inbound(s: Session, retention_days: int, now: datetime | None = None) -> int:
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    return s.execute(delete(BridgeInbound).where(BridgeInbound.recorded_at < cutoff)).rowcount or 0


# -- status ------------------------------------------------------------------------------------

def status_copy(event: dict[str, Any]) -> Out:
    """The tenant's copy of a status event: same event (and event id, so the ERP can dedupe)."""
    return Out(f"tenant.{event['tenant_id']}.status", event["message_id"], event)
