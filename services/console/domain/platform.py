"""What platform operators see and do: tenants with their size, a new tenant with its first
owner, suspending a tenant, and the processes of the installation (the supervisor's state file
written by `make run`, or a deployment's equivalent)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.core import tenancy
from services.core.db.console_models import ConsoleUser
from services.core.db.models import Message, SenderNumber, Tenant

from .users import UserError, create_user


@dataclass
class TenantRow:
    id: str
    name: str
    active: bool
    numbers: int
    users: int
    messages_today: int
    created_at: datetime


def tenants(s: Session) -> list[TenantRow]:
    since = datetime.now(UTC) - timedelta(days=1)
    def per_tenant(column, *where):
        return dict(s.execute(select(column, func.count()).where(*where).group_by(column)).all())

    numbers = per_tenant(SenderNumber.tenant_id)
    people = per_tenant(ConsoleUser.tenant_id)
    sent = per_tenant(Message.tenant_id, Message.accepted_at >= since)
    return [TenantRow(t.id, t.name, t.active, numbers.get(t.id, 0), people.get(t.id, 0),
                      sent.get(t.id, 0), t.created_at)
            for t in s.scalars(select(Tenant).order_by(Tenant.id))]


def create_tenant_with_owner(s: Session, *, tenant_id: str, name: str, number: str,
                             owner_email: str) -> tuple[Tenant, str]:
    """A tenant, its sender number and its first owner; returns the owner's first password."""
    tenant_id = tenant_id.strip().lower()
    if not tenancy.TENANT_ID.match(tenant_id):
        raise UserError("tenant_id", "Use 1-63 lower-case letters, digits, '-' or '_'.")
    if s.get(Tenant, tenant_id) is not None:
        raise UserError("tenant_id", "This tenant id is taken.")
    if not name.strip():
        raise UserError("name", "Give the institution's name.")
    number = number.strip()
    if number and (not number.lstrip("+").isdigit() or len(number) > 16):
        raise UserError("number", "A sender number is up to 16 digits, e.g. 10690001.")
    t = tenancy.create_tenant(s, tenant_id, name.strip(), default_sender=number or None)
    if number:
        tenancy.add_number(s, tenant_id, number)
    password = secrets.token_urlsafe(12)
    create_user(s, email=owner_email, password=password, role="owner", tenant_id=tenant_id,
                name="")
    return t, password


def stack_state(path: Path) -> dict[str, Any] | None:
    """The supervisor's view of the processes (None when no supervisor writes it)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
