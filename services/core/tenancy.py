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
from sqlalchemy import select
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

    @property
    def actor(self) -> str:
        return f"api-key:{self.prefix}"


def identify(s: Session, key: str | None) -> KeyIdentity | None:
    """The identity of a key, or None (unknown, malformed, revoked, or its tenant inactive).
    The stored hash is compared in constant time."""
    m = KEY_RE.match(key or "")
    if not m:
        return None
    row = s.scalar(select(ApiKey).where(ApiKey.prefix == m.group(1)))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, hash_key(key or "")):
        return None
    tenant = s.get(Tenant, row.tenant_id)
    if tenant is None or not tenant.active:
        return None
    return KeyIdentity(tenant.id, row.prefix)


def authenticate(s: Session, key: str | None) -> str | None:
    """The tenant id a key belongs to, or None (unknown, malformed or revoked)."""
    found = identify(s, key)
    return found.tenant_id if found else None


MISSING_KEY = "missing API key (Authorization: Bearer <key>)"
INVALID_KEY = "invalid API key"


class KeyRefused(Exception):
    """No key, or a key that is not (or no longer) valid; ``reason`` is safe to answer with."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
        if not key or not KEY_RE.match(key):
            return None
        digest = hash_key(key)
        now = self._clock()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        with self._session() as s:
            found = identify(s, key)
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
        """The identity of a request's key, or KeyRefused (missing or invalid)."""
        key = key_from_headers(headers)
        if not key:
            raise KeyRefused(MISSING_KEY)
        found = self.resolve(key)
        if found is None:
            raise KeyRefused(INVALID_KEY)
        return found

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
            found = await asyncio.to_thread(self.resolve, key)
        if found is None:
            raise KeyRefused(INVALID_KEY)
        return found


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


class RuleRefused(ValueError):
    """A keyword rule that would never be reached, or would make another one unreachable."""


def _rule_name(k: Keyword) -> str:
    what = f"keyword {k.keyword}" if k.keyword else f"pattern /{k.pattern}/"
    return f"rule {k.id} ({what} -> {k.action}, number {k.number}, priority {k.priority})"


def _compliance_reason(word: str) -> str | None:
    p = compliance_words.phrase_of(word)
    if p is None:
        return None
    kind = {"opt_out": "an opt-out", "opt_in": "an opt-in", "help": "a help"}[p.kind]
    return f"{word} is {kind} word the router answers itself on every number"


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


def _check_rule(s: Session, k: Keyword) -> None:
    """Refuse a rule that cannot be reached or that hides another, naming the other."""
    if k.keyword:
        reason = _compliance_reason(k.keyword)
        if reason:
            raise RuleRefused(f"{reason}; a rule on it would never be reached")
        if k.action != "campaigns":
            taken = s.execute(select(CampaignKeyword.campaign_id, Campaign.name).join(
                Campaign, Campaign.id == CampaignKeyword.campaign_id).where(
                CampaignKeyword.tenant_id == k.tenant_id, CampaignKeyword.keyword == k.keyword,
                Campaign.status.notin_(("cancelled", "completed")))).first()
            if taken is not None:
                raise RuleRefused(f"{k.keyword} is the keyword of campaign {taken[0]} "
                                  f"({taken[1]}); a {k.action} rule on it would hide that campaign")
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
                raise RuleRefused(f"{k.keyword} on shared number {number} is tenant "
                                  f"{others.tenant_id}'s {_rule_name(others)}")
    same = s.scalar(select(Keyword).where(Keyword.tenant_id == k.tenant_id,
                                          Keyword.number == k.number,
                                          Keyword.keyword == k.keyword,
                                          Keyword.pattern == k.pattern))
    if same is not None:
        raise RuleRefused(f"{k.tenant_id} already has {_rule_name(same)} matching the same texts")
    if not k.pattern:
        return
    mine = _language(k.pattern)
    if mine is None:
        return
    if mine.empty():
        raise RuleRefused(f"pattern /{k.pattern}/ can match no text: texts are matched "
                          "upper-cased (write [A-Z], not [a-z])")
    for r in s.scalars(select(Keyword).where(Keyword.tenant_id == k.tenant_id,
                                             Keyword.pattern != "").order_by(Keyword.id)):
        if not (r.number == "*" or k.number == "*" or r.number == k.number):
            continue
        theirs = _language(r.pattern)
        if theirs is None:
            continue
        # The router tries pattern rules by (priority, "*" last, id); the new rule's id is last.
        first = (r.priority, r.number == "*") <= (k.priority, k.number == "*")
        if first and mine.issubset(theirs):
            raise RuleRefused(f"{_rule_name(r)} matches every text /{k.pattern}/ does and is "
                              "tried first; give this rule a lower priority number")
        if not first and theirs.issubset(mine):
            raise RuleRefused(f"/{k.pattern}/ would match every text {_rule_name(r)} does and "
                              "be tried first; give it a higher priority number")


def add_keyword(s: Session, tenant_id: str, keyword: str, action: str, *, number: str = "*",
                reply_text: str | None = None, pattern: str | None = None,
                priority: int = 100) -> Keyword:
    """A routing rule: texts whose first word is ``keyword``, or (keyword "") texts that
    ``pattern`` fullmatches upper-cased. Refused (RuleRefused, naming the other rule) when it
    could never be reached or would hide another rule or campaign keyword."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {sorted(ACTIONS)}")
    if action == "reply" and not reply_text:
        raise ValueError("a reply keyword needs its reply text")
    word = " ".join(unicodedata.normalize("NFKC", keyword or "").upper().split())
    pattern = pattern or ""
    if word and pattern:
        raise ValueError("a rule matches a keyword or a pattern, not both")
    if not word and not pattern:
        raise ValueError("a rule needs a keyword or a pattern")
    if " " in word:
        raise ValueError("a keyword is one word (the router matches the text's first word)")
    if pattern:
        re.compile(pattern)  # raises re.error with the reason
    k = Keyword(tenant_id=tenant_id, keyword=word, action=action, number=number,
                reply_text=reply_text, pattern=pattern, priority=priority)
    _check_rule(s, k)
    s.add(k)
    s.flush()
    return k
