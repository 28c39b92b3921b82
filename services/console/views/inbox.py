"""The inbox: inbound texts grouped as conversations per number, each text with the keyword or
rule that handled it, the messages sent to that number alongside, and a reply box. A reply is a
send through the send API's own code (services/core/sending.py), from the number the subscriber
texted, marked as the answer to their latest text."""

from __future__ import annotations

import secrets
from datetime import datetime
from urllib.parse import quote

from aiohttp import web

from services.core import inbound_log, message_search, sending

from .. import i18n
from ..domain import audit
from ..web import console_of, redirect, render, requires, tenant_of

routes = web.RouteTableDef()
PAGE = 50


def _cursor(raw: str | None) -> tuple[datetime, str] | None:
    if not raw or "|" not in raw:
        return None
    at, who = raw.split("|", 1)
    try:
        return datetime.fromisoformat(at), who
    except ValueError:
        return None


async def _list(request: web.Request) -> dict:
    tenant = tenant_of(request)
    raw_number = request.query.get("number", "").strip()
    number = sending.normalise_number(raw_number) if raw_number else None
    errors = {}
    if raw_number and number is None:
        errors["number"] = i18n.gettext("Enter a full number in international format, such as "
                                        "+8613812345678.")
    before = _cursor(request.query.get("before"))
    rows = [] if errors else await console_of(request).run(
        lambda s: inbound_log.conversations(s, tenant, before=before, sender=number, limit=PAGE + 1))
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    next_url = ""
    if more and rows:
        last = rows[-1]
        next_url = "?before=" + quote(f"{last.last_at.isoformat()}|{last.sender}")
    return {"rows": rows, "errors": errors, "number": raw_number, "next_url": next_url,
            "first_url": "/inbox" if request.query.get("before") else "",
            "refresh_url": "/inbox/rows?" + request.query_string}


@routes.get("/inbox")
@requires()
async def inbox_page(request: web.Request) -> web.Response:
    return render(request, "inbox.html", title=i18n.gettext("Inbox"), **await _list(request))


@routes.get("/inbox/rows")
@requires()
async def inbox_rows(request: web.Request) -> web.Response:
    return render(request, "inbox_rows.html", **await _list(request))


async def _conversation(request: web.Request, tenant: str, number: str) -> dict:
    def load(s):
        texts = inbound_log.texts_of(s, tenant, number)
        if not texts:
            return None
        sent = message_search.to_number(s, tenant, number)
        items = [("in", t.received_at, t) for t in texts] + [("out", m.accepted_at, m) for m in sent]
        items.sort(key=lambda i: i[1].replace(tzinfo=None))
        return texts, items

    found = await console_of(request).run(load)
    if found is None:
        raise web.HTTPNotFound()
    texts, items = found
    return {"number": number, "items": items, "latest": texts[-1]}


@routes.get("/inbox/{number}")
@requires()
async def conversation_page(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    ctx = await _conversation(request, tenant, request.match_info["number"])
    live = bool(request.headers.get("HX-Request"))
    return render(request, "inbox_thread.html" if live else "inbox_conversation.html",
                  title=ctx["number"], errors={}, text="", send_id=secrets.token_urlsafe(12), **ctx)


@routes.post("/inbox/{number}/reply")
@requires(write=True)
async def reply(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    console = console_of(request)
    number = request.match_info["number"]
    ctx = await _conversation(request, tenant, number)
    form = await request.post()
    text = str(form.get("text", ""))
    send_id = str(form.get("send_id", ""))
    latest = ctx["latest"]

    def refuse(field: str, message: str) -> web.Response:
        return render(request, "inbox_conversation.html", status=422, title=number,
                      errors={field: message}, text=text, send_id=send_id, **ctx)

    if not text.strip():
        return refuse("text", i18n.gettext("Write the reply."))
    if not send_id.replace("-", "").replace("_", "").isalnum():
        return refuse("text", i18n.gettext("This form has expired. Reload the page and try again."))
    body = {"to": number, "text": text, "request_id": f"console-reply:{send_id}"}
    if latest.number:
        body["from"] = latest.number
    try:
        event = sending.parse_send(tenant, body, in_reply_to=latest.message_id)
    except sending.BadRequest as exc:
        return refuse("text", exc.message)

    def accept(s):
        (result,) = sending.accept(s, [event])
        if isinstance(result, str):
            raise sending.BadRequest(result, "text")
        audit.record(s, tenant_id=tenant, actor=p.actor, action="reply", object_type="message",
                     object_id=event["message_id"],
                     after={"to": number, "from": body.get("from"), "text": text,
                            "in_reply_to": latest.message_id})
    try:
        await console.run(accept)
    except sending.BadRequest as exc:
        return refuse("text", exc.message)
    await sending.publish(console.producer, [event])
    raise redirect(f"/inbox/{quote(number)}", i18n.gettext("Reply sent."))
