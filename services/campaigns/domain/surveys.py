"""Surveys: a sequence of questions with validated answers and forward branching.

Definition (the ``questions`` of a survey campaign's config)::

    {"key": "q1", "text": "How was your visit?", "type": "choice",
     "choices": ["Great", "OK", "Bad"], "branches": {"Bad": "q3"}}
    {"key": "q2", "text": "How many visits a month?", "type": "number", "min": 0, "max": 60}
    {"key": "q3", "text": "What should we improve?", "type": "text", "next": "end"}

A question goes on to ``branches[answer]``, else its ``next``, else the following question;
"end" finishes. Branches only jump forward, so a session always ends. A choice is answered by
its number or its text; a number within the bounds; text by anything up to 1000 characters.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from services.core import csv_export
from services.core.db.campaigns_models import Campaign, SurveyAnswer, SurveyQuestion, SurveySession
from services.core.processor import Out

from .events import outbound
from .policy import zone
from .settings import policy_for

KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
TYPES = ("choice", "number", "text")
END = "end"
MAX_QUESTIONS = 50
MAX_CHOICES = 20
TEXT_ANSWER_MAX = 1000
NUMBER_RE = re.compile(r"^[+-]?[0-9]+(?:[.,][0-9]+)?$")


class SurveyError(ValueError):
    """A survey definition that cannot run, with where and why."""


@dataclass(frozen=True)
class Question:
    key: str
    position: int
    text: str
    kind: str
    choices: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None
    branches: dict[str, str] = field(default_factory=dict)
    next_key: str | None = None

    @classmethod
    def of(cls, row: SurveyQuestion) -> Question:
        return cls(row.key, row.position, row.text, row.kind, tuple(row.choices or ()),
                   row.min_value, row.max_value, dict(row.branches or {}), row.next_key)

    def prompt(self) -> str:
        if self.kind == "choice":
            options = " ".join(f"{i}) {c}" for i, c in enumerate(self.choices, 1))
            return f"{self.text} Reply {options}"
        return self.text


def define(raw: Any) -> list[Question]:
    """Validate a survey's questions; raises SurveyError naming the question and the problem."""
    if not isinstance(raw, list) or not raw:
        raise SurveyError("a survey needs a non-empty list of questions")
    if len(raw) > MAX_QUESTIONS:
        raise SurveyError(f"at most {MAX_QUESTIONS} questions")
    out: list[Question] = []
    keys: dict[str, int] = {}
    for i, q in enumerate(raw):
        where = f"question {i + 1}"
        if not isinstance(q, dict):
            raise SurveyError(f"{where}: expected an object")
        key = str(q.get("key") or f"q{i + 1}")
        if not KEY_RE.match(key) or key == END:
            raise SurveyError(f"{where}: key {key!r} must be 1-32 letters, digits, '_' or '-'")
        if key in keys:
            raise SurveyError(f"{where}: key {key!r} is used twice")
        keys[key] = i
        text = str(q.get("text") or "").strip()
        if not text:
            raise SurveyError(f"{where} ({key}): no text")
        kind = q.get("type", "text")
        if kind not in TYPES:
            raise SurveyError(f"{where} ({key}): type {kind!r} is not one of {', '.join(TYPES)}")
        choices: tuple[str, ...] = ()
        if kind == "choice":
            choices = tuple(str(c).strip() for c in q.get("choices") or [])
            if not 2 <= len(choices) <= MAX_CHOICES or any(not c for c in choices):
                raise SurveyError(f"{where} ({key}): a choice question needs 2 to {MAX_CHOICES} "
                                  "non-empty choices")
            if len({c.lower() for c in choices}) != len(choices):
                raise SurveyError(f"{where} ({key}): choices repeat")
        lo, hi = q.get("min"), q.get("max")
        if kind == "number":
            for name, v in (("min", lo), ("max", hi)):
                if v is not None and not isinstance(v, int | float):
                    raise SurveyError(f"{where} ({key}): {name} must be a number")
            if lo is not None and hi is not None and lo > hi:
                raise SurveyError(f"{where} ({key}): min is above max")
        branches = q.get("branches") or {}
        if not isinstance(branches, dict):
            raise SurveyError(f"{where} ({key}): branches must map answers to question keys")
        if branches and kind != "choice":
            raise SurveyError(f"{where} ({key}): only choice questions branch")
        norm_branches: dict[str, str] = {}
        for answer, target in branches.items():
            match = [c for c in choices if c.lower() == str(answer).strip().lower()]
            if not match:
                raise SurveyError(f"{where} ({key}): branch on {answer!r}, which is not a choice")
            norm_branches[match[0]] = str(target)
        nxt = q.get("next")
        out.append(Question(key, i, text, kind, choices,
                            float(lo) if lo is not None else None,
                            float(hi) if hi is not None else None, norm_branches,
                            str(nxt) if nxt is not None else None))
    for q in out:
        for target in [*q.branches.values(), *([q.next_key] if q.next_key else [])]:
            if target == END:
                continue
            if target not in keys:
                raise SurveyError(f"question {q.key}: goes to {target!r}, which is no question")
            if keys[target] <= q.position:
                raise SurveyError(f"question {q.key}: goes back to {target!r}; branches only "
                                  "jump forward")
    return out


def _norm(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).strip()
    return " ".join(t.split()).strip(".!。！ ").lower()


class InvalidAnswer(ValueError):
    """The answer does not fit the question; the message tells the contact what would."""


def parse_answer(q: Question, text: str) -> tuple[str, float | None]:
    """(value stored, number) or InvalidAnswer with a reply for the contact."""
    t = _norm(text)
    if q.kind == "choice":
        if t.isdigit() and 1 <= int(t) <= len(q.choices):
            return q.choices[int(t) - 1], None
        for c in q.choices:
            if _norm(c) == t:
                return c, None
        raise InvalidAnswer(f"Please answer with a number from 1 to {len(q.choices)}.")
    if q.kind == "number":
        raw = t.replace(" ", "")
        if not NUMBER_RE.match(raw):
            raise InvalidAnswer("Please answer with a number.")
        n = float(raw.replace(",", "."))
        if (q.min_value is not None and n < q.min_value) or (q.max_value is not None and n > q.max_value):
            lo = _fmt(q.min_value) if q.min_value is not None else "any"
            hi = _fmt(q.max_value) if q.max_value is not None else "any"
            raise InvalidAnswer(f"Please answer with a number from {lo} to {hi}.")
        return _fmt(n), n
    value = " ".join(unicodedata.normalize("NFKC", text).split())
    if not value:
        raise InvalidAnswer("Please reply with your answer.")
    return value[:TEXT_ANSWER_MAX], None


def _fmt(n: float) -> str:
    return str(int(n)) if n == int(n) else str(n)


def next_question(questions: list[Question], q: Question, value: str) -> Question | None:
    target = q.branches.get(value) or q.next_key
    if target == END:
        return None
    if target:
        return next(x for x in questions if x.key == target)
    later = [x for x in questions if x.position > q.position]
    return min(later, key=lambda x: x.position) if later else None


# -- storage -----------------------------------------------------------------------------------

def store_questions(s: Session, campaign_id: str, questions: list[Question]) -> None:
    for q in questions:
        s.add(SurveyQuestion(campaign_id=campaign_id, key=q.key, position=q.position, text=q.text,
                             kind=q.kind, choices=list(q.choices), min_value=q.min_value,
                             max_value=q.max_value, branches=q.branches, next_key=q.next_key))


def load_questions(s: Session, campaign_id: str) -> list[Question]:
    return [Question.of(r) for r in s.scalars(select(SurveyQuestion).where(
        SurveyQuestion.campaign_id == campaign_id).order_by(SurveyQuestion.position))]


def results(s: Session, campaign_id: str) -> dict[str, Any]:
    """Per question: choice counts, number statistics, or the latest text answers."""
    questions = load_questions(s, campaign_id)
    sessions = dict(s.execute(select(SurveySession.status, func.count()).where(
        SurveySession.campaign_id == campaign_id).group_by(SurveySession.status)).all())
    out: dict[str, Any] = {"campaign_id": campaign_id, "sessions": {
        "started": sum(sessions.values()), "completed": sessions.get("completed", 0),
        "open": sessions.get("open", 0), "expired": sessions.get("expired", 0)}, "questions": []}
    for q in questions:
        base = select(SurveyAnswer).where(SurveyAnswer.campaign_id == campaign_id,
                                          SurveyAnswer.question_key == q.key)
        item: dict[str, Any] = {"key": q.key, "text": q.text, "type": q.kind}
        if q.kind == "choice":
            counts = dict(s.execute(select(SurveyAnswer.value, func.count()).where(
                SurveyAnswer.campaign_id == campaign_id, SurveyAnswer.question_key == q.key)
                .group_by(SurveyAnswer.value)).all())
            item["counts"] = {c: counts.get(c, 0) for c in q.choices}
            item["answers"] = sum(item["counts"].values())
        elif q.kind == "number":
            n, lo, hi, avg = s.execute(select(
                func.count(SurveyAnswer.number), func.min(SurveyAnswer.number),
                func.max(SurveyAnswer.number), func.avg(SurveyAnswer.number)).where(
                SurveyAnswer.campaign_id == campaign_id, SurveyAnswer.question_key == q.key)).one()
            item.update(answers=n, min=lo, max=hi, mean=round(avg, 3) if avg is not None else None)
        else:
            latest = s.scalars(base.order_by(SurveyAnswer.id.desc()).limit(20)).all()
            item["answers"] = s.scalar(select(func.count()).select_from(base.subquery()))
            item["latest"] = [a.value for a in latest]
        out["questions"].append(item)
    return out


def export_csv(s: Session, campaign_id: str, chunk: int = 500) -> Iterator[str]:
    """One row per session (number, status, times, one column per question), read in chunks.
    Answers are the contacts' own words: cells a spreadsheet would evaluate are written as text."""
    questions = load_questions(s, campaign_id)
    buf = io.StringIO()
    w = csv_export.writer(buf)

    def take() -> str:
        v = buf.getvalue()
        buf.seek(0)
        buf.truncate()
        return v

    w.writerow(["msisdn", "status", "started_at", "completed_at", *[q.key for q in questions]])
    yield take()
    after = 0
    while True:
        sessions = list(s.scalars(select(SurveySession).where(
            SurveySession.campaign_id == campaign_id, SurveySession.id > after)
            .order_by(SurveySession.id).limit(chunk)))
        if not sessions:
            return
        answers: dict[int, dict[str, str]] = {}
        for a in s.scalars(select(SurveyAnswer).where(
                SurveyAnswer.session_id.in_([x.id for x in sessions]))):
            answers.setdefault(a.session_id, {})[a.question_key] = a.value
        for x in sessions:
            got = answers.get(x.id, {})
            w.writerow([x.msisdn, x.status, _iso(x.started_at), _iso(x.completed_at),
                        *[got.get(q.key, "") for q in questions]])
        yield take()
        after = sessions[-1].id


def _iso(ts) -> str:
    return ts.isoformat() if ts is not None else ""


# -- reminders and expiry ------------------------------------------------------------------------

DEFAULT_EXPIRE_S = 3 * 24 * 3600


def reminders_due(s: Session, now: datetime, limit: int = 200) -> list[tuple[int, Out]]:
    """(session id, reminder event) for open sessions silent longer than their survey's
    ``reminder_after_s``; one reminder per question asked. Outside the tenant's quiet hours."""
    out: list[tuple[int, Out]] = []
    for c in s.scalars(select(Campaign).where(Campaign.kind == "survey",
                                              Campaign.status.in_(("running", "completed", "active")))):
        after = (c.config or {}).get("reminder_after_s")
        if not after:
            continue
        policy = policy_for(s, c.tenant_id, 50.0)
        if policy.quiet is not None and policy.quiet.ends_after(now, zone(policy.timezone)):
            continue
        questions = {q.key: q for q in load_questions(s, c.id)}
        for x in s.scalars(select(SurveySession).where(
                SurveySession.campaign_id == c.id, SurveySession.status == "open",
                SurveySession.reminded_at.is_(None),
                SurveySession.last_asked_at <= now - timedelta(seconds=float(after)))
                .order_by(SurveySession.id).limit(limit - len(out))):
            q = questions.get(x.current_key or "")
            if q is None:
                continue
            text = f"{(c.config or {}).get('reminder_text') or 'Reminder:'} {q.prompt()}"
            rid = f"campaign:{c.id}:remind:{x.id}:{q.key}"
            out.append((x.id, outbound(c.tenant_id, rid, x.msisdn, text[:1600], category="marketing",
                                       campaign_id=c.id, sender=x.number or c.sender,
                                       kind="survey_reminder")))
        if len(out) >= limit:
            break
    return out


def mark_reminded(s: Session, session_ids: list[int], now: datetime) -> None:
    if session_ids:
        s.execute(update(SurveySession).where(SurveySession.id.in_(session_ids),
                                              SurveySession.reminded_at.is_(None))
                  .values(reminded_at=now))


def expire(s: Session, now: datetime) -> int:
    n = 0
    for c in s.scalars(select(Campaign).where(Campaign.kind == "survey",
                                              Campaign.status.not_in(("draft", "cancelled")))):
        after = float((c.config or {}).get("expire_after_s") or DEFAULT_EXPIRE_S)
        res = s.execute(update(SurveySession).where(
            SurveySession.campaign_id == c.id, SurveySession.status == "open",
            SurveySession.last_asked_at <= now - timedelta(seconds=after)).values(status="expired"))
        n += res.rowcount or 0
    return n
