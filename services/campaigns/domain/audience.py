"""Who a campaign goes to, read in chunks by keyset pagination (``id > cursor ORDER BY id
LIMIT n``): the expander never holds more than one chunk of an audience in memory, and the
cursor it commits after each chunk is where a restarted worker resumes.

Segments are filters over contact fields and tags::

    {"all": [{"field": "city", "op": "eq", "value": "Shanghai"}, {"tag": "vip"}]}
    {"any": [...]}   {"not": {...}}

Operators: eq, ne, in, contains, prefix, exists, gt, gte, lt, lte (numbers compare as numbers).
A segment is evaluated in Python over each chunk, so it works the same on SQLite and PostgreSQL;
the cursor still advances over every contact scanned, matching or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.db.campaigns_models import Campaign, ContactListMember, Segment, Subscriber
from services.core.db.models import Contact

from .templates import contact_values

OPS = {"eq", "ne", "in", "contains", "prefix", "exists", "gt", "gte", "lt", "lte"}
MAX_DEPTH = 6
SCAN_FACTOR = 10  # a segment chunk scans at most this many contacts per wanted match


class FilterError(ValueError):
    """A segment filter that cannot be evaluated, with where and why."""


def check_filter(f: Any, path: str = "filter", depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise FilterError(f"{path}: nested deeper than {MAX_DEPTH}")
    if not isinstance(f, Mapping) or len(f) == 0:
        raise FilterError(f"{path}: expected an object such as {{\"tag\": \"vip\"}}")
    if "all" in f or "any" in f:
        key = "all" if "all" in f else "any"
        items = f[key]
        if not isinstance(items, list) or not items:
            raise FilterError(f"{path}.{key}: expected a non-empty list of conditions")
        for i, item in enumerate(items):
            check_filter(item, f"{path}.{key}[{i}]", depth + 1)
    elif "not" in f:
        check_filter(f["not"], f"{path}.not", depth + 1)
    elif "tag" in f:
        if not isinstance(f["tag"], str) or not f["tag"].strip():
            raise FilterError(f"{path}.tag: expected a tag name")
    elif "field" in f:
        op = f.get("op", "eq")
        if op not in OPS:
            raise FilterError(f"{path}.op: {op!r} is not one of {', '.join(sorted(OPS))}")
        if op != "exists" and "value" not in f:
            raise FilterError(f"{path}: operator {op!r} needs a value")
        if op == "in" and not isinstance(f.get("value"), list):
            raise FilterError(f"{path}.value: 'in' needs a list")
    else:
        raise FilterError(f"{path}: expected one of all, any, not, tag, field")


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _compare(op: str, have: Any, want: Any) -> bool:
    if op == "exists":
        return have not in (None, "")
    if have is None:
        return op == "ne"
    if op == "in":
        return any(_compare("eq", have, w) for w in want)
    if op in ("eq", "ne"):
        a, b = _num(have), _num(want)
        same = (a == b) if a is not None and b is not None else \
            str(have).strip().lower() == str(want).strip().lower()
        return same if op == "eq" else not same
    if op == "contains":
        return str(want).lower() in str(have).lower()
    if op == "prefix":
        return str(have).lower().startswith(str(want).lower())
    a, b = _num(have), _num(want)
    if a is None or b is None:
        a, b = str(have), str(want)  # e.g. ISO dates compare as strings
    return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]


def matches(f: Mapping[str, Any], contact: Contact, values: Mapping[str, Any] | None = None) -> bool:
    values = values if values is not None else contact_values(contact)
    if "all" in f:
        return all(matches(x, contact, values) for x in f["all"])
    if "any" in f:
        return any(matches(x, contact, values) for x in f["any"])
    if "not" in f:
        return not matches(f["not"], contact, values)
    if "tag" in f:
        return f["tag"].strip().lower() in (contact.tags or [])
    return _compare(f.get("op", "eq"), values.get(str(f["field"]).lower()), f.get("value"))


@dataclass(frozen=True)
class Member:
    """One member of an audience: its keyset id, number and contact (None for a subscriber
    with no contact record)."""

    key: int
    msisdn: str
    contact: Contact | None


@dataclass(frozen=True)
class Chunk:
    members: list[Member]
    cursor: int  # the last key scanned
    exhausted: bool


def next_chunk(s: Session, tenant_id: str, kind: str, ref: int | None, segment: Mapping | None,
               after: int, limit: int) -> Chunk:
    if kind == "all":
        rows = list(s.scalars(select(Contact).where(Contact.tenant_id == tenant_id, Contact.id > after)
                              .order_by(Contact.id).limit(limit)))
        return Chunk([Member(c.id, c.msisdn, c) for c in rows], rows[-1].id if rows else after,
                     len(rows) < limit)
    if kind == "list":
        rows = list(s.execute(
            select(ContactListMember.contact_id, Contact)
            .join(Contact, Contact.id == ContactListMember.contact_id)
            .where(ContactListMember.list_id == ref, ContactListMember.contact_id > after)
            .order_by(ContactListMember.contact_id).limit(limit)).all())
        return Chunk([Member(cid, c.msisdn, c) for cid, c in rows], rows[-1][0] if rows else after,
                     len(rows) < limit)
    if kind == "segment":
        scan = limit * SCAN_FACTOR
        rows = list(s.scalars(select(Contact).where(Contact.tenant_id == tenant_id, Contact.id > after)
                              .order_by(Contact.id).limit(scan)))
        picked: list[Member] = []
        cursor = after
        for c in rows:
            cursor = c.id
            if matches(segment or {}, c):
                picked.append(Member(c.id, c.msisdn, c))
                if len(picked) >= limit:
                    break
        exhausted = len(rows) < scan and (not rows or cursor == rows[-1].id)
        return Chunk(picked, cursor, exhausted)
    if kind == "topic":
        subs = list(s.scalars(select(Subscriber).where(Subscriber.topic_id == ref,
                                                       Subscriber.active.is_(True),
                                                       Subscriber.id > after)
                              .order_by(Subscriber.id).limit(limit)))
        contacts = {c.msisdn: c for c in s.scalars(select(Contact).where(
            Contact.tenant_id == tenant_id, Contact.msisdn.in_([x.msisdn for x in subs])))} \
            if subs else {}
        return Chunk([Member(x.id, x.msisdn, contacts.get(x.msisdn)) for x in subs],
                     subs[-1].id if subs else after, len(subs) < limit)
    return Chunk([], after, True)


# -- saved segments and their live count (the console's segment editor and the admin API) ------

COUNT_CHUNK = 2000
IN_USE = ("draft", "scheduled", "running", "paused", "active")  # campaigns still to send


class SegmentError(ValueError):
    """A segment that cannot be saved, naming the form field (``name`` or ``filter``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def count_matching(s: Session, tenant_id: str, f: Mapping[str, Any]) -> int:
    """How many of the tenant's contacts the filter matches, by the same :func:`matches` the
    expander uses, read in keyset chunks (never the whole table in memory)."""
    check_filter(f)
    after, n = 0, 0
    cols = (Contact.id, Contact.msisdn, Contact.name, Contact.language, Contact.timezone,
            Contact.fields, Contact.tags)
    while True:
        rows = s.execute(select(*cols).where(Contact.tenant_id == tenant_id, Contact.id > after)
                         .order_by(Contact.id).limit(COUNT_CHUNK)).all()
        # plain rows, not ORM objects: a count over 100,000 contacts fills no identity map
        n += sum(1 for r in rows if matches(f, r))
        if len(rows) < COUNT_CHUNK:
            return n
        after = rows[-1].id


def get_segment(s: Session, tenant_id: str, segment_id: int) -> Segment | None:
    return s.scalar(select(Segment).where(Segment.tenant_id == tenant_id, Segment.id == segment_id))


def save_segment(s: Session, tenant_id: str, name: str, f: Any,
                 segment: Segment | None = None) -> Segment:
    """Create a segment, or change ``segment``; the name is unique per tenant and the filter
    must pass :func:`check_filter`."""
    name = (name or "").strip()
    if not 0 < len(name) <= 100:
        raise SegmentError("name", "a segment name must be 1 to 100 characters")
    try:
        check_filter(f)
    except FilterError as exc:
        raise SegmentError("filter", str(exc)) from None
    clash = s.scalar(select(Segment.id).where(Segment.tenant_id == tenant_id, Segment.name == name))
    if clash is not None and (segment is None or clash != segment.id):
        raise SegmentError("name", f"there is already a segment named {name!r}")
    if segment is None:
        segment = Segment(tenant_id=tenant_id, name=name, filter=dict(f))
        s.add(segment)
    else:
        segment.name, segment.filter = name, dict(f)
    s.flush()
    return segment


def delete_segment(s: Session, segment: Segment) -> None:
    """Delete a segment; refused while a campaign still to send uses it."""
    using = s.scalar(select(Campaign.name).where(
        Campaign.tenant_id == segment.tenant_id, Campaign.audience_kind == "segment",
        Campaign.audience_ref == segment.id, Campaign.status.in_(IN_USE)))
    if using:
        raise SegmentError("form", f"campaign {using!r} sends to this segment; finish or cancel "
                           "it first")
    s.delete(segment)
    s.flush()
