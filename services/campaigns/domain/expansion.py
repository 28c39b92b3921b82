"""Turning a running campaign into messages, one chunk at a time, without Kafka.

A step is ``prepare`` (read the next chunk after the campaign's cursor, decide each member: send,
suppress with a reason, defer past quiet hours, or skip; build the sms.outbound events), then the
caller produces the events and waits for the broker's acknowledgement, then ``commit`` (in one
transaction: the recipient records, the frequency counters, the counts and the new cursor). A
crash between the two repeats that one chunk with the same request ids, which egress dedupes; a
crash after commit repeats nothing.

Only the worker holding a campaign's lease (renewed every step) works on it, and ``commit``
moves the cursor only from where ``prepare`` found it, so two workers never both advance it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.core.db.campaigns_models import (
    Campaign,
    CampaignRecipient,
    FrequencyCounter,
    Segment,
    Subscriber,
    SurveySession,
)
from services.core.db.models import Contact, OptOut
from services.core.messages import message_id_for
from services.core.processor import Out

from . import surveys, templates
from .audience import Chunk, Member, next_chunk
from .campaigns import aware
from .events import campaign_request_id, outbound
from .greetings import GreetingRule
from .policy import KIND_POLICIES, period_key, with_hint, zone
from .settings import Policy, policy_for

log = logging.getLogger(__name__)

RUNNABLE_BATCH = 50


@dataclass
class Outcome:
    state: str  # queued | suppressed | deferred | skip
    text: str | None = None
    reason: str | None = None
    due_at: datetime | None = None
    occurrence: str = ""
    period: str | None = None  # frequency-cap bucket this send counts against


@dataclass
class Step:
    campaign_id: str
    tenant_id: str
    phase: str  # audience | deferred | idle
    rate: float
    old_cursor: int = 0
    new_cursor: int = 0
    exhausted: bool = False
    outs: list[Out] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # new recipient records
    updates: list[dict[str, Any]] = field(default_factory=list)  # deferred records settled
    frequency: Counter = field(default_factory=Counter)  # (msisdn, period) -> sends
    queued: int = 0
    suppressed: int = 0
    decided: int = 0


class Context:
    """Everything a decision about one member needs, loaded once per chunk."""

    def __init__(self, c: Campaign, policy: Policy, s: Session, members: list[Member], now: datetime):
        self.c, self.policy, self.now = c, policy, now
        self.kind = KIND_POLICIES[c.kind]
        self.template = templates.parse(c.template) if c.template else None
        self.greeting = GreetingRule.from_config(c.config or {}) if c.kind == "greeting" else None
        self.sender = c.sender or policy.default_sender
        self.questions = surveys.load_questions(s, c.id) if c.kind == "survey" else []
        numbers = [m.msisdn for m in members]
        self.opted_out = set(s.scalars(select(OptOut.msisdn).where(
            OptOut.tenant_id == c.tenant_id, OptOut.msisdn.in_(numbers),
            OptOut.opted_out.is_(True)))) if numbers else set()
        self.capped = bool(self.kind.frequency_cap and policy.frequency_cap > 0)
        self.counts: dict[tuple[str, str], int] = {}
        if self.capped and numbers:
            periods = {period_key(policy.frequency_period, now, self.tz(m)) for m in members}
            for row in s.scalars(select(FrequencyCounter).where(
                    FrequencyCounter.tenant_id == c.tenant_id, FrequencyCounter.msisdn.in_(numbers),
                    FrequencyCounter.period.in_(periods))):
                self.counts[(row.msisdn, row.period)] = row.count
        self.pending: Counter = Counter()

    def tz(self, m: Member):
        return zone(m.contact.timezone if m.contact is not None else None, self.policy.timezone)

    def values(self, m: Member) -> dict[str, Any]:
        if m.contact is not None:
            return templates.contact_values(m.contact)
        return {"msisdn": m.msisdn, "phone": m.msisdn}

    def text(self, m: Member) -> str:
        body = self.template.render(self.values(m)) if self.template else ""
        if self.c.kind == "survey":
            first = self.questions[0].prompt()
            body = f"{body.strip()} {first}" if body.strip() else first
        if self.kind.optout_hint:
            body = with_hint(body, self.policy.optout_hint)
        if self.c.kind == "subscription":
            topic = (self.c.config or {}).get("topic_name")
            if topic:
                stop = f"Text UNSUB {topic} to stop."
                if len(body) + len(stop) < templates.TEXT_MAX:
                    body = f"{body.rstrip()}\n{stop}"
        if len(body) > templates.TEXT_MAX:
            raise ValueError(f"text is {len(body)} characters; at most {templates.TEXT_MAX}")
        if not body.strip():
            raise ValueError("text is empty")
        return body

    def decide(self, m: Member, *, occurrence: str = "", deferred: bool = False) -> Outcome:
        tz = self.tz(m)
        if self.greeting is not None and not deferred:
            fields = (m.contact.fields or {}) if m.contact is not None else {}
            year = self.greeting.due(fields, self.now, tz)
            if year is None:
                return Outcome("skip")
            occurrence = str(year)
        if m.msisdn in self.opted_out:
            return Outcome("suppressed", reason="opted out", occurrence=occurrence)
        try:
            text = self.text(m)
        except templates.MissingField as exc:
            return Outcome("suppressed", reason=f"no value for field {exc.name}", occurrence=occurrence)
        except ValueError as exc:
            return Outcome("suppressed", reason=str(exc)[:200], occurrence=occurrence)
        if self.kind.quiet_hours and self.policy.quiet is not None:
            ends = self.policy.quiet.ends_after(self.now, tz)
            if ends is not None:
                if self.greeting is not None:
                    return Outcome("skip")  # a later pass the same local day greets them
                return Outcome("deferred", reason="quiet hours", due_at=ends, occurrence=occurrence)
        period = None
        if self.capped:
            period = period_key(self.policy.frequency_period, self.now, tz)
            key = (m.msisdn, period)
            if self.counts.get(key, 0) + self.pending[key] >= self.policy.frequency_cap:
                return Outcome("suppressed", reason="frequency cap", occurrence=occurrence)
            self.pending[key] += 1
        return Outcome("queued", text=text, occurrence=occurrence, period=period)


class Expander:
    def __init__(self, sessions: Callable[[], Any], owner: str, *, lease_s: float = 15.0,
                 default_rate: float = 50.0, greeting_check_s: float = 900.0) -> None:
        self.sessions = sessions  # () -> context manager yielding a Session in a transaction
        self.owner = owner
        self.lease = timedelta(seconds=lease_s)
        self.default_rate = default_rate
        self.greeting_check = greeting_check_s

    # -- which campaigns -------------------------------------------------------------------------
    def promote_due(self, now: datetime) -> int:
        """Scheduled campaigns whose time has come start running."""
        due = (Campaign.status == "scheduled",
               or_(Campaign.scheduled_at.is_(None), Campaign.scheduled_at <= now))
        with self.sessions() as s:
            # Look before writing: an UPDATE that changes nothing still takes SQLite's write lock.
            if s.scalar(select(Campaign.id).where(*due).limit(1)) is None:
                return 0
            res = s.execute(update(Campaign).where(*due)
                            .values(status="running", started_at=now, updated_at=now))
            return res.rowcount or 0

    def runnable(self, now: datetime) -> list[str]:
        with self.sessions() as s:
            return list(s.scalars(select(Campaign.id).where(
                Campaign.status == "running",
                or_(Campaign.next_run_at.is_(None), Campaign.next_run_at <= now),
                or_(Campaign.lease_owner.is_(None), Campaign.lease_owner == self.owner,
                    Campaign.lease_until < now))
                .order_by(Campaign.updated_at).limit(RUNNABLE_BATCH)))

    def _claim(self, s: Session, campaign_id: str, now: datetime) -> bool:
        res = s.execute(update(Campaign).where(
            Campaign.id == campaign_id, Campaign.status == "running",
            or_(Campaign.lease_owner.is_(None), Campaign.lease_owner == self.owner,
                Campaign.lease_until < now))
            .values(lease_owner=self.owner, lease_until=now + self.lease))
        return (res.rowcount or 0) == 1

    def release(self) -> None:
        """On shutdown: hand every lease back so another worker resumes at once."""
        with self.sessions() as s:
            s.execute(update(Campaign).where(Campaign.lease_owner == self.owner)
                      .values(lease_owner=None, lease_until=None))

    # -- one step --------------------------------------------------------------------------------
    def prepare(self, campaign_id: str, now: datetime, limit: int) -> Step | None:
        with self.sessions() as s:
            if not self._claim(s, campaign_id, now):
                return None
            c = s.get(Campaign, campaign_id)
            policy = policy_for(s, c.tenant_id, self.default_rate)
            rate = float((c.config or {}).get("rate_per_second") or policy.rate_per_second)
            if not c.audience_done:
                return self._audience_step(s, c, policy, rate, now, limit)
            return self._deferred_step(s, c, policy, rate, now, limit)

    def _audience_step(self, s: Session, c: Campaign, policy: Policy, rate: float, now: datetime,
                       limit: int) -> Step:
        segment = None
        if c.audience_kind == "segment":
            seg = s.get(Segment, c.audience_ref)
            if seg is None:  # never guess an audience: stop, and say why
                c.status, c.error, c.finished_at = "failed", "its segment is gone", now
                return Step(c.id, c.tenant_id, "idle", rate, old_cursor=c.cursor,
                            new_cursor=c.cursor)
            segment = seg.filter
        chunk: Chunk = next_chunk(s, c.tenant_id, c.audience_kind, c.audience_ref, segment,
                                  c.cursor, limit)
        step = Step(c.id, c.tenant_id, "audience", rate, old_cursor=c.cursor,
                    new_cursor=chunk.cursor, exhausted=chunk.exhausted)
        if not chunk.members:
            return step
        ctx = Context(c, policy, s, chunk.members, now)
        done: set[tuple[int, str]] = set()
        if ctx.greeting is not None:
            year = str(now.astimezone(UTC).year)
            years = {year, str(int(year) - 1), str(int(year) + 1)}  # local years around UTC's
            done = set(s.execute(select(CampaignRecipient.member_id, CampaignRecipient.occurrence)
                                 .where(CampaignRecipient.campaign_id == c.id,
                                        CampaignRecipient.member_id.in_([m.key for m in chunk.members]),
                                        CampaignRecipient.occurrence.in_(years))).all())
        new_sessions: list[Member] = []
        for m in chunk.members:
            o = ctx.decide(m)
            if o.state == "skip" or (m.key, o.occurrence) in done:
                continue
            self._record(step, ctx, m, o, now)
            if o.state == "queued" and c.kind == "survey":
                new_sessions.append(m)
        if new_sessions:
            self._open_sessions(s, c, ctx, new_sessions, now)
        return step

    def _record(self, step: Step, ctx: Context, m: Member, o: Outcome, now: datetime,
                row_id: int | None = None) -> None:
        c = ctx.c
        step.decided += 1
        rec: dict[str, Any] = {"state": o.state, "reason": o.reason, "due_at": o.due_at,
                               "message_id": None, "decided_at": now}
        if o.state == "queued":
            rid = campaign_request_id(c.id, m.key, o.occurrence)
            rec["message_id"] = message_id_for(c.tenant_id, rid)
            step.outs.append(outbound(c.tenant_id, rid, m.msisdn, o.text, category=ctx.kind.category,
                                      campaign_id=c.id, sender=ctx.sender, kind=c.kind))
            step.queued += 1
            if o.period:
                step.frequency[(m.msisdn, o.period)] += 1
        elif o.state == "suppressed":
            step.suppressed += 1
        if row_id is None:
            rec.update(campaign_id=c.id, member_id=m.key, msisdn=m.msisdn, occurrence=o.occurrence)
            step.rows.append(rec)
        else:
            rec["id"] = row_id
            step.updates.append(rec)

    def _open_sessions(self, s: Session, c: Campaign, ctx: Context, members: list[Member],
                       now: datetime) -> None:
        """Survey sessions exist before their first question leaves, so a quick answer finds
        its session. Committed with the lease renewal; a repeated chunk finds them there."""
        have = set(s.scalars(select(SurveySession.msisdn).where(
            SurveySession.campaign_id == c.id, SurveySession.msisdn.in_([m.msisdn for m in members]))))
        first = ctx.questions[0].key
        for m in members:
            if m.msisdn in have:
                continue
            s.add(SurveySession(campaign_id=c.id, tenant_id=c.tenant_id, msisdn=m.msisdn,
                                number=ctx.sender, current_key=first, status="open",
                                started_at=now, last_asked_at=now))
        s.flush()

    def _deferred_step(self, s: Session, c: Campaign, policy: Policy, rate: float, now: datetime,
                       limit: int) -> Step:
        step = Step(c.id, c.tenant_id, "deferred", rate, old_cursor=c.cursor, new_cursor=c.cursor)
        rows = list(s.scalars(select(CampaignRecipient).where(
            CampaignRecipient.campaign_id == c.id, CampaignRecipient.state == "deferred",
            CampaignRecipient.due_at <= now).order_by(CampaignRecipient.due_at).limit(limit)))
        if not rows:
            step.phase = "idle"
            return step
        members = self._members_of(s, c, rows)
        ctx = Context(c, policy, s, list(members.values()), now)
        sessions: list[Member] = []
        for r in rows:
            m = members.get(r.id) or Member(r.member_id, r.msisdn, None)
            o = ctx.decide(m, occurrence=r.occurrence, deferred=True)
            if o.state == "skip":
                continue
            self._record(step, ctx, m, o, now, row_id=r.id)
            if o.state == "queued" and c.kind == "survey":
                sessions.append(m)
        if sessions:
            self._open_sessions(s, c, ctx, sessions, now)
        return step

    def _members_of(self, s: Session, c: Campaign, rows: list[CampaignRecipient]) -> dict[int, Member]:
        ids = [r.member_id for r in rows]
        if c.audience_kind == "topic":
            subs = {x.id: x.msisdn for x in s.scalars(select(Subscriber).where(Subscriber.id.in_(ids)))}
            contacts = {x.msisdn: x for x in s.scalars(select(Contact).where(
                Contact.tenant_id == c.tenant_id, Contact.msisdn.in_(list(subs.values()))))}
            return {r.id: Member(r.member_id, r.msisdn, contacts.get(r.msisdn)) for r in rows}
        contacts = {x.id: x for x in s.scalars(select(Contact).where(Contact.id.in_(ids)))}
        return {r.id: Member(r.member_id, r.msisdn, contacts.get(r.member_id)) for r in rows}

    # -- commit ----------------------------------------------------------------------------------
    def commit(self, step: Step, now: datetime) -> bool:
        """Record the step's outcome once its messages are acknowledged. False if another worker
        took the campaign meanwhile (its messages were the same and are deduplicated)."""
        for attempt in range(3):
            try:
                with self.sessions() as s:
                    return self._commit(s, step, now)
            except IntegrityError:
                # Another campaign's worker created the same frequency counter at the same time.
                if attempt == 2:
                    raise
        return False

    def _commit(self, s: Session, step: Step, now: datetime) -> bool:
        values: dict[str, Any] = {"lease_until": now + self.lease, "updated_at": now}
        if step.phase == "audience":
            values.update(cursor=step.new_cursor,
                          expanded=Campaign.expanded + step.decided,
                          queued=Campaign.queued + step.queued,
                          suppressed=Campaign.suppressed + step.suppressed)
        else:
            values.update(queued=Campaign.queued + step.queued,
                          suppressed=Campaign.suppressed + step.suppressed)
        res = s.execute(update(Campaign).where(
            Campaign.id == step.campaign_id, Campaign.lease_owner == self.owner,
            Campaign.cursor == step.old_cursor).values(**values))
        if (res.rowcount or 0) != 1:
            s.rollback()
            log.warning("campaign %s: lease lost before commit; another worker continues",
                        step.campaign_id)
            return False
        if step.rows:
            s.execute(insert(CampaignRecipient), step.rows)
        for u in step.updates:
            s.execute(update(CampaignRecipient).where(CampaignRecipient.id == u["id"]).values(
                state=u["state"], reason=u["reason"], due_at=u["due_at"],
                message_id=u["message_id"], decided_at=u["decided_at"]))
        if step.frequency:
            self._count(s, step)
        c = s.get(Campaign, step.campaign_id)
        if c.status != "running":  # paused or cancelled meanwhile: the chunk is recorded, no more
            return True
        if step.phase == "audience" and step.exhausted:
            self._audience_finished(s, c, now)
        elif step.phase == "idle":
            self._maybe_complete(s, c, now)
        return True

    def _count(self, s: Session, step: Step) -> None:
        keys = list(step.frequency)
        have = {(r.msisdn, r.period): r for r in s.scalars(select(FrequencyCounter).where(
            FrequencyCounter.tenant_id == step.tenant_id,
            FrequencyCounter.msisdn.in_({k[0] for k in keys}),
            FrequencyCounter.period.in_({k[1] for k in keys})))}
        for key, n in step.frequency.items():
            row = have.get(key)
            if row is None:
                s.add(FrequencyCounter(tenant_id=step.tenant_id, msisdn=key[0], period=key[1], count=n))
            else:
                row.count = row.count + n
        s.flush()

    def _audience_finished(self, s: Session, c: Campaign, now: datetime) -> None:
        if c.kind == "greeting":
            # Recurring: another pass over the audience after the check interval.
            every = float((c.config or {}).get("check_every_s") or self.greeting_check)
            c.passes += 1
            c.cursor = 0
            c.next_run_at = now + timedelta(seconds=every)
            return
        c.audience_done = True
        self._maybe_complete(s, c, now)

    def _maybe_complete(self, s: Session, c: Campaign, now: datetime) -> None:
        due = s.scalar(select(func.min(CampaignRecipient.due_at)).where(
            CampaignRecipient.campaign_id == c.id, CampaignRecipient.state == "deferred"))
        if due is not None:
            c.next_run_at = max(aware(due), now)  # sleep until quiet hours end
            return
        c.status = "completed"
        c.finished_at = now
        c.next_run_at = None
        c.lease_owner = None
        c.lease_until = None

