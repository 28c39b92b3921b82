"""Models of the level-2 bridge (ERP webhooks, replies by inbound id) and of the streamed metrics.

- A webhook endpoint's secret signs every delivery (HMAC-SHA256), so the platform needs it in
  clear when it signs: it cannot be hashed. It is stored encrypted (Fernet, with a key derived
  by HKDF-SHA256 from ``settings.secret_key`` under its own label), shown once when created, and
  never logged (``WebhookSecrets`` has no readable repr).
- Webhook deliveries are an outbox: the bridge writes one row per (endpoint, event) in the same
  transaction that handles the event, so a redelivered event adds nothing, and a sender loop
  POSTs them in order per subscriber number, with retries, until delivered or too old (failed).
- Inbound messages forwarded to a tenant are recorded so that an ERP can answer one by its id.
- A status counted before its message's request was seen waits in ``metric_pending`` until the
  campaign and product it belongs to are known.
- Metric windows hold running totals per tumbling window and dimensions; ``revision`` counts
  updates and ``emitted_revision`` the last one published, so a late event republishes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
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
from sqlalchemy.orm import Mapped, mapped_column

from ..secrets import SecretBox
from .models import Base, utcnow


def WebhookSecrets(secret_key: str) -> SecretBox:  # noqa: N802 - reads as the type it returns
    """Webhook signing secrets: sealed under their own derived key (see services.core.secrets)."""
    return SecretBox(secret_key, "herald/webhook-secrets/fernet")


class WebhookEndpoint(Base):
    """Where a tenant that cannot speak Kafka gets its inbound texts and status changes."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), unique=True)
    url: Mapped[str] = mapped_column(String(500))
    secret_sealed: Mapped[str] = mapped_column(Text)  # Fernet token; see WebhookSecrets
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookDelivery(Base):
    """One event to POST to one endpoint. ``id`` orders deliveries: per ``ordering_key`` (the
    subscriber's number) only the oldest pending one is attempted."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_delivery_event"),
        Index("ix_webhook_deliveries_queue", "status", "ordering_key", "id"),
        Index("ix_webhook_deliveries_tenant", "tenant_id", "status", "id"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(63))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(32))  # sms.inbound | sms.status
    ordering_key: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)  # the JSON body, exactly as signed and sent
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class BridgeInbound(Base):
    """An inbound text forwarded to a tenant, kept so that the tenant's ERP can reply by its id."""

    __tablename__ = "bridge_inbound"
    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    subscriber: Mapped[str] = mapped_column(String(16))  # who texted (the reply goes there)
    number: Mapped[str] = mapped_column(String(16))  # the platform number texted (reply from it)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class MetricMessage(Base):
    """What the metrics processor needs of an outbound message when its status comes: the
    campaign and product it counts under, and when it was requested (latency)."""

    __tablename__ = "metric_messages"
    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    campaign_id: Mapped[str] = mapped_column(String(64), default="")
    product: Mapped[str] = mapped_column(String(64), default="")
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class MetricPending(Base):
    """A status counted before the metrics processor saw its message's request (the two come on
    different topics): counted without campaign and product, and moved to them once known."""

    __tablename__ = "metric_pending"
    dedupe: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(36), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tenant_id: Mapped[str] = mapped_column(String(63))
    carrier: Mapped[str] = mapped_column(String(64), default="")
    deltas: Mapped[str] = mapped_column(Text)  # JSON {counter: amount}
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# Counters of a metric window, in the order the schema lists them.
METRIC_FIELDS = (
    "messages_in", "messages_out", "sent", "delivered", "failed", "suppressed", "expired",
    "latency_count", "latency_sum_ms", "latency_le_1s", "latency_le_5s", "latency_le_30s",
    "latency_le_60s", "latency_le_300s", "verifications", "genuine", "counterfeit_warnings",
    "points_awarded", "points_awards", "redemptions",
)


class MetricWindow(Base):
    """Running totals of one tumbling window (minute or hour) for one set of dimensions.
    Dimensions absent from an event are '' (not NULL, so that the unique key holds)."""

    __tablename__ = "metric_windows"
    __table_args__ = (
        UniqueConstraint("granularity", "window_start", "tenant_id", "carrier", "campaign_id",
                         "product", "region", name="uq_metric_window"),
        Index("ix_metric_windows_due", "window_end", "emitted_revision", "revision"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    granularity: Mapped[str] = mapped_column(String(8))  # minute | hour
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tenant_id: Mapped[str] = mapped_column(String(63), default="")
    carrier: Mapped[str] = mapped_column(String(64), default="")
    campaign_id: Mapped[str] = mapped_column(String(64), default="")
    product: Mapped[str] = mapped_column(String(64), default="")
    region: Mapped[str] = mapped_column(String(64), default="")
    messages_in: Mapped[int] = mapped_column(BigInteger, default=0)
    messages_out: Mapped[int] = mapped_column(BigInteger, default=0)
    sent: Mapped[int] = mapped_column(BigInteger, default=0)
    delivered: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    suppressed: Mapped[int] = mapped_column(BigInteger, default=0)
    expired: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_count: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_sum_ms: Mapped[float] = mapped_column(Float, default=0.0)
    latency_le_1s: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_le_5s: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_le_30s: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_le_60s: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_le_300s: Mapped[int] = mapped_column(BigInteger, default=0)
    verifications: Mapped[int] = mapped_column(BigInteger, default=0)
    genuine: Mapped[int] = mapped_column(BigInteger, default=0)
    counterfeit_warnings: Mapped[int] = mapped_column(BigInteger, default=0)
    points_awarded: Mapped[int] = mapped_column(BigInteger, default=0)
    points_awards: Mapped[int] = mapped_column(BigInteger, default=0)
    redemptions: Mapped[int] = mapped_column(BigInteger, default=0)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    emitted_revision: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
