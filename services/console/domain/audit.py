"""The audit log: every change made through the console or the admin API, with who made it
and the object's state before and after. Secrets never enter it (callers pass safe views)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.db.console_models import AuditEntry

SECRET_FIELDS = {"password", "password_hash", "secret", "secret_sealed", "key", "key_hash", "token",
                 "pin", "card_password"}


def _clean(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    out: dict[str, Any] = {}
    for k, v in value.items():
        if k in SECRET_FIELDS:
            continue
        out[k] = v.isoformat() if isinstance(v, datetime) else v
    return out


def record(s: Session, *, tenant_id: str | None, actor: str, action: str, object_type: str,
           object_id: str = "", before: dict[str, Any] | None = None,
           after: dict[str, Any] | None = None, note: str = "") -> AuditEntry:
    e = AuditEntry(tenant_id=tenant_id, actor=actor, action=action, object_type=object_type,
                   object_id=str(object_id)[:128], before=_clean(before), after=_clean(after),
                   note=note)
    s.add(e)
    s.flush()
    return e


def entries(s: Session, tenant_id: str | None, *, before_id: int | None = None,
            limit: int = 50) -> list[AuditEntry]:
    """Newest first, keyset-paged by id. ``tenant_id`` None lists platform-wide entries."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    q = q.where(AuditEntry.tenant_id.is_(None) if tenant_id is None else AuditEntry.tenant_id == tenant_id)
    if before_id is not None:
        q = q.where(AuditEntry.id < before_id)
    return list(s.scalars(q))
