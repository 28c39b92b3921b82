"""The send page: one message or a list (pasted numbers, an uploaded CSV), with encoding,
segments and estimated cost shown live as the user types, a per-contact preview of templates, and
send now (the send API's own code: services/core/sending.py) or schedule (a one-off notification
campaign). Every send is audited."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from functools import cache

from aiohttp import web

from services.campaigns.domain.campaigns import CampaignError
from services.campaigns.domain.contacts import ContactError
from services.core import sending
from services.core.carriers import Carrier, load_carriers

from .. import i18n
from ..domain import audit, compose
from ..web import console_of, redirect, render, requires, tenant_of

routes = web.RouteTableDef()
CATEGORIES = ("transactional", "marketing")


@cache
def _carriers(path: str) -> dict[str, Carrier]:
    try:
        return load_carriers(path)
    except (OSError, ValueError):
        return {}


async def _form(request: web.Request) -> dict[str, str | bytes | None]:
    form = await request.post()
    upload = form.get("file")
    data = upload.file.read() if getattr(upload, "file", None) is not None else None
    return {"numbers": str(form.get("numbers", "")), "text": str(form.get("text", "")),
            "sender": str(form.get("sender", "")).strip(),
            "category": str(form.get("category", "transactional")),
            "when": str(form.get("when", "now")), "schedule_at": str(form.get("schedule_at", "")),
            "send_id": str(form.get("send_id", "")), "file": data or None}


async def _compose(request: web.Request, tenant: str, f: dict) -> tuple[compose.Composition, list[str]]:
    console = console_of(request)
    carriers = _carriers(console.settings.carriers_file)

    def run(s):
        return (compose.compose(s, tenant, f["numbers"], f["file"], f["text"], carriers),
                compose.tenant_senders(s, tenant))
    return await console.run(run)


def _page(request: web.Request, f: dict, comp: compose.Composition | None, senders: list[str],
          errors: dict[str, str], status: int = 200) -> web.Response:
    return render(request, "send.html", status=status, title=i18n.gettext("Send"), form=f,
                  comp=comp, senders=senders, errors=errors, categories=CATEGORIES,
                  zone=i18n.zone().key)


@routes.get("/send")
@requires(write=True)
async def send_page(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    senders = await console_of(request).run(lambda s: compose.tenant_senders(s, tenant))
    f = {"numbers": request.query.get("to", ""), "text": "", "sender": "",
         "category": "transactional", "when": "now", "schedule_at": "",
         "send_id": secrets.token_urlsafe(12), "file": None}
    return _page(request, f, None, senders, {})


@routes.post("/send/preview")
@requires(write=True)
async def send_preview(request: web.Request) -> web.Response:
    """The live part of the form: encoding, segments, cost and rendered samples."""
    tenant = tenant_of(request)
    f = await _form(request)
    comp, _senders = await _compose(request, tenant, f)
    return render(request, "send_preview.html", comp=comp, form=f)


def _schedule_time(raw: str) -> datetime | None:
    """A datetime-local value in the tenant's time zone, as UTC; None when unreadable."""
    try:
        local = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if local.tzinfo is None:
        local = local.replace(tzinfo=i18n.zone())
    return local.astimezone(UTC)


@routes.post("/send")
@requires(write=True)
async def send(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    console = console_of(request)
    f = await _form(request)
    comp, senders = await _compose(request, tenant, f)
    errors = dict(comp.errors)
    if f["category"] not in CATEGORIES:
        errors["category"] = i18n.gettext("Choose transactional or marketing.")
    if f["sender"] and f["sender"] not in senders:
        errors["sender"] = i18n.gettext("Choose one of your numbers, or the default.")
    at = None
    if f["when"] == "later":
        at = _schedule_time(f["schedule_at"])
        if at is None:
            errors["schedule_at"] = i18n.gettext("Pick the date and time to send at.")
        elif at <= datetime.now(UTC):
            errors["schedule_at"] = i18n.gettext("Pick a time in the future, or send now.")
    if errors:
        return _page(request, f, comp, senders, errors, status=422)
    sender = f["sender"] or None

    if at is not None:
        name = i18n.gettext("Scheduled send of %(when)s", when=i18n.format_datetime(at, "short"))

        def plan(s):
            c = compose.schedule(s, tenant, comp, text=f["text"], at=at, sender=sender, name=name)
            audit.record(s, tenant_id=tenant, actor=p.actor, action="schedule_send",
                         object_type="campaign", object_id=c.id,
                         after={"recipients": len(comp.recipients), "schedule_at": at,
                                "sender": sender, "text": f["text"]})
            return c.id
        try:
            cid = await console.run(plan)
        except (CampaignError, ContactError) as exc:
            errors["form"] = i18n.gettext("The send could not be scheduled: %(reason)s",
                                          reason=str(exc))
            return _page(request, f, comp, senders, errors, status=422)
        raise redirect(f"/campaigns/{cid}", i18n.gettext(
            "Scheduled: %(n)s messages will go at %(when)s.", n=len(comp.recipients),
            when=i18n.format_datetime(at, "short")))

    try:
        events = compose.events(tenant, comp, send_id=f["send_id"], sender=sender,
                                category=f["category"], senders=set(senders))
    except sending.BadRequest as exc:
        errors[exc.field if exc.field in ("from", "text") else "form"] = exc.message
        return _page(request, f, comp, senders, errors, status=422)

    def accept(s):
        results = sending.accept(s, events)
        refused = [r for r in results if isinstance(r, str)]
        if refused:
            raise sending.BadRequest(refused[0], "form")
        audit.record(s, tenant_id=tenant, actor=p.actor, action="send", object_type="message",
                     object_id=events[0]["message_id"],
                     after={"recipients": len(events), "segments": comp.estimate.segments,
                            "sender": sender, "category": f["category"],
                            "first_to": events[0]["to"], "text": f["text"]})
        return sum(1 for r in results if r is True)
    try:
        repeated = await console.run(accept)
    except sending.BadRequest as exc:
        errors["form"] = exc.message
        return _page(request, f, comp, senders, errors, status=409)
    await sending.publish(console.producer, events)
    if len(events) == 1:
        raise redirect(f"/messages/{events[0]['message_id']}",
                       i18n.gettext("Sent. The message is on its way."))
    message = i18n.gettext("Sent %(n)s messages.", n=len(events))
    if repeated:
        message = i18n.gettext("These messages were already sent; nothing was sent twice.")
    raise redirect("/messages", message)
