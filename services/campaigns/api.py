"""The campaigns admin API, served by the campaigns process's own web server (the Faust app's
aiohttp application, beside /health and /metrics). Every route needs a tenant API key
(``Authorization: Bearer hk_...``) and sees only that tenant's data. Bad input is a 4xx with
``{"error": reason}`` and changes nothing.

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
import json
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from services.core import metrics
from services.core.db import Database
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
from services.core.tenancy import authenticate

from .config import CampaignsConfig
from .domain import campaigns, contacts, content, inquiry, subscriptions, surveys
from .domain import settings as tenant_settings
from .domain.audience import FilterError, check_filter
from .domain.contacts import ContactError, CsvError
from .domain.settings import SettingsError

log = logging.getLogger(__name__)
NAME = "campaigns"
UPLOAD_MAX = 256 * 1024 * 1024
SPOOL_IN_MEMORY = 4 * 1024 * 1024
PAGE_MAX = 1000

Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _error(status: int, reason: str, route: str) -> web.Response:
    metrics.HTTP_REQUESTS.labels(NAME, route, str(status)).inc()
    return web.json_response({"error": reason}, status=status)


def _ok(body: Any, route: str, status: int = 200) -> web.Response:
    metrics.HTTP_REQUESTS.labels(NAME, route, str(status)).inc()
    return web.json_response(body, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))


async def _json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None


async def _spool(request: web.Request) -> tempfile.SpooledTemporaryFile:
    """The request body in a spooled file: small bodies in memory, large ones on disk, read in
    pieces so a big CSV is never one string in memory."""
    f = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    size = 0
    async for piece in request.content.iter_chunked(256 * 1024):
        size += len(piece)
        if size > UPLOAD_MAX:
            f.close()
            raise BadRequest(f"upload larger than {UPLOAD_MAX // (1024 * 1024)} MB", 413)
        f.write(piece)
    f.seek(0)
    return f


class Api:
    def __init__(self, db: Database, config: CampaignsConfig) -> None:
        self.db = db
        self.config = config
        self._auth: dict[str, tuple[float, str | None]] = {}

    # -- plumbing --------------------------------------------------------------------------------
    def _tenant_sync(self, key: str) -> str | None:
        now = time.monotonic()
        hit = self._auth.get(key)
        if hit and now - hit[0] < 30:
            return hit[1]
        with self.db.session() as s:
            tenant = authenticate(s, key)
        if len(self._auth) > 10_000:
            self._auth.clear()
        self._auth[key] = (now, tenant)
        return tenant

    def route(self, name: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            auth = request.headers.get("Authorization", "")
            key = auth[7:].strip() if auth.lower().startswith("bearer ") else \
                request.headers.get("X-API-Key", "")
            if not key:
                return _error(401, "missing API key (Authorization: Bearer <key>)", name)
            tenant = await asyncio.to_thread(self._tenant_sync, key)
            if tenant is None:
                return _error(401, "invalid API key", name)
            try:
                return await handler(request, tenant)
            except BadRequest as exc:
                return _error(exc.status, exc.reason, name)
            except campaigns.CampaignError as exc:
                return _error(exc.status, exc.reason, name)
            except (ContactError, CsvError, FilterError, SettingsError) as exc:
                return _error(400, str(exc), name)
            except web.HTTPException:
                raise
            except Exception:  # noqa: BLE001 - a bug: say so without leaking internals
                log.exception("campaigns api: %s %s failed", request.method, request.path)
                return _error(500, "internal error", name)
        return wrapped

    def tx(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        """Run ``fn(session, *args)`` in one transaction in a worker thread."""
        def run() -> Any:
            with self.db.session() as s:
                return fn(s, *args)
        return asyncio.to_thread(run)

    def install(self, app: web.Application) -> None:
        r = app.router
        add = lambda method, path, name, h: r.add_route(method, path, self.route(name, h))  # noqa: E731
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
    async def get_settings(self, request: web.Request, tenant: str) -> web.Response:
        def run(s):
            return tenant_settings.settings_json(s.get(CampaignSettings, tenant), tenant,
                                                 self.config.default_rate_per_second)
        return _ok(await self.tx(run), "settings")

    async def put_settings(self, request: web.Request, tenant: str) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object")

        def run(s):
            row = tenant_settings.update(s, tenant, body)
            return tenant_settings.settings_json(row, tenant, self.config.default_rate_per_second)
        return _ok(await self.tx(run), "settings")

    # -- contacts --------------------------------------------------------------------------------
    async def post_contacts(self, request: web.Request, tenant: str) -> web.Response:
        body = await _json(request)
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
            return _error(400, f"{len(rejects)} contact(s) rejected; nothing stored: "
                          + "; ".join(f"#{r['index']}: {r['reason']}" for r in rejects[:10]), "contacts")

        def run(s):
            rows, created, updated = contacts.upsert(s, tenant, valid)
            if list_name:
                contacts.add_members(s, contacts.get_or_create_list(s, tenant, str(list_name)).id,
                                     [r.id for r in rows])
            return {"created": created, "updated": updated,
                    "contacts": [contacts.contact_json(r) for r in rows]}
        return _ok(await self.tx(run), "contacts", 201)

    async def list_contacts(self, request: web.Request, tenant: str) -> web.Response:
        after, limit = _int(request, "after", 0), min(_int(request, "limit", 100), PAGE_MAX)

        def run(s):
            rows = list(s.scalars(select(Contact).where(Contact.tenant_id == tenant, Contact.id > after)
                                  .order_by(Contact.id).limit(limit)))
            return {"contacts": [contacts.contact_json(c) for c in rows],
                    "next_after": rows[-1].id if len(rows) == limit else None}
        return _ok(await self.tx(run), "contacts")

    async def get_contact(self, request: web.Request, tenant: str) -> web.Response:
        msisdn = contacts.normalise_msisdn(request.match_info["msisdn"])

        def run(s):
            c = s.scalar(select(Contact).where(Contact.tenant_id == tenant, Contact.msisdn == msisdn))
            if c is None:
                raise BadRequest(f"no contact {msisdn}", 404)
            return contacts.contact_json(c)
        return _ok(await self.tx(run), "contact")

    async def delete_contact(self, request: web.Request, tenant: str) -> web.Response:
        msisdn = contacts.normalise_msisdn(request.match_info["msisdn"])

        def run(s):
            c = s.scalar(select(Contact).where(Contact.tenant_id == tenant, Contact.msisdn == msisdn))
            if c is None:
                raise BadRequest(f"no contact {msisdn}", 404)
            s.execute(ContactListMember.__table__.delete().where(ContactListMember.contact_id == c.id))
            s.delete(c)
            return {"deleted": msisdn}
        return _ok(await self.tx(run), "contact")

    async def import_contacts(self, request: web.Request, tenant: str) -> web.Response:
        list_name = request.query.get("list") or None
        atomic = request.query.get("atomic", "").lower() in ("1", "true", "yes")
        f = await _spool(request)
        try:
            report = await asyncio.to_thread(contacts.import_upload, self.db.session, tenant, f,
                                             list_name=list_name, atomic=atomic,
                                             encoding=request.query.get("encoding") or None)
        finally:
            f.close()
        status = 200 if report.written else 422
        body = report.as_dict()
        if not report.written:
            body["error"] = f"{report.rejected} row(s) rejected; with atomic=1 nothing was imported"
        return _ok(body, "import", status)

    async def get_fields(self, request: web.Request, tenant: str) -> web.Response:
        def run(s):
            from .domain.templates import BUILTIN_FIELDS
            return {"builtin": sorted(BUILTIN_FIELDS), "custom": sorted(contacts.known_fields(s, tenant))}
        return _ok(await self.tx(run), "fields")

    # -- lists and segments ----------------------------------------------------------------------
    async def get_lists(self, request: web.Request, tenant: str) -> web.Response:
        def run(s):
            rows = s.execute(select(ContactList, func.count(ContactListMember.contact_id))
                             .outerjoin(ContactListMember, ContactListMember.list_id == ContactList.id)
                             .where(ContactList.tenant_id == tenant).group_by(ContactList.id)
                             .order_by(ContactList.name)).all()
            return {"lists": [{"name": lst.name, "members": n} for lst, n in rows]}
        return _ok(await self.tx(run), "lists")

    async def post_list(self, request: web.Request, tenant: str) -> web.Response:
        body = await _json(request)
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str):
            raise BadRequest('expected {"name": "..."}')

        def run(s):
            lst = contacts.get_or_create_list(s, tenant, name)
            return {"name": lst.name, "id": lst.id}
        return _ok(await self.tx(run), "lists", 201)

    async def post_members(self, request: web.Request, tenant: str) -> web.Response:
        body = await _json(request)
        numbers = body.get("msisdns") if isinstance(body, dict) else None
        if not isinstance(numbers, list) or not numbers or len(numbers) > PAGE_MAX:
            raise BadRequest(f'expected {{"msisdns": [1 to {PAGE_MAX} numbers]}}')
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
            return {"added": contacts.add_members(s, lst.id, found.values())}
        return _ok(await self.tx(run), "lists")

    async def get_segments(self, request: web.Request, tenant: str) -> web.Response:
        def run(s):
            return {"segments": [{"name": x.name, "filter": x.filter} for x in s.scalars(
                select(Segment).where(Segment.tenant_id == tenant).order_by(Segment.name))]}
        return _ok(await self.tx(run), "segments")

    async def post_segment(self, request: web.Request, tenant: str) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) \
                or not 0 < len(body["name"].strip()) <= 100:
            raise BadRequest('expected {"name": "...", "filter": {...}}')
        check_filter(body.get("filter"))

        def run(s):
            name = body["name"].strip()
            if s.scalar(select(Segment).where(Segment.tenant_id == tenant, Segment.name == name)):
                raise BadRequest(f"segment {name} exists", 409)
            s.add(Segment(tenant_id=tenant, name=name, filter=body["filter"]))
            return {"name": name, "filter": body["filter"]}
        return _ok(await self.tx(run), "segments", 201)

    # -- campaigns -------------------------------------------------------------------------------
    async def post_campaign(self, request: web.Request, tenant: str) -> web.Response:
        body = await _json(request)

        def run(s):
            return campaigns.campaign_json(campaigns.create(s, tenant, body))
        return _ok(await self.tx(run), "campaigns", 201)

    async def list_campaigns(self, request: web.Request, tenant: str) -> web.Response:
        def run(s):
            rows = s.scalars(select(Campaign).where(Campaign.tenant_id == tenant)
                             .order_by(Campaign.created_at.desc()).limit(PAGE_MAX))
            return {"campaigns": [campaigns.campaign_json(c) for c in rows]}
        return _ok(await self.tx(run), "campaigns")

    async def get_campaign(self, request: web.Request, tenant: str) -> web.Response:
        cid = request.match_info["id"]
        return _ok(await self.tx(lambda s: campaigns.campaign_json(campaigns.get(s, tenant, cid))),
                   "campaign")

    async def post_action(self, request: web.Request, tenant: str) -> web.Response:
        cid, action = request.match_info["id"], request.match_info["action"]
        return _ok(await self.tx(lambda s: campaigns.campaign_json(campaigns.act(s, tenant, cid, action))),
                   "campaign_action")

    async def get_report(self, request: web.Request, tenant: str) -> web.Response:
        cid = request.match_info["id"]
        return _ok(await self.tx(lambda s: campaigns.report(s, tenant, cid)), "report")

    async def get_results(self, request: web.Request, tenant: str) -> web.Response:
        cid = request.match_info["id"]

        def run(s):
            c = campaigns.get(s, tenant, cid)
            if c.kind != "survey":
                raise BadRequest(f"campaign {cid} is a {c.kind}, not a survey", 409)
            return surveys.results(s, cid)
        return _ok(await self.tx(run), "results")

    async def get_results_csv(self, request: web.Request, tenant: str) -> web.StreamResponse:
        cid = request.match_info["id"]

        def check(s):
            c = campaigns.get(s, tenant, cid)
            if c.kind != "survey":
                raise BadRequest(f"campaign {cid} is a {c.kind}, not a survey", 409)
        await self.tx(check)
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
        limit = min(_int(request, "limit", 100), PAGE_MAX)

        def run(s):
            campaigns.get(s, tenant, cid)
            rows = s.scalars(select(CampaignInbound).where(CampaignInbound.campaign_id == cid)
                             .order_by(CampaignInbound.received_at.desc()).limit(limit))
            return {"replies": [{"from": r.msisdn, "text": r.text, "kind": r.kind, "reply": r.reply,
                                 "received_at": r.received_at.isoformat()} for r in rows]}
        return _ok(await self.tx(run), "replies")

    async def put_table(self, request: web.Request, tenant: str) -> web.Response:
        cid = request.match_info["id"]
        f = await _spool(request)
        encoding = request.query.get("encoding") or None
        try:
            result = await self.tx(lambda s: inquiry.load_table_upload(
                s, campaigns.get(s, tenant, cid), f, encoding))
        finally:
            f.close()
        return _ok(result, "table")

    async def put_endpoint(self, request: web.Request, tenant: str) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object")
        name = request.match_info["name"]

        def run(s):
            ep = inquiry.put_endpoint(s, tenant, name, body)
            return {"name": ep.name, "url": ep.url, "timeout_s": ep.timeout_s, "retries": ep.retries}
        return _ok(await self.tx(run), "endpoints")

    # -- content and topics ----------------------------------------------------------------------
    async def get_content(self, request: web.Request, tenant: str) -> web.Response:
        def run(s):
            return {"content": [content.item_json(r) for r in s.scalars(
                select(ContentItem).where(ContentItem.tenant_id == tenant)
                .order_by(ContentItem.name, ContentItem.for_date).limit(PAGE_MAX))]}
        return _ok(await self.tx(run), "content")

    async def put_content(self, request: web.Request, tenant: str) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict):
            raise BadRequest('expected {"body": "...", "for_date": "YYYY-MM-DD"?}')
        name = request.match_info["name"]
        return _ok(await self.tx(lambda s: content.item_json(content.put(s, tenant, name, body))),
                   "content")

    async def get_topics(self, request: web.Request, tenant: str) -> web.Response:
        def run(s):
            out = []
            for t in subscriptions.topics(s, tenant):
                n = s.scalar(select(func.count()).select_from(Subscriber).where(
                    Subscriber.topic_id == t.id, Subscriber.active.is_(True)))
                out.append({"name": t.name, "description": t.description, "subscribers": n})
            return {"topics": out}
        return _ok(await self.tx(run), "topics")

    async def post_topic(self, request: web.Request, tenant: str) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict):
            raise BadRequest('expected {"name": "NEWS", "description": "..."}')

        def run(s):
            t = subscriptions.create_topic(s, tenant, body)
            return {"name": t.name, "description": t.description}
        return _ok(await self.tx(run), "topics", 201)

    async def get_subscribers(self, request: web.Request, tenant: str) -> web.Response:
        name = request.match_info["name"]
        after, limit = _int(request, "after", 0), min(_int(request, "limit", 100), PAGE_MAX)

        def run(s):
            t = subscriptions.get_topic(s, tenant, name)
            rows = list(s.scalars(select(Subscriber).where(Subscriber.topic_id == t.id,
                                                           Subscriber.active.is_(True),
                                                           Subscriber.id > after)
                                  .order_by(Subscriber.id).limit(limit)))
            return {"topic": t.name, "subscribers": [r.msisdn for r in rows],
                    "next_after": rows[-1].id if len(rows) == limit else None}
        return _ok(await self.tx(run), "topics")

    async def get_schedules(self, request: web.Request, tenant: str) -> web.Response:
        name = request.match_info["name"]

        def run(s):
            t = subscriptions.get_topic(s, tenant, name)
            return {"topic": t.name, "schedules": [subscriptions.schedule_json(x) for x in s.scalars(
                select(SubscriptionSchedule).where(SubscriptionSchedule.topic_id == t.id))]}
        return _ok(await self.tx(run), "schedules")

    async def post_schedule(self, request: web.Request, tenant: str) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict):
            raise BadRequest('expected {"cron": "0 8 * * *", "timezone": "...", "content": NAME}')
        name = request.match_info["name"]

        def run(s):
            t = subscriptions.get_topic(s, tenant, name)
            return subscriptions.schedule_json(subscriptions.add_schedule(s, t, body, campaigns.utcnow()))
        return _ok(await self.tx(run), "schedules", 201)

    async def patch_schedule(self, request: web.Request, tenant: str) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict):
            raise BadRequest('expected {"active": false}')
        name, sid = request.match_info["name"], request.match_info["id"]

        def run(s):
            t = subscriptions.get_topic(s, tenant, name)
            return subscriptions.schedule_json(subscriptions.update_schedule(s, t, sid, body,
                                                                             campaigns.utcnow()))
        return _ok(await self.tx(run), "schedules")

    async def delete_schedule(self, request: web.Request, tenant: str) -> web.Response:
        name, sid = request.match_info["name"], request.match_info["id"]

        def run(s):
            topic = subscriptions.get_topic(s, tenant, name)
            return {"deleted": subscriptions.delete_schedule(s, topic, sid)}
        return _ok(await self.tx(run), "schedules")

    async def delete_topic(self, request: web.Request, tenant: str) -> web.Response:
        name = request.match_info["name"]
        return _ok(await self.tx(lambda s: {"deleted": subscriptions.delete_topic(s, tenant, name)}),
                   "topics")


def _int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        v = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number") from None
    if v < 0:
        raise BadRequest(f"{name} must not be negative")
    return v
