"""What egress decides for one outbound message, without Kafka or carriers' I/O.

``accept`` records the message (once: a redelivered or repeated request changes nothing and is
not sent again), and either settles it (expired, suppressed by an opt-out, no carrier) or returns
a send plan. ``record_sent`` / ``record_failed`` record what the carriers answered. Each status
change comes back as an ``sms.status`` event, produced only when the transition really happened.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from services.carriers.base import Submission, SubmitResult
from services.core.carriers import Carrier, route
from services.core.db.models import Message, Tenant
from services.core.ids import stable_uuid
from services.core.messages import (
    OPTOUT_CONFIRMATION,
    MessageRow,
    Move,
    committed_setter,
    history_event_id,
    is_optout_confirmation,
    load_rows,
    parse_ts,
    record_accepted,
    record_accepted_many,
    transition_many,
)
from services.core.schemas import new_event
from services.core.sms_encoding import segment
from services.core.utc import iso

# Status event ids are derived from (message, status) so a re-emitted status is recognisably the
# same event to consumers that deduplicate on event_id.
_STATUS_NS = uuid.UUID("0c7f3b2e-55d1-4d0a-9a57-3f1e8b6c2d94")
REASON_MAX = 512  # sms.status reason maxLength
_CARRIED = frozenset({"sent", "delivered", "failed", "expired"})  # statuses that name the carrier


class OptOutLookup(Protocol):
    def blocked_many(self, s: Session, items: list[tuple[str, str, datetime]]) -> list[bool]:
        """For each (tenant, msisdn, accepted_at): does an opt-out block that message?"""
        ...


@dataclass(frozen=True)
class SendPlan:
    """A message ready for the carriers: what to submit and to whom, best carrier first."""

    submission: Submission
    carriers: list[str]
    expires_at: datetime | None = None  # the sender's validity limit; waiting past it expires it


@dataclass
class Decision:
    statuses: list[dict[str, Any]] = field(default_factory=list)
    plan: SendPlan | None = None
    duplicate: bool = False
    # The message's row as this decision read it: recording the carrier's answer uses it instead
    # of reading it again (record_sent_batch's ``known``).
    message: Message | MessageRow | None = None


def status_event(msg: Message | MessageRow, status: str, *, reason: str | None = None,
                 at: datetime | None = None) -> dict[str, Any]:
    """The sms.status event for ``msg`` having reached ``status``."""
    # A later try (a DLQ replay, services/core/dlq_replay.py) announces its statuses anew.
    fields: dict[str, Any] = {
        "message_id": msg.id, "request_id": msg.request_id, "to": msg.recipient, "status": status,
        "occurred_at": iso(at or msg.updated_at)}
    if reason:
        fields["reason"] = reason[:REASON_MAX]
    if status in _CARRIED:
        fields["carrier"], fields["carrier_message_id"] = msg.carrier, msg.carrier_message_id
    fields["segments"], fields["encoding"] = msg.segments, msg.encoding
    return new_event("sms.status", msg.tenant_id,
                     event_id=stable_uuid(_STATUS_NS, history_event_id(msg, status)), **fields)


def move(s: Session, msg: Message | MessageRow, status: str, *, reason: str | None = None,
         carrier: str | None = None, at: datetime | None = None) -> list[dict[str, Any]]:
    """Transition and, only if it happened, the status event for it."""
    at = at or datetime.now(UTC)
    if not transition_many(s, [Move(msg, status, at, reason=reason, carrier=carrier)]):
        return []
    return [status_event(msg, status, reason=reason, at=at)]


def accept(s: Session, event: dict[str, Any], *, optouts: OptOutLookup,
           carriers: dict[str, Carrier], now: datetime | None = None) -> Decision:
    """Record one sms.outbound event and decide what happens to it."""
    return accept_batch(s, [event], optouts=optouts, carriers=carriers, now=now)[0]


def accept_batch(s: Session, events: list[dict[str, Any]], *, optouts: OptOutLookup,
                 carriers: dict[str, Carrier], now: datetime | None = None) -> list[Decision]:
    """Record a batch of sms.outbound events and decide each, in order.

    Set-based where the batch allows: the messages are looked up, inserted and checked against
    opt-outs in a few statements for the whole batch, not a few per message.
    """
    now = now or datetime.now(UTC)
    rows = record_accepted_many(s, events)
    decisions: list[Decision | None] = [None] * len(events)
    todo: list[tuple[int, dict[str, Any], Message]] = []
    seen: set[str] = set()
    for i, event in enumerate(events):
        mid = event["message_id"]
        if mid in seen:  # the same message twice in one batch: the first one sends it
            decisions[i] = Decision(duplicate=True)
            continue
        seen.add(mid)
        msg = rows.get(mid) or record_accepted(s, event)[0]
        if msg.id != mid or msg.status != "accepted":
            # Already past 'accepted' (or the same request under another id): a redelivery or a
            # repeated request. It was handled once; it is not sent again. Its current status is
            # emitted again (same event id) in case the first emission died with a worker
            # between the database commit and the broker's acknowledgement.
            d = decisions[i] = Decision(duplicate=True)
            if msg.id == mid:
                d.statuses.append(status_event(msg, msg.status, reason=msg.reason, at=msg.updated_at))
            continue
        todo.append((i, event, msg))
    # Only Herald's own STOP confirmation skips the opt-out check, known by the source that the
    # record of the message and the event both carry (a tenant's attributes cannot make one).
    checked = [(i, e, m) for i, e, m in todo
               if not (m.source == OPTOUT_CONFIRMATION[0] and is_optout_confirmation(e))]
    verdicts = optouts.blocked_many(s, [(m.tenant_id, m.recipient, m.accepted_at) for _, _, m in checked])
    blocked = {i for (i, _, _), b in zip(checked, verdicts, strict=True) if b}
    # One query for the batch's tenants (the session's identity map holds rows weakly, so a
    # get() per message would load the same tenant again and again).
    ids = sorted({m.tenant_id for _, _, m in todo})
    tenants = {t.id: t for t in s.scalars(select(Tenant).where(Tenant.id.in_(ids)))} if ids else {}
    for i, event, msg in todo:
        decisions[i] = _decide(s, event, msg, i in blocked, tenants.get(msg.tenant_id), carriers, now)
    return [d for d in decisions if d is not None]


def _decide(s: Session, event: dict[str, Any], msg: Message | MessageRow, opted_out: bool,
            tenant: Tenant | None, carriers: dict[str, Carrier], now: datetime) -> Decision:
    # Still 'accepted': ingress recorded it, or a previous try stopped before the carrier
    # answered; either way it still has to go out, and 'accepted' is announced (with a stable
    # event id, so announcing it again is harmless).
    d = Decision(message=msg)
    d.statuses.append(status_event(msg, "accepted", at=msg.accepted_at))

    expires_at = event.get("expires_at")
    if expires_at and parse_ts(expires_at) < now:
        d.statuses += move(s, msg, "expired", reason=f"expired at {expires_at} before it was sent",
                           at=now)
        return d

    if opted_out:
        d.statuses += move(s, msg, "suppressed", reason="recipient opted out of this tenant's messages",
                           at=now)
        return d

    text = event["text"]  # the row may hold a redacted copy (services.core.messages.stored_text)
    encoding, count = msg.encoding, msg.segments  # set at insert from this text
    if not encoding or not count:  # rows recorded before they were set there; kept for billing
        seg = segment(text)
        encoding, count = msg.encoding, msg.segments = seg.encoding, seg.count

    preference = event.get("carrier_preference") or (tenant.carrier_preference if tenant else None)
    chosen = route(carriers, msg.recipient, preference)
    if not chosen:
        d.statuses += move(s, msg, "failed", reason=f"no carrier serves {msg.recipient}", at=now)
        return d

    sender = event.get("from") or (tenant.default_sender if tenant else None)
    sub = Submission(message_id=msg.id, to=msg.recipient, sender=sender, text=text,
                     encoding=encoding, segments=count)
    d.plan = SendPlan(sub, [c.name for c in chosen],
                      parse_ts(expires_at) if expires_at else None)
    return d


def record_sent(s: Session, message_id: str, result: SubmitResult,
                now: datetime | None = None) -> tuple[Message, list[dict[str, Any]]]:
    """A carrier took the message: remember its id for DLR matching and move to 'sent'."""
    return record_sent_batch(s, [(message_id, result)], now)[0]


def record_sent_batch(s: Session, results: list[tuple[str, SubmitResult]],
                      now: datetime | None = None,
                      known: dict[str, Message | MessageRow] | None = None,
                      ) -> list[tuple[Message | MessageRow, list[dict[str, Any]]]]:
    """``record_sent`` for many messages in four statements: their rows, their carrier ids, the
    move to 'sent' of those still 'accepted' (a conditional UPDATE ... RETURNING, so a DLR
    that settled one first keeps it settled), and the history rows of the moves.

    ``known``: rows read by the decision of the same messages, used instead of reading them
    again. What they say may be stale (a delivery report may have moved one since): the
    conditional move re-reads the rows it loses on, as ever."""
    now = now or datetime.now(UTC)
    known = known or {}
    msgs: dict[str, Message | MessageRow] = {}
    for mid, _ in results:
        row = known.get(mid)
        if row is not None:
            msgs[mid] = row
    msgs.update(load_rows(s, {mid for mid, _ in results if mid not in msgs}))
    for mid, _ in results:
        if mid not in msgs:
            raise LookupError(f"message {mid} vanished after it was sent")
    t = Message.__table__
    # The carrier id is kept even when a DLR that echoed our reference already settled it.
    # Rows are updated in id order, the order the IN-list updates lock them in too, so two
    # transactions over the same messages (PostgreSQL) queue rather than deadlock.
    s.execute(update(t).where(t.c.id == bindparam("mid"))
              .values(carrier=bindparam("c"), carrier_message_id=bindparam("cmid")),
              [{"mid": mid, "c": r.carrier, "cmid": r.carrier_message_id}
               for mid, r in sorted(results, key=lambda pair: pair[0])])
    for mid, r in results:
        msg = msgs[mid]
        put = committed_setter(msg)
        put(msg, "carrier", r.carrier)
        put(msg, "carrier_message_id", r.carrier_message_id)
    moved = {m.msg.id for m in transition_many(
        s, [Move(msgs[mid], "sent", now, carrier=r.carrier) for mid, r in results])}
    return [(msgs[mid], [status_event(msgs[mid], "sent", at=now)] if mid in moved else [])
            for mid, _ in results]


def record_expired(s: Session, message_id: str, reason: str,
                   now: datetime | None = None) -> list[dict[str, Any]]:
    """Its validity period ended while it waited for its carriers."""
    msg = s.get(Message, message_id)
    if msg is None:
        raise LookupError(f"message {message_id} vanished before its expiry was recorded")
    return move(s, msg, "expired", reason=reason, at=now)


def record_failed(s: Session, message_id: str, reason: str, carrier: str | None = None,
                  now: datetime | None = None) -> list[dict[str, Any]]:
    msg = s.get(Message, message_id)
    if msg is None:
        raise LookupError(f"message {message_id} vanished before its failure was recorded")
    return move(s, msg, "failed", reason=reason, carrier=carrier, at=now)
