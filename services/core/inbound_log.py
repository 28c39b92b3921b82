"""The tenant's inbox log (services/core/db/inbox_models.py): each inbound text with the rule
that handled it, written in one batch per consumed batch by the processors that already see the
events (never by the router on its hot path), and read by the console's inbox.

What tells what: ``sms.inbound`` the text itself (tenant by the number texted, when one tenant
owns it); ``campaigns.inbound`` and ``tenant.<id>.inbound`` the router's forwards (tenant and
keyword); a reply on ``sms.outbound`` (``in_reply_to``) its source and kind; ``codes.submitted``
and ``points.commands`` a code query or a loyalty command. They come on different topics in any
order, so each writes only the columns it knows and a redelivered event writes the same values
again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from . import topics
from .db.inbox_models import Conversation, InboundText
from .db.schemes import insert_ignore
from .messages import parse_ts

TENANT_INBOX = "tenant.inbound"  # the bridge's name for any tenant.<id>.inbound
FORWARDS = {topics.CAMPAIGNS_INBOUND: "campaigns", TENANT_INBOX: "inbox"}
_COLUMNS = ("tenant_id", "sender", "number", "text", "received_at", "handled_by", "keyword",
            "campaign_id", "reply_message_id")


def _row(message_id: str, **values: Any) -> dict[str, Any]:
    row = dict.fromkeys(_COLUMNS)
    row.update(values, message_id=message_id, recorded_at=datetime.now(UTC))
    return row


def _text_row(e: dict[str, Any], tenant_id: str | None, **extra: Any) -> dict[str, Any]:
    return _row(e["message_id"], tenant_id=tenant_id or None, sender=e["from"], number=e["to"],
                text=e["text"], received_at=parse_ts(e.get("received_at")), **extra)


def rows_for(topic: str, events: Iterable[dict[str, Any]],
             owner: Callable[[str], str] | None = None) -> list[dict[str, Any]]:
    """The inbox rows ``events`` of ``topic`` tell (only the columns they know are not None)."""
    rows = []
    for e in events:
        if topic == topics.SMS_INBOUND:
            rows.append(_text_row(e, e.get("tenant_id") or (owner(e["to"]) if owner else None)))
        elif topic in FORWARDS:
            rows.append(_text_row(e, e["tenant_id"], handled_by=FORWARDS[topic],
                                  keyword=e.get("keyword")))
        elif topic == topics.SMS_OUTBOUND and e.get("in_reply_to"):
            kind = (e.get("attributes") or {}).get("kind")
            rows.append(_row(e["in_reply_to"], tenant_id=e["tenant_id"],
                             handled_by=f"{e['source']}:{kind}"[:48] if kind else e["source"],
                             campaign_id=e.get("campaign_id"), reply_message_id=e["message_id"]))
        elif topic == topics.CODES_SUBMITTED:
            rows.append(_row(e["inbound_message_id"], tenant_id=e["tenant_id"], handled_by="codes"))
        elif topic == topics.POINTS_COMMANDS and e.get("inbound_message_id"):
            rows.append(_row(e["inbound_message_id"], tenant_id=e["tenant_id"], handled_by="points"))
    return rows


def record(s: Session, topic: str, events: Iterable[dict[str, Any]],
           owner: Callable[[str], str] | None = None) -> int:
    """Write what ``events`` tell: new rows inserted, known rows completed (one statement per
    column set, not one per event). A reply's kind replaces any label; a forward, a code query
    or a loyalty command only labels a text nothing labelled yet."""
    rows = rows_for(topic, events, owner)
    if not rows:
        return 0
    s.execute(insert_ignore(s, InboundText), rows)
    t = InboundText.__table__
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        cols = tuple(c for c in _COLUMNS if r[c] is not None)
        by_columns.setdefault(cols, []).append(r)
    # Only a reply's label replaces another; a forward's, a query's or a command's fills a gap.
    final = topic == topics.SMS_OUTBOUND
    for cols, group in by_columns.items():
        steps = [cols] if final else [tuple(c for c in cols if c != "handled_by"),
                                      ("handled_by",) if "handled_by" in cols else ()]
        for step in steps:
            if not step:
                continue
            stmt = update(t).where(t.c.message_id == bindparam("k_id")).values(
                **{c: bindparam(f"v_{c}") for c in step})
            if not final and step == ("handled_by",):
                stmt = stmt.where(t.c.handled_by.is_(None))
            s.connection().execute(stmt, [{"k_id": r["message_id"], **{f"v_{c}": r[c] for c in step}}
                                          for r in group])
    _conversations(s, [r["message_id"] for r in rows])
    return len(rows)


def _conversations(s: Session, message_ids: list[str]) -> None:
    """Move each conversation these texts belong to on to its latest text (idempotent)."""
    t = InboundText
    done = s.execute(select(t.tenant_id, t.sender, t.number, t.message_id, t.text, t.received_at)
                     .where(t.message_id.in_(message_ids), t.tenant_id.is_not(None),
                            t.text.is_not(None), t.received_at.is_not(None))).all()
    latest: dict[tuple[str, str], Any] = {}
    for r in done:
        key = (r.tenant_id, r.sender)
        if key not in latest or (r.received_at, r.message_id) > (latest[key].received_at,
                                                                  latest[key].message_id):
            latest[key] = r
    if not latest:
        return
    dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
    c = Conversation.__table__
    ins = dialect.insert(c)
    stmt = ins.on_conflict_do_update(
        index_elements=[c.c.tenant_id, c.c.sender],
        set_={"number": ins.excluded.number, "last_message_id": ins.excluded.last_message_id,
              "last_text": ins.excluded.last_text, "last_at": ins.excluded.last_at},
        where=or_(c.c.last_at < ins.excluded.last_at,
                  and_(c.c.last_at == ins.excluded.last_at,
                       c.c.last_message_id <= ins.excluded.last_message_id)))
    s.execute(stmt, [{"tenant_id": r.tenant_id, "sender": r.sender, "number": r.number or "",
                      "last_message_id": r.message_id, "last_text": r.text,
                      "last_at": r.received_at} for r in latest.values()])


# -- reading (the console's inbox) ---------------------------------------------------------------


def conversations(s: Session, tenant_id: str, *, before: tuple[datetime, str] | None = None,
                  sender: str | None = None, limit: int = 50) -> list[Conversation]:
    """The tenant's conversations, latest text first, keyset-paged on (last_at, sender)."""
    c = Conversation
    q = select(c).where(c.tenant_id == tenant_id)
    if sender:
        q = q.where(c.sender == sender)
    if before is not None:
        at, who = before
        q = q.where(or_(c.last_at < at, and_(c.last_at == at, c.sender < who)))
    return list(s.scalars(q.order_by(c.last_at.desc(), c.sender.desc()).limit(limit)))


def texts_of(s: Session, tenant_id: str, sender: str, limit: int = 200) -> list[InboundText]:
    """The latest inbound texts of one subscriber to the tenant, oldest first."""
    t = InboundText
    rows = list(s.scalars(select(t).where(t.tenant_id == tenant_id, t.sender == sender,
                                          t.received_at.is_not(None))
                          .order_by(t.received_at.desc(), t.message_id.desc()).limit(limit)))
    return rows[::-1]


def get(s: Session, tenant_id: str, message_id: str) -> InboundText | None:
    row = s.get(InboundText, message_id)
    return row if row is not None and row.tenant_id == tenant_id else None
