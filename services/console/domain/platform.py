"""What platform operators see and do: tenants with their size, a new tenant with its first
owner, suspending a tenant, the processes of the installation (the supervisor's state file
written by `make run`, or a deployment's equivalent), sender numbers and keywords across tenants
with their conflicts, carriers (secrets left out) with their traffic per minute, and the users of
every tenant. Kafka-side views (lag, dead letters) are in services/core/kafka_admin.py and
services/core/dlq_replay.py."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.core import tenancy
from services.core.carriers import load_carriers
from services.core.db.bridge_models import MetricWindow
from services.core.db.console_models import ConsoleUser
from services.core.db.models import Keyword, Message, SenderNumber, Tenant

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


# -- sender numbers and keywords across tenants ------------------------------------------------

@dataclass
class NumberRow:
    number: str
    tenant_id: str
    shared: bool
    rules: int
    default_sender: bool
    conflict: str = ""  # why this number is a problem, "" when it is not


def numbers(s: Session, *, q: str = "", after: str | None = None, limit: int = 100) -> list[NumberRow]:
    """Every tenant's sender numbers, by number (keyset-paged on the number), each with the
    rules bound to it and a conflict when the same number is held by two tenants and not shared
    by all of them (the router could not tell whose a text is)."""
    query = select(SenderNumber).order_by(SenderNumber.number, SenderNumber.tenant_id)
    if q:
        q = q.strip()
        query = query.where(SenderNumber.number.contains(q) | SenderNumber.tenant_id.contains(q))
    if after:
        query = query.where(SenderNumber.number > after)
    rows = list(s.scalars(query.limit(limit)))
    nums = sorted({r.number for r in rows})
    holders: dict[str, list[SenderNumber]] = {}
    for r in s.scalars(select(SenderNumber).where(SenderNumber.number.in_(nums))):
        holders.setdefault(r.number, []).append(r)
    rules = dict(((t, n), c) for t, n, c in s.execute(
        select(Keyword.tenant_id, Keyword.number, func.count()).where(Keyword.number.in_(nums))
        .group_by(Keyword.tenant_id, Keyword.number)).all())
    defaults = {(t.id, t.default_sender)
                for t in s.scalars(select(Tenant).where(Tenant.default_sender.in_(nums)))}
    out = []
    for r in rows:
        others = [h for h in holders.get(r.number, []) if h.tenant_id != r.tenant_id]
        conflict = ""
        if others and not (r.shared and all(h.shared for h in others)):
            conflict = "held by " + ", ".join(sorted(h.tenant_id for h in others)) + " too, not shared"
        out.append(NumberRow(r.number, r.tenant_id, r.shared, rules.get((r.tenant_id, r.number), 0),
                             (r.tenant_id, r.number) in defaults, conflict))
    return out


@dataclass
class KeywordConflict:
    number: str
    keyword: str
    tenants: list[str]


def keyword_conflicts(s: Session) -> list[KeywordConflict]:
    """Keywords two tenants both answer on one shared number: the router gives such a text to
    one of them only. Read over the shared numbers and their rules (never the whole table)."""
    shared = s.execute(select(SenderNumber.number, SenderNumber.tenant_id)
                       .where(SenderNumber.shared.is_(True))).all()
    by_number: dict[str, set[str]] = {}
    for number, tenant in shared:
        by_number.setdefault(number, set()).add(tenant)
    tenants = {t for ts in by_number.values() for t in ts}
    if not tenants:
        return []
    seen: dict[tuple[str, str], set[str]] = {}
    for k in s.scalars(select(Keyword).where(Keyword.tenant_id.in_(tenants), Keyword.keyword != "")):
        for number, holders in by_number.items():
            if k.tenant_id in holders and k.number in ("*", number):
                seen.setdefault((number, k.keyword), set()).add(k.tenant_id)
    return [KeywordConflict(n, kw, sorted(ts)) for (n, kw), ts in sorted(seen.items()) if len(ts) > 1]


def reassign_number(s: Session, number: str, from_tenant: str, to_tenant: str) -> SenderNumber:
    """Move a number from one tenant to another. Refused (UserError naming the field) when the
    source does not hold it, a rule or the default sender of the source uses it (its texts would
    go nowhere: the same check as a tenant giving it up), or the target is unknown or holds it."""
    number, to_tenant = number.strip(), to_tenant.strip().lower()
    if s.get(Tenant, to_tenant) is None:
        raise UserError("to_tenant", "There is no tenant with this id.")
    if to_tenant == from_tenant:
        raise UserError("to_tenant", "The number is already this tenant's.")
    if s.scalar(select(SenderNumber).where(SenderNumber.number == number,
                                           SenderNumber.tenant_id == to_tenant)) is not None:
        raise UserError("to_tenant", "This tenant holds the number already.")
    try:
        row = tenancy.release_number(s, from_tenant, number)
    except tenancy.NumberRefused as exc:
        if exc.code == "rules":
            raise UserError("number", "Routing rules of this tenant use this number; they must "
                                      "be changed first.") from None
        raise UserError("number", "It is this tenant’s default sender; it must choose another "
                                  "first.") from None
    if row is None:
        raise UserError("number", "This tenant does not hold the number.")
    return tenancy.add_number(s, to_tenant, number, shared=row.shared)


# -- carriers ------------------------------------------------------------------------------------

SECRET_WORDS = ("password", "secret", "token", "key", "credential")


@dataclass
class CarrierView:
    name: str
    kind: str
    endpoint: str  # the submit URL or SMPP host without credentials
    prefixes: tuple[str, ...]
    priority: int
    rate_per_second: float
    timeout_s: float
    webhook_auth: str
    options: dict[str, Any]  # the non-secret ones
    minutes: list[tuple[datetime, int, int]] = field(default_factory=list)  # (minute, sent, failed)
    live: dict[str, Any] | None = None  # egress's /health detail of its binds, when it has them

    @property
    def sent_last(self) -> int:
        return self.minutes[-1][1] if self.minutes else 0

    @property
    def failed_last(self) -> int:
        return self.minutes[-1][2] if self.minutes else 0


def _public_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.netloc:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def carriers(path: str) -> tuple[list[CarrierView], str]:
    """The carriers file's declarations with every secret left out; (carriers, problem)."""
    try:
        declared = load_carriers(path)
    except (OSError, ValueError, TypeError) as exc:
        return [], f"{path}: {exc}"
    out = []
    for c in declared.values():
        opts = {k: v for k, v in sorted(c.options.items())
                if not any(w in k.lower() for w in SECRET_WORDS)}
        endpoint = _public_url(c.submit_url) if c.submit_url else \
            f"{c.options.get('host', '')}:{c.options.get('port', '')}".strip(":")
        out.append(CarrierView(c.name, c.kind, endpoint, c.prefixes, c.priority, c.rate_per_second,
                               c.timeout_s, c.webhook_auth, opts))
    return out, ""


def carrier_minutes(s: Session, names: list[str], minutes: int = 30,
                    now: datetime | None = None) -> dict[str, list[tuple[datetime, int, int]]]:
    """Submissions and failures per minute and carrier over the last ``minutes`` (the metrics
    processor's minute windows; minutes without traffic are 0)."""
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    since = now - timedelta(minutes=minutes - 1)
    rows = s.execute(
        select(MetricWindow.carrier, MetricWindow.window_start, func.sum(MetricWindow.sent),
               func.sum(MetricWindow.failed))
        .where(MetricWindow.granularity == "minute", MetricWindow.window_start >= since,
               MetricWindow.carrier.in_(names))
        .group_by(MetricWindow.carrier, MetricWindow.window_start)).all()
    got: dict[tuple[str, datetime], tuple[int, int]] = {}
    for carrier, start, sent, failed in rows:
        start = start.replace(tzinfo=UTC) if start.tzinfo is None else start
        got[(carrier, start)] = (int(sent or 0), int(failed or 0))
    steps = [since + timedelta(minutes=i) for i in range(minutes)]
    return {n: [(m, *got.get((n, m), (0, 0))) for m in steps] for n in names}


# -- users of every tenant -------------------------------------------------------------------------

@dataclass
class UserRow:
    id: int
    email: str
    name: str
    tenant_id: str | None
    role: str
    active: bool
    last_login_at: datetime | None
    locked: bool


def all_users(s: Session, *, tenant: str = "", q: str = "", after: int | None = None,
              limit: int = 50, now: datetime | None = None) -> list[UserRow]:
    """Console users of every tenant (and the operators), keyset-paged by id; no hashes."""
    now = now or datetime.now(UTC)
    query = select(ConsoleUser).order_by(ConsoleUser.id).limit(limit)
    if tenant == "-":
        query = query.where(ConsoleUser.tenant_id.is_(None))
    elif tenant:
        query = query.where(ConsoleUser.tenant_id == tenant)
    if q:
        query = query.where(ConsoleUser.email.contains(q.strip().lower()))
    if after is not None:
        query = query.where(ConsoleUser.id > after)
    out = []
    for u in s.scalars(query):
        until = u.locked_until
        if until is not None and until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        out.append(UserRow(u.id, u.email, u.name, u.tenant_id, u.role, u.active, u.last_login_at,
                           bool(until and until > now)))
    return out


def tenant_ids(s: Session) -> list[str]:
    return list(s.scalars(select(Tenant.id).order_by(Tenant.id)))
