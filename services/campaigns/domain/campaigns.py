"""Creating campaigns (every check happens here, so a bad campaign never exists), their
lifecycle (pause, resume, cancel) and their live report.

Kinds: notification, greeting, promotion and survey go to an audience (a list, a segment,
every contact, or a subscription topic); subscription sends content to a topic's subscribers;
inquiry and on_demand answer a keyword and have no audience.

The report counts what campaigns decided (from campaign_recipients) and what became of each
message (from the messages table, the system of record egress keeps, joined by message id):
no extra consumer of sms.status, and a redelivered status event cannot count twice.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from services.core import tenancy
from services.core.db.campaigns_models import (
    Campaign,
    CampaignInbound,
    CampaignKeyword,
    CampaignRecipient,
    ContactList,
    Segment,
    SubscriptionTopic,
    TenantEndpoint,
)
from services.core.db.models import Message
from services.core.messages import parse_ts
from services.core.utc import aware

from . import surveys, templates
from .contacts import known_fields
from .greetings import GreetingError, GreetingRule

KINDS = ("notification", "greeting", "promotion", "survey", "inquiry", "on_demand", "subscription")
AUDIENCE_KINDS = ("notification", "greeting", "promotion", "survey", "subscription")
KEYWORD_KINDS = ("inquiry", "on_demand", "survey")
RESERVED_WORDS = frozenset({"STOP", "START", "HELP", "SUB", "UNSUB", "UNSUBSCRIBE", "UNSTOP", "TD", "T",
                            "?", "退订", "取消", "订阅", "帮助"})
KEYWORD_RE = re.compile(r"^[A-Z0-9\u4e00-\u9fff]{1,32}$")
SENDER_RE = re.compile(r"^(\+[1-9][0-9]{6,14}|[0-9]{3,8}|[A-Za-z0-9](?:[A-Za-z0-9 ]{0,9}[A-Za-z0-9])?)$")
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
ACTIVE = ("scheduled", "running", "paused", "active", "completed")


class CampaignError(ValueError):
    """A request about a campaign that cannot be carried out; ``status`` is the HTTP status."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return f"c{uuid.uuid4().hex[:16]}"


def _keyword(value: Any, what: str) -> str:
    word = str(value or "").strip().upper()
    if not KEYWORD_RE.match(word):
        raise CampaignError(f"{what} {value!r} must be one word of 1-32 letters or digits")
    if word in RESERVED_WORDS:
        raise CampaignError(f"{what} {word} is reserved for opt-out, help and subscriptions")
    return word


def _audience(s: Session, tenant_id: str, kind: str, raw: Any) -> tuple[str, int | None]:
    if kind not in AUDIENCE_KINDS:
        if raw not in (None, {}, "none"):
            raise CampaignError(f"a {kind} campaign answers a keyword and takes no audience")
        return "none", None
    if raw is None and kind == "survey":
        return "none", None  # a survey that contacts start with its keyword
    if raw == "all" or raw == {"all": True}:
        if kind == "subscription":
            raise CampaignError("a subscription campaign goes to a topic: audience {\"topic\": NAME}")
        return "all", None
    if not isinstance(raw, dict) or len(raw) != 1:
        raise CampaignError('audience must be "all", {"list": NAME}, {"segment": NAME} or '
                            '{"topic": NAME}')
    (key, name), = raw.items()
    if kind == "subscription" and key != "topic":
        raise CampaignError("a subscription campaign goes to a topic: audience {\"topic\": NAME}")
    if key == "list":
        row = s.scalar(select(ContactList).where(ContactList.tenant_id == tenant_id,
                                                 ContactList.name == str(name)))
    elif key == "segment":
        row = s.scalar(select(Segment).where(Segment.tenant_id == tenant_id,
                                             Segment.name == str(name)))
    elif key == "topic":
        row = s.scalar(select(SubscriptionTopic).where(SubscriptionTopic.tenant_id == tenant_id,
                                                       SubscriptionTopic.name == str(name).upper()))
    else:
        raise CampaignError(f"audience {key!r} is not one of all, list, segment, topic")
    if row is None:
        raise CampaignError(f"no {key} named {name!r}", 404)
    return key, row.id


def _schedule(raw: Any, now: datetime) -> datetime | None:
    if raw in (None, ""):
        return None
    try:
        at = parse_ts(str(raw))
    except ValueError:
        raise CampaignError(f"schedule_at {raw!r} is not an ISO 8601 date-time") from None
    if at.tzinfo is None:
        raise CampaignError(f"schedule_at {raw!r} has no time zone offset (add Z or +08:00)")
    if at < now:
        raise CampaignError(f"schedule_at {raw} is in the past (now is "
                            f"{now.isoformat(timespec='seconds')}); omit it to send now")
    return at.astimezone(UTC)


def create(s: Session, tenant_id: str, body: dict[str, Any], *, now: datetime | None = None) -> Campaign:
    """Validate everything, then store the campaign (and its questions and keyword) at once."""
    now = now or utcnow()
    if not isinstance(body, dict):
        raise CampaignError("expected a JSON object")
    allowed = {"id", "name", "kind", "template", "audience", "schedule_at", "sender", "config",
               "start"}
    extra = set(body) - allowed
    if extra:
        raise CampaignError(f"unknown field(s): {', '.join(sorted(extra))}")
    kind = body.get("kind")
    if kind not in KINDS:
        raise CampaignError(f"kind must be one of {', '.join(KINDS)}")
    name = str(body.get("name") or "").strip()
    if not name or len(name) > 200:
        raise CampaignError("name must be 1 to 200 characters")
    cid = body.get("id") or new_id()
    if not isinstance(cid, str) or not ID_RE.match(cid):
        raise CampaignError("id must be 1-48 lower-case letters, digits, '_' or '-'")
    if s.get(Campaign, cid) is not None:
        raise CampaignError(f"campaign {cid} exists", 409)
    config = body.get("config") or {}
    if not isinstance(config, dict):
        raise CampaignError("config must be an object")
    sender = body.get("sender")
    if sender is not None and (not isinstance(sender, str) or not SENDER_RE.match(sender)):
        raise CampaignError(f"sender {sender!r} is not a number, short code or alphanumeric id")
    rate = config.get("rate_per_second")
    if rate is not None and (not isinstance(rate, int | float) or isinstance(rate, bool)
                             or not 0 < rate <= 10000):
        raise CampaignError("config.rate_per_second must be above 0 and at most 10000")

    audience_kind, audience_ref = _audience(s, tenant_id, kind, body.get("audience"))
    schedule_at = _schedule(body.get("schedule_at"), now)

    source = body.get("template")
    needs_template = kind in ("notification", "greeting", "promotion", "subscription")
    if needs_template and not source:
        raise CampaignError(f"a {kind} campaign needs a template")
    if source is not None:
        if not isinstance(source, str):
            raise CampaignError("template must be a string")
        try:
            tpl = templates.parse(source)
            templates.check_fields(tpl, known_fields(s, tenant_id))
        except templates.TemplateError as exc:
            raise CampaignError(f"template: {exc}") from None

    questions: list[surveys.Question] = []
    keywords: list[str] = []
    if kind == "greeting":
        try:
            GreetingRule.from_config(config)
        except GreetingError as exc:
            raise CampaignError(f"config: {exc}") from None
        every = config.get("check_every_s")
        if every is not None and (not isinstance(every, int | float) or every < 1):
            raise CampaignError("config.check_every_s must be at least 1 second")
    elif kind == "survey":
        try:
            questions = surveys.define(config.get("questions"))
        except surveys.SurveyError as exc:
            raise CampaignError(f"config.questions: {exc}") from None
        for key in ("reminder_after_s", "expire_after_s"):
            v = config.get(key)
            if v is not None and (not isinstance(v, int | float) or v < 0):
                raise CampaignError(f"config.{key} must be a number of seconds")
        if config.get("keyword"):
            keywords.append(_keyword(config["keyword"], "config.keyword"))
        if audience_kind == "none" and not keywords:
            raise CampaignError("a survey needs an audience or a config.keyword to start it")
    elif kind == "inquiry":
        keywords.append(_keyword(config.get("keyword"), "config.keyword"))
        source_kind = config.get("source", "table")
        if source_kind not in ("table", "endpoint"):
            raise CampaignError('config.source must be "table" or "endpoint"')
        if source_kind == "endpoint":
            ep = s.scalar(select(TenantEndpoint).where(TenantEndpoint.tenant_id == tenant_id,
                                                       TenantEndpoint.name == str(config.get("endpoint"))))
            if ep is None:
                raise CampaignError(f"config.endpoint: no endpoint named {config.get('endpoint')!r} "
                                    "(create it with PUT /v1/endpoints/<name>)", 404)
        else:
            try:
                templates.parse(str(config.get("reply") or ""))
            except templates.TemplateError as exc:
                raise CampaignError(f"config.reply: {exc}") from None
    elif kind == "on_demand":
        keywords.append(_keyword(config.get("keyword"), "config.keyword"))
        if not str(config.get("content") or "").strip():
            raise CampaignError("config.content must name a content library item")
    for word in keywords:
        taken = s.scalar(select(CampaignKeyword).where(CampaignKeyword.tenant_id == tenant_id,
                                                       CampaignKeyword.keyword == word))
        if taken is not None:
            raise CampaignError(f"keyword {word} is already used by campaign {taken.campaign_id}", 409)
        shadowed = tenancy.campaign_keyword_conflict(s, tenant_id, word)
        if shadowed:  # a router rule or compliance word would answer it first
            raise CampaignError(f"keyword {word} could never be reached: {shadowed}", 409)

    if audience_kind == "topic":
        topic = s.get(SubscriptionTopic, audience_ref)
        config = {**config, "topic_name": topic.name}
    start = body.get("start", True)
    if kind in ("inquiry", "on_demand") or (kind == "survey" and audience_kind == "none"):
        status = "active" if start else "draft"
    else:
        status = "scheduled" if start else "draft"
    c = Campaign(id=cid, tenant_id=tenant_id, name=name, kind=kind, status=status, template=source,
                 sender=sender, audience_kind=audience_kind, audience_ref=audience_ref,
                 config=config, scheduled_at=schedule_at, cursor=0, audience_done=False, passes=0,
                 expanded=0, queued=0, suppressed=0, created_at=now, updated_at=now)
    s.add(c)
    s.flush()
    if questions:
        surveys.store_questions(s, cid, questions)
    for word in keywords:
        s.add(CampaignKeyword(tenant_id=tenant_id, keyword=word, campaign_id=cid))
    s.flush()
    return c


def get(s: Session, tenant_id: str, campaign_id: str) -> Campaign:
    c = s.get(Campaign, campaign_id)
    if c is None or c.tenant_id != tenant_id:
        raise CampaignError(f"no campaign {campaign_id}", 404)
    return c


def act(s: Session, tenant_id: str, campaign_id: str, action: str, now: datetime | None = None) -> Campaign:
    """pause | resume | cancel | start; a step that makes no sense is a 409 with the reason."""
    now = now or utcnow()
    c = get(s, tenant_id, campaign_id)
    if action == "pause":
        if c.status not in ("scheduled", "running", "active"):
            raise CampaignError(f"campaign {c.id} is {c.status}; only a scheduled, running or "
                                "active campaign can be paused", 409)
        c.status = "paused"
    elif action == "resume":
        if c.status != "paused":
            raise CampaignError(f"campaign {c.id} is {c.status}, not paused", 409)
        if c.audience_kind == "none":
            c.status = "active"
        else:
            c.status = "running" if c.started_at is not None else "scheduled"
    elif action == "cancel":
        if c.status in ("completed", "cancelled"):
            raise CampaignError(f"campaign {c.id} is already {c.status}", 409)
        c.status = "cancelled"
        c.finished_at = now
        c.lease_owner = None
        s.execute(delete(CampaignKeyword).where(CampaignKeyword.campaign_id == c.id))
    elif action == "start":
        if c.status != "draft":
            raise CampaignError(f"campaign {c.id} is {c.status}, not a draft", 409)
        c.status = "active" if c.audience_kind == "none" else "scheduled"
    else:
        raise CampaignError(f"unknown action {action!r}; use pause, resume, cancel or start", 404)
    c.updated_at = now
    s.flush()
    return c


def campaign_json(c: Campaign) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "kind": c.kind, "status": c.status, "template": c.template,
            "sender": c.sender, "audience": {"kind": c.audience_kind, "ref": c.audience_ref},
            "config": c.config or {},
            "schedule_at": _iso(c.scheduled_at), "created_at": _iso(c.created_at),
            "started_at": _iso(c.started_at), "finished_at": _iso(c.finished_at),
            "cursor": c.cursor, "passes": c.passes, "error": c.error}


def _iso(ts: datetime | None) -> str | None:
    ts = aware(ts)
    return ts.isoformat().replace("+00:00", "Z") if ts else None


def report(s: Session, tenant_id: str, campaign_id: str) -> dict[str, Any]:
    """Live counts. decided: what campaigns chose per member; messages: each message's current
    status at egress (pending = produced but not yet recorded by egress)."""
    c = get(s, tenant_id, campaign_id)
    decided = dict(s.execute(select(CampaignRecipient.state, func.count()).where(
        CampaignRecipient.campaign_id == c.id).group_by(CampaignRecipient.state)).all())
    reasons = dict(s.execute(select(CampaignRecipient.reason, func.count()).where(
        CampaignRecipient.campaign_id == c.id, CampaignRecipient.state == "suppressed")
        .group_by(CampaignRecipient.reason)).all())
    rows = s.execute(
        select(Message.status, func.count(), func.count(Message.carrier_message_id))
        .select_from(CampaignRecipient)
        .join(Message, Message.id == CampaignRecipient.message_id)
        .where(CampaignRecipient.campaign_id == c.id, CampaignRecipient.state == "queued")
        .group_by(Message.status)).all()
    by_status = {st: n for st, n, _ in rows}
    carried = {st: k for st, _, k in rows}  # messages a carrier took (they have its id)
    queued = decided.get("queued", 0)
    recorded = sum(by_status.values())
    replies = s.scalar(select(func.count()).select_from(CampaignInbound).where(
        CampaignInbound.campaign_id == c.id)) or 0
    sent = by_status.get("sent", 0) + by_status.get("delivered", 0) + carried.get("failed", 0) \
        + carried.get("expired", 0)
    return {
        "campaign_id": c.id, "kind": c.kind, "status": c.status, "audience_done": c.audience_done,
        "passes": c.passes,
        "queued": queued,
        "sent": sent,
        "delivered": by_status.get("delivered", 0),
        "failed": by_status.get("failed", 0) + by_status.get("expired", 0),
        "suppressed": decided.get("suppressed", 0) + by_status.get("suppressed", 0),
        "deferred": decided.get("deferred", 0),
        "replies": replies,
        "detail": {
            "campaign_suppressed": reasons,
            "egress_suppressed": by_status.get("suppressed", 0),
            "messages": {**by_status, "pending": queued - recorded},
        },
    }
