"""The dashboard's figures for one tenant: sent, delivered, failed, delivery rate, replies,
opt-outs and segments over today, 7 and 30 days, hourly and daily series for the charts, and
the campaigns running now. Counts come from the metrics processor's hour windows (already
aggregated), opt-outs and segments from their own tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.core.db.bridge_models import MetricWindow
from services.core.db.campaigns_models import Campaign
from services.core.db.inbox_models import InboundText
from services.core.db.models import Message, OptOut

PERIODS = {"today": 0, "7d": 7, "30d": 30}


@dataclass
class Totals:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    replies: int = 0
    opt_outs: int = 0
    segments: int = 0

    @property
    def delivery_rate(self) -> float | None:
        done = self.delivered + self.failed
        return self.delivered / done if done else None


def period_start(period: str, zone: ZoneInfo, now: datetime | None = None) -> datetime:
    """Midnight in the tenant's zone today, or that many days back."""
    now = (now or datetime.now(UTC)).astimezone(zone)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - timedelta(days=PERIODS[period])).astimezone(UTC)


def totals(s: Session, tenant_id: str, since: datetime) -> Totals:
    w = MetricWindow
    row = s.execute(
        select(func.coalesce(func.sum(w.sent), 0), func.coalesce(func.sum(w.delivered), 0),
               func.coalesce(func.sum(w.failed), 0), func.coalesce(func.sum(w.messages_in), 0))
        .where(w.granularity == "hour", w.tenant_id == tenant_id, w.window_start >= since)
    ).one()
    opt_outs = s.scalar(select(func.count()).select_from(OptOut).where(
        OptOut.tenant_id == tenant_id, OptOut.opted_out.is_(True), OptOut.updated_at >= since)) or 0
    segments = s.scalar(select(func.coalesce(func.sum(Message.segments), 0)).where(
        Message.tenant_id == tenant_id, Message.accepted_at >= since,
        Message.status.in_(("sent", "delivered")))) or 0
    return Totals(sent=int(row[0]), delivered=int(row[1]), failed=int(row[2]),
                  replies=int(row[3]), opt_outs=int(opt_outs), segments=int(segments))


def series(s: Session, tenant_id: str, since: datetime, zone: ZoneInfo, daily: bool
           ) -> list[tuple[str, int, int]]:
    """(label, sent, delivered) per hour (or per local day) from ``since`` to now, gaps as 0."""
    w = MetricWindow
    rows = s.execute(select(w.window_start, func.sum(w.sent), func.sum(w.delivered))
                     .where(w.granularity == "hour", w.tenant_id == tenant_id, w.window_start >= since)
                     .group_by(w.window_start)).all()
    buckets: dict[str, list[int]] = {}
    now = datetime.now(UTC)
    t = since
    step = timedelta(days=1) if daily else timedelta(hours=1)
    while t <= now:
        buckets[_label(t, zone, daily)] = [0, 0]
        t += step
    for start, sent, delivered in rows:
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        b = buckets.setdefault(_label(start, zone, daily), [0, 0])
        b[0] += int(sent or 0)
        b[1] += int(delivered or 0)
    return [(k, v[0], v[1]) for k, v in buckets.items()]


def _label(t: datetime, zone: ZoneInfo, daily: bool) -> str:
    local = t.astimezone(zone)
    return local.strftime("%m-%d") if daily else local.strftime("%H:00")


def live_campaigns(s: Session, tenant_id: str, limit: int = 5) -> list[Campaign]:
    return list(s.scalars(select(Campaign).where(
        Campaign.tenant_id == tenant_id, Campaign.status.in_(("running", "scheduled", "paused")))
        .order_by(Campaign.created_at.desc()).limit(limit)))


def top_keywords(s: Session, tenant_id: str, since: datetime, limit: int = 5) -> list[tuple[str, int]]:
    """The keywords texted most since ``since`` (from the inbox log), with their counts."""
    n = func.count().label("n")
    return [(k, int(c)) for k, c in s.execute(
        select(InboundText.keyword, n).where(
            InboundText.tenant_id == tenant_id, InboundText.received_at >= since,
            InboundText.keyword.is_not(None), InboundText.keyword != "")
        .group_by(InboundText.keyword).order_by(n.desc(), InboundText.keyword).limit(limit))]
