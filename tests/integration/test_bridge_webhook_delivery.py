"""The webhook dispatcher over real HTTP and a real database (SQLite, and PostgreSQL in CI):
two dispatchers at once keep the order per number and never deliver one event twice in a row;
a receiver that is down makes deliveries fail, visible and replayable; the migration's tables
match the models."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict

import pytest
from aiohttp import web
from sqlalchemy import select

from services.bridge import webhooks
from services.core.db import Database
from services.core.db.bridge_models import WebhookDelivery, WebhookEndpoint
from services.core.schemas import new_event
from services.core.settings import Settings
from services.core.tenancy import create_tenant
from tests.support.infra import free_port

pytestmark = pytest.mark.integration


def settings(url: str, **kw) -> Settings:
    base = {"database_url": url, "secret_key": "integration-key", "webhook_backoff_base_s": 0.05,
            "webhook_backoff_max_s": 0.2, "webhook_poll_s": 0.05, "webhook_timeout_s": 2,
            "webhook_concurrency": 4}
    return Settings(**{**base, **kw})


class Receiver:
    def __init__(self, secret: str, fail_every: int = 0) -> None:
        self.port, self.secret, self.fail_every = free_port(), secret, fail_every
        self.got: list[dict] = []
        self.calls = 0
        self.bad_signatures = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.calls += 1
        if not webhooks.verify(self.secret, body, request.headers):
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.fail_every and self.calls % self.fail_every == 0:
            return web.Response(status=503)
        self.got.append(json.loads(body))
        return web.Response(status=200)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


def seed(url: str, s_: Settings, hook_url: str) -> tuple[Database, str]:
    db = Database(url)
    with db.session() as s:
        create_tenant(s, "acme", "Acme")
        secret = webhooks.set_endpoint(s, s_, "acme", hook_url)
    return db, secret


def statuses(numbers: int, per_number: int) -> list[dict]:
    out = []
    for i in range(per_number):
        for n in range(numbers):
            out.append(new_event("sms.status", "acme", message_id=f"00000000-0000-4000-8000-{n:012d}",
                                 to=f"+86139000{n:05d}", status="sent",
                                 occurred_at="2026-11-28T10:00:00Z", reason=f"seq {i}"))
    return out


async def until(pred, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


def test_two_dispatchers_deliver_everything_once_in_order_per_number_despite_errors(migrated_url):
    async def main() -> None:
        s_ = settings(migrated_url)
        async with Receiver(secret="") as rx:
            db, rx.secret = seed(migrated_url, s_, rx.url)
            rx.fail_every = 4  # every 4th request answers 503
            events = statuses(numbers=5, per_number=6)
            with db.session() as s:
                ep = s.scalar(select(WebhookEndpoint))
                for e in events:
                    webhooks.enqueue(s, ep, e, s_.webhook_max_age_s)
            d1, d2 = webhooks.Dispatcher(db, s_), webhooks.Dispatcher(db, s_)
            await d1.start()
            await d2.start()
            try:
                await until(lambda: len(rx.got) >= len(events))
                await asyncio.sleep(0.3)  # nothing more should come
            finally:
                await d1.stop()
                await d2.stop()
            assert rx.bad_signatures == 0
            assert sorted(e["event_id"] for e in rx.got) == sorted(e["event_id"] for e in events)
            per_number = defaultdict(list)
            for e in rx.got:
                per_number[e["to"]].append(e["reason"])
            assert all(seq == [f"seq {i}" for i in range(6)] for seq in per_number.values()), per_number
            with db.session() as s:
                rows = s.scalars(select(WebhookDelivery)).all()
                assert {r.status for r in rows} == {"delivered"}
                assert sum(r.attempts for r in rows) == rx.calls
            db.dispose()

    asyncio.run(main())


def test_a_receiver_that_stays_down_gets_failed_deliveries_that_replay_when_it_is_back(migrated_url):
    async def main() -> None:
        s_ = settings(migrated_url, webhook_max_age_s=0.6)
        port = free_port()
        db, secret = seed(migrated_url, s_, f"http://127.0.0.1:{port}/hook")  # nobody listens yet
        events = statuses(numbers=2, per_number=2)
        with db.session() as s:
            ep = s.scalar(select(WebhookEndpoint))
            for e in events:
                webhooks.enqueue(s, ep, e, s_.webhook_max_age_s)
        d = webhooks.Dispatcher(db, s_)
        await d.start()
        try:
            def all_failed() -> bool:
                with db.session() as s:
                    return webhooks.counts(s, "acme") == {"failed": len(events)}
            await until(all_failed)
            with db.session() as s:
                failed = webhooks.list_deliveries(s, "acme", "failed")
            assert all(f["last_error"] and "Connect" in f["last_error"] for f in failed)
            rx = Receiver(secret)
            rx.port = port
            async with rx:
                with db.session() as s:
                    assert webhooks.replay(s, "acme", 3600) == len(events)
                d.wake()
                await until(lambda: len(rx.got) == len(events))
            assert [e["event_id"] for e in rx.got if e["to"] == events[0]["to"]] == [
                e["event_id"] for e in events if e["to"] == events[0]["to"]]
        finally:
            await d.stop()
            db.dispose()

    asyncio.run(main())


def test_the_bridge_migration_matches_its_models_and_goes_down_cleanly(migrated_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from services.core.db import bridge_models
    from services.core.db.migrate import downgrade, upgrade
    from services.core.db.session import make_engine

    mine = {"webhook_endpoints", "webhook_deliveries", "bridge_inbound", "metric_messages",
            "metric_pending", "metric_windows"}
    engine = make_engine(migrated_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), bridge_models.Base.metadata)

    def table_of(d) -> str | None:
        d = d[0] if isinstance(d, list) else d
        for part in d[1:]:
            name = getattr(part, "name", None) if not isinstance(part, str) else part
            table = getattr(part, "table", None)
            if table is not None:
                return table.name
            if name in mine:
                return name
        return None
    assert [d for d in diff if table_of(d) in mine] == []
    downgrade(migrated_url, "0001")
    upgrade(migrated_url)
    engine.dispose()
