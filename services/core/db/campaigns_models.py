"""Models of the campaigns processor: audiences (lists, segments, custom-field registry), campaigns
and their per-recipient record (with the expansion cursor on the campaign row), surveys, inquiry
tables and tenant endpoints, the content library, subscriptions and frequency-cap counters.

Idempotency lives in unique keys here too: one recipient row per (campaign, contact, occurrence),
one answer per (session, question), one inbound record per inbound message.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, utcnow

# -- audiences ---------------------------------------------------------------------------------


class ContactField(Base):
    """A custom contact field a tenant uses; templates may name only registered fields."""

    __tablename__ = "contact_fields"
    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ContactList(Base):
    __tablename__ = "contact_lists"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_contact_list"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ContactListMember(Base):
    """Membership; the primary key (list, contact) is also the keyset the expander pages on."""

    __tablename__ = "contact_list_members"
    list_id: Mapped[int] = mapped_column(ForeignKey("contact_lists.id", ondelete="CASCADE"),
                                         primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"),
                                            primary_key=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Segment(Base):
    """A saved filter over contact fields and tags (see services/campaigns/domain/audience.py)."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_segment"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    filter: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CampaignSettings(Base):
    """A tenant's campaign policy: send rate, home time zone, quiet hours, frequency cap."""

    __tablename__ = "campaign_settings"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"),
                                           primary_key=True)
    rate_per_second: Mapped[float] = mapped_column(Float, default=50.0)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    quiet_start: Mapped[str | None] = mapped_column(String(5), nullable=True)  # "21:00", local
    quiet_end: Mapped[str | None] = mapped_column(String(5), nullable=True)  # "08:00", local
    frequency_cap: Mapped[int] = mapped_column(Integer, default=0)  # 0: no cap
    frequency_period: Mapped[str] = mapped_column(String(8), default="week")  # day | week | month
    unknown_reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# -- campaigns ---------------------------------------------------------------------------------


class Campaign(Base):
    """One campaign. ``cursor`` is the last audience key (contact or subscriber id) whose outcome
    is committed: the expander resumes after it, so a crash repeats at most one chunk, and that
    chunk's messages carry the same request ids, which egress dedupes."""

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_status_next", "status", "next_run_at"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    template: Mapped[str | None] = mapped_column(Text, nullable=True)
    sender: Mapped[str | None] = mapped_column(String(16), nullable=True)
    audience_kind: Mapped[str] = mapped_column(String(16), default="none")  # all|list|segment|topic|none
    audience_ref: Mapped[int | None] = mapped_column(Integer, nullable=True)
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    audience_done: Mapped[bool] = mapped_column(Boolean, default=False)
    passes: Mapped[int] = mapped_column(Integer, default=0)
    expanded: Mapped[int] = mapped_column(Integer, default=0)
    queued: Mapped[int] = mapped_column(Integer, default=0)
    suppressed: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CampaignKeyword(Base):
    """A keyword a conversational campaign answers (inquiry, on-demand, survey start)."""

    __tablename__ = "campaign_keywords"
    __table_args__ = (UniqueConstraint("tenant_id", "keyword", name="uq_campaign_keyword"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(63), index=True)
    keyword: Mapped[str] = mapped_column(String(64))
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)


class CampaignRecipient(Base):
    """What a campaign decided for one audience member (queued, suppressed with a reason, or deferred
    until quiet hours end). ``occurrence`` is "" for one-off campaigns and the year for greetings,
    so a greeting goes once a year."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "member_id", "occurrence", name="uq_campaign_recipient"),
        Index("ix_campaign_recipients_state", "campaign_id", "state", "due_at"),
        Index("ix_campaign_recipients_msisdn", "msisdn"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int] = mapped_column(Integer)  # contact id; subscriber id for topic audiences
    msisdn: Mapped[str] = mapped_column(String(16))
    occurrence: Mapped[str] = mapped_column(String(32), default="")
    state: Mapped[str] = mapped_column(String(16))  # queued | suppressed | deferred
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FrequencyCounter(Base):
    """Marketing messages a number got from a tenant in one period (day/week/month key)."""

    __tablename__ = "frequency_counters"
    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    msisdn: Mapped[str] = mapped_column(String(16), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class CampaignInbound(Base):
    """Every inbound text campaigns handled, with the reply it gave: a redelivered inbound gets
    the same reply (same request id) instead of being handled twice; it also counts replies."""

    __tablename__ = "campaign_inbound"
    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63), index=True)
    msisdn: Mapped[str] = mapped_column(String(16))
    campaign_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    reply_from: Mapped[str | None] = mapped_column(String(16), nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# -- surveys -----------------------------------------------------------------------------------


class SurveyQuestion(Base):
    __tablename__ = "survey_questions"
    __table_args__ = (UniqueConstraint("campaign_id", "key", name="uq_survey_question"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(8))  # choice | number | text
    choices: Mapped[list] = mapped_column(JSON, default=list)
    min_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    branches: Mapped[dict] = mapped_column(JSON, default=dict)  # answer -> next question key
    next_key: Mapped[str | None] = mapped_column(String(32), nullable=True)  # "" ends the survey


class SurveySession(Base):
    """One contact's run through one survey, on the number the questions came from."""

    __tablename__ = "survey_sessions"
    __table_args__ = (
        UniqueConstraint("campaign_id", "msisdn", name="uq_survey_session"),
        Index("ix_survey_sessions_open", "tenant_id", "msisdn", "status"),
        Index("ix_survey_sessions_remind", "status", "reminded_at", "last_asked_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(63))
    msisdn: Mapped[str] = mapped_column(String(16))
    number: Mapped[str | None] = mapped_column(String(16), nullable=True)
    current_key: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|completed|expired
    invalid_answers: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_asked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SurveyAnswer(Base):
    __tablename__ = "survey_answers"
    __table_args__ = (
        UniqueConstraint("session_id", "question_key", name="uq_survey_answer"),
        Index("ix_survey_answers_campaign", "campaign_id", "question_key"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("survey_sessions.id", ondelete="CASCADE"))
    campaign_id: Mapped[str] = mapped_column(String(64))
    question_key: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(Text)
    number: Mapped[float | None] = mapped_column(Float, nullable=True)
    source_message_id: Mapped[str] = mapped_column(String(36))
    answered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# -- inquiry, content, subscriptions ----------------------------------------------------------


class InquiryRow(Base):
    """One row of a table a tenant uploaded for an inquiry campaign, found by its key."""

    __tablename__ = "inquiry_rows"
    __table_args__ = (UniqueConstraint("campaign_id", "key", name="uq_inquiry_row"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    data: Mapped[dict] = mapped_column(JSON, default=dict)


class TenantEndpoint(Base):
    """A tenant's own HTTP service that answers inquiries."""

    __tablename__ = "tenant_endpoints"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_tenant_endpoint"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(500))
    timeout_s: Mapped[float] = mapped_column(Float, default=3.0)
    retries: Mapped[int] = mapped_column(Integer, default=2)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ContentItem(Base):
    """A piece of a tenant's content library; ``for_date`` ("YYYY-MM-DD", or "" for undated)
    lets "today's price list" be its own item with an undated fallback."""

    __tablename__ = "content_items"
    __table_args__ = (UniqueConstraint("tenant_id", "name", "for_date", name="uq_content_item"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    for_date: Mapped[str] = mapped_column(String(10), default="")
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SubscriptionTopic(Base):
    __tablename__ = "subscription_topics"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_subscription_topic"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(32))  # upper case, what follows SUB / UNSUB
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Subscriber(Base):
    __tablename__ = "subscribers"
    __table_args__ = (UniqueConstraint("topic_id", "msisdn", name="uq_subscriber"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("subscription_topics.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(63))
    msisdn: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    subscribed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SubscriptionSchedule(Base):
    """A cron schedule that sends a topic's content to its subscribers."""

    __tablename__ = "subscription_schedules"
    __table_args__ = (Index("ix_subscription_schedules_due", "active", "next_run_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("subscription_topics.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(63))
    cron: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    content_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
