"""The asyncio producer over the real broker: each send returns once the broker has its record
(the acknowledgements reach the event loop in batches), and a record the broker cannot take
fails its own send."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import KafkaException

from services.core.kafka import AsyncProducer
from services.core.schemas import new_event
from tests.support.infra import read_topic

pytestmark = pytest.mark.integration


def test_many_concurrent_sends_each_return_once_the_broker_has_its_record(stack):
    producer = AsyncProducer(stack.settings())
    events = [new_event("sms.delivery", carrier="sim", carrier_message_id=f"c-{i}", status="delivered",
                        reported_at="2026-12-01T06:00:00.000Z") for i in range(300)]

    async def go():
        return await asyncio.gather(*(producer.send("sms.delivery", e, key=f"c-{i}")
                                      for i, e in enumerate(events)))

    try:
        acked = asyncio.run(asyncio.wait_for(go(), timeout=60))
    finally:
        producer.close()
    assert len(acked) == 300 and all(m.error() is None and m.offset() >= 0 for m in acked)
    got = read_topic(stack.bootstrap, stack.topic("sms.delivery"), until=lambda r: len(r) >= 300)
    assert sorted(r["event_id"] for r in got) == sorted(e["event_id"] for e in events)


def test_a_record_the_broker_cannot_take_fails_its_own_send_and_not_the_others(stack):
    producer = AsyncProducer(stack.settings(), **{"message.timeout.ms": 1500})

    async def go():
        ok = producer.send_raw("sms.delivery", b'{"x":1}', key="k")
        missing = producer.send_raw("no.such.topic", b'{"x":2}', key="k")
        return await asyncio.gather(ok, missing, return_exceptions=True)

    try:
        ok, missing = asyncio.run(asyncio.wait_for(go(), timeout=30))
    finally:
        producer.close()
    assert not isinstance(ok, BaseException) and ok.offset() >= 0
    assert isinstance(missing, KafkaException)
