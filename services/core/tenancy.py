"""Tenants, their API keys (stored as SHA-256 only), sender numbers and keywords.

``KeyResolver`` is the one API-key check every public API (ingress's send API, the console's
/v1 admin API) goes through."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import greenery
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import compliance_words
from .db.campaigns_models import Campaign, CampaignKeyword
from .db.models import ApiKey, Keyword, SenderNumber, Tenant

TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
KEY_RE = re.compile(r"^hk_([a-z0-9]{10})_([A-Za-z0-9_-]{20,64})$")
ACTIONS = {"reply", "codes", "campaigns", "points", "inbox"}
# What a text no rule matches gets (Tenant.unmatched): the help text, the inbox, or "auto": the
# inbox when a webhook takes it, else the help text.
UNMATCHED = {"auto", "reply", "inbox"}


def hash_key(key: str) -> str:
    # API keys carry 256 bits of randomness, so a fast hash is safe; no salt needed.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_tenant(s: Session, tenant_id: str, name: str, **fields) -> Tenant:
    if not TENANT_ID.match(tenant_id):
        raise ValueError("tenant id must be 1-63 lower-case letters, digits, '-' or '_'")
    if s.get(Tenant, tenant_id) is not None:
        raise ValueError(f"tenant {tenant_id} exists")
    if fields.get("unmatched", "auto") not in UNMATCHED:
        raise ValueError(f"unmatched must be one of {sorted(UNMATCHED)}")
    t = Tenant(id=tenant_id, name=name, **fields)
    s.add(t)
    s.flush()
    return t


def issue_api_key(s: Session, tenant_id: str, label: str = "") -> str:
    """A new key; the plaintext is returned once and never stored."""
    prefix = secrets.token_hex(5)
    key = f"hk_{prefix}_{secrets.token_urlsafe(32)}"
    s.add(ApiKey(tenant_id=tenant_id, prefix=prefix, key_hash=hash_key(key), label=label))
    s.flush()
    return key


@dataclass(frozen=True)
class KeyIdentity:
    """Who a valid API key speaks for: its tenant, and its public prefix (for the audit log)."""

    tenant_id: str
    prefix: str
    suspended: bool = False  # its tenant is suspended: the key is known but refused (403)

    @property
    def actor(self) -> str:
        return f"api-key:{self.prefix}"


def identify(s: Session, key: str | None, *, suspended: bool = False) -> KeyIdentity | None:
    """The identity of a key, or None (unknown, malformed, revoked, or its tenant inactive).
    The stored hash is compared in constant time. With ``suspended`` a valid key of a suspended
    tenant comes back marked ``suspended`` rather than None, so it can be refused by name."""
    m = KEY_RE.match(key or "")
    if not m:
        return None
    row = s.scalar(select(ApiKey).where(ApiKey.prefix == m.group(1)))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, hash_key(key or "")):
        return None
    tenant = s.get(Tenant, row.tenant_id)
    if tenant is None:
        return None
    if not tenant.active:
        return KeyIdentity(tenant.id, row.prefix, suspended=True) if suspended else None
    return KeyIdentity(tenant.id, row.prefix)


def authenticate(s: Session, key: str | None) -> str | None:
    """The tenant id a key belongs to, or None (unknown, malformed or revoked)."""
    found = identify(s, key)
    return found.tenant_id if found else None


MISSING_KEY = "missing API key (Authorization: Bearer <key>)"
INVALID_KEY = "invalid API key"
SUSPENDED = ("tenant {tenant} is suspended by the platform operator: its API keys are refused "
             "until it is resumed (its inbound texts are still recorded)")


class KeyRefused(Exception):
    """No key, or a key that is not (or no longer) valid; ``reason`` is safe to answer with,
    ``status`` the HTTP status to answer (401; 403 for a suspended tenant's valid key)."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _refuse_suspended(found: KeyIdentity) -> KeyIdentity:
    if found.suspended:
        raise KeyRefused(SUSPENDED.format(tenant=found.tenant_id), 403)
    return found


def key_from_headers(headers: Mapping[str, str]) -> str:
    """The key of ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; "" when neither."""
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return (headers.get("X-API-Key") or "").strip()


class KeyResolver:
    """API key -> identity, cached for ``ttl_s`` seconds so the hot path does not read the
    database per request. A revoked key (or a deactivated tenant) is refused at the latest
    ``ttl_s`` after the change. The cache is keyed by the key's SHA-256, never the key itself;
    misses are cached too, so a flood of bad keys costs one lookup each per ``ttl_s``."""

    def __init__(self, session_factory: Callable, ttl_s: float = 5.0, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._session = session_factory
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._cache: dict[str, tuple[float, KeyIdentity | None]] = {}
        self._lock = threading.Lock()

    def resolve(self, key: str | None) -> KeyIdentity | None:
        """The identity of a usable key, or None (a suspended tenant's key included)."""
        found = self.lookup(key)
        return None if found is None or found.suspended else found

    def lookup(self, key: str | None) -> KeyIdentity | None:
        """Like ``resolve``, but a suspended tenant's valid key comes back marked ``suspended``."""
        if not key or not KEY_RE.match(key):
            return None
        digest = hash_key(key)
        now = self._clock()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        with self._session() as s:
            found = identify(s, key, suspended=True)
        with self._lock:
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[digest] = (now, found)
        return found

    def forget(self, prefix: str | None = None) -> None:
        """Drop cached answers (those of one key prefix, or all), e.g. right after a revocation
        in this process."""
        with self._lock:
            if prefix is None:
                self._cache.clear()
            else:
                self._cache = {d: v for d, v in self._cache.items()
                               if v[1] is None or v[1].prefix != prefix}

    def check(self, headers: Mapping[str, str]) -> KeyIdentity:
        """The identity of a request's key, or KeyRefused (missing, invalid, or 403 for a
        suspended tenant's)."""
        key = key_from_headers(headers)
        if not key:
            raise KeyRefused(MISSING_KEY)
        found = self.lookup(key)
        if found is None:
            raise KeyRefused(INVALID_KEY)
        return _refuse_suspended(found)

    async def check_async(self, headers: Mapping[str, str]) -> KeyIdentity:
        """``check`` off the event loop (a cache miss reads the database)."""
        key = key_from_headers(headers)
        if not key:
            raise KeyRefused(MISSING_KEY)
        digest = hash_key(key)
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and self._clock() - hit[0] < self.ttl_s:
            found = hit[1]
        else:
            found = await asyncio.to_thread(self.lookup, key)
        if found is None:
            raise KeyRefused(INVALID_KEY)
        return _refuse_suspended(found)


def revoke_api_key(s: Session, prefix: str) -> None:
    row = s.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is not None:
        row.revoked_at = datetime.now(UTC)


def set_unmatched(s: Session, tenant_id: str, value: str) -> None:
    """What a text no routing rule matches gets: "reply" (the tenant's help text), "inbox", or
    "auto" (the inbox when a webhook takes it, else the help text)."""
    if value not in UNMATCHED:
        raise ValueError(f"unmatched must be one of {sorted(UNMATCHED)}")
    tenant = s.get(Tenant, tenant_id)
    if tenant is None:
        raise ValueError(f"no tenant {tenant_id}")
    tenant.unmatched = value


def add_number(s: Session, tenant_id: str, number: str, shared: bool = False) -> SenderNumber:
    n = SenderNumber(tenant_id=tenant_id, number=number, shared=shared)
    s.add(n)
    s.flush()
    return n


# A short code (3-8 digits) or a long number, in E.164 or as the carrier writes it.
SENDER_NUMBER = re.compile(r"^\+?[0-9]{3,15}$")


class NumberRefused(ValueError):
    """A sender number a tenant cannot take or give up; ``code`` names the reason."""

    def __init__(self, message: str, code: str, **params: object) -> None:
        super().__init__(message)
        self.field, self.code, self.params = "number", code, params


def claim_number(s: Session, tenant_id: str, number: str) -> SenderNumber:
    """A tenant takes a number of its own (not shared): refused when it is malformed, already
    the tenant's, or held by any other tenant (shared numbers are the platform's to assign)."""
    number = re.sub(r"[\s\-().]", "", number or "")
    if not SENDER_NUMBER.match(number):
        raise NumberRefused(f"{number!r} is not a sender number (3 to 15 digits, + allowed)",
                            "format")
    held = s.execute(select(SenderNumber.tenant_id).where(SenderNumber.number == number)).scalars().all()
    if tenant_id in held:
        raise NumberRefused(f"{number} is already {tenant_id}'s", "yours", number=number)
    if held:
        raise NumberRefused(f"{number} is held by another tenant", "taken", number=number)
    return add_number(s, tenant_id, number)


def release_number(s: Session, tenant_id: str, number: str) -> SenderNumber | None:
    """A tenant gives up one of its numbers; None when it is not the tenant's. Refused while a
    rule is bound to it or it is the tenant's default sender (texts would go nowhere)."""
    row = s.scalar(select(SenderNumber).where(SenderNumber.tenant_id == tenant_id,
                                              SenderNumber.number == number))
    if row is None:
        return None
    rules = s.scalar(select(func.count()).select_from(Keyword).where(
        Keyword.tenant_id == tenant_id, Keyword.number == number)) or 0
    if rules:
        raise NumberRefused(f"{rules} routing rule(s) use {number}; change or delete them first",
                            "rules", number=number, rules=rules)
    tenant = s.get(Tenant, tenant_id)
    if tenant is not None and tenant.default_sender == number:
        raise NumberRefused(f"{number} is the default sender; choose another first", "default",
                            number=number)
    s.delete(row)
    s.flush()
    return row


def set_replies(s: Session, tenant_id: str, *, help_text: str, stop_reply: str,
                start_reply: str) -> Tenant:
    """The texts the router answers HELP, STOP and START with (STOP and START need one)."""
    tenant = s.get(Tenant, tenant_id)
    if tenant is None:
        raise ValueError(f"no tenant {tenant_id}")
    for name, value in (("stop_reply", stop_reply), ("start_reply", start_reply)):
        if not value.strip():
            raise RuleError(f"{name} cannot be empty: the router must confirm it", field=name,
                            code="empty_reply")
    for name, value in (("help_text", help_text), ("stop_reply", stop_reply),
                        ("start_reply", start_reply)):
        if len(value) > 1000:
            raise RuleError(f"{name} is at most 1000 characters", field=name, code="reply_long")
    tenant.help_text, tenant.stop_reply = help_text.strip(), stop_reply.strip()
    tenant.start_reply = start_reply.strip()
    return tenant


class RuleError(ValueError):
    """A routing rule that cannot be saved. ``field`` is the form field at fault, ``code`` names
    the reason and ``params`` its details (``other``: the rule in the way, as a dict), so that a
    page can say it in the user's language; ``str()`` is the English sentence."""

    def __init__(self, message: str, *, field: str = "keyword", code: str = "",
                 **params: object) -> None:
        super().__init__(message)
        self.field, self.code, self.params = field, code, params


class RuleRefused(RuleError):
    """A keyword rule that would never be reached, or would make another one unreachable."""


def rule_view(k: Keyword) -> dict:
    """A rule as plain data (for refusals, the audit log and pages)."""
    return {"id": k.id, "keyword": k.keyword, "pattern": k.pattern, "action": k.action,
            "number": k.number, "priority": k.priority, "reply_text": k.reply_text}


def _rule_name(k: Keyword) -> str:
    what = f"keyword {k.keyword}" if k.keyword else f"pattern /{k.pattern}/"
    return f"rule {k.id} ({what} -> {k.action}, number {k.number}, priority {k.priority})"


def _compliance_kind(word: str) -> str | None:
    p = compliance_words.phrase_of(word)
    return None if p is None else p.kind


def _compliance_reason(word: str) -> str | None:
    kind = _compliance_kind(word)
    if kind is None:
        return None
    article = {"opt_out": "an opt-out", "opt_in": "an opt-in", "help": "a help"}[kind]
    return f"{word} is {article} word the router answers itself on every number"


_BOUNDS = re.compile(r"\{(\d*),?(\d*)\}")
_UPPER_TEXT = "[^a-z]*"  # the router matches patterns against the upper-cased text


def _language(pattern: str):
    """The set of upper-cased texts a pattern fullmatches, as an automaton, or None when it uses
    what greenery cannot read (lookarounds, flags, \\b) or is too large to compare quickly."""
    if any(int(n) > 40 for m in _BOUNDS.finditer(pattern) for n in m.groups() if n):
        return None
    p = pattern
    if p.startswith("^"):
        p = p[1:]
    if p.endswith("$") and not p.endswith("\\$"):
        p = p[:-1]
    try:
        return greenery.parse(p).to_fsm() & greenery.parse(_UPPER_TEXT).to_fsm()
    except Exception:  # greenery reads a subset of Python's syntax; the rest is not compared
        return None


def campaign_keyword_conflict(s: Session, tenant_id: str, word: str) -> str | None:
    """Why a campaign keyword could never be reached, or None: a compliance word, or a router
    rule on that keyword that sends it elsewhere than campaigns (named)."""
    word = word.strip().upper()
    reason = _compliance_reason(word)
    if reason:
        return reason
    for k in s.scalars(select(Keyword).where(Keyword.tenant_id == tenant_id,
                                             Keyword.keyword == word,
                                             Keyword.action != "campaigns")):
        return f"{word} is taken by routing {_rule_name(k)}; texts with it never reach campaigns"
    return None


def _check_rule(s: Session, k: Keyword, exclude_id: int | None = None) -> None:
    """Refuse a rule that cannot be reached or that hides another, naming the other.
    ``exclude_id``: the rule being changed (it does not stand in its own way)."""
    field = "keyword" if k.keyword else "pattern"
    not_self = Keyword.id != exclude_id if exclude_id is not None else Keyword.id.is_not(None)
    if k.keyword:
        reason = _compliance_reason(k.keyword)
        if reason:
            raise RuleRefused(f"{reason}; a rule on it would never be reached",
                              code="compliance", word=k.keyword, kind=_compliance_kind(k.keyword))
        if k.action != "campaigns":
            taken = s.execute(select(CampaignKeyword.campaign_id, Campaign.name).join(
                Campaign, Campaign.id == CampaignKeyword.campaign_id).where(
                CampaignKeyword.tenant_id == k.tenant_id, CampaignKeyword.keyword == k.keyword,
                Campaign.status.notin_(("cancelled", "completed")))).first()
            if taken is not None:
                raise RuleRefused(f"{k.keyword} is the keyword of campaign {taken[0]} "
                                  f"({taken[1]}); a {k.action} rule on it would hide that campaign",
                                  code="campaign", word=k.keyword, campaign_id=taken[0],
                                  campaign_name=taken[1])
        # On a shared number the keyword is what tells tenants apart.
        own = set(s.scalars(select(SenderNumber.number).where(
            SenderNumber.tenant_id == k.tenant_id, SenderNumber.shared.is_(True))))
        numbers = own if k.number == "*" else own & {k.number}
        for number in sorted(numbers):
            others = s.execute(select(Keyword).join(
                SenderNumber, SenderNumber.tenant_id == Keyword.tenant_id).where(
                SenderNumber.number == number, Keyword.tenant_id != k.tenant_id,
                Keyword.keyword == k.keyword, Keyword.number.in_(("*", number)))).scalars().first()
            if others is not None:
                # Another tenant's rule: named to the operator in English, not shown to pages.
                raise RuleRefused(f"{k.keyword} on shared number {number} is tenant "
                                  f"{others.tenant_id}'s {_rule_name(others)}",
                                  code="shared", word=k.keyword, number=number)
    same = s.scalar(select(Keyword).where(Keyword.tenant_id == k.tenant_id,
                                          Keyword.number == k.number,
                                          Keyword.keyword == k.keyword,
                                          Keyword.pattern == k.pattern, not_self))
    if same is not None:
        raise RuleRefused(f"{k.tenant_id} already has {_rule_name(same)} matching the same texts",
                          field=field, code="duplicate", other=rule_view(same))
    if not k.pattern:
        return
    mine = _language(k.pattern)
    if mine is None:
        return
    if mine.empty():
        raise RuleRefused(f"pattern /{k.pattern}/ can match no text: texts are matched "
                          "upper-cased (write [A-Z], not [a-z])", field="pattern", code="empty")
    for r in s.scalars(select(Keyword).where(Keyword.tenant_id == k.tenant_id,
                                             Keyword.pattern != "", not_self).order_by(Keyword.id)):
        if not (r.number == "*" or k.number == "*" or r.number == k.number):
            continue
        theirs = _language(r.pattern)
        if theirs is None:
            continue
        # The router tries pattern rules by (priority, "*" last, id); a new rule's id is last.
        first = ((r.priority, r.number == "*", r.id)
                 <= (k.priority, k.number == "*", k.id if k.id is not None else r.id))
        if first and mine.issubset(theirs):
            raise RuleRefused(f"{_rule_name(r)} matches every text /{k.pattern}/ does and is "
                              "tried first; give this rule a lower priority number",
                              field="pattern", code="shadowed", other=rule_view(r))
        if not first and theirs.issubset(mine):
            raise RuleRefused(f"/{k.pattern}/ would match every text {_rule_name(r)} does and "
                              "be tried first; give it a higher priority number",
                              field="pattern", code="shadows", other=rule_view(r))


def _rule(tenant_id: str, keyword: str, action: str, number: str, reply_text: str | None,
          pattern: str | None, priority: int) -> Keyword:
    """An unsaved rule from what a user typed, or RuleError naming the field at fault."""
    if action not in ACTIONS:
        raise RuleError(f"action must be one of {sorted(ACTIONS)}", field="action", code="action")
    if action == "reply" and not reply_text:
        raise RuleError("a reply keyword needs its reply text", field="reply_text",
                        code="reply_text")
    word = " ".join(unicodedata.normalize("NFKC", keyword or "").upper().split())
    pattern = pattern or ""
    if word and pattern:
        raise RuleError("a rule matches a keyword or a pattern, not both", field="pattern",
                        code="both")
    if not word and not pattern:
        raise RuleError("a rule needs a keyword or a pattern", code="neither")
    if " " in word:
        raise RuleError("a keyword is one word (the router matches the text's first word)",
                        code="one_word")
    if len(word) > 64 or len(pattern) > 200:
        raise RuleError("a keyword is at most 64 characters, a pattern 200",
                        field="keyword" if word else "pattern", code="too_long")
    if pattern:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise RuleError(f"pattern /{pattern}/ is not a regular expression: {exc}",
                            field="pattern", code="regex", reason=str(exc)) from None
    number = (number or "*").strip()
    if number != "*" and not SENDER_NUMBER.match(number):
        raise RuleError("number must be * or one of the tenant's numbers", field="number",
                        code="number")
    return Keyword(tenant_id=tenant_id, keyword=word, action=action, number=number,
                   reply_text=reply_text, pattern=pattern, priority=priority)


def add_keyword(s: Session, tenant_id: str, keyword: str, action: str, *, number: str = "*",
                reply_text: str | None = None, pattern: str | None = None,
                priority: int = 100) -> Keyword:
    """A routing rule: texts whose first word is ``keyword``, or (keyword "") texts that
    ``pattern`` fullmatches upper-cased. Refused (RuleRefused, naming the other rule) when it
    could never be reached or would hide another rule or campaign keyword; RuleError (a
    ValueError) when it is malformed."""
    k = _rule(tenant_id, keyword, action, number, reply_text, pattern, priority)
    _check_rule(s, k)
    s.add(k)
    s.flush()
    return k


def get_keyword(s: Session, tenant_id: str, rule_id: int) -> Keyword | None:
    """One of the tenant's rules (None for another tenant's)."""
    return s.scalar(select(Keyword).where(Keyword.id == rule_id, Keyword.tenant_id == tenant_id))


def update_keyword(s: Session, tenant_id: str, rule_id: int, keyword: str, action: str, *,
                   number: str = "*", reply_text: str | None = None, pattern: str | None = None,
                   priority: int = 100) -> Keyword | None:
    """Change a rule, checked as ``add_keyword`` checks a new one (the rule keeps its place
    among rules of equal priority). None when the tenant has no such rule."""
    row = get_keyword(s, tenant_id, rule_id)
    if row is None:
        return None
    k = _rule(tenant_id, keyword, action, number, reply_text, pattern, priority)
    k.id = row.id
    _check_rule(s, k, exclude_id=row.id)
    row.keyword, row.pattern, row.action = k.keyword, k.pattern, k.action
    row.number, row.reply_text, row.priority = k.number, k.reply_text, k.priority
    s.flush()
    return row


def delete_keyword(s: Session, tenant_id: str, rule_id: int) -> Keyword | None:
    """Remove a rule; returns it (detached) or None when the tenant has no such rule."""
    row = get_keyword(s, tenant_id, rule_id)
    if row is not None:
        s.delete(row)
        s.flush()
    return row


RULE_SORTS = {"keyword": (Keyword.keyword, Keyword.pattern), "action": (Keyword.action,),
              "number": (Keyword.number,), "priority": (Keyword.priority,)}


def list_keywords(s: Session, tenant_id: str, *, q: str = "", sort: str = "priority",
                  descending: bool = False, offset: int = 0, limit: int = 100) -> list[Keyword]:
    """A page of the tenant's rules, searched in keyword, pattern and reply text and sorted by
    ``sort`` (keyword, action, number or priority: the router's order), then by id."""
    stmt = select(Keyword).where(Keyword.tenant_id == tenant_id)
    if q.strip():
        like = f"%{q.strip()}%"
        stmt = stmt.where(Keyword.keyword.ilike(like) | Keyword.pattern.ilike(like)
                          | Keyword.reply_text.ilike(like))
    cols = RULE_SORTS.get(sort, RULE_SORTS["priority"])
    order = [c.desc() if descending else c for c in cols]
    return list(s.scalars(stmt.order_by(*order, Keyword.id).offset(offset).limit(limit)))
