"""The campaigns admin API (contacts, CSV import, lists, segments, campaigns, surveys, inquiry,
content, subscriptions), served by the console under /v1 (it was the campaigns process's own
web server until issue 11). Thin: parse, call services/campaigns/domain, audit, answer. See
services/console/api/base.py for authentication and the error shape, and
services/console/openapi.json for every route's request and response.

    GET/PUT  /v1/settings                       rate, time zone, quiet hours, frequency cap
    POST     /v1/contacts                       one contact, or {"contacts": [...], "list": NAME}
    GET      /v1/contacts?after=ID&limit=N      page through contacts
    GET/DEL  /v1/contacts/{msisdn}
    POST     /v1/contacts/import?list=&atomic=&encoding=  CSV body (UTF-8 or GB18030 detected);
                                                 report of accepted, duplicate and rejected rows
    GET      /v1/fields                         custom fields templates may use
    GET/POST /v1/lists, POST /v1/lists/{name}/members {"msisdns": [...]}
    GET/POST /v1/segments                       {"name", "filter"}
    GET/POST /v1/campaigns                      create (see domain/campaigns.py) or list
    GET      /v1/campaigns/{id}                 the campaign
    POST     /v1/campaigns/{id}/{action}        pause | resume | cancel | start
    GET      /v1/campaigns/{id}/report          live counts
    GET      /v1/campaigns/{id}/results[.csv]   survey results per question / one row per contact
    PUT      /v1/campaigns/{id}/table?encoding=  inquiry table (CSV, first column the key)
    GET      /v1/campaigns/{id}/replies         inbound texts counted as replies
    PUT      /v1/endpoints/{name}               a tenant HTTP endpoint for inquiries
    GET      /v1/content, PUT /v1/content/{name}  content library
    GET/POST /v1/topics, DELETE /v1/topics/{name}, GET /v1/topics/{name}/subscribers
    GET/POST /v1/topics/{name}/schedules
    PATCH    /v1/topics/{name}/schedules/{id}   {"active": false} disables, true enables
    DELETE   /v1/topics/{name}/schedules/{id}
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from services.campaigns.config import CampaignsConfig
from services.campaigns.domain import campaigns, contacts, content, inquiry, subscriptions, surveys
from services.campaigns.domain import settings as tenant_settings
from services.campaigns.domain.audience import check_filter
from services.campaigns.domain.contacts import ContactError
from services.campaigns.domain.templates import BUILTIN_FIELDS
from services.core import metrics
from services.core.db.campaigns_models import (
    Campaign,
    CampaignInbound,
    CampaignSettings,
    ContactList,
    ContactListMember,
    ContentItem,
    Segment,
    Subscriber,
    SubscriptionSchedule,
)
from services.core.db.models import Contact
from services.core.tenancy import KeyResolver

from ..web import Console
from .base import NAME, PAGE_MAX, ApiBase, BadRequest, int_param, ok, read_json, record, spool


class CampaignsApi(ApiBase):
    def __init__(self, console: Console, resolver: KeyResolver, config: CampaignsConfig) -> None:
        super().__init__(console, resolver)
        self.config = config

    def install(self, app: web.Application) -> None:
        add = lambda method, path, name, h: self.add(app, method, path, name, h)  # noqa: E731
        add("GET", "/v1/settings", "settings", self.get_settings)
        add("PUT", "/v1/settings", "settings", self.put_settings)
        add("POST", "/v1/contacts", "contacts", self.post_contacts)
        add("GET", "/v1/contacts", "contacts", self.list_contacts)
        add("POST", "/v1/contacts/import", "import", self.import_contacts)
        add("GET", "/v1/contacts/{msisdn}", "contact", self.get_contact)
        add("DELETE", "/v1/contacts/{msisdn}", "contact", self.delete_contact)
        add("GET", "/v1/fields", "fields", self.get_fields)
        add("GET", "/v1/lists", "lists", self.get_lists)
        add("POST", "/v1/lists", "lists", self.post_list)
        add("POST", "/v1/lists/{name}/members", "lists", self.post_members)
        add("GET", "/v1/segments", "segments", self.get_segments)
        add("POST", "/v1/segments", "segments", self.post_segment)
        add("GET", "/v1/campaigns", "campaigns", self.list_campaigns)
        add("POST", "/v1/campaigns", "campaigns", self.post_campaign)
        add("GET", "/v1/campaigns/{id}", "campaign", self.get_campaign)
        add("GET", "/v1/campaigns/{id}/report", "report", self.get_report)
        add("GET", "/v1/campaigns/{id}/results", "results", self.get_results)
        add("GET", "/v1/campaigns/{id}/results.csv", "results", self.get_results_csv)
        add("GET", "/v1/campaigns/{id}/replies", "replies", self.get_replies)
        add("PUT", "/v1/campaigns/{id}/table", "table", self.put_table)
        add("POST", "/v1/campaigns/{id}/{action}", "campaign_action", self.post_action)
        add("PUT", "/v1/endpoints/{name}", "endpoints", self.put_endpoint)
        add("GET", "/v1/content", "content", self.get_content)
        add("PUT", "/v1/content/{name}", "content", self.put_content)
        add("GET", "/v1/topics", "topics", self.get_topics)
        add("POST", "/v1/topics", "topics", self.post_topic)
        add("DELETE", "/v1/topics/{name}", "topics", self.delete_topic)
        add("GET", "/v1/topics/{name}/subscribers", "topics", self.get_subscribers)
        add("GET", "/v1/topics/{name}/schedules", "schedules", self.get_schedules)
        add("POST", "/v1/topics/{name}/schedules", "schedules", self.post_schedule)
        add("PATCH", "/v1/topics/{name}/schedules/{id}", "schedules", self.patch_schedule)
        add("DELETE", "/v1/topics/{name}/schedules/{id}", "schedules", self.delete_schedule)

    # -- settings --------------------------------------------------------------------------------
    def _settings_json(self, s, tenant: str) -> dict[str, Any]:
        return tenant_settings.settings_json(s.get(CampaignSettings, tenant), tenant,
                                             self.config.default_rate_per_second)

    async def get_settings(self, request: web.Request, tenant: str) -> web.Response:
        return ok(await self.tx(self._settings_json, tenant), "settings")

    async def put_settings(self, request: web.Request, tenant: str) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object")

        def run(s):
            before = self._settings_json(s, tenant)
            row = tenant_settings.update(s, tenant, body)
            after = tenant_settings.settings_json(row, tenant, self.config.default_rate_per_second)
            record(s, request, "update", "settings", tenant, before=before, after=after)
            return after
        out = await self.tx(run)
        self.console.forget_zone(tenant)
        return ok(out, "settings")

    # -- contacts --------------------------------------------------------------------------------
    async def post_contacts(self, request: web.Request, tenant: str) -> web.Response:
        body = await read_json(request)
        many = isinstance(body, dict) and "contacts" in body
        items = body.get("contacts") if many else [body]
        list_name = body.get("list") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items or len(items) > PAGE_MAX:
            raise BadRequest(f"expected a contact object or {{\"contacts\": [1 to {PAGE_MAX}]}}")
        valid, rejects = [], []
        for i, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise ContactError("expected an object")
                valid.append(contacts.validate(item))
            except ContactError as exc:
                rejects.append({"index": i, "reason": str(exc)})
        if not many and rejects:
            raise BadRequest(rejects[0]["reason"])
        if rejects:
            raise BadRequest(f"{len(rejects)} contact(s) rejected; nothing stored: "
                             + "; ".join(f"#{r['index']}: {r['reason']}" for r in rejects[:10]))

        def run(s):
            rows, created, updated = contacts.upsert(s, tenant, valid)
            if list_name:
                contacts.add_members(s, contacts.get_or_create_list(s, tenant, str(list_name)).id,
                                     [r.id for r in rows])
            out = {"created": created, "updated": updated,
                   "contacts": [contacts.contact_json(r) for r in rows]}
            if many:
                record(s, request, "upsert", "contacts", after={
                    "created": created, "updated": updated, "list": list_name,
                    "msisdns": [r.msisdn for r in rows[:100]]})
            else:
                record(s, request, "upsert", "contact", rows[0].msisdn,
                       after={**out["contacts"][0], "list": list_name})
            return out
        return ok(await self.tx(run), "contacts", 201)

    async def list_contacts(self, request: web.Request, tenant: str) -> web.Response:
        after, limit = int_param(request, "after", 0), min(int_param(request, "limit", 100), PAGE_MAX)

        def run(s):
            rows = list(s.scalars(select(Contact).where(Contact.tenant_id == tenant, Contact.id > after)
                                  .order_by(Contact.id).limit(limit)))
            return {"contacts": [contacts.contact_json(c) for c in rows],
                    "next_after": rows[-1].id if rows and len(rows) == limit else None}
        return ok(await self.tx(run), "contacts")

    @staticmethod
    def _contact(s, tenant: str, msisdn: str) -> Contact:
        c = s.scalar(select(Contact).where(Contact.tenant_id == tenant, Contact.msisdn == msisdn))
        if c is None:
            raise BadRequest(f"no contact {msisdn}", 404)
        return c

    @staticmethod
    def _contact_number(request: web.Request) -> str:
        """The path's number, normalised; a path that is no number names no contact (404)."""
        raw = request.match_info["msisdn"]
        try:
            return contacts.normalise_msisdn(raw)
        except ContactError:
            raise BadRequest(f"no contact {raw}", 404) from None

    async def get_contact(self, request: web.Request, tenant: str) -> web.Response:
        msisdn = self._contact_number(request)
        return ok(await self.tx(lambda s: contacts.contact_json(self._contact(s, tenant, msisdn))),
                  "contact")

    async def delete_contact(self, request: web.Request, tenant: str) -> web.Response:
        msisdn = self._contact_number(request)

        def run(s):
            c = self._contact(s, tenant, msisdn)
            before = contacts.contact_json(c)
            s.execute(ContactListMember.__table__.delete().where(ContactListMember.contact_id == c.id))
            s.delete(c)
            record(s, request, "delete", "contact", msisdn, before=before)
            return {"deleted": msisdn}
        return ok(await self.tx(run), "contact")

    async def import_contacts(self, request: web.Request, tenant: str) -> web.Response:
        list_name = request.query.get("list") or None
        atomic = request.query.get("atomic", "").lower() in ("1", "true", "yes")
        f = await spool(request)
        try:
            report = await asyncio.to_thread(contacts.import_upload, self.db.session, tenant, f,
                                             list_name=list_name, atomic=atomic,
                                             encoding=request.query.get("encoding") or None)
        finally:
            f.close()
        body = report.as_dict()
        if not report.written:
            body["error"] = f"{report.rejected} row(s) rejected; with atomic=1 nothing was imported"
            return ok(body, "import", 422)
        await self.tx(lambda s: record(s, request, "import", "contacts", list_name or "", after={
            k: body[k] for k in ("rows", "created", "updated", "rejected", "duplicates", "encoding")}
            | {"list": list_name, "atomic": atomic}))
        return ok(body, "import")

    async def get_fields(self, request: web.Request, tenant: str) -> web.Response:
        def run(s):
            return {"builtin": sorted(BUILTIN_FIELDS), "custom": sorted(contacts.known_fields(s, tenant))}
        return ok(await self.tx(run), "fields")

    # -- lists and segments ----------------------------------------------------------------------
    async def get_lists(self, request: web.Request, tenant: str) -> web.Response:
        def run(s):
            rows = s.execute(select(ContactList, func.count(ContactListMember.contact_id))
                             .outerjoin(ContactListMember, ContactListMember.list_id == ContactList.id)
                             .where(ContactList.tenant_id == tenant).group_by(ContactList.id)
                             .order_by(ContactList.name)).all()
            return {"lists": [{"name": lst.name, "members": n} for lst, n in rows]}
        return ok(await self.tx(run), "lists")

    async def post_list(self, request: web.Request, tenant: str) -> web.Response:
        body = await read_json(request)
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str):
            raise BadRequest('expected {"name": "..."}', field="name")

        def run(s):
            existed = s.scalar(select(ContactList.id).where(ContactList.tenant_id == tenant,
                                                            ContactList.name == name.strip()))
            lst = contacts.get_or_create_list(s, tenant, name)
            if existed is None:
                record(s, request, "create", "list", lst.name, after={"name": lst.name})
            return {"name": lst.name, "id": lst.id}
        return ok(await self.tx(run), "lists", 201)

    async def post_members(self, request: web.Request, tenant: str) -> web.Response:
        body = await read_json(request)
        numbers = body.get("msisdns") if isinstance(body, dict) else None
        if not isinstance(numbers, list) or not numbers or len(numbers) > PAGE_MAX:
            raise BadRequest(f'expected {{"msisdns": [1 to {PAGE_MAX} numbers]}}', field="msisdns")
        wanted = [contacts.normalise_msisdn(str(n)) for n in numbers]
        name = request.match_info["name"]

        def run(s):
            lst = s.scalar(select(ContactList).where(ContactList.tenant_id == tenant,
                                                     ContactList.name == name))
            if lst is None:
                raise BadRequest(f"no list named {name!r}", 404)
            found = dict(s.execute(select(Contact.msisdn, Contact.id).where(
                Contact.tenant_id == tenant, Contact.msisdn.in_(wanted))).all())
            missing = sorted(set(wanted) - set(found))
            if missing:
                raise BadRequest(f"no contact for {', '.join(missing[:10])}; nothing added", 404)
            added = contacts.add_members(s, lst.id, found.values())
            record(s, request, "add_members", "list", name,
                   after={"added": added, "msisdns": sorted(found)[:100]})
            return {"added": added}
        return ok(await self.tx(run), "lists")

    async def get_segments(self, request: web.Request, tenant: str) -> web.Response:
        def run(s):
            return {"segments": [{"name": x.name, "filter": x.filter} for x in s.scalars(
                select(Segment).where(Segment.tenant_id == tenant).order_by(Segment.name))]}
        return ok(await self.tx(run), "segments")

    async def post_segment(self, request: web.Request, tenant: str) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) \
                or not 0 < len(body["name"].strip()) <= 100:
            raise BadRequest('expected {"name": "...", "filter": {...}}', field="name")
        check_filter(body.get("filter"))

        def run(s):
            name = body["name"].strip()
            if s.scalar(select(Segment).where(Segment.tenant_id == tenant, Segment.name == name)):
                raise BadRequest(f"segment {name} exists", 409, "name")
            s.add(Segment(tenant_id=tenant, name=name, filter=body["filter"]))
            out = {"name": name, "filter": body["filter"]}
            record(s, request, "create", "segment", name, after=out)
            return out
        return ok(await self.tx(run), "segments", 201)

    # -- campaigns -------------------------------------------------------------------------------
    async def post_campaign(self, request: web.Request, tenant: str) -> web.Response:
        body = await read_json(request)

        def run(s):
            out = campaigns.campaign_json(campaigns.create(s, tenant, body))
            record(s, request, "create", "campaign", out["id"], after=out)
            return out
        return ok(await self.tx(run), "campaigns", 201)

    async def list_campaigns(self, request: web.Request, tenant: str) -> web.Response:
        def run(s):
            rows = s.scalars(select(Campaign).where(Campaign.tenant_id == tenant)
                             .order_by(Campaign.created_at.desc()).limit(PAGE_MAX))
            return {"campaigns": [campaigns.campaign_json(c) for c in rows]}
        return ok(await self.tx(run), "campaigns")

    async def get_campaign(self, request: web.Request, tenant: str) -> web.Response:
        cid = request.match_info["id"]
        return ok(await self.tx(lambda s: campaigns.campaign_json(campaigns.get(s, tenant, cid))),
                  "campaign")

    async def post_action(self, request: web.Request, tenant: str) -> web.Response:
        cid, action = request.match_info["id"], request.match_info["action"]

        def run(s):
            before = campaigns.get(s, tenant, cid).status
            out = campaigns.campaign_json(campaigns.act(s, tenant, cid, action))
            record(s, request, action, "campaign", cid, before={"status": before},
                   after={"status": out["status"]})
            return out
        return ok(await self.tx(run), "campaign_action")

    async def get_report(self, request: web.Request, tenant: str) -> web.Response:
        cid = request.match_info["id"]
        return ok(await self.tx(lambda s: campaigns.report(s, tenant, cid)), "report")

    @staticmethod
    def _survey(s, tenant: str, cid: str) -> Campaign:
        c = campaigns.get(s, tenant, cid)
        if c.kind != "survey":
            raise BadRequest(f"campaign {cid} is a {c.kind}, not a survey", 409)
        return c

    async def get_results(self, request: web.Request, tenant: str) -> web.Response:
        cid = request.match_info["id"]

        def run(s):
            self._survey(s, tenant, cid)
            return surveys.results(s, cid)
        return ok(await self.tx(run), "results")

    async def get_results_csv(self, request: web.Request, tenant: str) -> web.StreamResponse:
        cid = request.match_info["id"]
        await self.tx(self._survey, tenant, cid)
        resp = web.StreamResponse(headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{cid}-results.csv"'})
        await resp.prepare(request)
        queue: asyncio.Queue = asyncio.Queue(maxsize=4)
        loop = asyncio.get_running_loop()

        def produce() -> None:
            try:
                with self.db.session() as s:
                    for piece in surveys.export_csv(s, cid):
                        asyncio.run_coroutine_threadsafe(queue.put(piece), loop).result()
            finally:
                asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

        task = asyncio.ensure_future(asyncio.to_thread(produce))
        while (piece := await queue.get()) is not None:
            await resp.write(piece.encode("utf-8"))
        await task
        await resp.write_eof()
        metrics.HTTP_REQUESTS.labels(NAME, "results", "200").inc()
        return resp

    async def get_replies(self, request: web.Request, tenant: str) -> web.Response:
        cid = request.match_info["id"]
        limit = min(int_param(request, "limit", 100), PAGE_MAX)

        def run(s):
            campaigns.get(s, tenant, cid)
            rows = s.scalars(select(CampaignInbound).where(CampaignInbound.campaign_id == cid)
                             .order_by(CampaignInbound.received_at.desc()).limit(limit))
            return {"replies": [{"from": r.msisdn, "text": r.text, "kind": r.kind, "reply": r.reply,
                                 "received_at": campaigns.aware(r.received_at).isoformat()}
                                for r in rows]}
        return ok(await self.tx(run), "replies")

    async def put_table(self, request: web.Request, tenant: str) -> web.Response:
        cid = request.match_info["id"]
        f = await spool(request)
        encoding = request.query.get("encoding") or None

        def run(s):
            result = inquiry.load_table_upload(s, campaigns.get(s, tenant, cid), f, encoding)
            record(s, request, "load_table", "campaign", cid, after=result)
            return result
        try:
            result = await self.tx(run)
        finally:
            f.close()
        return ok(result, "table")

    async def put_endpoint(self, request: web.Request, tenant: str) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object")
        name = request.match_info["name"]

        def run(s):
            ep = inquiry.put_endpoint(s, tenant, name, body)
            out = {"name": ep.name, "url": ep.url, "timeout_s": ep.timeout_s, "retries": ep.retries}
            record(s, request, "put", "endpoint", name, after=out)
            return out
        return ok(await self.tx(run), "endpoints")

    # -- content and topics ----------------------------------------------------------------------
    async def get_content(self, request: web.Request, tenant: str) -> web.Response:
        def run(s):
            return {"content": [content.item_json(r) for r in s.scalars(
                select(ContentItem).where(ContentItem.tenant_id == tenant)
                .order_by(ContentItem.name, ContentItem.for_date).limit(PAGE_MAX))]}
        return ok(await self.tx(run), "content")

    async def put_content(self, request: web.Request, tenant: str) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadRequest('expected {"body": "...", "for_date": "YYYY-MM-DD"?}')
        name = request.match_info["name"]

        def run(s):
            out = content.item_json(content.put(s, tenant, name, body))
            record(s, request, "put", "content", name, after=out)
            return out
        return ok(await self.tx(run), "content")

    async def get_topics(self, request: web.Request, tenant: str) -> web.Response:
        def run(s):
            out = []
            for t in subscriptions.topics(s, tenant):
                n = s.scalar(select(func.count()).select_from(Subscriber).where(
                    Subscriber.topic_id == t.id, Subscriber.active.is_(True)))
                out.append({"name": t.name, "description": t.description, "subscribers": n})
            return {"topics": out}
        return ok(await self.tx(run), "topics")

    async def post_topic(self, request: web.Request, tenant: str) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadRequest('expected {"name": "NEWS", "description": "..."}')

        def run(s):
            t = subscriptions.create_topic(s, tenant, body)
            out = {"name": t.name, "description": t.description}
            record(s, request, "create", "topic", t.name, after=out)
            return out
        return ok(await self.tx(run), "topics", 201)

    async def get_subscribers(self, request: web.Request, tenant: str) -> web.Response:
        name = request.match_info["name"]
        after, limit = int_param(request, "after", 0), min(int_param(request, "limit", 100), PAGE_MAX)

        def run(s):
            t = subscriptions.get_topic(s, tenant, name)
            rows = list(s.scalars(select(Subscriber).where(Subscriber.topic_id == t.id,
                                                           Subscriber.active.is_(True),
                                                           Subscriber.id > after)
                                  .order_by(Subscriber.id).limit(limit)))
            return {"topic": t.name, "subscribers": [r.msisdn for r in rows],
                    "next_after": rows[-1].id if rows and len(rows) == limit else None}
        return ok(await self.tx(run), "topics")

    async def get_schedules(self, request: web.Request, tenant: str) -> web.Response:
        name = request.match_info["name"]

        def run(s):
            t = subscriptions.get_topic(s, tenant, name)
            return {"topic": t.name, "schedules": [subscriptions.schedule_json(x) for x in s.scalars(
                select(SubscriptionSchedule).where(SubscriptionSchedule.topic_id == t.id))]}
        return ok(await self.tx(run), "schedules")

    async def post_schedule(self, request: web.Request, tenant: str) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadRequest('expected {"cron": "0 8 * * *", "timezone": "...", "content": NAME}')
        name = request.match_info["name"]

        def run(s):
            t = subscriptions.get_topic(s, tenant, name)
            out = subscriptions.schedule_json(subscriptions.add_schedule(s, t, body, campaigns.utcnow()))
            record(s, request, "create", "schedule", out.get("id", ""), after={**out, "topic": t.name})
            return out
        return ok(await self.tx(run), "schedules", 201)

    async def patch_schedule(self, request: web.Request, tenant: str) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadRequest('expected {"active": false}')
        name, sid = request.match_info["name"], request.match_info["id"]

        def run(s):
            t = subscriptions.get_topic(s, tenant, name)
            before = subscriptions.schedule_json(subscriptions.get_schedule(s, t, sid))
            out = subscriptions.schedule_json(subscriptions.update_schedule(s, t, sid, body,
                                                                            campaigns.utcnow()))
            record(s, request, "update", "schedule", sid, before=before,
                   after={**out, "topic": t.name})
            return out
        return ok(await self.tx(run), "schedules")

    async def delete_schedule(self, request: web.Request, tenant: str) -> web.Response:
        name, sid = request.match_info["name"], request.match_info["id"]

        def run(s):
            topic = subscriptions.get_topic(s, tenant, name)
            deleted = subscriptions.delete_schedule(s, topic, sid)
            record(s, request, "delete", "schedule", sid, before={"topic": topic.name, "id": deleted})
            return {"deleted": deleted}
        return ok(await self.tx(run), "schedules")

    async def delete_topic(self, request: web.Request, tenant: str) -> web.Response:
        name = request.match_info["name"]

        def run(s):
            deleted = subscriptions.delete_topic(s, tenant, name)
            record(s, request, "delete", "topic", deleted, before={"name": deleted})
            return {"deleted": deleted}
        return ok(await self.tx(run), "topics")
