"""The tenant's content library: named texts (a price list, a timetable, the joke of the day),
optionally one per date, with an undated item as the fallback."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.db.campaigns_models import ContentItem

from .campaigns import CampaignError, aware, utcnow
from .policy import zone

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
BODY_MAX = 1500  # leaves room for a hint or a stop line within one 1600-character text


def put(s: Session, tenant_id: str, name: str, body: dict[str, Any]) -> ContentItem:
    if not NAME_RE.match(name):
        raise CampaignError("content name must be 1-64 lower-case letters, digits, '_', '.' or '-'")
    text = body.get("body")
    if not isinstance(text, str) or not text.strip() or len(text) > BODY_MAX:
        raise CampaignError(f"body must be 1 to {BODY_MAX} characters")
    for_date = str(body.get("for_date") or "")
    if for_date:
        try:
            date.fromisoformat(for_date)
        except ValueError:
            raise CampaignError(f"for_date {for_date!r} is not YYYY-MM-DD") from None
    row = s.scalar(select(ContentItem).where(ContentItem.tenant_id == tenant_id,
                                             ContentItem.name == name, ContentItem.for_date == for_date))
    if row is None:
        row = ContentItem(tenant_id=tenant_id, name=name, for_date=for_date, body=text)
        s.add(row)
    row.body = text
    row.updated_at = utcnow()
    s.flush()
    return row


def current(s: Session, tenant_id: str, name: str, now: datetime, tz: str = "UTC") -> ContentItem | None:
    """Today's item (in ``tz``) if there is one, else the undated one."""
    today = now.astimezone(zone(tz)).date().isoformat()
    rows = {r.for_date: r for r in s.scalars(select(ContentItem).where(
        ContentItem.tenant_id == tenant_id, ContentItem.name == name,
        ContentItem.for_date.in_([today, ""])))}
    return rows.get(today) or rows.get("")


def item_json(r: ContentItem) -> dict[str, Any]:
    return {"name": r.name, "for_date": r.for_date or None, "body": r.body,
            "updated_at": aware(r.updated_at).isoformat() if r.updated_at else None}
