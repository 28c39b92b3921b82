"""Contacts: validation, upsert, the custom-field registry, CSV import with a report of rejected
rows, and lists.

A CSV has a header row. ``msisdn`` (or ``phone``/``mobile``) is required; ``name``, ``language``,
``timezone``, ``tags`` (separated by ``;`` or ``|``) and ``birthday`` are known columns; any other
column is a custom field. Rows are validated one by one: a bad row is reported with its line
number and reason and changes nothing; good rows are upserted by number in chunks, all in one
transaction: an import stores exactly the rows its report accepted, or nothing. A number that
appears twice is reported as a duplicate (the first row is kept). With ``atomic`` nothing is
written unless every row is good.

The file's encoding is detected (UTF-8 with or without BOM, else GB18030, which is what Chinese
Excel and WPS save) or given; Chinese headers such as ``姓名,手机号`` map to Herald's columns.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from services.core.db.campaigns_models import (
    Campaign,
    ContactField,
    ContactList,
    ContactListMember,
)
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

# Headers as spreadsheets in China write them, mapped to Herald's columns.
HEADER_ALIASES = {
    "手机号": "msisdn", "手机": "msisdn", "手机号码": "msisdn", "电话": "msisdn", "电话号码": "msisdn",
    "号码": "msisdn", "联系电话": "msisdn", "移动电话": "msisdn",
    "姓名": "name", "名字": "name", "名称": "name", "客户姓名": "name",
    "语言": "language", "时区": "timezone", "标签": "tags",
    "生日": "birthday", "出生日期": "birthday", "纪念日": "anniversary",
    # traditional characters (Hong Kong, Taiwan)
    "手機號": "msisdn", "手機": "msisdn", "手機號碼": "msisdn", "電話": "msisdn", "電話號碼": "msisdn",
    "號碼": "msisdn", "聯絡電話": "msisdn", "語言": "language", "時區": "timezone", "標籤": "tags",
    "紀念日": "anniversary",
}
UTF8_EVIDENCE = 4  # non-ASCII characters that make a file UTF-8 (GBK text fails sooner)
SAVE_AS_HINT = ("save the file as 'CSV UTF-8' (Excel: Save As > CSV UTF-8; WPS: 另存为 > CSV, "
                "UTF-8), or name its encoding with ?encoding=gb18030 (or utf-8, big5, ...)")


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    rejected: int = 0
    duplicates: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)
    written: bool = True
    encoding: str = "utf-8"

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejects) < MAX_REJECTS_LISTED:
            self.rejects.append({"line": line, "reason": reason})

    @property
    def accepted(self) -> int:
        return self.created + self.updated if self.written else 0

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "accepted": self.accepted, "created": self.created,
                "updated": self.updated, "rejected": self.rejected, "duplicates": self.duplicates,
                "rejected_rows": self.rejects, "written": self.written, "encoding": self.encoding}


class CsvError(ValueError):
    """A CSV file that cannot be imported at all (no header, no number column, unreadable
    bytes); the message says what to do about it."""


def _codec(name: str) -> str:
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise CsvError(f"encoding {name!r} is unknown; use a name such as utf-8, gb18030, gbk "
                       "or big5") from None
    return "utf-8-sig" if codec in ("utf-8", "utf-8-sig") else codec


@dataclass(frozen=True)
class _Undecodable:
    line: int
    sample: bytes
    non_ascii_before: int  # characters beyond ASCII that decoded before the error


def _decodes(raw: IO[bytes], codec: str, piece: int = 1 << 20) -> _Undecodable | None:
    """None if the whole file decodes in ``codec``, else where the first error is."""
    raw.seek(0)
    dec = codecs.getincrementaldecoder(codec)()
    lines, non_ascii, tail = 1, 0, b""
    while True:
        data = raw.read(piece)
        try:
            text = dec.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            buf = tail + data  # exc.start counts in the decoder's pending bytes + this piece
            good = buf[:max(exc.start, 0)]
            non_ascii += sum(1 for ch in good.decode(codec, "ignore") if ord(ch) > 127)
            return _Undecodable(lines + good.count(b"\n"), buf[exc.start:exc.start + 4], non_ascii)
        if not data:
            return None
        non_ascii += sum(1 for ch in text if ord(ch) > 127)
        tail = dec.getstate()[0]
        lines += data[:len(data) - len(tail)].count(b"\n")


def detect_encoding(raw: IO[bytes], encoding: str | None = None) -> str:
    """The codec a whole file decodes with: ``encoding`` when given, else UTF-8 (with or without
    a BOM), else GB18030 (which covers GBK and GB2312, what Chinese Excel and WPS save). Reads
    the file through before anything is imported, so bad bytes on line 1,101 refuse the file
    instead of stopping an import half-way. Raises CsvError saying what to do.

    A file that was plainly UTF-8 up to its bad bytes (several non-ASCII characters decoded
    first) is damaged UTF-8, not GB18030: read as GB18030 it would import as mojibake."""
    if encoding:
        codec = _codec(encoding)
        bad = _decodes(raw, codec)
        if bad is None:
            raw.seek(0)
            return codec
        raise CsvError(f"line {bad.line} has bytes that are not {encoding} "
                       f"({bad.sample.hex(' ')}); {SAVE_AS_HINT}; nothing was imported")
    bad = _decodes(raw, "utf-8-sig")
    if bad is None:
        raw.seek(0)
        return "utf-8-sig"
    if bad.non_ascii_before < UTF8_EVIDENCE and _decodes(raw, "gb18030") is None:
        raw.seek(0)
        return "gb18030"
    looks = "is UTF-8 up to" if bad.non_ascii_before >= UTF8_EVIDENCE else "is neither UTF-8 nor GB18030:"
    raise CsvError(f"the file {looks} line {bad.line}, which has bytes that are not UTF-8 "
                   f"({bad.sample.hex(' ')}); {SAVE_AS_HINT}; nothing was imported")


def open_text(raw: IO[bytes], encoding: str | None = None) -> tuple[IO[str], str]:
    """A binary, seekable upload as text in its detected (or given) encoding, and that
    encoding's name."""
    codec = detect_encoding(raw, encoding)
    text = io.TextIOWrapper(raw, encoding=codec, newline="")
    return text, "utf-8" if codec == "utf-8-sig" else codec


def column_name(raw: str) -> str:
    """A header cell as a column name: a known Chinese header by its mapping, else a field name."""
    h = raw.lstrip("\ufeff").strip()
    mapped = HEADER_ALIASES.get(h)
    if mapped:
        return mapped
    try:
        return field_name(h)
    except ContactError:
        known = ", ".join(f"{k} ({v})" for k, v in HEADER_ALIASES.items() if k in (
            "手机号", "姓名", "语言", "时区", "标签", "生日"))
        raise CsvError(f"header row: column {h!r} is not a usable field name; rename it in the "
                       "first row to letters, digits and '_' starting with a letter (e.g. 'city' or "
                       f"'member_level'), or to a known header: {known}; nothing was imported") \
            from None


def read_rows(stream: IO[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row keyed by normalised column) or (line number, reason) for a bad row."""
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise CsvError("the file is empty; expected a header row such as 'msisdn,name'") from None
    except csv.Error as exc:
        raise CsvError(f"header row: {exc}") from None
    columns = [column_name(h) for h in header]
    if len(set(columns)) != len(columns):
        twice = sorted({c for c in columns if columns.count(c) > 1})
        raise CsvError(f"header row: column {', '.join(twice)} appears twice (a Chinese header "
                       "and its English name count as the same column)")
    if not any(c in MSISDN_COLUMNS for c in columns):
        raise CsvError(f"header row: no phone number column (one of {', '.join(MSISDN_COLUMNS)}, "
                       "or 手机号)")
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


class _NothingWritten(Exception):
    """Rolls an atomic import back after its report is complete."""


def import_csv(session_factory, tenant_id: str, stream: IO[str], *, list_name: str | None = None,
               atomic: bool = False) -> ImportReport:
    """Import a CSV in one transaction (``session_factory()`` gives one), upserting in chunks.

    The report and the database agree: the rows reported as accepted are stored, and if
    anything fails part-way (unreadable bytes, a database error) nothing is. A row repeating a
    number already seen in the file is reported as a duplicate, not merged; the first is
    kept. With ``atomic`` nothing is stored unless every row is good."""
    report = ImportReport()
    seen: dict[str, int] = {}

    def flush(s: Session, batch: list[ContactIn]) -> None:
        rows, created, updated = upsert(s, tenant_id, batch)
        if list_name:
            add_members(s, get_or_create_list(s, tenant_id, list_name).id, [r.id for r in rows])
        report.created += created
        report.updated += updated
        s.expunge_all()  # a big file must not pile up in the identity map

    try:
        with session_factory() as s:
            batch: list[ContactIn] = []
            for line, row in read_rows(stream):
                report.rows += 1
                if isinstance(row, str):
                    report.reject(line, row)
                    continue
                try:
                    c = validate(row)
                except ContactError as exc:
                    report.reject(line, str(exc))
                    continue
                first = seen.get(c.msisdn)
                if first is not None:
                    report.duplicates += 1
                    report.reject(line, f"duplicate: {c.msisdn} is already on line {first}; "
                                  "only the first row of a number is imported")
                    continue
                seen[c.msisdn] = line
                if atomic and report.rejected:
                    continue  # validation goes on for the report; nothing will be written
                batch.append(c)
                if len(batch) >= CHUNK:
                    flush(s, batch)
                    batch = []
            if atomic and report.rejected:
                raise _NothingWritten
            if batch:
                flush(s, batch)
    except _NothingWritten:
        report.written = False
    except UnicodeDecodeError as exc:  # only when the stream was not opened by open_text
        raise CsvError(f"the file has bytes that are not {exc.encoding} ({exc.reason}); "
                       f"{SAVE_AS_HINT}; nothing was imported") from None
    return report


def import_upload(session_factory, tenant_id: str, raw: IO[bytes], *, list_name: str | None = None,
                  atomic: bool = False, encoding: str | None = None) -> ImportReport:
    """Import an uploaded file (binary, seekable) whose encoding is detected or given."""
    stream, found = open_text(raw, encoding)
    try:
        report = import_csv(session_factory, tenant_id, stream, list_name=list_name, atomic=atomic)
    finally:
        stream.detach()  # the caller closes the upload
    report.encoding = found
    return report


def contact_json(c: Contact) -> dict[str, Any]:
    return {"id": c.id, "msisdn": c.msisdn, "name": c.name, "language": c.language,
            "timezone": c.timezone, "tags": c.tags or [], "fields": c.fields or {}}


# -- finding, editing and deleting (the console's contacts pages and the admin API) -------------

SORTS = ("added", "name", "msisdn")
IN_USE = ("draft", "scheduled", "running", "paused", "active")  # campaigns still to send


class ContactFieldError(ContactError):
    """A contact edit refused because of one field, named in ``field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ContactPage:
    rows: list[Contact]
    next_key: str | None  # the sort value of the last row, when there is a next page
    next_id: int | None


def _sort_column(sort: str):
    if sort == "name":
        return func.coalesce(Contact.name, "")
    if sort == "msisdn":
        return Contact.msisdn
    return Contact.id


def search(s: Session, tenant_id: str, *, q: str = "", field_name_: str | None = None,
           sort: str = "added", descending: bool = False, after_key: str | None = None,
           after_id: int | None = None, limit: int = 50) -> ContactPage:
    """One page of a tenant's contacts, keyset-paged on (sort value, id), never by offset.

    ``q`` matches the number (digits anywhere; from the start when it begins with '+'), else the
    name, or with ``field_name_`` that custom field's value (case-insensitive contains)."""
    sort = sort if sort in SORTS else "added"
    col = _sort_column(sort)
    stmt = select(Contact).where(Contact.tenant_id == tenant_id)
    q = (q or "").strip()
    if q:
        pattern = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        if field_name_:
            stmt = stmt.where(Contact.fields[field_name_].as_string().ilike(
                f"%{pattern}%", escape="\\"))
        elif re.fullmatch(r"[+0-9\s().-]+", q) and re.search(r"[0-9]", q):
            digits = re.sub(r"[^0-9]", "", q)
            stmt = stmt.where(Contact.msisdn.like(f"+{digits}%") if q.startswith("+")
                              else Contact.msisdn.like(f"%{digits}%"))
        else:
            stmt = stmt.where(Contact.name.ilike(f"%{pattern}%", escape="\\"))
    if after_id is not None:
        if sort == "added":
            stmt = stmt.where(Contact.id < after_id if descending else Contact.id > after_id)
        else:
            key = tuple_(col, Contact.id)
            mark = tuple_(after_key or "", after_id)
            stmt = stmt.where(key < mark if descending else key > mark)
    order = [col.desc(), Contact.id.desc()] if descending else [col.asc(), Contact.id.asc()]
    if sort == "added":
        order = order[:1]
    rows = list(s.scalars(stmt.order_by(*order).limit(limit + 1)))
    if len(rows) <= limit:
        return ContactPage(rows, None, None)
    rows = rows[:limit]
    last = rows[-1]
    key = {"name": last.name or "", "msisdn": last.msisdn}.get(sort, "")
    return ContactPage(rows, key, last.id)


def get_contact(s: Session, tenant_id: str, contact_id: int) -> Contact | None:
    """The tenant's contact, or None (also when the id is another tenant's)."""
    return s.scalar(select(Contact).where(Contact.tenant_id == tenant_id, Contact.id == contact_id))


def create_contact(s: Session, tenant_id: str, data: dict[str, Any]) -> Contact:
    """A new contact; a number already in the tenant's contacts is refused (edit that one)."""
    try:
        c = validate(data)
    except ContactError as exc:
        raise ContactFieldError("msisdn" if "phone number" in str(exc) else "form", str(exc)) from None
    if s.scalar(select(Contact.id).where(Contact.tenant_id == tenant_id, Contact.msisdn == c.msisdn)):
        raise ContactFieldError("msisdn", f"{c.msisdn} is already a contact; search for it to edit it")
    rows, _, _ = upsert(s, tenant_id, [c])
    return rows[0]


def edit(s: Session, tenant_id: str, contact: Contact, *, name: str = "", language: str = "",
         timezone: str = "", tags: str | list[str] = "", fields: dict[str, str] | None = None
         ) -> Contact:
    """Replace a contact's name, language, time zone, tags and custom fields (an empty custom
    field is removed). Each part is checked by :func:`validate`'s rules; a refusal names the
    part (``name``, ``language``, ``timezone``, ``tags`` or ``field:<name>``) and changes
    nothing. The number is the contact's identity and does not change."""
    def check(part: str, data: dict[str, Any]) -> ContactIn:
        try:
            return validate({"msisdn": contact.msisdn, **data})
        except ContactError as exc:
            raise ContactFieldError(part, str(exc)) from None

    new_name = check("name", {"name": name}).name
    new_lang = check("language", {"language": language}).language
    new_zone = check("timezone", {"timezone": timezone}).timezone
    new_tags = check("tags", {"tags": tags}).tags
    new_fields: dict[str, str] = {}
    for k, v in (fields or {}).items():
        try:
            key = field_name(k)
        except ContactError as exc:
            raise ContactFieldError(f"field:{k}", str(exc)) from None
        new_fields.update(check(f"field:{k}", {"fields": {key: v}}).fields)
    if len(new_fields) > MAX_FIELDS:
        raise ContactFieldError("form", f"more than {MAX_FIELDS} custom fields")
    contact.name, contact.language, contact.timezone = new_name, new_lang, new_zone
    contact.tags, contact.fields = new_tags, new_fields
    register_fields(s, tenant_id, new_fields)
    s.flush()
    return contact


def delete_contact(s: Session, contact: Contact) -> None:
    """Delete a contact and its list memberships (its opt-out state stays: it belongs to the
    number, not to the contact record)."""
    s.execute(ContactListMember.__table__.delete().where(ContactListMember.contact_id == contact.id))
    s.delete(contact)
    s.flush()


def lists_with_counts(s: Session, tenant_id: str) -> list[tuple[ContactList, int]]:
    return [(lst, n) for lst, n in s.execute(
        select(ContactList, func.count(ContactListMember.contact_id))
        .outerjoin(ContactListMember, ContactListMember.list_id == ContactList.id)
        .where(ContactList.tenant_id == tenant_id).group_by(ContactList.id)
        .order_by(ContactList.name)).all()]


def get_list(s: Session, tenant_id: str, list_id: int) -> ContactList | None:
    return s.scalar(select(ContactList).where(ContactList.tenant_id == tenant_id,
                                              ContactList.id == list_id))


def create_list(s: Session, tenant_id: str, name: str) -> ContactList:
    """A new list; a name the tenant already uses is refused."""
    name = name.strip()
    if s.scalar(select(ContactList.id).where(ContactList.tenant_id == tenant_id,
                                             ContactList.name == name)):
        raise ContactFieldError("name", f"there is already a list named {name!r}")
    try:
        return get_or_create_list(s, tenant_id, name)
    except ContactError as exc:
        raise ContactFieldError("name", str(exc)) from None


def list_count(s: Session, list_id: int) -> int:
    return s.scalar(select(func.count()).select_from(ContactListMember)
                    .where(ContactListMember.list_id == list_id)) or 0


def list_members(s: Session, list_id: int, *, after: int = 0, limit: int = 50
                 ) -> tuple[list[Contact], int | None]:
    """One page of a list's contacts by contact id (the membership key), and the next cursor."""
    rows = list(s.scalars(select(Contact).join(ContactListMember,
                                               ContactListMember.contact_id == Contact.id)
                          .where(ContactListMember.list_id == list_id,
                                 ContactListMember.contact_id > after)
                          .order_by(ContactListMember.contact_id).limit(limit + 1)))
    return rows[:limit], (rows[limit - 1].id if len(rows) > limit else None)


def lists_of(s: Session, contact_id: int) -> list[ContactList]:
    return list(s.scalars(select(ContactList).join(
        ContactListMember, ContactListMember.list_id == ContactList.id)
        .where(ContactListMember.contact_id == contact_id).order_by(ContactList.name)))


def add_numbers(s: Session, tenant_id: str, lst: ContactList, numbers: Iterable[str]) -> int:
    """Add contacts by number; every number must be a valid number of an existing contact, else
    nothing is added and the error names them."""
    wanted: list[str] = []
    for n in numbers:
        if n.strip():
            try:
                wanted.append(normalise_msisdn(n))
            except ContactError as exc:
                raise ContactFieldError("msisdns", str(exc)) from None
    if not wanted:
        raise ContactFieldError("msisdns", "give at least one phone number")
    found = dict(s.execute(select(Contact.msisdn, Contact.id).where(
        Contact.tenant_id == tenant_id, Contact.msisdn.in_(wanted))).all())
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise ContactFieldError("msisdns", f"no contact for {', '.join(missing[:10])}; "
                                "add them as contacts first; nothing was added")
    return add_members(s, lst.id, found.values())


def remove_member(s: Session, lst: ContactList, contact_id: int) -> bool:
    n = s.execute(ContactListMember.__table__.delete().where(
        ContactListMember.list_id == lst.id, ContactListMember.contact_id == contact_id)).rowcount
    return bool(n)


def delete_list(s: Session, lst: ContactList) -> None:
    """Delete a list (not its contacts); refused while a campaign still to send uses it."""
    using = s.scalar(select(Campaign.name).where(
        Campaign.tenant_id == lst.tenant_id, Campaign.audience_kind == "list",
        Campaign.audience_ref == lst.id, Campaign.status.in_(IN_USE)))
    if using:
        raise ContactFieldError("form", f"campaign {using!r} sends to this list; finish or cancel "
                                "it first")
    s.execute(ContactListMember.__table__.delete().where(ContactListMember.list_id == lst.id))
    s.delete(lst)
    s.flush()
