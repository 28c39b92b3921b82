"""Delivery reports (sms.delivery) matched to outbound messages.

A report names the message by the carrier's id, and sometimes by ours (when the carrier echoes
the reference we submitted with). A report can arrive before egress has recorded the carrier's
id (the carrier called back before its submit response was processed); it is then kept as a
PendingDlr and applied when ``record_sent`` stores the id. Pending reports nobody claims within
``dlr_match_window_s`` are purged. Transitions only go forward: a late report cannot undo a
terminal state, and a redelivered report changes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy import and_, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.core.db.models import Message, PendingDlr
from services.core.db.schemes import among
from services.core.messages import MessageRow, Move, parse_ts, rows_where, transition_many
from services.egress.domain import move, status_event
from services.egress.optouts import aware

log = logging.getLogger(__name__)

DLR_OUTCOMES = Counter("herald_egress_dlr_total", "Delivery reports by what egress did with them",
                       ["outcome"])
DLR_PURGED = Counter("herald_egress_dlr_pending_purged_total",
                     "Pending delivery reports dropped after the match window")

# sms.delivery's vocabulary (services/carriers/base.py DELIVERY_STATUSES; each carrier unit maps
# its own codes onto it) -> message status. accepted/unknown say nothing final.
DLR_STATUS = {
    "delivered": "delivered",
    "undeliverable": "failed",
    "rejected": "failed",
    "expired": "expired",
}


def _reason(carrier: str, dlr_status: str, error_code: str | None) -> str | None:
    if dlr_status == "delivered":
        return None
    code = f" (error {error_code})" if error_code else ""
    return f"carrier {carrier} reported {dlr_status}{code}"


def apply_report(s: Session, msg: Message | MessageRow, *, carrier: str, dlr_status: str,
                 error_code: str | None, reported_at: datetime) -> list[dict[str, Any]]:
    target = DLR_STATUS.get(dlr_status)
    if target is None:
        return []
    # A report processed after 'sent' is recorded no earlier than 'sent', so the history reads
    # in order even when the carrier's clock or the callback raced the submit response.
    at = max(aware(reported_at), aware(msg.updated_at))
    out = move(s, msg, target, reason=_reason(carrier, dlr_status, error_code), at=at)
    DLR_OUTCOMES.labels("applied" if out else "no_change").inc()
    return out


Refs = dict[tuple[str, str], Message | MessageRow]


def messages_by_ref(s: Session, events: list[dict[str, Any]]) -> Refs:
    """The messages the reports of a batch name by carrier id, in one query (plain rows: they
    are read and moved, never changed in place)."""
    cmids = sorted({e["carrier_message_id"] for e in events})
    if not cmids:
        return {}
    rows = rows_where(s, among(s, Message.__table__.c.carrier_message_id, cmids))
    return {(m.carrier, m.carrier_message_id): m for m in rows if m.carrier and m.carrier_message_id}


def find_message(s: Session, event: dict[str, Any],
                 by_ref: Refs | None = None) -> Message | MessageRow | None:
    """By (carrier, carrier id); else by our id when the carrier echoed it and the report is
    about the submission we know of (or we know of none yet). ``by_ref``: the batch's
    ``messages_by_ref``, instead of a query."""
    ref = (event["carrier"], event["carrier_message_id"])
    if by_ref is not None:
        msg = by_ref.get(ref)
    else:
        msg = s.scalar(select(Message).where(Message.carrier == ref[0],
                                             Message.carrier_message_id == ref[1]))
    if msg is not None or not event.get("message_id"):
        return msg
    msg = s.get(Message, event["message_id"])
    if msg is None or msg.carrier_message_id is None:
        return msg
    # Same message, another submission (failover after a timeout that did go through): its
    # delivery still tells us the subscriber has it; its failure tells us nothing.
    return msg if DLR_STATUS.get(event["status"]) == "delivered" else None


def handle_deliveries(s: Session, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A batch of sms.delivery events -> the status events of what they caused.

    The usual report (the first final one of the batch for a message known by its carrier id)
    is applied set-based, in a few statements for the whole batch; the others (unknown ids,
    echoed references, a second report for the same message) one at a time after them, so each
    message sees its reports in the order they came.
    """
    finals = [e for e in events if e["status"] in DLR_STATUS]
    by_ref = messages_by_ref(s, finals)
    # Reports that echo our reference and came before the submit response was recorded.
    echoed = sorted({e["message_id"] for e in finals if e.get("message_id")
                     and (e["carrier"], e["carrier_message_id"]) not in by_ref})
    by_id = {m.id: m for m in s.scalars(select(Message).where(Message.id.in_(echoed)))} if echoed else {}
    bulk: list[Move] = []
    rest: list[dict[str, Any]] = []
    claimed: set[str] = set()
    for event in events:
        ref = (event["carrier"], event["carrier_message_id"])
        msg = by_ref.get(ref)
        target = DLR_STATUS.get(event["status"])
        if msg is None and target is not None:
            ours = by_id.get(event.get("message_id") or "")
            if ours is not None and ours.carrier_message_id is None:
                ours.carrier, ours.carrier_message_id = ref  # the submit response will agree
                msg = by_ref[ref] = ours
        if msg is None or target is None or msg.id in claimed:
            rest.append(event)
            continue
        claimed.add(msg.id)
        at = max(aware(parse_ts(event["reported_at"])), aware(msg.updated_at))
        reason = _reason(event["carrier"], event["status"], event.get("error_code"))
        bulk.append(Move(msg, target, at, reason))
    moved = transition_many(s, bulk)
    DLR_OUTCOMES.labels("applied").inc(len(moved))
    DLR_OUTCOMES.labels("no_change").inc(len(bulk) - len(moved))
    out = [status_event(m.msg, m.status, reason=m.reason, at=m.at) for m in moved]
    return out + [st for event in rest for st in handle_delivery(s, event, by_ref)]


def handle_delivery(s: Session, event: dict[str, Any], by_ref: Refs | None = None) -> list[dict[str, Any]]:
    """One sms.delivery event -> the status events of the transitions it caused."""
    if event["status"] not in DLR_STATUS:
        DLR_OUTCOMES.labels("not_final").inc()
        return []
    reported_at = parse_ts(event["reported_at"])
    msg = find_message(s, event, by_ref)
    if msg is None:
        if event.get("message_id") and s.get(Message, event["message_id"]) is not None:
            DLR_OUTCOMES.labels("other_submission").inc()
            log.info("DLR %s/%s is about an earlier submission of %s; ignored", event["carrier"],
                     event["carrier_message_id"], event["message_id"])
            return []
        store_pending(s, event, reported_at)
        return []
    if msg.carrier_message_id is None:  # matched by our id before the submit response landed
        msg.carrier, msg.carrier_message_id = event["carrier"], event["carrier_message_id"]
        if by_ref is not None:
            by_ref[(msg.carrier, msg.carrier_message_id)] = msg
    return apply_report(s, msg, carrier=event["carrier"], dlr_status=event["status"],
                        error_code=event.get("error_code"), reported_at=reported_at)


def store_pending(s: Session, event: dict[str, Any], reported_at: datetime) -> None:
    try:
        with s.begin_nested():
            s.add(PendingDlr(carrier=event["carrier"], carrier_message_id=event["carrier_message_id"],
                             status=event["status"], error_code=event.get("error_code"),
                             reported_at=reported_at, received_at=datetime.now(UTC)))
        DLR_OUTCOMES.labels("pending").inc()
    except IntegrityError:  # the same report again
        DLR_OUTCOMES.labels("duplicate").inc()


def match_pending(s: Session, msg: Message) -> list[dict[str, Any]]:
    """Apply the reports that waited for ``msg``'s carrier id, oldest first, and drop them."""
    return match_pending_many(s, [msg])


def match_pending_many(s: Session, msgs: list[Message | MessageRow]) -> list[dict[str, Any]]:
    """``match_pending`` for a batch of just-sent messages: one query finds the reports that
    waited for any of them (usually none)."""
    by_ref = {(m.carrier, m.carrier_message_id): m for m in msgs if m.carrier and m.carrier_message_id}
    if not by_ref:
        return []
    rows = s.scalars(select(PendingDlr).where(
        among(s, PendingDlr.carrier_message_id, sorted({ref for _, ref in by_ref})))
        .order_by(PendingDlr.reported_at, PendingDlr.id)).all()
    out: list[dict[str, Any]] = []
    for row in rows:
        msg = by_ref.get((row.carrier, row.carrier_message_id))
        if msg is None:  # the same id at another carrier
            continue
        out += apply_report(s, msg, carrier=row.carrier, dlr_status=row.status,
                            error_code=row.error_code, reported_at=row.reported_at)
        s.delete(row)
    return out


def match_stragglers(s: Session, limit: int = 500) -> list[dict[str, Any]]:
    """Apply pending reports whose message has their carrier id by now.

    Closes a race: a report stored as pending in a transaction that did not yet see the
    carrier id, while the transaction recording the id did not yet see the pending report."""
    rows = s.execute(
        select(PendingDlr, Message)
        .join(Message, and_(Message.carrier == PendingDlr.carrier,
                            Message.carrier_message_id == PendingDlr.carrier_message_id))
        .order_by(PendingDlr.reported_at, PendingDlr.id).limit(limit)).all()
    out: list[dict[str, Any]] = []
    for row, msg in rows:
        out += apply_report(s, msg, carrier=row.carrier, dlr_status=row.status,
                            error_code=row.error_code, reported_at=row.reported_at)
        s.delete(row)
    return out


def purge_pending(s: Session, window_s: float, now: datetime | None = None) -> int:
    """Drop pending reports older than the match window; returns how many."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=window_s)
    n = s.execute(delete(PendingDlr).where(PendingDlr.received_at < cutoff)).rowcount or 0
    if n:
        DLR_PURGED.inc(n)
        log.warning("purged %d delivery report(s) unmatched after %ss", n, window_s)
    return n
