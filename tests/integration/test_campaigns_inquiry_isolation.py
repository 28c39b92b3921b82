"""One tenant's slow inquiry endpoint holds up no one else: the campaigns engine over a real
database and real HTTP endpoints (the ERP double answers only when the test lets it, so no
fixed sleeps). Texts answered from a table are replied at once while another tenant's ERP hangs;
one number's endpoint inquiries are asked in order; a tenant has at most its bound of calls in
flight; an inquiry held by a worker that died is resumed and answered once."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.campaigns.config import CampaignsConfig
from services.campaigns.domain import campaigns, conversations, inquiry
from services.campaigns.engine import Engine
from services.core.db.campaigns_models import CampaignInbound
from services.core.processor import In
from services.core.tenancy import add_number, create_tenant

pytestmark = pytest.mark.integration
NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)


class Erp:
    """An inquiry endpoint that answers a call only once the test releases it."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(body["argument"])
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return web.json_response({"reply": f"Order {body['argument']} shipped"})


def event(tenant: str, sender: str, text: str, n: int, to: str) -> dict:
    mid = f"00000000-0000-4000-8000-{n:012d}"
    return {"event_id": mid, "event_type": "sms.inbound", "tenant_id": tenant, "message_id": mid,
            "carrier": "sim", "carrier_message_id": mid, "from": sender, "to": to, "text": text,
            "received_at": "2026-06-15T10:00:00Z"}


def consumed(ev: dict) -> In:
    return In(ev, ev["from"], 0, 0)


async def until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def setup(db, url: str) -> None:
    with db.session() as s:
        for tenant, number in (("slow", "10690001"), ("quick", "10690002")):
            create_tenant(s, tenant, tenant, default_sender=number)
            add_number(s, tenant, number)
        inquiry.put_endpoint(s, "slow", "erp", {"url": url, "timeout_s": 30, "retries": 0})
        campaigns.create(s, "slow", {"name": "orders", "kind": "inquiry", "config": {
            "keyword": "ORDER", "source": "endpoint", "endpoint": "erp"}}, now=NOW)
        table = campaigns.create(s, "quick", {"name": "stock", "kind": "inquiry", "config": {
            "keyword": "STOCK", "reply": "{key}: {count} left"}}, now=NOW)
        inquiry.load_table(s, table, io.StringIO("item,count\nLATTE,12\n"))


def run(db, scenario, **config) -> None:
    async def main() -> None:
        erp = Erp()
        app = web.Application()
        app.router.add_post("/inquiry", erp.handle)
        async with TestServer(app, host="127.0.0.1") as server:
            setup(db, str(server.make_url("/inquiry")))
            sent: list[dict] = []

            async def send(outs) -> None:
                sent.extend(o.value for o in outs)
            engine = Engine(SimpleNamespace(db=db, send=send), CampaignsConfig(**config))
            try:
                await scenario(engine, erp, sent)
            finally:
                erp.release.set()
                await engine.close()
    asyncio.run(main())


def test_a_table_inquiry_is_answered_while_another_tenants_erp_hangs(sqlite_db):
    async def scenario(engine: Engine, erp: Erp, sent: list[dict]) -> None:
        slow = event("slow", "+8613800000001", "ORDER 42", 1, "10690001")
        quick = event("quick", "+8613800000002", "STOCK latte", 2, "10690002")
        # Both in one batch, then the quick one's next text in the batch after.
        outs = await asyncio.wait_for(engine.on_inbound([consumed(slow), consumed(quick)]), 2.0)
        assert [o.value["text"] for o in outs] == ["LATTE: 12 left"]
        again = event("quick", "+8613800000002", "STOCK latte", 3, "10690002")
        outs = await asyncio.wait_for(engine.on_inbound([consumed(again)]), 2.0)
        assert [o.value["text"] for o in outs] == ["LATTE: 12 left"]
        assert sent == [] and erp.calls == ["42"]
        erp.release.set()
        await until(lambda: len(sent) == 1)
        assert sent[0]["text"] == "Order 42 shipped" and sent[0]["to"] == "+8613800000001"
        with sqlite_db.session() as s:
            assert s.get(CampaignInbound, slow["message_id"]).reply == "Order 42 shipped"
        # A redelivered inquiry replays the recorded reply and asks nobody.
        outs = await engine.on_inbound([consumed(slow)])
        assert [o.value["text"] for o in outs] == ["Order 42 shipped"] and erp.calls == ["42"]
    run(sqlite_db, scenario)


def test_one_numbers_inquiries_are_asked_in_order_and_a_tenant_is_bounded(sqlite_db):
    async def scenario(engine: Engine, erp: Erp, sent: list[dict]) -> None:
        texts = [event("slow", "+8613800000001", "ORDER 1", 1, "10690001"),
                 event("slow", "+8613800000001", "ORDER 2", 2, "10690001"),
                 event("slow", "+8613800000003", "ORDER 3", 3, "10690001"),
                 event("slow", "+8613800000004", "ORDER 4", 4, "10690001"),
                 event("slow", "+8613800000005", "ORDER 5", 5, "10690001")]
        assert await asyncio.wait_for(engine.on_inbound([consumed(e) for e in texts]), 2.0) == []
        await until(lambda: erp.in_flight == 2)
        assert "2" not in erp.calls  # the same number's second waits for its first
        erp.release.set()
        await until(lambda: len(sent) == 5)
        assert erp.most_in_flight == 2
        assert erp.calls.index("1") < erp.calls.index("2")
        to_first = [e["text"] for e in sent if e["to"] == "+8613800000001"]
        assert to_first == ["Order 1 shipped", "Order 2 shipped"]
    run(sqlite_db, scenario, inquiry_concurrency=2)


def test_an_inquiry_held_by_a_worker_that_died_is_resumed_and_answered(sqlite_db):
    async def scenario(engine: Engine, erp: Erp, sent: list[dict]) -> None:
        ev = event("slow", "+8613800000001", "ORDER 77", 1, "10690001")
        with sqlite_db.session() as s:  # what a worker did before it died
            pending = conversations.handle(s, ev, NOW)
            assert isinstance(pending, conversations.NeedsEndpoint)
            conversations.hold(s, ev, pending, NOW)
        erp.release.set()
        assert await engine.resume_held(NOW + timedelta(seconds=10)) == 0  # not stale yet
        assert await engine.resume_held(NOW + timedelta(minutes=10)) == 1
        await until(lambda: len(sent) == 1)
        assert sent[0]["text"] == "Order 77 shipped"
        await until(lambda: not engine._asking)
        assert await engine.resume_held(NOW + timedelta(minutes=20)) == 0
    run(sqlite_db, scenario)
