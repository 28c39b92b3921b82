"""Tenants, their API keys (stored as SHA-256 only), sender numbers and keywords."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db.models import ApiKey, Keyword, SenderNumber, Tenant

TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
KEY_RE = re.compile(r"^hk_([a-z0-9]{10})_([A-Za-z0-9_-]{20,64})$")
ACTIONS = {"reply", "codes", "campaigns", "points", "inbox"}


def hash_key(key: str) -> str:
    # API keys carry 256 bits of randomness, so a fast hash is safe; no salt needed.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_tenant(s: Session, tenant_id: str, name: str, **fields) -> Tenant:
    if not TENANT_ID.match(tenant_id):
        raise ValueError("tenant id must be 1-63 lower-case letters, digits, '-' or '_'")
    if s.get(Tenant, tenant_id) is not None:
        raise ValueError(f"tenant {tenant_id} exists")
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


def authenticate(s: Session, key: str | None) -> str | None:
    """The tenant id a key belongs to, or None (unknown, malformed or revoked)."""
    m = KEY_RE.match(key or "")
    if not m:
        return None
    row = s.scalar(select(ApiKey).where(ApiKey.prefix == m.group(1)))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    tenant = s.get(Tenant, row.tenant_id)
    return tenant.id if tenant is not None and tenant.active else None


def revoke_api_key(s: Session, prefix: str) -> None:
    row = s.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is not None:
        row.revoked_at = datetime.now(UTC)


def add_number(s: Session, tenant_id: str, number: str, shared: bool = False) -> SenderNumber:
    n = SenderNumber(tenant_id=tenant_id, number=number, shared=shared)
    s.add(n)
    s.flush()
    return n


def add_keyword(s: Session, tenant_id: str, keyword: str, action: str, *, number: str = "*",
                reply_text: str | None = None, pattern: str | None = None,
                priority: int = 100) -> Keyword:
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {sorted(ACTIONS)}")
    if action == "reply" and not reply_text:
        raise ValueError("a reply keyword needs its reply text")
    if pattern is not None:
        re.compile(pattern)  # raises re.error with the reason
    k = Keyword(tenant_id=tenant_id, keyword=keyword.upper(), action=action, number=number,
                reply_text=reply_text, pattern=pattern, priority=priority)
    s.add(k)
    s.flush()
    return k
