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
