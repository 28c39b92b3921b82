"""The tenant's inbox: every inbound text with what handled it, and one row per conversation
(tenant, subscriber number) for the console's inbox list.

Written in batches by the processors that already consume the events that tell it
(services/core/inbound_log.py): the metrics processor (sms.inbound, the replies on sms.outbound,
codes.submitted, points.commands, campaigns.inbound) and the bridge (tenant.<id>.inbound). The
pieces arrive on different topics in any order, so every column but the id may be filled late.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, utcnow


class InboundText(Base):
    __tablename__ = "inbound_texts"
    __table_args__ = (
        Index("ix_inbound_texts_conversation", "tenant_id", "sender", "received_at"),
        Index("ix_inbound_texts_tenant_received", "tenant_id", "received_at"),
    )
    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(String(63), nullable=True)
    sender: Mapped[str | None] = mapped_column(String(16), nullable=True)  # who texted
    number: Mapped[str | None] = mapped_column(String(16), nullable=True)  # the number texted
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # What handled it: inbox, campaigns, codes, points, or <source>:<kind> of the reply it got
    # (router:keyword_reply, router:help, router:optout_confirmation, verifier:genuine, ...).
    handled_by: Mapped[str | None] = mapped_column(String(48), nullable=True)
    keyword: Mapped[str | None] = mapped_column(String(64), nullable=True)
    campaign_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reply_message_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Conversation(Base):
    """The latest inbound text of one subscriber to one tenant (the inbox list, newest first)."""

    __tablename__ = "inbox_conversations"
    __table_args__ = (Index("ix_inbox_conversations_recent", "tenant_id", "last_at", "sender"),)
    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    sender: Mapped[str] = mapped_column(String(16), primary_key=True)
    number: Mapped[str] = mapped_column(String(16))
    last_message_id: Mapped[str] = mapped_column(String(36))
    last_text: Mapped[str] = mapped_column(Text)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
