"""What campaigns answer to an inbound text the router handed over (campaigns.inbound).

In order:
1. the keyword the router matched, when it is one of campaigns' keywords (an inquiry, an
   on-demand item, a survey's start word) or SUB / UNSUB;
2. otherwise, when the text's first word is a keyword the tenant configured (a campaign keyword,
   or SUB / UNSUB where the tenant has topics), that keyword, even while the contact has a survey
   open: an on-demand keyword is not a wrong survey answer. A survey with config
   ``answers_first: true`` takes the text as its answer instead;
3. otherwise, an answer to the contact's open survey: the session on the number the text was
   sent to that asked most recently (so a contact in two surveys on two numbers, or answering
   the latest question on one number, reaches the right survey);
4. otherwise the text's first word as a keyword (a tenant may route every text here with one
   catch-all pattern rule);
5. otherwise a clear reply that the keyword is unknown, listing what works. If the contact got
   a campaign in the last week, the text also counts as a reply to that campaign.

Every inbound is recorded with the reply it got (campaign_inbound): a redelivered inbound gets
the very same reply event (same request id, deduplicated by egress) and changes nothing else.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.core.db.campaigns_models import (
    Campaign,
    CampaignInbound,
    CampaignKeyword,
    CampaignRecipient,
    SurveyAnswer,
    SurveySession,
)
from services.core.processor import Out

from . import content, inquiry, subscriptions, surveys
from .campaigns import CampaignError
from .events import reply
from .settings import policy_for

SUB_WORDS = frozenset({"SUB", "SUBSCRIBE"})
UNSUB_WORDS = frozenset({"UNSUB"})
REPLY_WINDOW = timedelta(days=7)
OPEN_CAMPAIGN = ("scheduled", "running", "paused", "active", "completed")
THANKS = "Thank you for taking part!"
EMPTY_CONTENT = "Sorry, there is nothing to send for {keyword} right now. Please try again later."


@dataclass(frozen=True)
class Handled:
    kind: str  # survey | survey_start | inquiry | on_demand | subscription | unknown
    campaign_id: str | None
    reply: str | None


@dataclass(frozen=True)
class NeedsEndpoint:
    """An inquiry the tenant's endpoint answers: called outside any transaction."""

    campaign_id: str
    call: inquiry.EndpointCall
    fallback: str


def words_of(text: str) -> tuple[list[str], str]:
    """Upper-cased words (edge punctuation stripped) and the text after the first word."""
    t = " ".join(unicodedata.normalize("NFKC", text).split())
    parts = t.split(" ", 1)
    words = [w.strip(".,!?;:。！，？、\"'()[]").upper() for w in t.split(" ")]
    return [w for w in words if w], (parts[1] if len(parts) > 1 else "")


def _reply_outs(event: dict[str, Any], h: Handled) -> list[Out]:
    if not h.reply:
        return []
    return [reply(event, h.reply, campaign_id=h.campaign_id, kind=f"campaigns_{h.kind}")]


def handle(s: Session, event: dict[str, Any], now: datetime) -> list[Out] | NeedsEndpoint:
    """Handle one inbound in the caller's transaction; an endpoint inquiry comes back as
    NeedsEndpoint for the caller to ask and then ``finish``."""
    done = s.get(CampaignInbound, event["message_id"])
    if done is not None:
        return _reply_outs(event, Handled(done.kind, done.campaign_id, done.reply))
    result = decide(s, event, now)
    if isinstance(result, NeedsEndpoint):
        return result
    return _record(s, event, result, now)


def hold(s: Session, event: dict[str, Any], pending: NeedsEndpoint, now: datetime) -> None:
    """Record an endpoint inquiry as awaiting its answer (reply still empty), in the transaction
    that decided it: the inbound can then be committed while the endpoint is asked outside the
    consumer, and a worker that dies meanwhile leaves a record another one resumes."""
    _record(s, event, Handled("inquiry", pending.campaign_id, None), now)


def finish(s: Session, event: dict[str, Any], pending: NeedsEndpoint, answer: str | None,
           now: datetime) -> list[Out]:
    """The reply to an endpoint inquiry, recorded once: when two workers answer the same held
    inquiry, the first answer stands and both send that one reply (same request id)."""
    done = s.get(CampaignInbound, event["message_id"])
    if done is None:
        return _record(s, event, Handled("inquiry", pending.campaign_id,
                                         answer or pending.fallback), now)
    if done.reply is None:
        s.execute(update(CampaignInbound).where(CampaignInbound.message_id == done.message_id,
                                                CampaignInbound.reply.is_(None))
                  .values(reply=answer or pending.fallback)
                  .execution_options(synchronize_session=False))
        s.refresh(done)
    return _reply_outs(event, Handled(done.kind, done.campaign_id, done.reply))


def answer_outs(event: dict[str, Any], pending: NeedsEndpoint, answer: str | None) -> list[Out]:
    """The reply event an endpoint's answer (or the fallback) makes, before it is recorded."""
    return _reply_outs(event, Handled("inquiry", pending.campaign_id, answer or pending.fallback))


def held(s: Session, received_before: datetime, limit: int = 100) -> list[dict[str, Any]]:
    """Endpoint inquiries still without an answer, received before the given time (their worker
    is presumed gone), as the inbound events to resume."""
    rows = s.scalars(select(CampaignInbound).where(
        CampaignInbound.kind == "inquiry", CampaignInbound.reply.is_(None),
        CampaignInbound.received_at <= received_before)
        .order_by(CampaignInbound.received_at).limit(limit))
    return [{"message_id": r.message_id, "tenant_id": r.tenant_id, "from": r.msisdn,
             "to": r.reply_from, "text": r.text, "campaign_id": r.campaign_id} for r in rows]


def resume(s: Session, event: dict[str, Any], now: datetime) -> NeedsEndpoint | list[Out]:
    """The endpoint call of a held inquiry again, or its fallback reply when the campaign or its
    endpoint is gone."""
    c = s.get(Campaign, event.get("campaign_id") or "")
    config = (c.config or {}) if c is not None else {}
    fallback = config.get("fallback") or inquiry.FALLBACK
    pending = NeedsEndpoint(event.get("campaign_id") or "", inquiry.EndpointCall("", 0, 0, {}), fallback)
    if c is None or config.get("source") != "endpoint":
        return finish(s, event, pending, None, now)
    words, rest = words_of(event["text"])
    own = set(s.scalars(select(CampaignKeyword.keyword).where(CampaignKeyword.campaign_id == c.id)))
    if words and words[0] in own:
        keyword, argument = words[0], rest
    else:  # routed by a pattern rule: the keyword was not the first word
        keyword, argument = (min(own) if own else ""), event["text"]
    try:
        call = inquiry.endpoint_call(s, c, event, keyword, argument)
    except LookupError:
        return finish(s, event, pending, None, now)
    return NeedsEndpoint(c.id, call, fallback)


def _record(s: Session, event: dict[str, Any], h: Handled, now: datetime) -> list[Out]:
    campaign_id = h.campaign_id
    if h.kind == "unknown":
        campaign_id = _recent_campaign(s, event["tenant_id"], event["from"], now)
    s.add(CampaignInbound(message_id=event["message_id"], tenant_id=event["tenant_id"],
                          msisdn=event["from"], campaign_id=campaign_id, kind=h.kind,
                          text=event["text"][:1600], reply=h.reply, reply_from=event["to"],
                          received_at=now))
    s.flush()
    return _reply_outs(event, Handled(h.kind, campaign_id if h.kind != "unknown" else None, h.reply))


def decide(s: Session, event: dict[str, Any], now: datetime) -> Handled | NeedsEndpoint:
    tenant_id = event["tenant_id"]
    words, rest = words_of(event["text"])
    routed = (event.get("keyword") or "").upper()
    if routed:
        found = _keyword(s, event, routed, rest if words and words[0] == routed else event["text"], now)
        if found is not None:
            return found
    session = _open_session(s, tenant_id, event["from"], event["to"])
    if session is not None and words and _configured(s, tenant_id, words[0]) \
            and not _answers_first(s, session):
        found = _keyword(s, event, words[0], rest, now)
        if found is not None:
            return found
    if session is not None:
        return _answer(s, session, event, now)
    if words:
        found = _keyword(s, event, words[0], rest, now)
        if found is not None:
            return found
    return Handled("unknown", None, _unknown_reply(s, tenant_id, words[0] if words else ""))


# -- keywords ----------------------------------------------------------------------------------

def _keyword(s: Session, event: dict[str, Any], word: str, argument: str,
             now: datetime) -> Handled | NeedsEndpoint | None:
    tenant_id, msisdn = event["tenant_id"], event["from"]
    if word in SUB_WORDS or word in UNSUB_WORDS:
        return _subscription(s, tenant_id, msisdn, word in SUB_WORDS, argument, now)
    kw = s.scalar(select(CampaignKeyword).where(CampaignKeyword.tenant_id == tenant_id,
                                                CampaignKeyword.keyword == word))
    if kw is None:
        return None
    c = s.get(Campaign, kw.campaign_id)
    if c is None or c.status not in OPEN_CAMPAIGN or c.status == "paused":
        return Handled("unknown", None, f"Sorry, {word} is not available right now.")
    config = c.config or {}
    if c.kind == "inquiry":
        if config.get("source", "table") == "endpoint":
            try:
                call = inquiry.endpoint_call(s, c, event, word, argument)
            except LookupError:
                return Handled("inquiry", c.id, config.get("fallback") or inquiry.FALLBACK)
            return NeedsEndpoint(c.id, call, config.get("fallback") or inquiry.FALLBACK)
        return Handled("inquiry", c.id, inquiry.answer_from_table(s, c, argument, msisdn))
    if c.kind == "on_demand":
        policy = policy_for(s, tenant_id, 50.0)
        item = content.current(s, tenant_id, str(config.get("content")), now, policy.timezone)
        if item is None:
            return Handled("on_demand", c.id, config.get("empty") or EMPTY_CONTENT.format(keyword=word))
        return Handled("on_demand", c.id, item.body)
    if c.kind == "survey":
        return _start_survey(s, c, event, now)
    return None


def _subscription(s: Session, tenant_id: str, msisdn: str, join: bool, argument: str,
                  now: datetime) -> Handled:
    name = argument.strip().split(" ")[0].strip(".,!?").upper() if argument.strip() else ""
    names = [t.name for t in subscriptions.topics(s, tenant_id)]
    listing = ", ".join(names) if names else "none yet"
    if not name and not join:
        left = subscriptions.unsubscribe(s, tenant_id, msisdn, None, now)
        return Handled("subscription", None, f"You left {', '.join(left)}." if left
                       else "You are not subscribed to any topic.")
    if not name:
        return Handled("subscription", None, f"Text SUB <topic> to subscribe. Topics: {listing}.")
    try:
        topic = subscriptions.get_topic(s, tenant_id, name)
    except CampaignError:
        return Handled("subscription", None, f"There is no topic {name}. Topics: {listing}.")
    if join:
        subscriptions.subscribe(s, topic, msisdn, now)
        return Handled("subscription", None,
                       f"You are subscribed to {topic.name}. Text UNSUB {topic.name} to stop.")
    left = subscriptions.unsubscribe(s, tenant_id, msisdn, topic, now)
    return Handled("subscription", None, f"You left {topic.name}." if left
                   else f"You were not subscribed to {topic.name}.")


def _configured(s: Session, tenant_id: str, word: str) -> bool:
    """Whether ``word`` is a keyword the tenant set up: a campaign's, or SUB/UNSUB with topics."""
    if word in SUB_WORDS or word in UNSUB_WORDS:
        return bool(subscriptions.topics(s, tenant_id))
    return s.scalar(select(CampaignKeyword.id).where(CampaignKeyword.tenant_id == tenant_id,
                                                     CampaignKeyword.keyword == word)) is not None


# -- surveys -----------------------------------------------------------------------------------

def _answers_first(s: Session, x: SurveySession) -> bool:
    c = s.get(Campaign, x.campaign_id)
    return bool(c is not None and (c.config or {}).get("answers_first"))


def _open_session(s: Session, tenant_id: str, msisdn: str, number: str) -> SurveySession | None:
    rows = s.execute(select(SurveySession, Campaign.status).join(
        Campaign, Campaign.id == SurveySession.campaign_id).where(
        SurveySession.tenant_id == tenant_id, SurveySession.msisdn == msisdn,
        SurveySession.status == "open", Campaign.status.in_(OPEN_CAMPAIGN))
        .order_by(SurveySession.last_asked_at.desc(), SurveySession.id.desc())).all()
    sessions = [r[0] for r in rows]
    on_number = [x for x in sessions if x.number == number]
    return (on_number or sessions or [None])[0]


def _start_survey(s: Session, c: Campaign, event: dict[str, Any], now: datetime) -> Handled:
    questions = surveys.load_questions(s, c.id)
    x = s.scalar(select(SurveySession).where(SurveySession.campaign_id == c.id,
                                             SurveySession.msisdn == event["from"]))
    if x is not None and x.status == "completed":
        return Handled("survey_start", c.id, "You have already answered this survey. Thank you!")
    if x is None:
        x = SurveySession(campaign_id=c.id, tenant_id=c.tenant_id, msisdn=event["from"],
                          number=event["to"], current_key=questions[0].key, status="open",
                          started_at=now, last_asked_at=now)
        s.add(x)
    else:  # open or expired: carry on where it stopped, on this number
        x.status, x.number, x.last_asked_at, x.reminded_at = "open", event["to"], now, None
    s.flush()
    q = next(q for q in questions if q.key == x.current_key)
    intro = (c.template or "").strip()
    return Handled("survey_start", c.id, f"{intro} {q.prompt()}".strip())


def _answer(s: Session, x: SurveySession, event: dict[str, Any], now: datetime) -> Handled:
    questions = surveys.load_questions(s, x.campaign_id)
    q = next(q for q in questions if q.key == x.current_key)
    try:
        value, number = surveys.parse_answer(q, event["text"])
    except surveys.InvalidAnswer as exc:
        x.invalid_answers += 1
        return Handled("survey", x.campaign_id, f"{exc} {q.prompt()}")
    try:
        with s.begin_nested():
            s.add(SurveyAnswer(session_id=x.id, campaign_id=x.campaign_id, question_key=q.key,
                               value=value, number=number, source_message_id=event["message_id"],
                               answered_at=now))
    except IntegrityError:  # answered already (cannot normally happen: the session moved on)
        pass
    nxt = surveys.next_question(questions, q, value)
    if nxt is None:
        x.status, x.current_key, x.completed_at = "completed", None, now
        c = s.get(Campaign, x.campaign_id)
        return Handled("survey", x.campaign_id, str((c.config or {}).get("thanks") or THANKS))
    x.current_key, x.last_asked_at, x.reminded_at = nxt.key, now, None
    return Handled("survey", x.campaign_id, nxt.prompt())


# -- the rest ----------------------------------------------------------------------------------

def _recent_campaign(s: Session, tenant_id: str, msisdn: str, now: datetime) -> str | None:
    row = s.execute(select(CampaignRecipient.campaign_id).join(
        Campaign, Campaign.id == CampaignRecipient.campaign_id).where(
        CampaignRecipient.msisdn == msisdn, CampaignRecipient.state == "queued",
        CampaignRecipient.decided_at >= now - REPLY_WINDOW, Campaign.tenant_id == tenant_id)
        .order_by(CampaignRecipient.decided_at.desc()).limit(1)).first()
    return row[0] if row else None


def _unknown_reply(s: Session, tenant_id: str, word: str) -> str:
    policy = policy_for(s, tenant_id, 50.0)
    if policy.unknown_reply:
        return policy.unknown_reply
    words = list(s.scalars(select(CampaignKeyword.keyword).join(
        Campaign, Campaign.id == CampaignKeyword.campaign_id).where(
        CampaignKeyword.tenant_id == tenant_id, Campaign.status.in_(OPEN_CAMPAIGN))
        .order_by(CampaignKeyword.keyword).limit(8)))
    if subscriptions.topics(s, tenant_id):
        words.append("SUB <topic>")
    shown = f'"{word[:20]}"' if word else "that"
    hint = f" Text one of: {', '.join(words)}." if words else ""
    return f"Sorry, we did not recognise {shown}.{hint} Text HELP for help."
