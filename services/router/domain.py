"""Routing an inbound text: which tenant it is for, what it asks, and the events that answer it.

No Kafka here: ``Router.route`` takes a decoded sms.inbound event and a database session and
returns the events to produce. Every id it derives comes from the inbound message id, so a
redelivered inbound yields the same events (same event ids, same reply request id) and the same
database state.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core import compliance_words, topics
from services.core.compliance_words import HELP, OPT_OUT, Phrase
from services.core.db.bridge_models import WebhookEndpoint
from services.core.db.models import Keyword, OptOut, SenderNumber, Tenant
from services.core.db.schemes import Brand
from services.core.ids import stable_uuid
from services.core.messages import message_id_for, parse_ts
from services.core.metrics import UNMATCHED
from services.core.processor import Out, Rejected
from services.core.schemas import EventInvalid, new_event, now_iso, schema_for_topic, validate

log = logging.getLogger(__name__)

CACHE_TTL_S = 5.0
TEXT_MAX = 1600  # the schemas' text limit

# Compliance words (opt-out, opt-in, help) every number honours before any tenant keyword are
# one table: services/core/compliance_words.py.

# Loyalty command words (the rule's own keyword, or the word after it).
BALANCE_WORDS = frozenset({"BAL", "BALANCE", "积分"})
GIFT_WORDS = frozenset({"GIFT", "GIFTS", "礼品"})

CODE_RE = re.compile(r"^[A-Z0-9]{4,32}$")
# What may stand between the groups of a printed code: spaces, any dash (NFKC has already made
# full-width ones ASCII), dots, underscores, slashes and middle dots.
CODE_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212\u30fc._/\u00b7\u30fb]+")

DEFAULT_STOP_REPLY = "You are unsubscribed and will get no more messages. Reply START to resume."
DEFAULT_START_REPLY = "You are subscribed again. Reply STOP to opt out."
CODE_HINT = ("We could not read a product code in your message. Please check the code on your "
             "card and send it again{example}.")
POINTS_HINT = "Text BAL for your points balance, GIFT for the gift list, or GIFT <number> to redeem."
UNMATCHED_REPLY = "{name}: we could not match your message. Reply HELP for help, STOP to opt out."
SHARED_UNMATCHED_REPLY = ("This number serves: {names}. Start your message with the keyword of "
                          "the one you mean. Text HELP <keyword> for help, STOP to opt out of all.")

# Derived ids: uuid5 of the inbound message id and what the id is for.
_NS = uuid.UUID("0f8a5c52-6d1e-4b7a-9e3c-2a41d7b9c615")


def derived_id(message_id: str, purpose: str) -> str:
    return stable_uuid(_NS, f"{message_id}\x1f{purpose}")


# -- text --------------------------------------------------------------------------------------

def _is_edge(ch: str) -> bool:
    """Characters stripped around a text or a word: spaces, punctuation (ASCII and CJK, e.g.
    。！，), symbols and invisible format characters such as zero-width spaces."""
    return ch.isspace() or unicodedata.category(ch)[0] in "PSZC"


def _strip_edges(s: str) -> str:
    i, j = 0, len(s)
    while i < j and _is_edge(s[i]):
        i += 1
    while j > i and _is_edge(s[j - 1]):
        j -= 1
    # A text of nothing but punctuation ("?") keeps it: "?" is a keyword.
    return s[i:j] or s.strip()


@dataclass(frozen=True)
class Text:
    """An inbound text as matching sees it."""

    normalised: str  # NFKC, edges stripped, single spaces, upper case
    words: tuple[str, ...]  # each word with its own edge punctuation stripped
    argument: str  # everything after the first word

    @property
    def keyword(self) -> str:
        return self.words[0] if self.words else ""

    @property
    def compact(self) -> str:
        """Spaces and punctuation removed: how a Chinese phrase is compared ("取消 订阅！")."""
        return "".join(c for c in self.normalised if not _is_edge(c))

    @property
    def code(self) -> str | None:
        """The text as a code a buyer typed from a card: groups joined (K7QM-4XPD-2H9A, k7qm
        4xpd 2h9a, full-width) when what is left is 4-32 ASCII letters and digits, else None."""
        c = CODE_SEPARATORS.sub("", self.normalised)
        return c if CODE_RE.match(c) else None


def normalise(text: str) -> Text:
    """NFKC (full-width ＳＴＯＰ == STOP), strip surrounding spaces and punctuation, collapse
    spaces, upper-case; the first word is the keyword and the rest its argument."""
    t = " ".join(_strip_edges(unicodedata.normalize("NFKC", text)).split()).upper()
    raw = t.split(" ", 1) if t else []
    words = tuple(w for w in (_strip_edges(x) for x in t.split()) if w)
    return Text(normalised=t, words=words, argument=raw[1] if len(raw) > 1 else "")


# -- cached lookups ----------------------------------------------------------------------------

@dataclass(frozen=True)
class TenantInfo:
    id: str
    name: str
    help_text: str
    stop_reply: str
    start_reply: str
    unmatched: str = "reply"  # what a text no rule matches gets: reply (help text) | inbox


@dataclass(frozen=True)
class Owner:
    """A tenant on a number, and whether the number is shared."""

    tenant: TenantInfo
    shared: bool


@dataclass(frozen=True)
class Rule:
    tenant_id: str
    number: str  # "*" or one number
    keyword: str  # "" for a pattern rule
    pattern: re.Pattern[str] | None
    action: str
    reply_text: str | None
    priority: int
    id: int

    def applies_to(self, number: str) -> bool:
        return self.number in ("*", number)

    def order(self) -> tuple[int, bool, int]:
        # Lower priority first; a rule for this very number before a "*" rule.
        return (self.priority, self.number == "*", self.id)


class Directory:
    """Tenants, numbers and keyword rules, cached in memory for ``ttl`` seconds so that routing
    one text is not several database round trips. Changes take up to ``ttl`` to apply."""

    def __init__(self, ttl: float = CACHE_TTL_S, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}

    def clear(self) -> None:
        self._cache.clear()

    def _cached(self, key: tuple[str, str], load: Callable[[], Any]) -> Any:
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = load()
        self._cache[key] = (now, value)
        return value

    def owners(self, s: Session, number: str) -> tuple[Owner, ...]:
        """Active tenants on ``number``, by tenant id."""
        def load() -> tuple[Owner, ...]:
            hooked = (select(WebhookEndpoint.id)
                      .where(WebhookEndpoint.tenant_id == Tenant.id,
                             WebhookEndpoint.active.is_(True)).exists())
            rows = s.execute(select(SenderNumber.shared, Tenant, hooked)
                             .join(Tenant, Tenant.id == SenderNumber.tenant_id)
                             .where(SenderNumber.number == number, Tenant.active.is_(True))
                             .order_by(Tenant.id)).all()
            return tuple(Owner(TenantInfo(t.id, t.name, t.help_text or "", t.stop_reply or "",
                                          t.start_reply or "",
                                          _unmatched(t.unmatched, bool(hook or t.webhook_url))),
                               bool(shared))
                         for shared, t, hook in rows)
        return self._cached(("owners", number), load)

    def rules(self, s: Session, tenant_id: str) -> tuple[Rule, ...]:
        """All of a tenant's keyword rules, in matching order."""
        def load() -> tuple[Rule, ...]:
            out = []
            for k in s.scalars(select(Keyword).where(Keyword.tenant_id == tenant_id)):
                try:
                    pattern = re.compile(k.pattern) if k.pattern else None
                except re.error as exc:
                    log.warning("tenant %s keyword rule %s: bad pattern skipped: %s", tenant_id,
                                k.id, exc)
                    continue
                out.append(Rule(k.tenant_id, k.number or "*", (k.keyword or "").upper(), pattern,
                                k.action, k.reply_text, k.priority, k.id))
            return tuple(sorted(out, key=Rule.order))
        return self._cached(("rules", tenant_id), load)

    def code_lengths(self, s: Session, tenant_id: str) -> frozenset[int]:
        """Lengths of the codes a tenant's scheme prints (random symbols and the check symbol),
        one per brand; empty for a tenant running no scheme."""
        def load() -> frozenset[int]:
            return frozenset(n + 1 for n in s.scalars(
                select(Brand.code_length).where(Brand.tenant_id == tenant_id)))
        return self._cached(("codes", tenant_id), load)


def _unmatched(setting: str | None, has_webhook: bool) -> str:
    """A tenant's "auto" is its inbox when a webhook takes the inbox, else its help text."""
    if setting in ("reply", "inbox"):
        return setting
    return "inbox" if has_webhook else "reply"


# -- routing -----------------------------------------------------------------------------------

class Router:
    def __init__(self, directory: Directory | None = None) -> None:
        self.directory = directory or Directory()

    def route_batch(self, s: Session, events: Iterable[dict[str, Any]]) -> list[Out]:
        """Route a batch in the caller's one session/transaction. A Rejected event fails the
        batch; the processor then retries event by event and sends only that one to the DLQ."""
        outs: list[Out] = []
        for event in events:
            outs.extend(self.route(s, event))
        return outs

    def route(self, s: Session, event: dict[str, Any]) -> list[Out]:
        to = event["to"]
        text = normalise(event["text"])
        owners = self.directory.owners(s, to)
        if not owners:
            raise Rejected(f"no tenant for destination {to}", "unknown_destination")

        found = compliance_words.match(
            text.words, text.compact,
            lambda w: self._keyword_owner(s, to, owners, w) is not None)
        if found is not None:
            outs = self._compliance(s, event, text, owners, *found)
        elif len(owners) == 1 and not owners[0].shared:
            tenant = owners[0].tenant
            rule = self._match(s, tenant.id, to, text)
            outs = self._act(event, text, tenant, rule)
        else:
            outs = self._shared(s, event, text, owners)
        for o in outs:
            try:
                validate(schema_for_topic(o.topic), o.value)
            except EventInvalid as exc:  # e.g. a tenant's reply text longer than an SMS allows
                raise Rejected(f"router would emit an invalid {o.topic} event: {exc.reason}",
                               "invalid_output") from None
        return outs

    # -- tenant and rule ------------------------------------------------------------------------
    def _keyword_owner(self, s: Session, to: str, owners: tuple[Owner, ...],
                       word: str) -> tuple[TenantInfo, Rule] | None:
        """On a shared number: the tenant whose exact keyword is ``word``."""
        best: tuple[TenantInfo, Rule] | None = None
        for o in owners:
            for r in self.directory.rules(s, o.tenant.id):
                if r.keyword and r.keyword == word and r.applies_to(to):
                    if best is None or (r.order(), o.tenant.id) < (best[1].order(), best[0].id):
                        best = (o.tenant, r)
                    break
        return best

    def _shared(self, s: Session, event: dict[str, Any], text: Text,
                owners: tuple[Owner, ...]) -> list[Out]:
        """A shared number: the tenant whose keyword starts the text, or, when none does, one
        reply naming the tenants there (the text is counted, never dropped)."""
        found = self._keyword_owner(s, event["to"], owners, text.keyword)
        if found is not None:
            return self._act(event, text, *found)
        UNMATCHED.labels(tenant="", outcome="shared_number_reply").inc()
        log.info("no tenant keyword on shared number %s matches %r", event["to"], text.keyword[:64])
        names = ", ".join(o.tenant.name for o in owners)
        return [reply(event, owners[0].tenant.id, SHARED_UNMATCHED_REPLY.format(names=names),
                      "unmatched")]

    def _match(self, s: Session, tenant_id: str, to: str, text: Text) -> Rule | None:
        """The tenant's rule for a text: its keyword (a rule for this very number before a "*"
        one), else its code when the tenant runs a scheme, else the first pattern rule in order.
        A codes pattern is tried on the text and on the code the text spells (groups joined)."""
        rules = [r for r in self.directory.rules(s, tenant_id) if r.applies_to(to)]
        by_keyword = [r for r in rules if r.keyword and r.keyword == text.keyword]
        if by_keyword:
            return min(by_keyword, key=lambda r: (r.number == "*", r.order()))
        code = text.code
        if code is not None and len(code) in self.directory.code_lengths(s, tenant_id) \
                and (" " not in text.normalised or any(c.isdigit() for c in code)):
            return Rule(tenant_id, "*", "", None, "codes", None, 0, 0)
        for r in rules:
            if r.keyword or r.pattern is None:
                continue
            if r.pattern.fullmatch(text.normalised) or (
                    r.action == "codes" and code is not None and r.pattern.fullmatch(code)):
                return r
        return None

    # -- actions ----------------------------------------------------------------------------------
    def _act(self, event: dict[str, Any], text: Text, tenant: TenantInfo,
             rule: Rule | None) -> list[Out]:
        if rule is None:
            return self._unmatched(event, tenant)
        action, keyword = rule.action, rule.keyword
        if action == "reply":
            return [reply(event, tenant.id, rule.reply_text or "", "keyword_reply")]
        if action == "codes":
            return [self._code(event, text, tenant, rule)]
        if action == "campaigns":
            return [Out(topics.CAMPAIGNS_INBOUND, event["from"],
                        forwarded(event, tenant.id, keyword, "campaigns"))]
        if action == "points":
            return [self._points(event, text, tenant, rule)]
        if action != "inbox":
            log.warning("tenant %s rule %s: unknown action %r, forwarded to the inbox", tenant.id,
                        rule.id, action)
        return [Out(f"tenant.{tenant.id}.inbound", event["from"],
                    forwarded(event, tenant.id, keyword, "inbox"))]

    def _unmatched(self, event: dict[str, Any], tenant: TenantInfo) -> list[Out]:
        """A text no rule matches: the tenant's inbox or its help text, by the tenant's setting,
        and counted either way."""
        if tenant.unmatched == "inbox":
            UNMATCHED.labels(tenant=tenant.id, outcome="inbox").inc()
            return [Out(f"tenant.{tenant.id}.inbound", event["from"],
                        forwarded(event, tenant.id, "", "inbox"))]
        UNMATCHED.labels(tenant=tenant.id, outcome="reply").inc()
        body = tenant.help_text or UNMATCHED_REPLY.format(name=tenant.name)
        return [reply(event, tenant.id, body, "unmatched")]

    def _code(self, event: dict[str, Any], text: Text, tenant: TenantInfo, rule: Rule) -> Out:
        source = text.argument if rule.keyword else (text.code or text.normalised)
        code = re.sub(r"[^A-Z0-9]", "", source)
        if not CODE_RE.match(code):
            example = f", e.g. {rule.keyword} 7F3KQ9XZ" if rule.keyword else ""
            return reply(event, tenant.id, CODE_HINT.format(example=example), "code_hint")
        mid = event["message_id"]
        value = new_event(topics.CODES_SUBMITTED, tenant.id, submission_id=derived_id(mid, "code"),
                          code=code, to=event["to"], inbound_message_id=mid,
                          received_at=event["received_at"], **{"from": event["from"]})
        value["event_id"] = derived_id(mid, "codes.submitted")
        return Out(topics.CODES_SUBMITTED, code, value)

    def _points(self, event: dict[str, Any], text: Text, tenant: TenantInfo, rule: Rule) -> Out:
        parsed = parse_points(text.words)
        if parsed is None:
            return reply(event, tenant.id, POINTS_HINT, "points_hint")
        command, gift = parsed
        mid = event["message_id"]
        value = new_event(topics.POINTS_COMMANDS, tenant.id, command_id=derived_id(mid, "points"),
                          member=event["from"], command=command, gift=gift,
                          reply_from=event["to"], inbound_message_id=mid)
        value["event_id"] = derived_id(mid, "points.commands")
        return Out(topics.POINTS_COMMANDS, event["from"], value)

    # -- STOP / START / HELP ----------------------------------------------------------------------
    def _compliance(self, s: Session, event: dict[str, Any], text: Text,
                    owners: tuple[Owner, ...], phrase: Phrase, taken: int) -> list[Out]:
        """On an owned number: that tenant. On a shared number: "STOP ACME" means the tenant with
        keyword ACME; a bare STOP/START applies to every tenant on the number (an opt-out is never
        lost for want of a keyword) and HELP lists them. One reply either way."""
        to, word = event["to"], phrase.text
        if len(owners) == 1 and not owners[0].shared:
            tenants = [owners[0].tenant]
        else:
            found = (self._keyword_owner(s, to, owners, text.words[taken])
                     if len(text.words) > taken else None)
            tenants = [found[0]] if found else [o.tenant for o in owners]
        single = tenants[0] if len(tenants) == 1 else None

        if phrase.kind == HELP:
            if single is not None:
                body = single.help_text or (f"{single.name}: reply STOP to opt out, START to "
                                            "opt back in.")
            else:
                names = ", ".join(t.name for t in tenants)
                body = (f"This number serves: {names}. Text HELP <keyword> for one of them. "
                        "Reply STOP to opt out of all.")
            return [reply(event, tenants[0].id, body, "help")]

        opted_out = phrase.kind == OPT_OUT
        outs = [self._set_optout(s, event, t.id, opted_out, word) for t in tenants]
        if opted_out:
            body = (single.stop_reply if single else "") or DEFAULT_STOP_REPLY
            outs.append(reply(event, tenants[0].id, body, "optout_confirmation"))
        else:
            body = (single.start_reply if single else "") or DEFAULT_START_REPLY
            outs.append(reply(event, tenants[0].id, body, "optin_confirmation"))
        return outs

    def _set_optout(self, s: Session, event: dict[str, Any], tenant_id: str, opted_out: bool,
                    word: str) -> Out:
        """Upsert the opt-out row; a redelivery finds the state already set and changes nothing.
        Texts from one number share a partition, so no two workers race on one row; if they
        ever do, the insert fails, the batch is retried and the retry updates."""
        msisdn, mid = event["from"], event["message_id"]
        at = event["received_at"]
        row = s.get(OptOut, (tenant_id, msisdn))
        if row is None:
            s.add(OptOut(tenant_id=tenant_id, msisdn=msisdn, opted_out=opted_out,
                         source_event_id=mid, updated_at=parse_ts(at)))
            s.flush()
        elif row.opted_out != opted_out:
            row.opted_out = opted_out
            row.source_event_id = mid
            row.updated_at = parse_ts(at)
        value = new_event(topics.OPTOUTS, tenant_id, msisdn=msisdn, opted_out=opted_out,
                          keyword=word, source_message_id=mid, changed_at=at)
        value["event_id"] = derived_id(mid, f"optouts:{tenant_id}")
        return Out(topics.OPTOUTS, f"{tenant_id}:{msisdn}", value)


# -- event builders ----------------------------------------------------------------------------

_ENVELOPE = {"event_id", "event_type", "produced_at", "schema_version", "tenant_id", "keyword"}


def reply(event: dict[str, Any], tenant_id: str, text: str, kind: str) -> Out:
    """The one reply to an inbound: its request id is derived from the inbound message id, so a
    redelivered inbound gives the same request id and message id and egress sends it once."""
    mid = event["message_id"]
    request_id = f"reply-{mid}"
    value = new_event(
        topics.SMS_OUTBOUND, tenant_id, message_id=message_id_for(tenant_id, request_id),
        request_id=request_id, to=event["from"], text=text, category="transactional",
        source="router", in_reply_to=mid, accepted_at=now_iso(), attributes={"kind": kind},
        **{"from": event["to"]})
    value["event_id"] = derived_id(mid, "reply")
    return Out(topics.SMS_OUTBOUND, event["from"], value)


def forwarded(event: dict[str, Any], tenant_id: str, keyword: str, purpose: str) -> dict[str, Any]:
    """A copy of the inbound for a tenant inbox or campaigns, with tenant_id and keyword set."""
    fields = {k: v for k, v in event.items() if k not in _ENVELOPE}
    value = new_event(topics.SMS_INBOUND, tenant_id, **fields, keyword=keyword[:64] or None)
    value["event_id"] = derived_id(event["message_id"], purpose)
    return value


def parse_points(words: tuple[str, ...]) -> tuple[str, int | None] | None:
    """GIFT -> list_gifts, GIFT 2 -> redeem gift 2, BAL/BALANCE/积分 -> balance. The command word
    is the first word, or the second when the tenant's keyword is its own (POINTS GIFT 2)."""
    for i, w in enumerate(words[:2]):
        if w in BALANCE_WORDS:
            return "balance", None
        if w in GIFT_WORDS:
            rest = words[i + 1:]
            if not rest:
                return "list_gifts", None
            if len(rest) == 1 and re.fullmatch(r"[0-9]{1,3}", rest[0]) and int(rest[0]) >= 1:
                return "redeem", int(rest[0])
            return None
    return None
