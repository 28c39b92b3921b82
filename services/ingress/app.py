"""Ingress: carrier webhooks (MO, DLR) and the tenant send API, over aiohttp.

A request is answered 2xx only after the broker has acknowledged its event, so a crash right
after answering loses nothing. Bad input gets a 4xx with a reason and publishes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from services.carriers import WebhookRequest
from services.carriers import webhooks as carrier_webhooks
from services.core import metrics, sending, topics
from services.core.carriers import Carrier, load_carriers
from services.core.concurrency import Coalescing
from services.core.db import Database
from services.core.db.models import InboundPart, Message, SenderNumber
from services.core.health import HealthCheck
from services.core.kafka import AsyncProducer
from services.core.messages import history
from services.core.ratelimit import KeyedTokenBucket, per_key_limit_error, retry_after
from services.core.settings import Settings, get_settings
from services.core.tenancy import KeyRefused, KeyResolver
from services.core.webservice import add_health_routes, close_stores_on_cleanup, open_stores, serve

from .domain import (
    MAX_BATCH,
    BadRequest,
    MoPart,
    complete_mo,
    mo_message_id,
    parse_send,
    preview,
)

log = logging.getLogger("herald.ingress")
NAME = "ingress"


def _error(status: int, reason: str, **extra: Any) -> web.Response:
    metrics.HTTP_REQUESTS.labels(NAME, "error", str(status)).inc()
    return web.json_response({"error": reason, **extra}, status=status)


async def _json(request: web.Request) -> Any:
    return sending.read_json(await request.read())


class Ingress:
    def __init__(self, settings: Settings, db: Database, producer: AsyncProducer,
                 carriers: dict[str, Carrier]) -> None:
        self.s, self.db, self.producer, self.carriers = settings, db, producer, carriers
        self.webhooks = {n: w for n, c in carriers.items() if (w := carrier_webhooks(c)) is not None}
        self.limiter = KeyedTokenBucket(settings.api_rate_per_second, settings.api_rate_burst)
        self.key_limiter = KeyedTokenBucket(settings.api_key_rate_per_second, settings.api_key_rate_burst)
        self.keys = KeyResolver(db.session)
        self._senders: dict[str, tuple[float, set[str]]] = {}
        # Send-API calls that arrive together are recorded in one transaction and one thread hop
        # (a lone call still goes at once): SQLite's commit and the hop were most of a call's CPU.
        self._accept_one = Coalescing(self._accept)

    # -- carriers -----------------------------------------------------------------------------
    async def webhook(self, request: web.Request) -> web.Response:
        """A carrier's MO or DLR call: its unit authenticates and parses it; ingress publishes
        what the unit returns (a part of a longer MO is kept until the text is whole) and answers
        in the carrier's dialect once the broker has it."""
        name, kind = request.match_info["carrier"], request.match_info["kind"]
        carrier, unit = self.carriers.get(name), self.webhooks.get(name)
        if carrier is None:
            return _error(404, f"unknown carrier {name!r}")
        if unit is None:
            return _error(404, f"carrier {name!r} ({carrier.kind}) takes no webhooks")
        req = WebhookRequest(kind, str(request.url),
                             {k.lower(): v for k, v in request.headers.items()}, await request.read())
        if not unit.verify(req):
            return _error(401, "bad or missing signature")
        try:
            inbound = unit.parse(req)
            mo: list[dict] = []
            for event, part in inbound.mo:
                if part is not None:
                    event = await asyncio.to_thread(self._collect_part, carrier.name, event, part)
                if event is not None:
                    mo.append(event)
        except BadRequest as exc:
            return _error(400, str(exc))
        for event in mo:
            await self.producer.send(topics.SMS_INBOUND, event, key=event["from"])
        # all of a request's reports in one produce, acknowledged together
        await self.producer.send_many([
            (topics.SMS_DELIVERY, event, event.get("message_id") or event["carrier_message_id"])
            for event in inbound.deliveries])
        metrics.HTTP_REQUESTS.labels(NAME, kind, "200" if mo or kind == "dlr" else "202").inc()
        if inbound.answer_type is not None:
            return web.Response(body=inbound.answer_body, content_type=inbound.answer_type)
        if kind == "dlr":
            return web.json_response({"status": "accepted"})
        if not mo:
            return web.json_response({"status": "part stored", "complete": False}, status=202)
        return web.json_response({"status": "accepted", "message_id": mo[0]["message_id"]})

    def _collect_part(self, carrier: str, event: dict, part: MoPart) -> dict | None:
        """Store one part; when all are in, return the whole text's event (parts removed)."""
        with self.db.session() as s:
            try:
                with s.begin_nested():
                    s.add(InboundPart(carrier=carrier, sender=event["from"], ref=part.ref,
                                      seq=part.seq, total=part.total, text=part.text))
            except IntegrityError:
                pass  # a retried webhook for a part we have
            rows = s.scalars(select(InboundPart).where(
                InboundPart.carrier == carrier, InboundPart.sender == event["from"],
                InboundPart.ref == part.ref).order_by(InboundPart.seq)).all()
            if len({r.seq for r in rows}) < part.total:
                return None
            whole = complete_mo(event, [r.text for r in rows])
            # One id for the whole text, whichever part completed it.
            whole["message_id"] = mo_message_id(carrier, f"concat:{event['from']}:{part.ref}")
            whole["carrier_message_id"] = f"concat-{part.ref}"[:128]
            s.execute(delete(InboundPart).where(
                InboundPart.carrier == carrier, InboundPart.sender == event["from"],
                InboundPart.ref == part.ref))
            return whole

    # -- send API -----------------------------------------------------------------------------
    async def _tenant(self, request: web.Request) -> str:
        """The tenant of the request's API key, which has a request in its rate budget; else
        401, 403 naming a suspended tenant, or 429 naming the per-key limit."""
        try:
            who = await self.keys.check_async(request.headers)
        except KeyRefused as exc:
            refused = web.HTTPForbidden if exc.status == 403 else web.HTTPUnauthorized
            raise refused(text=json.dumps({"error": exc.reason}),
                          content_type="application/json") from None
        wait = self.key_limiter.take(who.prefix)
        if wait > 0:
            metrics.HTTP_REQUESTS.labels(NAME, "error", "429").inc()
            raise web.HTTPTooManyRequests(
                text=json.dumps(per_key_limit_error(self.key_limiter, who.prefix, wait)),
                content_type="application/json", headers={"Retry-After": str(retry_after(wait))})
        return who.tenant_id

    async def _senders_of(self, tenant: str) -> set[str]:
        hit = self._senders.get(tenant)
        if hit and time.monotonic() - hit[0] < 30:
            return hit[1]  # from the cache without a hop to a thread (57 µs of CPU each)
        return await asyncio.to_thread(self._tenant_senders, tenant)

    def _tenant_senders(self, tenant: str) -> set[str]:
        now = time.monotonic()
        hit = self._senders.get(tenant)
        if hit and now - hit[0] < 30:
            return hit[1]
        with self.db.session() as s:
            nums = set(s.scalars(select(SenderNumber.number).where(SenderNumber.tenant_id == tenant)))
        self._senders[tenant] = (now, nums)
        return nums

    def _limit(self, tenant: str, n: int) -> web.Response | None:
        wait = self.limiter.take(tenant, n)
        if wait > 0:
            resp = _error(429, f"rate limit of {self.s.api_rate_per_second:g} messages per second "
                               f"exceeded for tenant {tenant}", limit="tenant_messages",
                          retry_after_s=round(wait, 3))
            resp.headers["Retry-After"] = str(retry_after(wait))
            return resp
        return None

    def _accept(self, events: list[dict]) -> list[bool | str]:
        """``sending.accept`` in one transaction: per event, False when new, True when the same
        request was accepted before, or the reason a reused idempotency key is refused."""
        with self.db.session() as s:
            return sending.accept(s, events)

    @staticmethod
    def _result(event: dict, duplicate: bool) -> dict:
        p = preview(event["text"])
        return {"message_id": event["message_id"], "request_id": event["request_id"],
                "status": "accepted", "to": event["to"], "encoding": p["encoding"],
                "segments": p["segments"], "duplicate": duplicate}

    async def send(self, request: web.Request) -> web.Response:
        tenant = await self._tenant(request)
        try:
            body = await _json(request)
            senders = await self._senders_of(tenant)
            event = parse_send(tenant, body, request.headers.get("Idempotency-Key"), senders)
        except BadRequest as exc:
            return _error(400, str(exc))
        if request.query.get("dry_run") in ("1", "true"):
            return web.json_response({"dry_run": True, **preview(event["text"])})
        limited = self._limit(tenant, 1)
        if limited is not None:
            return limited
        dup = await self._accept_one(event)
        if isinstance(dup, str):
            return _error(409, dup, request_id=event["request_id"],
                          message_id=event["message_id"])
        # Published again on a duplicate too: if the first attempt died before the broker
        # acknowledged it, this one delivers it; egress dedupes by message id.
        await sending.publish(self.producer, [event])
        metrics.HTTP_REQUESTS.labels(NAME, "send", "202").inc()
        return web.json_response(self._result(event, dup), status=200 if dup else 202)

    async def send_batch(self, request: web.Request) -> web.Response:
        tenant = await self._tenant(request)
        try:
            body = await _json(request)
            items = body.get("messages") if isinstance(body, dict) else None
            if not isinstance(items, list) or not items:
                raise BadRequest("'messages' must be a non-empty list")
            if len(items) > MAX_BATCH:
                raise BadRequest(f"at most {MAX_BATCH} messages per batch")
        except BadRequest as exc:
            return _error(400, str(exc))
        senders = await self._senders_of(tenant)
        events, results = [], []
        for i, item in enumerate(items):
            try:
                events.append((i, parse_send(tenant, item, None, senders)))
            except BadRequest as exc:
                results.append({"index": i, "error": str(exc)})
        limited = self._limit(tenant, max(1, len(events)))
        if limited is not None:
            return limited
        dups = await asyncio.to_thread(self._accept, [e for _, e in events])
        sent = [(i, e, dup) for (i, e), dup in zip(events, dups, strict=True) if not isinstance(dup, str)]
        await sending.publish(self.producer, [e for _, e, _ in sent])
        for (i, e), dup in zip(events, dups, strict=True):
            if isinstance(dup, str):
                results.append({"index": i, "error": dup, "status": 409,
                                "request_id": e["request_id"], "message_id": e["message_id"]})
        for i, e, dup in sent:
            results.append({"index": i, **self._result(e, dup)})
        results.sort(key=lambda r: r["index"])
        accepted = sum(1 for r in results if "error" not in r)
        body = {"accepted": accepted, "rejected": len(results) - accepted, "results": results}
        if not accepted:  # a 400 is an error like every other, with each message's reason too
            return web.json_response({"error": "no message of the batch was accepted", **body},
                                     status=400)
        return web.json_response(body, status=202)

    async def preview_view(self, request: web.Request) -> web.Response:
        await self._tenant(request)
        try:
            body = await _json(request)
            text = body.get("text") if isinstance(body, dict) else None
            if not isinstance(text, str) or not text:
                raise BadRequest("'text' is required")
        except BadRequest as exc:
            return _error(400, str(exc))
        return web.json_response(preview(text))

    def _history_sync(self, tenant: str, message_id: str) -> dict | None:
        with self.db.session() as s:
            msg = s.get(Message, message_id)
            if msg is None or msg.tenant_id != tenant:  # other tenants' messages do not exist
                return None
            return {"message_id": msg.id, "request_id": msg.request_id, "to": msg.recipient,
                    "from": msg.sender, "status": msg.status, "reason": msg.reason,
                    "encoding": msg.encoding, "segments": msg.segments, "carrier": msg.carrier,
                    "accepted_at": msg.accepted_at.isoformat(), "history": history(s, msg.id)}

    async def get_message(self, request: web.Request) -> web.Response:
        tenant = await self._tenant(request)
        found = await asyncio.to_thread(self._history_sync, tenant, request.match_info["id"])
        if found is None:
            return _error(404, "no such message")
        return web.json_response(found)


async def create_app(settings: Settings | None = None) -> web.Application:
    s = settings or get_settings()
    db, producer = await open_stores(s)
    ing = Ingress(s, db, producer, load_carriers(s.carriers_file))

    app = web.Application(client_max_size=2 * 1024 * 1024)
    add_health_routes(app, NAME, HealthCheck(s.kafka_config(), db))
    app.router.add_post("/carriers/{carrier}/{kind:mo|dlr}", ing.webhook)
    app.router.add_post("/v1/messages", ing.send)
    app.router.add_post("/v1/messages/batch", ing.send_batch)
    app.router.add_post("/v1/messages/preview", ing.preview_view)
    app.router.add_get("/v1/messages/{id}", ing.get_message)

    close_stores_on_cleanup(app, db, producer)
    return app


def main() -> None:
    s = get_settings()
    logging.basicConfig(level=s.log_level.upper().replace("WARN", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(lambda: create_app(s), s.web_host, s.ingress_port, NAME)
