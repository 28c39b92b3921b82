"""What the campaigns, surveys and content pages read: the campaign list (search, status and
kind filters, sort, keyset pages), the choices a campaign form offers (lists, segments, topics,
endpoints, content items, template fields), the steps a campaign's state allows, topics with
their subscriber counts and schedules, and "try a query" for an inquiry. Changes go through the
campaigns processor's own domain (services/campaigns/domain/*), never through here."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from services.campaigns.domain import inquiry, subscriptions
from services.campaigns.domain.contacts import known_fields
from services.campaigns.domain.conversations import words_of
from services.campaigns.domain.templates import BUILTIN_FIELDS
from services.core.db.campaigns_models import (
    Campaign,
    CampaignKeyword,
    ContactList,
    ContentItem,
    InquiryRow,
    Segment,
    Subscriber,
    SubscriptionSchedule,
    SubscriptionTopic,
    TenantEndpoint,
)

SORTS = {"created": Campaign.created_at, "name": Campaign.name, "status": Campaign.status,
         "kind": Campaign.kind}
STATUSES = ("draft", "scheduled", "running", "paused", "active", "completed", "cancelled", "failed")

# The steps campaigns.act() accepts from each state (it refuses the others with a 409).
STEPS = {
    "draft": ("start", "cancel"),
    "scheduled": ("pause", "cancel"),
    "running": ("pause", "cancel"),
    "active": ("pause", "cancel"),
    "paused": ("resume", "cancel"),
    "failed": ("cancel",),
}


def allowed_steps(status: str) -> tuple[str, ...]:
    return STEPS.get(status, ())


@dataclass
class Page:
    rows: list[Campaign]
    next_cursor: str | None


def _encode(value: Any, row_id: str) -> str:
    v = value.isoformat() if isinstance(value, datetime) else value
    return base64.urlsafe_b64encode(json.dumps([v, row_id]).encode()).decode()


def _decode(cursor: str, sort: str) -> tuple[Any, str] | None:
    try:
        v, row_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if sort == "created":
            v = datetime.fromisoformat(v)
        return v, str(row_id)
    except (ValueError, TypeError):
        return None


def list_campaigns(s: Session, tenant_id: str, *, q: str = "", status: str = "", kind: str = "",
                   sort: str = "created", descending: bool = True, cursor: str = "",
                   limit: int = 25) -> Page:
    """One page, keyset-paged on (sort column, id): never an OFFSET over the whole table."""
    if sort not in SORTS:
        sort = "created"
    col = SORTS[sort]
    stmt = select(Campaign).where(Campaign.tenant_id == tenant_id)
    if q.strip():
        like = f"%{q.strip().lower()}%"
        stmt = stmt.where(or_(func.lower(Campaign.name).like(like), Campaign.id == q.strip()))
    if status:
        stmt = stmt.where(Campaign.status == status)
    if kind:
        stmt = stmt.where(Campaign.kind == kind)
    after = _decode(cursor, sort) if cursor else None
    if after is not None:
        v, row_id = after
        if descending:
            stmt = stmt.where(or_(col < v, and_(col == v, Campaign.id < row_id)))
        else:
            stmt = stmt.where(or_(col > v, and_(col == v, Campaign.id > row_id)))
    order = (col.desc(), Campaign.id.desc()) if descending else (col.asc(), Campaign.id.asc())
    rows = list(s.scalars(stmt.order_by(*order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = _encode(getattr(rows[-1], col.key), rows[-1].id) if more and rows else None
    return Page(rows, nxt)


@dataclass
class FormChoices:
    lists: list[str]
    segments: list[str]
    topics: list[str]
    endpoints: list[str]
    content: list[str]
    fields: list[str]


def form_choices(s: Session, tenant_id: str) -> FormChoices:
    def names(col, where) -> list[str]:
        return list(s.scalars(select(col).where(where).distinct().order_by(col).limit(500)))
    return FormChoices(
        lists=names(ContactList.name, ContactList.tenant_id == tenant_id),
        segments=names(Segment.name, Segment.tenant_id == tenant_id),
        topics=names(SubscriptionTopic.name, SubscriptionTopic.tenant_id == tenant_id),
        endpoints=names(TenantEndpoint.name, TenantEndpoint.tenant_id == tenant_id),
        content=names(ContentItem.name, ContentItem.tenant_id == tenant_id),
        fields=sorted(BUILTIN_FIELDS | known_fields(s, tenant_id)),
    )


def audience_label(s: Session, c: Campaign) -> tuple[str, str]:
    """(kind, name) of a campaign's audience for display."""
    model = {"list": ContactList, "segment": Segment, "topic": SubscriptionTopic}.get(c.audience_kind)
    if model is None or c.audience_ref is None:
        return c.audience_kind, ""
    row = s.get(model, c.audience_ref)
    return c.audience_kind, row.name if row is not None else f"#{c.audience_ref}"


def keywords_of(s: Session, campaign_id: str) -> list[str]:
    return list(s.scalars(select(CampaignKeyword.keyword).where(
        CampaignKeyword.campaign_id == campaign_id).order_by(CampaignKeyword.keyword)))


def table_rows(s: Session, campaign_id: str) -> int:
    return s.scalar(select(func.count()).select_from(InquiryRow).where(
        InquiryRow.campaign_id == campaign_id)) or 0


def endpoints(s: Session, tenant_id: str) -> list[TenantEndpoint]:
    return list(s.scalars(select(TenantEndpoint).where(TenantEndpoint.tenant_id == tenant_id)
                          .order_by(TenantEndpoint.name)))


def content_items(s: Session, tenant_id: str, *, q: str = "", after_id: int = 0,
                  limit: int = 50) -> tuple[list[ContentItem], int | None]:
    stmt = select(ContentItem).where(ContentItem.tenant_id == tenant_id, ContentItem.id > after_id)
    if q.strip():
        stmt = stmt.where(ContentItem.name.like(f"%{q.strip().lower()}%"))
    rows = list(s.scalars(stmt.order_by(ContentItem.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


@dataclass
class TopicView:
    topic: SubscriptionTopic
    subscribers: int
    schedules: list[SubscriptionSchedule]


def topics_with_counts(s: Session, tenant_id: str) -> list[TopicView]:
    found = subscriptions.topics(s, tenant_id)
    ids = [t.id for t in found]
    counts = dict(s.execute(select(Subscriber.topic_id, func.count()).where(
        Subscriber.topic_id.in_(ids), Subscriber.active.is_(True)).group_by(Subscriber.topic_id)).all()
    ) if ids else {}
    by_topic: dict[int, list[SubscriptionSchedule]] = {}
    if ids:
        for x in s.scalars(select(SubscriptionSchedule).where(SubscriptionSchedule.topic_id.in_(ids))
                           .order_by(SubscriptionSchedule.id)):
            by_topic.setdefault(x.topic_id, []).append(x)
    return [TopicView(t, counts.get(t.id, 0), by_topic.get(t.id, [])) for t in found]


def split_query(c: Campaign, keywords: list[str], text: str) -> str:
    """The argument of a test text as the conversation handler would see it: the text after the
    campaign's keyword when it starts with it, else the whole text."""
    words, rest = words_of(text)
    if words and words[0] in keywords:
        return rest
    return text


def try_table(s: Session, c: Campaign, text: str, msisdn: str) -> str:
    """The reply a contact texting ``text`` would get from the uploaded table; sends nothing."""
    return inquiry.answer_from_table(s, c, split_query(c, keywords_of(s, c.id), text), msisdn)


def endpoint_call(s: Session, c: Campaign, text: str, msisdn: str) -> inquiry.EndpointCall:
    """The call the campaigns processor would make to the tenant's endpoint for this text."""
    keywords = keywords_of(s, c.id)
    argument = split_query(c, keywords, text)
    event = {"from": msisdn, "message_id": "console-test"}
    return inquiry.endpoint_call(s, c, event, keywords[0] if keywords else "", argument)
