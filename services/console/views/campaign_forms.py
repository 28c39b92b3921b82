"""The campaign form as the admin API's JSON body (the same body POST /v1/campaigns takes), and
the domain's refusals put back on the field they are about, in the user's language."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from multidict import MultiDictProxy

from .. import i18n

_ = i18n.gettext
MAX_QUESTIONS = 50


class FormError(ValueError):
    """A value the form itself cannot read (not a number, not a date)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _text(form: MultiDictProxy, name: str) -> str:
    return str(form.get(name, "")).strip()


def _number(form: MultiDictProxy, name: str, what: str, scale: float = 1) -> float | None:
    raw = _text(form, name).replace(",", ".")
    if not raw:
        return None
    try:
        return float(raw) * scale
    except ValueError:
        raise FormError(name, _("%(what)s must be a number.", what=what)) from None


def local_schedule(raw: str) -> str | None:
    """A datetime-local value, read in the tenant's time zone, as ISO 8601 with its offset."""
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        raise FormError("schedule_at", _("Give the date and time as YYYY-MM-DD HH:MM.")) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=i18n.zone())
    return at.isoformat()


def question_indexes(form: MultiDictProxy) -> list[int]:
    found = set()
    for key in form:
        m = re.match(r"^q(\d+)_text$", key)
        if m and int(m.group(1)) < MAX_QUESTIONS:
            found.add(int(m.group(1)))
    return sorted(found)


def questions_of(form: MultiDictProxy) -> list[dict[str, Any]]:
    """The survey builder's blocks (qN_text, qN_type, qN_choices one per line, qN_min, qN_max,
    qN_branches as "choice -> key" lines, qN_next); blocks left empty are skipped."""
    out: list[dict[str, Any]] = []
    for i in question_indexes(form):
        text = _text(form, f"q{i}_text")
        if not text:
            continue
        q: dict[str, Any] = {"key": _text(form, f"q{i}_key") or f"q{len(out) + 1}", "text": text,
                             "type": _text(form, f"q{i}_type") or "text"}
        if q["type"] == "choice":
            q["choices"] = [c.strip() for c in str(form.get(f"q{i}_choices", "")).splitlines()
                            if c.strip()]
            branches = {}
            for line in str(form.get(f"q{i}_branches", "")).splitlines():
                if "->" in line:
                    answer, target = line.split("->", 1)
                    if answer.strip() and target.strip():
                        branches[answer.strip()] = target.strip()
                elif line.strip():
                    raise FormError(f"q{i}_branches", _("Write each rule as: answer -> question key."))
            if branches:
                q["branches"] = branches
        if q["type"] == "number":
            for bound in ("min", "max"):
                v = _number(form, f"q{i}_{bound}", _("The lowest or highest answer"))
                if v is not None:
                    q[bound] = int(v) if v == int(v) else v
        nxt = _text(form, f"q{i}_next")
        if nxt:
            q["next"] = nxt
        out.append(q)
    return out


def body_of(form: MultiDictProxy, kind: str) -> dict[str, Any]:
    """The admin API body for the form of one kind; only the fields that kind has."""
    body: dict[str, Any] = {"kind": kind, "name": _text(form, "name"),
                            "start": _text(form, "start") != "draft"}
    sender = _text(form, "sender")
    if sender:
        body["sender"] = sender
    config: dict[str, Any] = {}
    rate = _number(form, "rate_per_second", _("The sending speed"))
    if rate is not None:
        config["rate_per_second"] = rate
    if kind in ("notification", "greeting", "promotion", "survey", "subscription"):
        body["schedule_at"] = local_schedule(_text(form, "schedule_at"))
        who = _text(form, "audience") or ("topic" if kind == "subscription" else "all")
        if who == "all":
            body["audience"] = "all"
        elif who in ("list", "segment", "topic"):
            body["audience"] = {who: _text(form, f"audience_{who}")}
        elif who == "none" and kind == "survey":
            body["audience"] = None
    template = str(form.get("template", "")).strip()
    if template or kind in ("notification", "greeting", "promotion", "subscription"):
        body["template"] = template
    if kind == "greeting":
        if _text(form, "greeting_on") == "date":
            config["date"] = _text(form, "date")
        else:
            config["date_field"] = _text(form, "date_field")
        if _text(form, "send_at"):
            config["send_at"] = _text(form, "send_at")
    elif kind == "survey":
        config["questions"] = questions_of(form)
        if _text(form, "keyword"):
            config["keyword"] = _text(form, "keyword")
        for name, what in (("reminder_after_h", _("The reminder")), ("expire_after_h", _("The expiry"))):
            hours = _number(form, name, what, 3600)
            if hours is not None:
                config[name.replace("_h", "_s")] = hours
        if _text(form, "reminder_text"):
            config["reminder_text"] = _text(form, "reminder_text")
    elif kind == "inquiry":
        config["keyword"] = _text(form, "keyword")
        config["source"] = _text(form, "source") or "table"
        if config["source"] == "endpoint":
            config["endpoint"] = _text(form, "endpoint")
        else:
            config["reply"] = _text(form, "reply")
            if _text(form, "not_found"):
                config["not_found"] = _text(form, "not_found")
        if _text(form, "fallback"):
            config["fallback"] = _text(form, "fallback")
    elif kind == "on_demand":
        config["keyword"] = _text(form, "keyword")
        config["content"] = _text(form, "content")
    if config:
        body["config"] = config
    return body


# (pattern of the domain's reason, form field, message in the user's language or None to show
# the reason itself). The first match wins; the domain stays the one place that decides.
_RULES: list[tuple[str, str, str | None]] = [
    (r"^kind must be", "kind", "Choose what kind of campaign this is."),
    (r"^name must be", "name", "Give the campaign a name of 1 to 200 characters."),
    (r"^sender ", "sender",
     "The sender must be a phone number, a short code or a name of up to 11 letters and digits."),
    (r"^config\.rate_per_second", "rate_per_second",
     "The sending speed must be above 0 and at most 10,000 messages a second."),
    (r"^schedule_at .* is in the past", "schedule_at", "That time has passed. Leave it empty to send now."),
    (r"^schedule_at", "schedule_at", "Give the date and time as YYYY-MM-DD HH:MM."),
    (r"^no list named", "audience_list", "Choose one of your contact lists."),
    (r"^no segment named", "audience_segment", "Choose one of your segments."),
    (r"^no topic named", "audience_topic", "Choose one of your subscription topics."),
    (r"^a subscription campaign goes to a topic", "audience",
     "A subscription campaign goes to the subscribers of a topic: choose the topic."),
    (r"^audience", "audience", "Choose who receives the campaign."),
    (r"^a \w+ campaign answers a keyword", "audience", None),
    (r"^a \w+ campaign needs a template", "template", "Write the message text."),
    (r"^template", "template", None),
    (r"^config: a greeting needs", "greeting_on",
     "Choose the contact field that holds each person's date, or a fixed date."),
    (r"^config: date", "date", "Give the date as MM-DD, for example 01-01."),
    (r"^config: send_at", "send_at", "Give the time of day as HH:MM, for example 09:00."),
    (r"^config\.check_every_s", "form", None),
    (r"^config\.questions: a survey needs", "questions", "Write at least one question."),
    (r"^config\.questions", "questions", None),
    (r"^config\.reminder_after_s", "reminder_after_h", "The reminder must be a number of hours."),
    (r"^config\.expire_after_s", "expire_after_h", "The expiry must be a number of hours."),
    (r"^a survey needs an audience or a config\.keyword", "keyword",
     "A survey needs an audience or a keyword that contacts text to start it."),
    (r"^(config\.keyword|keyword) .* is reserved", "keyword",
     "That word is reserved for opting out, help and subscriptions. Choose another keyword."),
    (r"^keyword \S+ is already used", "keyword",
     "Another campaign already answers this keyword. Choose another one or cancel that campaign."),
    (r"^keyword \S+ could never be reached", "keyword", None),
    (r"^config\.keyword", "keyword", "The keyword must be one word of 1 to 32 letters or digits."),
    (r"^config\.source", "source", "Choose where the answers come from."),
    (r"^config\.endpoint", "endpoint", "Choose one of your endpoints, or add one under Content and topics."),
    (r"^config\.reply", "reply", None),
    (r"^config\.content", "content", "Choose the content item to send."),
]


def error_field(reason: str) -> tuple[str, str]:
    """(form field, message) for a reason the campaigns domain gave."""
    for pattern, field, message in _RULES:
        if re.search(pattern, reason):
            return field, i18n.gettext(message) if message else reason
    return "form", reason


def question_error(reason: str, questions: list[dict[str, Any]]) -> int | None:
    """The position of the survey question a reason is about ("question 2: ..." or
    "question q3: ..."), to show the error on that block."""
    m = re.search(r"question (\d+)\b", reason)
    if m:
        return int(m.group(1)) - 1
    m = re.search(r"question ([A-Za-z0-9_-]+):", reason)
    if m:
        for i, q in enumerate(questions):
            if q.get("key") == m.group(1):
                return i
    return None


# Catalogue extraction: the messages above are translated where they are used.
def _mark(message: str) -> str:
    return message


_MESSAGES = [_mark(m) for _p, _f, m in _RULES if m]
