"""Outbound messages in the system of record: their deterministic ids, creation and status
transitions. Ingress and egress both use this; egress is the one that moves status on."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from .db.models import Message, MessageEvent
from .db.schemes import among, insert_ignore
from .ids import stable_uuid
from .sms_encoding import segment
from .utc import aware

_NS = uuid.UUID("5d1c4a8e-3f0b-4c52-9d0e-6b7e2a1f9c30")

# Where a status may go next; terminal states go nowhere (a late DLR cannot undo "delivered").
TRANSITIONS = {
    "accepted": {"sent", "failed", "suppressed", "expired", "delivered"},
    "sent": {"delivered", "failed", "expired"},
    "delivered": set(),
    "failed": set(),
    "suppressed": set(),
    "expired": set(),
}


# What a message *is* (a card password, Herald's answer to a STOP) is told by its source and kind
# together. ``source`` is stamped by the component that produced the event and no tenant input
# chooses it: the send API stamps ``api``, the bridge ``erp`` (whatever the ERP's body says) and
# campaigns ``campaigns``. ``attributes`` is client metadata: a kind there alone decides nothing.
PLATFORM_SOURCES = frozenset({"router", "verifier", "ledger"})

# Messages whose text carries a secret (a prepaid card's or a gift card's password): the
# database keeps a placeholder, never the text; only the event that is sent carries it. Any
# source's kind counts here: a client naming one only makes Herald keep less of its own text.
SECRET_KINDS = frozenset({"prize", "gift_redeemed"})
REDACTED = "[redacted: this message carries a card password]"

# The router's confirmation of a STOP: the one message that may reach a number that opted out
# (docs/architecture.md, "Who may text an opted-out number").
OPTOUT_CONFIRMATION = ("router", "optout_confirmation")


def platform_kind(event: dict[str, Any]) -> tuple[str, str | None]:
    """(source, kind) of an sms.outbound event, the kind counting only for Herald's own sources."""
    source = event.get("source") or ""
    kind = (event.get("attributes") or {}).get("kind") if source in PLATFORM_SOURCES else None
    return source, kind


def stored_text(event: dict[str, Any]) -> str:
    kind = (event.get("attributes") or {}).get("kind")
    return REDACTED if kind in SECRET_KINDS else event["text"]


def is_optout_confirmation(event: dict[str, Any]) -> bool:
    """Herald's own answer to a STOP (never a tenant's message, whatever its attributes say)."""
    return platform_kind(event) == OPTOUT_CONFIRMATION


def request_mismatch(msg: Message, event: dict[str, Any]) -> list[str]:
    """What of ``event`` differs from the request that recorded ``msg`` under the same
    idempotency key (empty: the same request again). Compared is what the record keeps; the
    text only where it is not redacted."""
    diffs = []
    if msg.source != event.get("source"):
        diffs.append("source")
    if msg.recipient != event.get("to"):
        diffs.append("to")
    if (msg.sender or None) != (event.get("from") or None):
        diffs.append("from")
    if msg.text != REDACTED and msg.text != stored_text(event):
        diffs.append("text")
    if msg.category != event.get("category", "transactional"):
        diffs.append("category")
    return diffs


def message_id_for(tenant_id: str, request_id: str) -> str:
    """The same tenant and idempotency key always give the same platform message id."""
    return stable_uuid(_NS, f"{tenant_id}\x1f{request_id}")


def parse_ts(value: str | None) -> datetime:
    if not value:
        return datetime.now(timezone.utc)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def record_accepted(s: Session, event: dict[str, Any]) -> tuple[Message, bool]:
    """Insert the message of an sms.outbound event if absent. Returns (message, created)."""
    msg = s.get(Message, event["message_id"])
    if msg is not None:
        return msg, False
    msg = Message(**_row(event))
    try:
        with s.begin_nested():
            s.add(msg)
            s.add(MessageEvent(event_id=f"{msg.id}:accepted", message_id=msg.id, status="accepted",
                               occurred_at=msg.accepted_at))
    except IntegrityError:
        # A concurrent writer (the other of ingress/egress) got there first.
        existing = s.get(Message, event["message_id"])
        if existing is None:  # same (tenant, request_id) under another id: a replay
            existing = s.scalar(select(Message).where(Message.tenant_id == event["tenant_id"],
                                                      Message.request_id == event["request_id"]))
        return existing, False
    return msg, True


def insert_ignoring_conflicts(s: Session, model: type, rows: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING of many rows in one executemany (PostgreSQL, SQLite)."""
    if rows:
        s.execute(insert_ignore(s, model), rows)


def _row(event: dict[str, Any]) -> dict[str, Any]:
    at = parse_ts(event.get("accepted_at"))
    # Encoding and segments from the real text (the stored one may be redacted), known from the
    # start: egress then has nothing to write back per message.
    seg = segment(event["text"])
    return {"id": event["message_id"], "tenant_id": event["tenant_id"],
            "request_id": event["request_id"], "recipient": event["to"], "sender": event.get("from"),
            "text": stored_text(event), "source": event["source"],
            "campaign_id": event.get("campaign_id"),
            "category": event.get("category", "transactional"), "encoding": seg.encoding,
            "segments": seg.count,
            "status": "accepted", "reason": None, "carrier": None, "carrier_message_id": None,
            "accepted_at": at, "updated_at": at, "attempt": 1}


def insert_accepted(s: Session, events: list[dict[str, Any]]) -> set[str]:
    """Insert the messages of sms.outbound events as 'accepted', with their history rows, in two
    statements; returns the ids this call inserted. A message already recorded (by a concurrent
    writer, the other of ingress/egress, or under the same tenant and request id) stays as it
    is, and its id is not returned."""
    if not events:
        return set()
    return _insert_rows(s, {e["message_id"]: _row(e) for e in events})


def _insert_rows(s: Session, rows: dict[str, dict[str, Any]]) -> set[str]:
    inserted = set(s.execute(insert_ignore(s, Message).returning(Message.__table__.c.id),
                             list(rows.values())).scalars())
    insert_ignoring_conflicts(s, MessageEvent, [
        {"event_id": f"{mid}:accepted", "message_id": mid, "status": "accepted", "reason": None,
         "carrier": None, "occurred_at": rows[mid]["accepted_at"]} for mid in inserted])
    return inserted


@dataclass(slots=True)
class MessageRow:
    """A message's row as plain values: what egress's hot path reads and moves, without the ORM's
    per-object bookkeeping (an ORM object per message cost a quarter of egress's database work,
    bench/bench_egress_db.py). The functions here take either this or a ``Message``."""

    id: str
    tenant_id: str
    request_id: str
    recipient: str
    sender: str | None
    text: str
    source: str
    campaign_id: str | None
    category: str
    encoding: str | None
    segments: int | None
    status: str
    reason: str | None
    carrier: str | None
    carrier_message_id: str | None
    accepted_at: datetime
    updated_at: datetime
    attempt: int = 1


_ROW_COLUMNS = [f.name for f in fields(MessageRow)]


def rows_where(s: Session, where: Any) -> list[MessageRow]:
    """The messages a condition on ``Message``'s columns selects, as ``MessageRow``s."""
    t = Message.__table__
    return [MessageRow(*r) for r in s.execute(select(*[t.c[n] for n in _ROW_COLUMNS]).where(where))]


def load_rows(s: Session, ids: Iterable[str]) -> dict[str, MessageRow]:
    """The rows of these messages (those that exist) as ``MessageRow``s, in one statement."""
    ids = list(ids)
    return {r.id: r for r in rows_where(s, among(s, Message.__table__.c.id, ids))} if ids else {}


def committed_setter(msg: Message | MessageRow) -> Callable[[Any, str, Any], None]:
    """How to change a value read from the database: an ORM object is told the value is what the
    database holds (no flush of its own), a plain row just takes it."""
    return set_committed_value if isinstance(msg, Message) else setattr


def record_accepted_many(s: Session, events: list[dict[str, Any]]) -> dict[str, MessageRow]:
    """``record_accepted`` for a batch, in a few set-based statements: message id -> row.

    An event whose id is not in the result repeats a (tenant, request id) already recorded under
    another id (a replayed request); ``record_accepted`` resolves that one. The rows this call
    inserts are returned as they were written, not read back.
    """
    ids = list(dict.fromkeys(e["message_id"] for e in events))
    rows = load_rows(s, ids)
    new = {e["message_id"]: e for e in events if e["message_id"] not in rows}
    if new:
        values = {mid: _row(e) for mid, e in new.items()}
        inserted = _insert_rows(s, values)
        rows.update({mid: MessageRow(**values[mid]) for mid in inserted})
        # Taken by a concurrent writer between the two statements (the same row, read now), or
        # the same request under another id (no row: record_accepted resolves it).
        rows.update(load_rows(s, [mid for mid in new if mid not in inserted]))
    return rows


def history_event_id(msg: Message | MessageRow, status: str) -> str:
    """The history row id of ``msg`` reaching ``status`` in its current try: ``<id>:<status>``
    on the first, ``<id>:<status>:<n>`` on the n-th (after DLQ replays), so each try is kept."""
    n = msg.attempt or 1
    return f"{msg.id}:{status}" if n <= 1 else f"{msg.id}:{status}:{n}"


def reset_for_replay(s: Session, msg: Message, reason: str, at: datetime | None = None) -> bool:
    """The one way back from 'failed': an operator replays the message from the DLQ. It becomes
    'accepted' again in a new try (``attempt`` + 1, a new carrier id to come), with a history
    row of its own; the first try's history stays. Conditional on the row still being
    'failed', so two replays racing reset it once. Returns whether it was reset."""
    at = at or datetime.now(timezone.utc)
    n = (msg.attempt or 1) + 1
    moved = s.execute(
        update(Message).where(Message.id == msg.id, Message.status == "failed")
        .values(status="accepted", reason=reason, attempt=n, carrier_message_id=None, updated_at=at)
        .execution_options(synchronize_session=False)).rowcount
    if not moved:
        return False
    for key, value in (("status", "accepted"), ("reason", reason), ("attempt", n),
                       ("carrier_message_id", None), ("updated_at", at)):
        set_committed_value(msg, key, value)
    s.add(MessageEvent(event_id=history_event_id(msg, "accepted"), message_id=msg.id,
                       status="accepted", reason=reason, occurred_at=at))
    return True


def transition(s: Session, msg: Message, status: str, *, reason: str | None = None,
               carrier: str | None = None, event_id: str | None = None,
               at: datetime | None = None) -> bool:
    """Move a message to ``status`` if that is a legal step; record it once. Returns whether it moved.

    The move is a conditional UPDATE on the status the caller saw, so two writers racing (a DLR
    and the submit response of the same message, in two transactions) cannot both win: the
    loser re-reads the row and decides again from what is really there.
    """
    at = at or datetime.now(timezone.utc)
    eid = event_id or history_event_id(msg, status)
    for _ in range(3):
        seen = msg.status
        if status not in TRANSITIONS.get(seen, set()):
            return False
        if s.scalar(select(MessageEvent.id).where(MessageEvent.event_id == eid)) is not None:
            return False
        values: dict[str, Any] = {"status": status, "reason": reason, "updated_at": at}
        if carrier:
            values["carrier"] = carrier
        moved = s.execute(
            update(Message).where(Message.id == msg.id, Message.status == seen).values(**values)
            .execution_options(synchronize_session=False)).rowcount
        if moved:
            for key, value in values.items():
                set_committed_value(msg, key, value)
            s.add(MessageEvent(event_id=eid, message_id=msg.id, status=status, reason=reason,
                               carrier=carrier, occurred_at=at))
            return True
        s.refresh(msg)  # another writer moved it first
    return False


@dataclass
class Move:
    """One requested status change for ``transition_many``."""

    msg: Message | MessageRow
    status: str
    at: datetime
    reason: str | None = None
    carrier: str | None = None  # set on the row and the history row when given


def transition_many(s: Session, moves: list[Move]) -> list[Move]:
    """``transition`` for many messages (each at most once) in one conditional
    ``UPDATE ... RETURNING`` per (from, to) pair, one executemany of the moved rows' own times
    and reasons when those differ, and one insert of their history rows. Returns the moves that
    happened.

    A message another writer moved first (the submit response recorded 'sent' while a delivery
    report read it as 'accepted') is re-read and decided again from what is really there, as
    ``transition`` does: the report still moves it on from 'sent', while a move the new status
    does not allow (to 'sent' after 'delivered') is dropped."""
    done: list[Move] = []
    todo = list(moves)
    for _ in range(3):
        lost = _transition_round(s, todo, done)
        if not lost:
            break
        fresh = {row.id: row for row in s.execute(
            select(Message.__table__.c.id, Message.__table__.c.status, Message.__table__.c.updated_at)
            .where(among(s, Message.__table__.c.id, [m.msg.id for m in lost])))}
        todo = []
        for m in lost:
            row = fresh.get(m.msg.id)
            if row is None:
                continue
            put = committed_setter(m.msg)
            put(m.msg, "status", row.status)
            put(m.msg, "updated_at", row.updated_at)
            # history stays in order: the move is no earlier than the step that beat it
            m.at = max(aware(m.at), aware(row.updated_at))
            todo.append(m)
    return done


def _transition_round(s: Session, moves: list[Move], done: list[Move]) -> list[Move]:
    """One conditional update per (from, to) pair; appends the moves made to ``done`` and returns
    the allowed ones that found their row in another status than the one read."""
    groups: dict[tuple[str, str], list[Move]] = defaultdict(list)
    for m in moves:
        if m.status in TRANSITIONS.get(m.msg.status, set()):
            groups[(m.msg.status, m.status)].append(m)
    t = Message.__table__
    lost: list[Move] = []
    for (seen, status), group in groups.items():
        by_id = {m.msg.id: m for m in group}
        # The statements keep one shape whatever the batch (the ids as one value), so
        # SQLAlchemy compiles each once: a CASE with a branch per row was compiled again for
        # every batch and cost more than the database's own work (bench/bench_egress_db.py).
        own = {(m.at, m.reason, m.carrier) for m in group}
        values: dict[str, Any] = {"status": status}
        if len(own) == 1:  # one time, reason and carrier for all (record_sent_batch's 'now')
            at, reason, carrier = own.pop()
            values.update(updated_at=at, reason=reason, **({"carrier": carrier} if carrier else {}))
        stmt = update(t).where(among(s, t.c.id, by_id), t.c.status == seen).values(**values)
        moved_ids = set(s.execute(stmt.returning(t.c.id)).scalars())
        moved = [m for i, m in by_id.items() if i in moved_ids]
        lost += [m for i, m in by_id.items() if i not in moved_ids]
        if moved and "updated_at" not in values:
            # Each moved row's own time, reason and carrier, in the same transaction as the
            # conditional move above (which holds the rows: no other writer sees them between).
            s.execute(update(t).where(t.c.id == bindparam("mid"))
                      .values(updated_at=bindparam("at"), reason=bindparam("why"),
                              carrier=func.coalesce(bindparam("c", type_=t.c.carrier.type), t.c.carrier)),
                      [{"mid": m.msg.id, "at": m.at, "why": m.reason, "c": m.carrier}
                       for m in sorted(moved, key=lambda m: m.msg.id)])
        insert_ignoring_conflicts(s, MessageEvent, [
            {"event_id": history_event_id(m.msg, status), "message_id": m.msg.id, "status": status,
             "reason": m.reason, "carrier": m.carrier, "occurred_at": m.at} for m in moved])
        for m in moved:
            put = committed_setter(m.msg)
            put(m.msg, "status", status)
            put(m.msg, "reason", m.reason)
            put(m.msg, "updated_at", m.at)
            if m.carrier:
                put(m.msg, "carrier", m.carrier)
        done += moved
    return lost


def history(s: Session, message_id: str) -> list[dict[str, Any]]:
    rows = s.scalars(select(MessageEvent).where(MessageEvent.message_id == message_id)
                     .order_by(MessageEvent.occurred_at, MessageEvent.id))
    return [{"status": r.status, "at": r.occurred_at.isoformat(), "reason": r.reason,
             "carrier": r.carrier} for r in rows]
