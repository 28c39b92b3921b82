"""Finding a tenant's outbound messages: by number, status, accepted date range and campaign,
newest first, keyset-paged on (accepted_at, id) so that any page of millions of messages costs
one index range scan (indexes of migration 0008_console_messages)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from .db.models import Message
from .messages import TRANSITIONS, history

STATUSES = tuple(TRANSITIONS)


@dataclass(frozen=True)
class MessageFilter:
    number: str | None = None
    status: str | None = None
    campaign_id: str | None = None
    since: datetime | None = None  # accepted at or after
    until: datetime | None = None  # accepted before


def encode_cursor(msg: Message) -> str:
    raw = f"{msg.accepted_at.isoformat()}|{msg.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """The (accepted_at, id) a page continues after; None for a missing or unreadable cursor."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, mid = raw.split("|", 1)
        return datetime.fromisoformat(at), mid
    except (ValueError, UnicodeDecodeError):
        return None


def search(s: Session, tenant_id: str, f: MessageFilter, *, after: tuple[datetime, str] | None = None,
           limit: int = 50) -> tuple[list[Message], str | None]:
    """One page of the tenant's messages matching ``f``, and the cursor of the next page."""
    m = Message
    q = select(m).where(m.tenant_id == tenant_id)
    if f.number:
        q = q.where(m.recipient == f.number)
    if f.status:
        q = q.where(m.status == f.status)
    if f.campaign_id:
        q = q.where(m.campaign_id == f.campaign_id)
    if f.since is not None:
        q = q.where(m.accepted_at >= f.since)
    if f.until is not None:
        q = q.where(m.accepted_at < f.until)
    if after is not None:
        at, mid = after
        q = q.where(or_(m.accepted_at < at, and_(m.accepted_at == at, m.id < mid)))
    rows = list(s.scalars(q.order_by(m.accepted_at.desc(), m.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1]) if more and rows else None)


def get(s: Session, tenant_id: str, message_id: str) -> Message | None:
    """The tenant's message; another tenant's is None (it does not exist for this one)."""
    msg = s.get(Message, message_id)
    return msg if msg is not None and msg.tenant_id == tenant_id else None


def timeline(s: Session, msg: Message) -> list[dict[str, Any]]:
    """The message's history (accepted, sent, delivered/failed, ...) oldest first, with times as
    datetimes for display."""
    out = []
    for h in history(s, msg.id):
        out.append({**h, "at": datetime.fromisoformat(h["at"])})
    return out


def to_number(s: Session, tenant_id: str, number: str, limit: int = 100) -> list[Message]:
    """The latest messages the tenant sent to one number (a conversation's outbound side)."""
    m = Message
    return list(s.scalars(select(m).where(m.tenant_id == tenant_id, m.recipient == number)
                          .order_by(m.accepted_at.desc(), m.id.desc()).limit(limit)))
