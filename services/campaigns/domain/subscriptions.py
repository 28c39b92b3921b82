"""Subscriptions: named topics contacts join with ``SUB <topic>`` and leave with
``UNSUB <topic>`` (``UNSUB`` alone leaves every topic), and cron schedules that send a topic's
content to its subscribers.

A schedule firing becomes a subscription campaign with a deterministic id
(``sub-<schedule>-<UTC minute>``), so two workers firing the same minute create it once and the
expander sends it like any campaign: chunked, throttled, resumable, reported. A schedule that
was missed while no worker ran fires once for the latest missed time, not once per miss.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.core.db.campaigns_models import (
    Campaign,
    Subscriber,
    SubscriptionSchedule,
    SubscriptionTopic,
)

from . import content, cron
from .campaigns import CampaignError, aware
from .policy import valid_zone

TOPIC_RE = re.compile(r"^[A-Z0-9]{1,32}$")


def create_topic(s: Session, tenant_id: str, body: dict[str, Any]) -> SubscriptionTopic:
    name = str(body.get("name") or "").strip().upper()
    if not TOPIC_RE.match(name):
        raise CampaignError("topic name must be 1-32 letters or digits (it follows SUB in a text)")
    if s.scalar(select(SubscriptionTopic).where(SubscriptionTopic.tenant_id == tenant_id,
                                                SubscriptionTopic.name == name)) is not None:
        raise CampaignError(f"topic {name} exists", 409)
    t = SubscriptionTopic(tenant_id=tenant_id, name=name,
                          description=str(body.get("description") or "")[:200])
    s.add(t)
    s.flush()
    return t


def get_topic(s: Session, tenant_id: str, name: str) -> SubscriptionTopic:
    t = s.scalar(select(SubscriptionTopic).where(SubscriptionTopic.tenant_id == tenant_id,
                                                 SubscriptionTopic.name == name.upper()))
    if t is None:
        raise CampaignError(f"no topic {name.upper()}", 404)
    return t


def topics(s: Session, tenant_id: str) -> list[SubscriptionTopic]:
    return list(s.scalars(select(SubscriptionTopic).where(SubscriptionTopic.tenant_id == tenant_id)
                          .order_by(SubscriptionTopic.name)))


def subscribe(s: Session, topic: SubscriptionTopic, msisdn: str, now: datetime) -> bool:
    """True if this changed anything (a repeated SUB is harmless)."""
    row = s.scalar(select(Subscriber).where(Subscriber.topic_id == topic.id, Subscriber.msisdn == msisdn))
    if row is None:
        s.add(Subscriber(topic_id=topic.id, tenant_id=topic.tenant_id, msisdn=msisdn, active=True,
                         subscribed_at=now))
        s.flush()
        return True
    if row.active:
        return False
    row.active, row.subscribed_at, row.unsubscribed_at = True, now, None
    return True


def unsubscribe(s: Session, tenant_id: str, msisdn: str, topic: SubscriptionTopic | None,
                now: datetime) -> list[str]:
    """Leave one topic, or all of them; returns the names left."""
    q = select(Subscriber, SubscriptionTopic.name).join(
        SubscriptionTopic, SubscriptionTopic.id == Subscriber.topic_id).where(
        Subscriber.tenant_id == tenant_id, Subscriber.msisdn == msisdn, Subscriber.active.is_(True))
    if topic is not None:
        q = q.where(Subscriber.topic_id == topic.id)
    left = []
    for sub, name in s.execute(q).all():
        sub.active, sub.unsubscribed_at = False, now
        left.append(name)
    return sorted(left)


def add_schedule(s: Session, topic: SubscriptionTopic, body: dict[str, Any],
                 now: datetime) -> SubscriptionSchedule:
    expr = str(body.get("cron") or "")
    tz = str(body.get("timezone") or "UTC")
    if not valid_zone(tz):
        raise CampaignError(f"timezone {tz!r} is not an IANA time zone")
    try:
        parsed = cron.parse(expr)
    except cron.CronError as exc:
        raise CampaignError(f"cron: {exc}") from None
    name, text = body.get("content"), body.get("text")
    if bool(name) == bool(text):
        raise CampaignError("a schedule sends either a content library item ('content': NAME) or "
                            "a fixed 'text'")
    if text is not None and (not isinstance(text, str) or not 0 < len(text) <= 1500):
        raise CampaignError("text must be 1 to 1500 characters")
    sch = SubscriptionSchedule(topic_id=topic.id, tenant_id=topic.tenant_id, cron=parsed.source,
                               timezone=tz, content_name=str(name) if name else None, text=text,
                               active=True, next_run_at=parsed.next_after(now, tz), created_at=now)
    s.add(sch)
    s.flush()
    return sch


def get_schedule(s: Session, topic: SubscriptionTopic, schedule_id: str | int) -> SubscriptionSchedule:
    try:
        sid = int(schedule_id)
    except (TypeError, ValueError):
        raise CampaignError(f"schedule id {schedule_id!r} is not a number") from None
    sch = s.scalar(select(SubscriptionSchedule).where(SubscriptionSchedule.id == sid,
                                                      SubscriptionSchedule.topic_id == topic.id))
    if sch is None:
        raise CampaignError(f"no schedule {sid} on topic {topic.name}", 404)
    return sch


def update_schedule(s: Session, topic: SubscriptionTopic, schedule_id: str | int,
                    body: dict[str, Any], now: datetime) -> SubscriptionSchedule:
    """Disable (``{"active": false}``) or enable a schedule. A schedule enabled again fires at
    its next time after now: the times it was off are not made up for."""
    sch = get_schedule(s, topic, schedule_id)
    active = body.get("active")
    if not isinstance(active, bool) or set(body) - {"active"}:
        raise CampaignError('expected {"active": true} or {"active": false}; to change the cron or '
                            "the content, delete the schedule and add a new one")
    if active and not sch.active:
        sch.next_run_at = cron.parse(sch.cron).next_after(now, sch.timezone)
    sch.active = active
    s.flush()
    return sch


def delete_schedule(s: Session, topic: SubscriptionTopic, schedule_id: str | int) -> int:
    """Remove a schedule; campaigns it already fired stay (cancel them as campaigns)."""
    sch = get_schedule(s, topic, schedule_id)
    s.delete(sch)
    s.flush()
    return sch.id


UNFINISHED = ("scheduled", "running", "paused")


def delete_topic(s: Session, tenant_id: str, name: str) -> str:
    """Remove a topic with its schedules and subscribers; refused while a campaign still sends
    to it. Its keyword is free again (``SUB <name>`` then answers that there is no such topic)."""
    t = get_topic(s, tenant_id, name)
    busy = s.scalars(select(Campaign.id).where(Campaign.tenant_id == tenant_id,
                                               Campaign.audience_kind == "topic",
                                               Campaign.audience_ref == t.id,
                                               Campaign.status.in_(UNFINISHED)).limit(5)).all()
    if busy:
        raise CampaignError(f"topic {t.name} is still being sent to by {', '.join(busy)}; cancel "
                            "or wait for those campaigns first", 409)
    s.execute(delete(SubscriptionSchedule).where(SubscriptionSchedule.topic_id == t.id))
    s.execute(delete(Subscriber).where(Subscriber.topic_id == t.id))
    s.delete(t)
    s.flush()
    return t.name


def schedule_json(x: SubscriptionSchedule) -> dict[str, Any]:
    nxt = aware(x.next_run_at)
    last = aware(x.last_run_at)
    return {"id": x.id, "cron": x.cron, "timezone": x.timezone, "content": x.content_name,
            "text": x.text, "active": x.active,
            "next_run_at": nxt.isoformat() if nxt else None,
            "last_run_at": last.isoformat() if last else None}


def fire_due(s: Session, now: datetime, limit: int = 20) -> list[str]:
    """Turn due schedules into subscription campaigns; returns the campaign ids created."""
    created: list[str] = []
    for sch in s.scalars(select(SubscriptionSchedule).where(
            SubscriptionSchedule.active.is_(True), SubscriptionSchedule.next_run_at <= now)
            .order_by(SubscriptionSchedule.next_run_at).limit(limit)):
        fire_at = aware(sch.next_run_at)
        topic = s.get(SubscriptionTopic, sch.topic_id)
        sch.last_run_at = fire_at
        sch.next_run_at = cron.parse(sch.cron).next_after(max(now, fire_at), sch.timezone)
        if topic is None:
            sch.active = False
            continue
        cid = f"sub-{sch.id}-{fire_at.astimezone(UTC):%Y%m%d%H%M}"
        if s.get(Campaign, cid) is not None:
            continue
        body = sch.text
        error = None
        if body is None:
            item = content.current(s, sch.tenant_id, sch.content_name or "", now, sch.timezone)
            if item is None:
                error = f"no content named {sch.content_name!r} in the library"
            else:
                body = item.body
        c = Campaign(id=cid, tenant_id=sch.tenant_id, name=f"{topic.name} {fire_at:%Y-%m-%d %H:%M}",
                     kind="subscription", status="failed" if error else "running",
                     template=None, audience_kind="topic", audience_ref=topic.id,
                     config={"topic_name": topic.name, "schedule_id": sch.id, "text": body},
                     cursor=0, audience_done=False, passes=0, expanded=0, queued=0, suppressed=0,
                     error=error, created_at=now, started_at=now, updated_at=now,
                     finished_at=now if error else None)
        # The content is sent as it is: braces in a price list are not template fields.
        c.template = _escape(body) if body else None
        try:
            with s.begin_nested():
                s.add(c)
        except IntegrityError:  # another worker fired the same minute
            continue
        created.append(cid)
    return created


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")
