"""The send API's real aiohttp handlers in process, on a given database, with a producer that
keeps what it was asked to publish instead of talking to a broker (unit tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.core.db import Database
from services.core.settings import Settings
from services.ingress.app import Ingress


class KeptProducer:
    """Stands in for AsyncProducer: every event sent is kept, in order, with its topic."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, topic: str, event: dict[str, Any], key: Any = None) -> None:
        self.sent.append((topic, dict(event)))

    async def send_many(self, items: list[tuple[str, dict[str, Any], Any]]) -> None:
        self.sent.extend((topic, dict(event)) for topic, event, _key in items)


def call_send_api(db: Database, test: Callable[[TestClient, KeptProducer], Awaitable[None]]) -> None:
    """Run ``test(client, producer)`` against the send API's routes."""
    producer = KeptProducer()
    ingress = Ingress(Settings(), db, producer, {})  # type: ignore[arg-type]
    app = web.Application()
    app.router.add_post("/v1/messages", ingress.send)
    app.router.add_post("/v1/messages/batch", ingress.send_batch)
    app.router.add_get("/v1/messages/{id}", ingress.get_message)

    async def main() -> None:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await test(client, producer)

    asyncio.run(asyncio.wait_for(main(), timeout=30))
