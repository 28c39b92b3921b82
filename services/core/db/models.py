"""SQLAlchemy 2 models of Herald's system of record.

Idempotency lives in unique keys: a redelivered event hits the same key and changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
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
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    help_text: Mapped[str] = mapped_column(Text, default="")
    stop_reply: Mapped[str] = mapped_column(
        Text, default="You are unsubscribed and will get no more messages. Reply START to resume.")
    start_reply: Mapped[str] = mapped_column(Text, default="You are subscribed again.")
    optout_hint: Mapped[str] = mapped_column(String(64), default="Reply STOP to opt out")
    default_sender: Mapped[str | None] = mapped_column(String(16), nullable=True)
    carrier_preference: Mapped[list] = mapped_column(JSON, default=list)
    webhook_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # What an inbound text no routing rule matches gets: "reply" (the help text) | "inbox" |
    # "auto" (the inbox when a webhook takes it, else the help text).
    unmatched: Mapped[str] = mapped_column(String(8), default="auto", server_default="auto")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    """A tenant's API key: only its SHA-256 is stored; the prefix finds the row."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SenderNumber(Base):
    """A short code or long number a tenant sends from and receives on.

    A number is either owned by one tenant, or shared: then keywords tell tenants apart.
    """

    __tablename__ = "sender_numbers"
    __table_args__ = (UniqueConstraint("number", "tenant_id", name="uq_sender_number_tenant"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(16), index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)


class Keyword(Base):
    """Routes an inbound text by its first word (or a regex pattern) to a tenant application."""

    __tablename__ = "keywords"
    # A rule is what it matches: one keyword, or one pattern ("" when it is a keyword rule).
    __table_args__ = (UniqueConstraint("tenant_id", "number", "keyword", "pattern",
                                       name="uq_keyword_match"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(16), default="*")  # "*": any of the tenant's numbers
    keyword: Mapped[str] = mapped_column(String(64))  # upper case; "" for a pattern-only rule
    pattern: Mapped[str] = mapped_column(String(200), default="", server_default="")
    action: Mapped[str] = mapped_column(String(16))  # reply | codes | campaigns | points | inbox
    reply_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=100)


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("tenant_id", "msisdn", name="uq_contact"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    msisdn: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fields: Mapped[dict] = mapped_column(JSON, default=dict)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OptOut(Base):
    """Current opt-out state of a number for a tenant (mirrored on the compacted optouts topic)."""

    __tablename__ = "opt_outs"
    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    msisdn: Mapped[str] = mapped_column(String(16), primary_key=True)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=True)
    source_event_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Message(Base):
    """An outbound message and its current status; the history is in message_events."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "request_id", name="uq_message_request"),
        Index("ix_messages_carrier_ref", "carrier", "carrier_message_id"),
        # The console's message search (migration 0008): newest first within a tenant, by
        # number, status or campaign, keyset-paged on (accepted_at, id).
        Index("ix_messages_tenant_accepted", "tenant_id", "accepted_at", "id"),
        Index("ix_messages_tenant_recipient", "tenant_id", "recipient", "accepted_at", "id"),
        Index("ix_messages_tenant_status", "tenant_id", "status", "accepted_at", "id"),
        Index("ix_messages_tenant_campaign", "tenant_id", "campaign_id", "accepted_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63), index=True)
    request_id: Mapped[str] = mapped_column(String(128))
    recipient: Mapped[str] = mapped_column(String(16))
    sender: Mapped[str | None] = mapped_column(String(16), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    campaign_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    category: Mapped[str] = mapped_column(String(16), default="transactional")
    encoding: Mapped[str | None] = mapped_column(String(8), nullable=True)
    segments: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="accepted")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    carrier: Mapped[str | None] = mapped_column(String(64), nullable=True)
    carrier_message_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # 1, or the number of the try after an operator replayed it from the DLQ (migration 0012):
    # the history ids and status event ids of a later try carry it, so both tries are kept.
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class MessageEvent(Base):
    """One status transition of a message; event_id makes a replayed transition a no-op."""

    __tablename__ = "message_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    carrier: Mapped[str | None] = mapped_column(String(64), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DlqReplay(Base):
    """A dead-lettered record an operator replayed (services/core/dlq_replay.py): at most once
    per DLQ position, with what the replay did."""

    __tablename__ = "dlq_replays"
    __table_args__ = (UniqueConstraint("dlq_topic", "partition", "offset", name="uq_dlq_replay_record"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dlq_topic: Mapped[str] = mapped_column(String(249))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    original_topic: Mapped[str] = mapped_column(String(249))
    tenant_id: Mapped[str | None] = mapped_column(String(63), nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(254))
    replayed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PendingDlr(Base):
    """A delivery report that arrived before its message's carrier id was known; matched later."""

    __tablename__ = "pending_dlrs"
    __table_args__ = (UniqueConstraint("carrier", "carrier_message_id", "status", name="uq_pending_dlr"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    carrier: Mapped[str] = mapped_column(String(64))
    carrier_message_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class InboundPart(Base):
    """One part of a concatenated inbound text, held until all parts are in."""

    __tablename__ = "inbound_parts"
    __table_args__ = (UniqueConstraint("carrier", "sender", "ref", "seq", name="uq_inbound_part"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    carrier: Mapped[str] = mapped_column(String(64))
    sender: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProcessedEvent(Base):
    """Marks an event as handled by a processor, so a redelivery of it changes nothing."""

    __tablename__ = "processed_events"
    processor: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RateBucket(Base):
    """A per-carrier token bucket shared by every egress worker (rows updated atomically)."""

    __tablename__ = "rate_buckets"
    carrier: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)  # monotonic-free: unix seconds
