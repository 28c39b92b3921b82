"""Content and topics: the content library on-demand campaigns and schedules send, the ERP
endpoints inquiries ask, and subscription topics with their subscriber counts and schedules
(add, disable or enable, delete). Every change goes through services/campaigns/domain (content,
inquiry, subscriptions: the functions the admin API calls) and is audited."""

from __future__ import annotations

from aiohttp import web

from services.campaigns.domain import content, inquiry, subscriptions
from services.campaigns.domain.campaigns import CampaignError, utcnow

from .. import i18n
from ..domain import audit
from ..domain import campaign_pages as pages
from ..web import console_of, redirect, render, requires, tenant_of

routes = web.RouteTableDef()
_ = i18n.gettext
PAGE = 50


async def _content_page(request: web.Request, *, values: dict | None = None,
                        errors: dict | None = None, status: int = 200) -> web.Response:
    tenant = tenant_of(request)
    q = request.query.get("q", "")
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        after = 0

    def load(s):
        items, nxt = pages.content_items(s, tenant, q=q, after_id=after, limit=PAGE)
        return items, nxt, pages.endpoints(s, tenant)

    items, nxt, eps = await console_of(request).run(load)
    return render(request, "content.html", status=status, title=_("Content and endpoints"),
                  items=items, next_after=nxt, endpoints=eps, values=values or {},
                  errors=errors or {}, q=q)


@routes.get("/campaigns/content")
@requires()
async def content_page(request: web.Request) -> web.Response:
    return await _content_page(request)


@routes.post("/campaigns/content")
@requires(write=True)
async def save_content(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    values = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    name = values.get("name", "").strip().lower()
    body = {"body": values.get("body", ""), "for_date": values.get("for_date", "").strip()}

    def run(s):
        row = content.put(s, tenant, name, body)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="save", object_type="content",
                     object_id=f"{name}/{row.for_date}" if row.for_date else name,
                     after=content.item_json(row))

    try:
        await console_of(request).run(run)
    except CampaignError as exc:
        r = exc.reason
        field = ("name" if r.startswith("content name") else "body" if r.startswith("body")
                 else "for_date" if r.startswith("for_date") else "form")
        message = {"name": _("The name must be 1 to 64 lower-case letters, digits, '_', '.' or '-'."),
                   "body": _("The text must be 1 to 1,500 characters."),
                   "for_date": _("Give the date as YYYY-MM-DD, or leave it empty for every day.")
                   }.get(field, r)
        return await _content_page(request, values=values, errors={field: message}, status=422)
    raise redirect("/campaigns/content", _("The content item %(name)s is saved.", name=name))


@routes.post("/campaigns/endpoints")
@requires(write=True)
async def save_endpoint(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    values = {k: str(v).strip() for k, v in form.items() if k != "csrf_token"}
    name = values.get("ep_name", "").lower()
    body: dict = {"url": values.get("url", "")}
    errors: dict[str, str] = {}
    for key, cast, what in (("timeout_s", float, "timeout_s"), ("retries", int, "retries")):
        if values.get(key):
            try:
                body[what] = cast(values[key])
            except ValueError:
                errors[key] = _("This must be a number.")

    def run(s):
        ep = inquiry.put_endpoint(s, tenant, name, body)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="save", object_type="endpoint",
                     object_id=name, after={"url": ep.url, "timeout_s": ep.timeout_s,
                                            "retries": ep.retries})

    if not errors:
        try:
            await console_of(request).run(run)
        except CampaignError as exc:
            r = exc.reason
            field = ("ep_name" if r.startswith("endpoint name") else "url" if r.startswith("url")
                     else "timeout_s" if r.startswith("timeout_s") else "retries"
                     if r.startswith("retries") else "form")
            errors[field] = {
                "ep_name": _("The name must be 1 to 64 lower-case letters, digits, '_' or '-'."),
                "url": _("The address must be an http:// or https:// URL."),
                "timeout_s": _("The timeout must be between 0.1 and 30 seconds."),
                "retries": _("Retries must be 0 to 5."),
            }.get(field, r)
    if errors:
        return await _content_page(request, values=values, errors=errors, status=422)
    raise redirect("/campaigns/content", _("The endpoint %(name)s is saved.", name=name))


# -- topics ------------------------------------------------------------------------------------


async def _topics_page(request: web.Request, *, values: dict | None = None,
                       errors: dict | None = None, status: int = 200) -> web.Response:
    tenant = tenant_of(request)

    def load(s):
        return pages.topics_with_counts(s, tenant), pages.form_choices(s, tenant).content

    topics, names = await console_of(request).run(load)
    return render(request, "content_topics.html", status=status, title=_("Subscription topics"),
                  topics=topics, content_names=names, values=values or {}, errors=errors or {},
                  zone=i18n.zone().key)


@routes.get("/campaigns/topics")
@requires()
async def topics_page(request: web.Request) -> web.Response:
    return await _topics_page(request)


@routes.post("/campaigns/topics")
@requires(write=True)
async def create_topic(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    form = await request.post()
    values = {k: str(v).strip() for k, v in form.items() if k != "csrf_token"}

    def run(s):
        t = subscriptions.create_topic(s, tenant, {"name": values.get("topic", ""),
                                                   "description": values.get("description", "")})
        audit.record(s, tenant_id=tenant, actor=p.actor, action="create", object_type="topic",
                     object_id=t.name, after={"name": t.name, "description": t.description})
        return t.name

    try:
        name = await console_of(request).run(run)
    except CampaignError as exc:
        message = (_("A topic with this name exists.") if exc.status == 409 else
                   _("The name must be 1 to 32 letters or digits: contacts text SUB and this name."))
        return await _topics_page(request, values=values, errors={"topic": message}, status=422)
    raise redirect("/campaigns/topics", _("The topic %(name)s is created. Contacts join it by "
                                          "texting SUB %(name)s.", name=name))


@routes.post("/campaigns/topics/{name}/delete")
@requires(write=True)
async def delete_topic(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    name = request.match_info["name"]

    def run(s):
        views = {v.topic.name: v for v in pages.topics_with_counts(s, tenant)}
        gone = subscriptions.delete_topic(s, tenant, name)
        v = views.get(gone)
        audit.record(s, tenant_id=tenant, actor=p.actor, action="delete", object_type="topic",
                     object_id=gone, before={"name": gone, "subscribers": v.subscribers if v else 0,
                                             "schedules": len(v.schedules) if v else 0})
        return gone

    try:
        gone = await console_of(request).run(run)
    except CampaignError as exc:
        if exc.status == 404:
            raise web.HTTPNotFound() from None
        raise redirect("/campaigns/topics", _("The topic is still in use: %(reason)s",
                                              reason=exc.reason), "error") from None
    raise redirect("/campaigns/topics", _("The topic %(name)s is deleted.", name=gone))


@routes.post("/campaigns/topics/{name}/schedules")
@requires(write=True)
async def add_schedule(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    name = request.match_info["name"]
    form = await request.post()
    values = {k: str(v).strip() for k, v in form.items() if k != "csrf_token"}
    body: dict = {"cron": values.get("cron", ""), "timezone": values.get("timezone") or "UTC"}
    if values.get("send") == "text":
        body["text"] = values.get("text", "")
    else:
        body["content"] = values.get("content", "")

    def run(s):
        t = subscriptions.get_topic(s, tenant, name)
        x = subscriptions.add_schedule(s, t, body, utcnow())
        audit.record(s, tenant_id=tenant, actor=p.actor, action="create", object_type="schedule",
                     object_id=str(x.id), after={"topic": t.name, **subscriptions.schedule_json(x)})

    try:
        await console_of(request).run(run)
    except CampaignError as exc:
        if exc.status == 404:
            raise web.HTTPNotFound() from None
        r = exc.reason
        field = ("cron" if r.startswith("cron") else "timezone" if r.startswith("timezone")
                 else "text" if r.startswith("text") else "content")
        message = {
            "cron": _("The schedule must be a cron line, for example 0 8 * * 1-5 (8:00 on "
                      "weekdays): %(reason)s", reason=r.removeprefix("cron: ")),
            "timezone": _("Choose a time zone such as Asia/Shanghai."),
            "text": _("The text must be 1 to 1,500 characters."),
            "content": _("Choose a content item, or write a fixed text."),
        }[field]
        return await _topics_page(request, values={**values, "for": name},
                                  errors={field: message}, status=422)
    raise redirect("/campaigns/topics", _("The schedule is added to %(name)s.", name=name.upper()))


@routes.post("/campaigns/topics/{name}/schedules/{sid}/{step}")
@requires(write=True)
async def schedule_step(request: web.Request) -> web.StreamResponse:
    tenant = tenant_of(request)
    p = request["principal"]
    name, sid, step = (request.match_info["name"], request.match_info["sid"],
                       request.match_info["step"])
    if step not in ("disable", "enable", "delete"):
        raise web.HTTPNotFound()

    def run(s):
        t = subscriptions.get_topic(s, tenant, name)
        before = subscriptions.schedule_json(subscriptions.get_schedule(s, t, sid))
        if step == "delete":
            subscriptions.delete_schedule(s, t, sid)
            after = None
        else:
            x = subscriptions.update_schedule(s, t, sid, {"active": step == "enable"}, utcnow())
            after = subscriptions.schedule_json(x)
        audit.record(s, tenant_id=tenant, actor=p.actor, action=step, object_type="schedule",
                     object_id=str(before["id"]), before={"topic": t.name, **before},
                     after={"topic": t.name, **after} if after else None)

    try:
        await console_of(request).run(run)
    except CampaignError as exc:
        if exc.status == 404:
            raise web.HTTPNotFound() from None
        raise redirect("/campaigns/topics", exc.reason, "error") from None
    done = {"disable": _("The schedule is off; it sends nothing until you turn it on."),
            "enable": _("The schedule is on; it sends at its next time."),
            "delete": _("The schedule is deleted.")}[step]
    raise redirect("/campaigns/topics", done)
