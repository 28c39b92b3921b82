"""Contacts: search, edit and delete contacts; lists and their members; segments with a live
count; CSV import with progress and a report of rejected rows; the consent (opt-out) log.

Every change goes through services/campaigns/domain (contacts.py, audience.py), the same code as
the admin API, and is audited. Analysts see everything and change nothing."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import select, tuple_

from services.campaigns.domain import audience, contacts
from services.campaigns.domain.audience import FilterError, SegmentError
from services.campaigns.domain.contacts import ContactFieldError
from services.core.db.campaigns_models import Segment
from services.core.db.models import OptOut

from .. import i18n
from ..domain import audit, imports
from ..web import console_of, field_errors, redirect, render, requires, tenant_of

routes = web.RouteTableDef()
_ = i18n.gettext
PAGE = 50


def N_(message: str) -> str:
    """Marks a string for the catalogue; it is translated where it is shown."""
    return message


OPS = [("eq", N_("equals")), ("ne", N_("does not equal")), ("contains", N_("contains")),
       ("prefix", N_("starts with")), ("in", N_("is one of")), ("exists", N_("is filled in")),
       ("gt", N_("is more than")), ("gte", N_("is at least")), ("lt", N_("is less than")),
       ("lte", N_("is at most"))]
STATUS_LABELS = {"queued": N_("waiting"), "running": N_("importing"), "done": N_("finished"),
                 "failed": N_("failed")}
PHASE_LABELS = {"queued": N_("Waiting to start"), "checking": N_("Reading the file"),
                "importing": N_("Importing"), "finishing": N_("Saving"),
                "running": N_("Importing")}
MAX_CONDITIONS = 12
ENCODINGS = ["", "utf-8", "gb18030", "big5"]
TAG_SPLIT = re.compile(r"[,，;；|]")


def _int(value: Any, default: int | None = None) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def _id(request: web.Request, key: str = "id") -> int:
    return int(request.match_info[key])  # the route's pattern admits digits only


def _contact_view(c) -> dict[str, Any]:
    return {k: v for k, v in contacts.contact_json(c).items() if k != "id"}


# -- contacts ----------------------------------------------------------------------------------


@routes.get("/contacts")
@requires()
async def contacts_page(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    q = request.query.get("q", "").strip()
    field = request.query.get("field", "").strip() or None
    sort = request.query.get("sort", "added")
    sort = sort if sort in contacts.SORTS else "added"
    desc = request.query.get("dir", "desc" if sort == "added" else "asc") == "desc"
    after_id = _int(request.query.get("after"))
    after_key = request.query.get("key")

    def load(s):
        known = sorted(contacts.known_fields(s, tenant))
        f = field if field in known else None
        page = contacts.search(s, tenant, q=q, field_name_=f, sort=sort, descending=desc,
                               after_key=after_key, after_id=after_id, limit=PAGE)
        return page, known

    page, known = await console_of(request).run(load)
    base = {"q": q, "field": field or "", "sort": sort, "dir": "desc" if desc else "asc"}
    next_url = ""
    if page.next_id is not None:
        next_url = "?" + _qs({**base, "after": page.next_id, "key": page.next_key or ""})
    return render(request, "contacts.html", title=_("Contacts"), tab="contacts", page=page,
                  known_fields=known, q=q, field=field or "", sort=sort, desc=desc,
                  next_url=next_url, first_url=("?" + _qs(base)) if after_id else "",
                  base=base)


def _qs(d: dict[str, Any]) -> str:
    return urlencode({k: v for k, v in d.items() if v not in ("", None)})


def _edit_args(form) -> dict[str, Any]:
    fields = {k[len("field:"):]: str(v) for k, v in form.items() if k.startswith("field:")}
    new_name = str(form.get("new_field_name", "")).strip()
    if new_name:
        fields[new_name] = str(form.get("new_field_value", ""))
    tags = [t for t in TAG_SPLIT.split(str(form.get("tags", ""))) if t.strip()]
    return {"name": str(form.get("name", "")), "language": str(form.get("language", "")),
            "timezone": str(form.get("timezone", "")), "tags": tags, "fields": fields}


@routes.get("/contacts/new")
@requires(write=True)
async def new_contact_page(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    known = await console_of(request).run(lambda s: sorted(contacts.known_fields(s, tenant)))
    return render(request, "contacts_new.html", title=_("New contact"), tab="contacts",
                  known_fields=known, form={}, errors={})


@routes.post("/contacts/new")
@requires(write=True)
async def create_contact(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    args = _edit_args(form)

    def run(s):
        try:
            c = contacts.create_contact(s, tenant, {"msisdn": str(form.get("msisdn", ""))})
            contacts.edit(s, tenant, c, **args)
        except ContactFieldError as exc:
            s.rollback()
            return exc, sorted(contacts.known_fields(s, tenant))
        audit.record(s, tenant_id=tenant, actor=p.actor, action="create", object_type="contact",
                     object_id=str(c.id), after=_contact_view(c))
        return c.id, None

    result, known = await console_of(request).run(run)
    if isinstance(result, ContactFieldError):
        return render(request, "contacts_new.html", status=422, title=_("New contact"),
                      tab="contacts", known_fields=known, form=form, errors=field_errors(result))
    raise redirect(f"/contacts/{result}", _("The contact is added."))


async def _contact_page(request: web.Request, tenant: str, cid: int, status: int = 200,
                        form: Any = None, errors: dict | None = None) -> web.Response:
    def load(s):
        c = contacts.get_contact(s, tenant, cid)
        if c is None:
            return None
        optout = s.get(OptOut, (tenant, c.msisdn))
        return (c, contacts.lists_of(s, c.id), [lst for lst, _n in contacts.lists_with_counts(s, tenant)],
                sorted(contacts.known_fields(s, tenant) | set(c.fields or {})), optout)

    found = await console_of(request).run(load)
    if found is None:
        raise web.HTTPNotFound()
    c, member_of, all_lists, known, optout = found
    if form is None:
        form = {"name": c.name or "", "language": c.language or "", "timezone": c.timezone or "",
                "tags": ", ".join(c.tags or []),
                **{f"field:{k}": v for k, v in (c.fields or {}).items()}}
    others = [lst for lst in all_lists if lst.id not in {m.id for m in member_of}]
    return render(request, "contacts_edit.html", status=status, title=c.name or c.msisdn,
                  tab="contacts", contact=c, member_of=member_of, other_lists=others,
                  known_fields=known, form=form, errors=errors or {}, optout=optout)


@routes.get(r"/contacts/{id:\d+}")
@requires()
async def contact_page(request: web.Request) -> web.Response:
    return await _contact_page(request, tenant_of(request), _id(request))


@routes.post(r"/contacts/{id:\d+}")
@requires(write=True)
async def save_contact(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    cid = _id(request)
    form = await request.post()
    args = _edit_args(form)

    def run(s):
        c = contacts.get_contact(s, tenant, cid)
        if c is None:
            return None
        before = _contact_view(c)
        try:
            contacts.edit(s, tenant, c, **args)
        except ContactFieldError as exc:
            s.rollback()
            return exc
        audit.record(s, tenant_id=tenant, actor=p.actor, action="update", object_type="contact",
                     object_id=str(c.id), before=before, after=_contact_view(c))
        return True

    result = await console_of(request).run(run)
    if result is None:
        raise web.HTTPNotFound()
    if isinstance(result, ContactFieldError):
        return await _contact_page(request, tenant, cid, 422, form, field_errors(result))
    raise redirect(f"/contacts/{cid}", _("The contact is saved."))


@routes.post(r"/contacts/{id:\d+}/delete")
@requires(write=True)
async def delete_contact(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    cid = _id(request)

    def run(s):
        c = contacts.get_contact(s, tenant, cid)
        if c is None:
            return False
        before = _contact_view(c)
        contacts.delete_contact(s, c)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="delete", object_type="contact",
                     object_id=str(cid), before=before)
        return True

    if not await console_of(request).run(run):
        raise web.HTTPNotFound()
    raise redirect("/contacts", _("The contact is deleted. Its opt-out state, if any, is kept."))


@routes.post(r"/contacts/{id:\d+}/lists")
@requires(write=True)
async def add_to_list(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    cid = _id(request)
    form = await request.post()
    list_id = _int(form.get("list_id"))

    def run(s):
        c = contacts.get_contact(s, tenant, cid)
        lst = contacts.get_list(s, tenant, list_id) if list_id is not None else None
        if c is None or lst is None:
            return None
        if contacts.add_members(s, lst.id, [c.id]):
            audit.record(s, tenant_id=tenant, actor=p.actor, action="add_member",
                         object_type="contact_list", object_id=str(lst.id),
                         after={"list": lst.name, "msisdn": c.msisdn})
        return lst.name

    name = await console_of(request).run(run)
    if name is None:
        raise web.HTTPNotFound()
    raise redirect(f"/contacts/{cid}", _("Added to the list %(name)s.", name=name))


# -- lists -------------------------------------------------------------------------------------


@routes.get("/contacts/lists")
@requires()
async def lists_page(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    rows = await console_of(request).run(lambda s: contacts.lists_with_counts(s, tenant))
    return render(request, "contacts_lists.html", title=_("Lists"), tab="lists", rows=rows,
                  errors={}, name="")


@routes.post("/contacts/lists")
@requires(write=True)
async def create_list(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    name = str(form.get("name", ""))

    def run(s):
        try:
            lst = contacts.create_list(s, tenant, name)
        except ContactFieldError as exc:
            s.rollback()
            return exc, contacts.lists_with_counts(s, tenant)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="create",
                     object_type="contact_list", object_id=str(lst.id), after={"name": lst.name})
        return lst.id, None

    result, rows = await console_of(request).run(run)
    if isinstance(result, ContactFieldError):
        return render(request, "contacts_lists.html", status=422, title=_("Lists"), tab="lists",
                      rows=rows, errors=field_errors(result), name=name)
    raise redirect(f"/contacts/lists/{result}", _("The list is created. Add contacts to it below."))


async def _list_page(request: web.Request, tenant: str, list_id: int, status: int = 200,
                     errors: dict | None = None, numbers: str = "") -> web.Response:
    after = _int(request.query.get("after"), 0) or 0

    def load(s):
        lst = contacts.get_list(s, tenant, list_id)
        if lst is None:
            return None
        members, next_after = contacts.list_members(s, lst.id, after=after, limit=PAGE)
        return lst, contacts.list_count(s, lst.id), members, next_after

    found = await console_of(request).run(load)
    if found is None:
        raise web.HTTPNotFound()
    lst, count, members, next_after = found
    return render(request, "contacts_list.html", status=status, title=lst.name, tab="lists",
                  lst=lst, count=count, members=members,
                  next_url=f"?after={next_after}" if next_after else "",
                  first_url=f"/contacts/lists/{lst.id}" if after else "",
                  errors=errors or {}, numbers=numbers)


@routes.get(r"/contacts/lists/{id:\d+}")
@requires()
async def list_page(request: web.Request) -> web.Response:
    return await _list_page(request, tenant_of(request), _id(request))


@routes.post(r"/contacts/lists/{id:\d+}/members")
@requires(write=True)
async def add_list_members(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    list_id = _id(request)
    form = await request.post()
    numbers = str(form.get("msisdns", ""))

    def run(s):
        lst = contacts.get_list(s, tenant, list_id)
        if lst is None:
            return None
        try:
            n = contacts.add_numbers(s, tenant, lst, re.split(r"[,，;；\n]+|\s+(?=\+)", numbers))
        except ContactFieldError as exc:
            s.rollback()
            return exc
        audit.record(s, tenant_id=tenant, actor=p.actor, action="add_members",
                     object_type="contact_list", object_id=str(lst.id),
                     after={"list": lst.name, "added": n})
        return n

    result = await console_of(request).run(run)
    if result is None:
        raise web.HTTPNotFound()
    if isinstance(result, ContactFieldError):
        return await _list_page(request, tenant, list_id, 422, field_errors(result), numbers)
    raise redirect(f"/contacts/lists/{list_id}",
                   i18n.ngettext("%(num)s contact added.", "%(num)s contacts added.", result))


@routes.post(r"/contacts/lists/{id:\d+}/members/{cid:\d+}/remove")
@requires(write=True)
async def remove_list_member(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    list_id, cid = _id(request), _id(request, "cid")
    back = f"/contacts/{cid}" if request.query.get("back") == "contact" \
        else f"/contacts/lists/{list_id}"

    def run(s):
        lst = contacts.get_list(s, tenant, list_id)
        c = contacts.get_contact(s, tenant, cid)
        if lst is None or c is None:
            return False
        if contacts.remove_member(s, lst, c.id):
            audit.record(s, tenant_id=tenant, actor=p.actor, action="remove_member",
                         object_type="contact_list", object_id=str(lst.id),
                         before={"list": lst.name, "msisdn": c.msisdn})
        return True

    if not await console_of(request).run(run):
        raise web.HTTPNotFound()
    raise redirect(back, _("Removed from the list."))


@routes.post(r"/contacts/lists/{id:\d+}/delete")
@requires(write=True)
async def delete_list(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    list_id = _id(request)

    def run(s):
        lst = contacts.get_list(s, tenant, list_id)
        if lst is None:
            return None
        name = lst.name
        try:
            contacts.delete_list(s, lst)
        except ContactFieldError as exc:
            s.rollback()
            return exc
        audit.record(s, tenant_id=tenant, actor=p.actor, action="delete",
                     object_type="contact_list", object_id=str(list_id), before={"name": name})
        return name

    result = await console_of(request).run(run)
    if result is None:
        raise web.HTTPNotFound()
    if isinstance(result, ContactFieldError):
        raise redirect(f"/contacts/lists/{list_id}", result.message, "error")
    raise redirect("/contacts/lists", _("The list is deleted; its contacts are kept."))


# -- segments ----------------------------------------------------------------------------------


def _rows_of(f: Any) -> tuple[str, list[dict[str, str]]] | None:
    """A saved filter as the editor's rows, or None when it is nested beyond what the form
    shows (such filters are made through the API and shown as they are)."""
    if not isinstance(f, dict) or len(f) != 1 or not ({"all", "any"} & set(f)):
        return None
    match = "all" if "all" in f else "any"
    rows = []
    for cond in f[match]:
        if "tag" in cond and len(cond) == 1:
            rows.append({"kind": "tag", "field": "", "op": "eq", "value": str(cond["tag"])})
        elif "field" in cond and set(cond) <= {"field", "op", "value"}:
            v = cond.get("value", "")
            rows.append({"kind": "field", "field": str(cond["field"]), "op": cond.get("op", "eq"),
                         "value": ", ".join(map(str, v)) if isinstance(v, list) else str(v)})
        else:
            return None
    return match, rows


def _form_rows(form) -> tuple[str, list[dict[str, str]]]:
    match = "any" if form.get("match") == "any" else "all"
    rows = []
    for i in range(MAX_CONDITIONS):
        if f"kind_{i}" not in form:
            continue
        rows.append({k: str(form.get(f"{k}_{i}", "")).strip() for k in ("kind", "field", "op", "value")})
    return match, rows


def _filter_of(match: str, rows: list[dict[str, str]]) -> tuple[dict | None, dict[str, str]]:
    """The filter the rows describe, checked row by row by audience.check_filter, with an error
    per row (``cond_<i>``) or for the whole (``filter``)."""
    conds, errors = [], {}
    for i, r in enumerate(rows):
        if r["kind"] == "tag":
            if not r["value"]:
                continue
            cond: dict[str, Any] = {"tag": r["value"]}
        else:
            if not r["field"] and not r["value"]:
                continue
            cond = {"field": r["field"].lower(), "op": r["op"] or "eq"}
            if cond["op"] == "in":
                cond["value"] = [v.strip() for v in TAG_SPLIT.split(r["value"]) if v.strip()]
            elif cond["op"] != "exists":
                cond["value"] = r["value"]
            if not r["field"]:
                errors[f"cond_{i}"] = _("Choose the field this condition looks at.")
                continue
        try:
            audience.check_filter(cond, _("condition %(n)s", n=i + 1))
        except FilterError as exc:
            errors[f"cond_{i}"] = str(exc)
            continue
        conds.append(cond)
    if not conds and not errors:
        errors["filter"] = _("Add at least one condition, such as the tag vip or city equals Shanghai.")
    return ({match: conds} if conds and not errors else None), errors


@routes.get("/contacts/segments")
@requires()
async def segments_page(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    rows = await console_of(request).run(lambda s: list(s.scalars(
        select(Segment).where(Segment.tenant_id == tenant).order_by(Segment.name))))
    return render(request, "contacts_segments.html", title=_("Contact segments"), tab="segments", rows=rows)


@routes.get(r"/contacts/segments/{id:\d+}/count")
@requires()
async def segment_count(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    sid = _id(request)

    def run(s):
        seg = audience.get_segment(s, tenant, sid)
        if seg is None:
            return None
        try:
            return audience.count_matching(s, tenant, seg.filter)
        except FilterError:
            return -1

    n = await console_of(request).run(run)
    if n is None:
        raise web.HTTPNotFound()
    return render(request, "contacts_segment_count.html", count=n, errors={})


async def _segment_editor(request: web.Request, tenant: str, seg: Segment | None, *, name: str,
                          match: str, rows: list[dict[str, str]] | None, advanced: Any = None,
                          errors: dict | None = None, status: int = 200) -> web.Response:
    known = await console_of(request).run(lambda s: sorted(contacts.known_fields(s, tenant)))
    rows = list(rows or [])
    if not rows:
        rows = [{"kind": "tag", "field": "", "op": "eq", "value": ""}]
    return render(request, "contacts_segment.html", status=status,
                  title=seg.name if seg else _("New segment"), tab="segments", segment=seg,
                  name=name, match=match, rows=rows, advanced=advanced,
                  ops=[(op, _(label)) for op, label in OPS],
                  known_fields=known + ["name", "msisdn", "language", "timezone"],
                  errors=errors or {}, max_conditions=MAX_CONDITIONS)


@routes.get("/contacts/segments/new")
@requires(write=True)
async def new_segment_page(request: web.Request) -> web.Response:
    return await _segment_editor(request, tenant_of(request), None, name="", match="all", rows=None)


@routes.get(r"/contacts/segments/{id:\d+}")
@requires()
async def segment_page(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    seg = await console_of(request).run(lambda s: audience.get_segment(s, tenant, _id(request)))
    if seg is None:
        raise web.HTTPNotFound()
    shown = _rows_of(seg.filter)
    if shown is None:
        return await _segment_editor(request, tenant, seg, name=seg.name, match="all", rows=None,
                                     advanced=json.dumps(seg.filter, ensure_ascii=False, indent=2))
    return await _segment_editor(request, tenant, seg, name=seg.name, match=shown[0], rows=shown[1])


@routes.post("/contacts/segments/count")
@requires()
async def segment_preview_count(request: web.Request) -> web.Response:
    """The live count while a segment is edited (htmx posts the form on every change)."""
    tenant = tenant_of(request)
    match, rows = _form_rows(await request.post())
    f, errors = _filter_of(match, rows)
    if f is None:
        return render(request, "contacts_segment_count.html", count=None, errors=errors)
    n = await console_of(request).run(lambda s: audience.count_matching(s, tenant, f))
    return render(request, "contacts_segment_count.html", count=n, errors={})


@routes.post("/contacts/segments/save")
@requires(write=True)
async def save_segment(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    sid = _int(form.get("segment_id"))
    name = str(form.get("name", ""))
    match, rows = _form_rows(form)
    seg = None
    if sid is not None:
        seg = await console_of(request).run(lambda s: audience.get_segment(s, tenant, sid))
        if seg is None:
            raise web.HTTPNotFound()
    if form.get("action") == "add" and len(rows) < MAX_CONDITIONS:
        rows.append({"kind": "field", "field": "", "op": "eq", "value": ""})
        return await _segment_editor(request, tenant, seg, name=name, match=match, rows=rows)
    f, errors = _filter_of(match, rows)
    if f is None:
        return await _segment_editor(request, tenant, seg, name=name, match=match, rows=rows,
                                     errors=errors, status=422)

    def run(s):
        current = audience.get_segment(s, tenant, sid) if sid is not None else None
        before = {"name": current.name, "filter": current.filter} if current else None
        try:
            saved = audience.save_segment(s, tenant, name, f, current)
        except SegmentError as exc:
            s.rollback()
            return exc
        audit.record(s, tenant_id=tenant, actor=p.actor, action="update" if before else "create",
                     object_type="segment", object_id=str(saved.id), before=before,
                     after={"name": saved.name, "filter": saved.filter})
        return saved.id

    result = await console_of(request).run(run)
    if isinstance(result, SegmentError):
        return await _segment_editor(request, tenant, seg, name=name, match=match, rows=rows,
                                     errors=field_errors(result), status=422)
    raise redirect(f"/contacts/segments/{result}", _("The segment is saved."))


@routes.post(r"/contacts/segments/{id:\d+}/delete")
@requires(write=True)
async def delete_segment(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    sid = _id(request)

    def run(s):
        seg = audience.get_segment(s, tenant, sid)
        if seg is None:
            return None
        before = {"name": seg.name, "filter": seg.filter}
        try:
            audience.delete_segment(s, seg)
        except SegmentError as exc:
            s.rollback()
            return exc
        audit.record(s, tenant_id=tenant, actor=p.actor, action="delete", object_type="segment",
                     object_id=str(sid), before=before)
        return True

    result = await console_of(request).run(run)
    if result is None:
        raise web.HTTPNotFound()
    if isinstance(result, SegmentError):
        raise redirect(f"/contacts/segments/{sid}", result.message, "error")
    raise redirect("/contacts/segments", _("The segment is deleted."))


# -- CSV import --------------------------------------------------------------------------------


@routes.get("/contacts/import")
@requires()
async def import_page(request: web.Request) -> web.Response:
    return await _import_page(request, tenant_of(request))


async def _import_page(request: web.Request, tenant: str, status: int = 200,
                       errors: dict | None = None, form: Any = None) -> web.Response:
    def load(s):
        return imports.recent(s, tenant), [lst for lst, _n in contacts.lists_with_counts(s, tenant)]

    jobs, lists = await console_of(request).run(load)
    return render(request, "contacts_import.html", status=status, title=_("Import contacts"),
                  tab="import", jobs=jobs, lists=lists, errors=errors or {}, form=form or {},
                  encodings=ENCODINGS, status_labels=_labels(STATUS_LABELS))


@routes.post("/contacts/import")
@requires(write=True)
async def start_import(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    upload = form.get("file")
    mode = str(form.get("mode", ""))
    list_name = str(form.get("list", "")).strip() or None
    encoding = str(form.get("encoding", "")) or None
    errors: dict[str, str] = {}
    if not isinstance(upload, web.FileField) or not upload.filename:
        errors["file"] = _("Choose a CSV file to import.")
    if mode not in ("atomic", "good"):
        errors["mode"] = _("Choose what happens to the good rows when some rows are bad.")
    if encoding not in ENCODINGS[1:] and encoding is not None:
        errors["encoding"] = _("Choose an encoding from the list, or let Herald detect it.")
    if list_name is not None and len(list_name) > 100:
        errors["list"] = _("A list name is at most 100 characters.")
    if errors:
        return await _import_page(request, tenant, 422, errors, form)
    assert isinstance(upload, web.FileField)

    def spool():
        f = tempfile.TemporaryFile()
        upload.file.seek(0)
        shutil.copyfileobj(upload.file, f, 1 << 20)
        f.seek(0)
        return f

    f = await asyncio.to_thread(spool)
    job_id = await asyncio.to_thread(
        imports.start, console_of(request).db, tenant_id=tenant, actor=p.actor, upload=f,
        filename=upload.filename, list_name=list_name, atomic=mode == "atomic", encoding=encoding)
    raise web.HTTPFound(f"/contacts/imports/{job_id}")


def _labels(d: dict[str, str]) -> dict[str, str]:
    return {k: _(v) for k, v in d.items()}


async def _job(request: web.Request):
    tenant = tenant_of(request)
    job_id = request.match_info["job"]
    job = await console_of(request).run(lambda s: imports.get(s, tenant, job_id))
    if job is None:
        raise web.HTTPNotFound()
    return job


@routes.get(r"/contacts/imports/{job:[0-9a-f]{32}}")
@requires()
async def import_job_page(request: web.Request) -> web.Response:
    job = await _job(request)
    return render(request, "contacts_import_job.html", title=_("Import of %(file)s", file=job.filename),
                  tab="import", job=job, fraction=imports.fraction(job), phase=imports.phase(job),
                  phase_labels=_labels(PHASE_LABELS))


@routes.get(r"/contacts/imports/{job:[0-9a-f]{32}}/progress")
@requires()
async def import_job_progress(request: web.Request) -> web.Response:
    job = await _job(request)
    return render(request, "contacts_import_progress.html", job=job,
                  fraction=imports.fraction(job), phase=imports.phase(job),
                  phase_labels=_labels(PHASE_LABELS))


@routes.get(r"/contacts/imports/{job:[0-9a-f]{32}}/rejects.csv")
@requires()
async def import_job_rejects(request: web.Request) -> web.Response:
    job = await _job(request)
    return web.Response(
        body=("\ufeff" + imports.rejects_csv(job)).encode("utf-8"),
        content_type="text/csv", charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="rejected-rows-{job.id[:8]}.csv"'})


# -- consent log -------------------------------------------------------------------------------


def _consent(s, tenant: str, q: str, before: str | None, limit: int) -> list[OptOut]:
    stmt = select(OptOut).where(OptOut.tenant_id == tenant)
    digits = re.sub(r"[^0-9]", "", q)
    if digits:
        stmt = stmt.where(OptOut.msisdn.like(f"%{digits}%"))
    if before:
        at, _sep, msisdn = before.partition("|")
        try:
            ts = datetime.fromisoformat(at)
        except ValueError:
            ts = None
        if ts is not None:
            stmt = stmt.where(tuple_(OptOut.updated_at, OptOut.msisdn) < tuple_(ts, msisdn))
    return list(s.scalars(stmt.order_by(OptOut.updated_at.desc(), OptOut.msisdn.desc())
                          .limit(limit + 1)))


@routes.get("/contacts/consent")
@requires()
async def consent_page(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    q = request.query.get("q", "").strip()
    before = request.query.get("before")
    rows = await console_of(request).run(lambda s: _consent(s, tenant, q, before, PAGE))
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    next_url = ""
    if more and rows:
        last = rows[-1]
        next_url = "?" + _qs({"q": q, "before": f"{last.updated_at.isoformat()}|{last.msisdn}"})
    return render(request, "contacts_consent.html", title=_("Consent log"), tab="consent",
                  rows=rows, q=q, next_url=next_url, first_url=("?" + _qs({"q": q})) if before else "")
