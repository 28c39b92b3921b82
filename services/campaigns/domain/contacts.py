"""Contacts: validation, upsert, the custom-field registry, CSV import with a report of rejected
rows, and lists.

A CSV has a header row. ``msisdn`` (or ``phone``/``mobile``) is required; ``name``, ``language``,
``timezone``, ``tags`` (separated by ``;`` or ``|``) and ``birthday`` are known columns; any other
column is a custom field. Rows are validated one by one: a bad row is reported with its line
number and reason and changes nothing; good rows are upserted by number in chunks. With
``atomic`` nothing is written unless every row is good.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.db.campaigns_models import ContactField, ContactList, ContactListMember
from services.core.db.models import Contact

from .policy import valid_zone
from .templates import BUILTIN_FIELDS, NAME_RE

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
MSISDN_COLUMNS = ("msisdn", "phone", "mobile", "number")
KNOWN_COLUMNS = {"name", "language", "timezone", "tags"}
MAX_FIELDS = 50
MAX_VALUE = 500
MAX_REJECTS_LISTED = 1000
CHUNK = 500


class ContactError(ValueError):
    """A contact that cannot be stored, with the reason."""


@dataclass
class ContactIn:
    msisdn: str
    name: str | None = None
    language: str | None = None
    timezone: str | None = None
    tags: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


def normalise_msisdn(raw: str) -> str:
    v = re.sub(r"[\s().-]", "", raw or "")
    if v.startswith("00"):
        v = "+" + v[2:]
    if not E164.match(v):
        raise ContactError(f"phone number {raw!r} is not in international E.164 form "
                           "(+ country code and number, 7 to 15 digits)")
    return v


def check_date(value: str, what: str) -> str:
    """Dates are YYYY-MM-DD, or MM-DD when the year is unknown (a birthday without a year)."""
    v = value.strip()
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", v):
            date.fromisoformat(v)
            return v
        if re.fullmatch(r"[0-9]{2}-[0-9]{2}", v):
            date.fromisoformat(f"2000-{v}")  # 2000 is a leap year: 02-29 is a valid birthday
            return v
    except ValueError:
        pass
    raise ContactError(f"{what} {value!r} is not a date as YYYY-MM-DD or MM-DD")


def field_name(raw: str) -> str:
    name = raw.strip().lower().replace(" ", "_").replace("-", "_")
    if not NAME_RE.match(name):
        raise ContactError(f"{raw!r} is not a usable field name (letters, digits and '_', "
                           "starting with a letter)")
    return name


def validate(data: dict[str, Any]) -> ContactIn:
    """A contact from a JSON object or a CSV row (already keyed by normalised column names)."""
    raw_msisdn = next((data[k] for k in MSISDN_COLUMNS if data.get(k)), None)
    if raw_msisdn is None:
        raise ContactError("no phone number (column msisdn)")
    c = ContactIn(msisdn=normalise_msisdn(str(raw_msisdn)))
    name = (data.get("name") or "").strip()
    if len(name) > 200:
        raise ContactError("name is longer than 200 characters")
    c.name = name or None
    lang = (data.get("language") or "").strip()
    if lang:
        if not LANG.match(lang):
            raise ContactError(f"language {lang!r} is not a language code such as 'en' or 'zh-CN'")
        c.language = lang
    tz = (data.get("timezone") or "").strip()
    if tz:
        if not valid_zone(tz):
            raise ContactError(f"time zone {tz!r} is unknown (use an IANA name such as "
                               "'Asia/Shanghai')")
        c.timezone = tz
    tags = data.get("tags") or []
    if isinstance(tags, str):
        tags = [t for t in re.split(r"[;|]", tags)]
    c.tags = sorted({str(t).strip().lower() for t in tags if str(t).strip()})
    extra = data.get("fields") if isinstance(data.get("fields"), dict) else {}
    custom = {k: v for k, v in data.items()
              if k not in KNOWN_COLUMNS and k not in MSISDN_COLUMNS and k != "fields"}
    custom.update(extra)
    if len(custom) > MAX_FIELDS:
        raise ContactError(f"more than {MAX_FIELDS} custom fields")
    for k, v in custom.items():
        name_k = field_name(k)
        if name_k in BUILTIN_FIELDS:
            raise ContactError(f"custom field {k!r} clashes with a built-in field")
        if v is None or str(v).strip() == "":
            continue
        value = str(v).strip()
        if len(value) > MAX_VALUE:
            raise ContactError(f"field {k!r} is longer than {MAX_VALUE} characters")
        if name_k in ("birthday", "anniversary") or name_k.endswith("_date"):
            value = check_date(value, name_k)
        c.fields[name_k] = value
    return c


def register_fields(s: Session, tenant_id: str, names: Iterable[str]) -> None:
    names = set(names)
    if not names:
        return
    have = set(s.scalars(select(ContactField.name).where(ContactField.tenant_id == tenant_id,
                                                         ContactField.name.in_(names))))
    for n in sorted(names - have):
        s.add(ContactField(tenant_id=tenant_id, name=n))
    s.flush()


def known_fields(s: Session, tenant_id: str) -> set[str]:
    return set(s.scalars(select(ContactField.name).where(ContactField.tenant_id == tenant_id)))


def upsert(s: Session, tenant_id: str, contacts: list[ContactIn]) -> tuple[list[Contact], int, int]:
    """Insert or update by number (the last of duplicates wins). Returns (rows, created, updated)."""
    by_msisdn: dict[str, ContactIn] = {}
    for c in contacts:
        by_msisdn[c.msisdn] = c
    existing = {row.msisdn: row for row in s.scalars(
        select(Contact).where(Contact.tenant_id == tenant_id, Contact.msisdn.in_(list(by_msisdn))))}
    created = updated = 0
    rows: list[Contact] = []
    field_names: set[str] = set()
    for msisdn, c in by_msisdn.items():
        field_names.update(c.fields)
        row = existing.get(msisdn)
        if row is None:
            row = Contact(tenant_id=tenant_id, msisdn=msisdn, name=c.name, language=c.language,
                          timezone=c.timezone, fields=dict(c.fields), tags=list(c.tags))
            s.add(row)
            created += 1
        else:
            row.name = c.name or row.name
            row.language = c.language or row.language
            row.timezone = c.timezone or row.timezone
            row.fields = {**(row.fields or {}), **c.fields}
            row.tags = sorted(set(row.tags or []) | set(c.tags))
            updated += 1
        rows.append(row)
    register_fields(s, tenant_id, field_names)
    s.flush()
    return rows, created, updated


# -- lists -------------------------------------------------------------------------------------

def get_or_create_list(s: Session, tenant_id: str, name: str) -> ContactList:
    name = name.strip()
    if not name or len(name) > 100:
        raise ContactError("a list name must be 1 to 100 characters")
    row = s.scalar(select(ContactList).where(ContactList.tenant_id == tenant_id,
                                             ContactList.name == name))
    if row is None:
        row = ContactList(tenant_id=tenant_id, name=name)
        s.add(row)
        s.flush()
    return row


def add_members(s: Session, list_id: int, contact_ids: Iterable[int]) -> int:
    ids = set(contact_ids)
    if not ids:
        return 0
    have = set(s.scalars(select(ContactListMember.contact_id).where(
        ContactListMember.list_id == list_id, ContactListMember.contact_id.in_(ids))))
    new = sorted(ids - have)
    s.add_all(ContactListMember(list_id=list_id, contact_id=i) for i in new)
    s.flush()
    return len(new)


# -- CSV ---------------------------------------------------------------------------------------

@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    rejected: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)
    written: bool = True

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejects) < MAX_REJECTS_LISTED:
            self.rejects.append({"line": line, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "created": self.created, "updated": self.updated,
                "rejected": self.rejected, "rejected_rows": self.rejects, "written": self.written}


class CsvError(ValueError):
    """A CSV file that cannot be imported at all (no header, no number column)."""


def read_rows(stream: IO[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row keyed by normalised column) or (line number, reason) for a bad row."""
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise CsvError("the file is empty; expected a header row such as 'msisdn,name'") from None
    except csv.Error as exc:
        raise CsvError(f"header row: {exc}") from None
    try:
        columns = [field_name(h.lstrip("\ufeff")) for h in header]
    except ContactError as exc:
        raise CsvError(f"header row: {exc}") from None
    if len(set(columns)) != len(columns):
        raise CsvError("header row: a column name appears twice")
    if not any(c in MSISDN_COLUMNS for c in columns):
        raise CsvError(f"header row: no phone number column (one of {', '.join(MSISDN_COLUMNS)})")
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, f"unreadable CSV: {exc}"
            continue
        line = reader.line_num
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(columns):
            yield line, f"expected {len(columns)} columns, found {len(values)}"
            continue
        yield line, dict(zip(columns, values, strict=True))


def import_csv(session_factory, tenant_id: str, stream: IO[str], *, list_name: str | None = None,
               atomic: bool = False) -> ImportReport:
    """Import a CSV in chunks, one transaction each (or only after a clean validation pass when
    ``atomic``; the stream must then be seekable). ``session_factory()`` gives a transaction."""
    report = ImportReport()
    if atomic:
        for line, row in read_rows(stream):
            report.rows += 1
            if isinstance(row, str):
                report.reject(line, row)
                continue
            try:
                validate(row)
            except ContactError as exc:
                report.reject(line, str(exc))
        if report.rejected:
            report.written = False
            return report
        stream.seek(0)
        report = ImportReport()

    def flush(batch: list[ContactIn]) -> None:
        with session_factory() as s:
            rows, created, updated = upsert(s, tenant_id, batch)
            if list_name:
                add_members(s, get_or_create_list(s, tenant_id, list_name).id, [r.id for r in rows])
        report.created += created
        report.updated += updated

    batch: list[ContactIn] = []
    for line, row in read_rows(stream):
        report.rows += 1
        if isinstance(row, str):
            report.reject(line, row)
            continue
        try:
            batch.append(validate(row))
        except ContactError as exc:
            report.reject(line, str(exc))
            continue
        if len(batch) >= CHUNK:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    return report


def text_stream(data: bytes) -> IO[str]:
    return io.StringIO(data.decode("utf-8-sig"))


def contact_json(c: Contact) -> dict[str, Any]:
    return {"id": c.id, "msisdn": c.msisdn, "name": c.name, "language": c.language,
            "timezone": c.timezone, "tags": c.tags or [], "fields": c.fields or {}}
