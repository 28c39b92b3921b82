"""A stand-in for the console's Kafka producer in page tests: it validates each event against
its topic's schema, as the real one does, and keeps what was sent."""

from __future__ import annotations

from typing import Any

from services.core.schemas import encode, schema_for_topic


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str | None]] = []

    async def send(self, topic: str, event: dict[str, Any], key: str | None = None) -> None:
        encode(schema_for_topic(topic), event)
        self.sent.append((topic, event, key))

    async def send_many(self, items: list[tuple[str, dict[str, Any], str | None]]) -> None:
        for topic, event, key in items:
            await self.send(topic, event, key)
