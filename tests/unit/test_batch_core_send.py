"""The librdkafka core's producing side without a broker: what a failed delivery means, and that a
broker away for a while is waited for (the batch sent again) instead of ending the processor."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import KafkaError, KafkaException

from services.core.events import Out
from services.core.kafka import BrokerUnavailable, delivery_error
from services.core.rdkafka_core import BatchProcessor
from services.core.retry import TRANSIENT
from services.core.schemas import new_event
from services.core.settings import Settings


@pytest.mark.parametrize("code", [KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT,
                                  KafkaError._ALL_BROKERS_DOWN, KafkaError.NOT_ENOUGH_REPLICAS])
def test_a_delivery_that_failed_because_the_broker_was_away_is_worth_sending_again(code):
    exc = delivery_error(KafkaError(code))
    assert isinstance(exc, BrokerUnavailable) and isinstance(exc, TRANSIENT)


@pytest.mark.parametrize("code", [KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.TOPIC_AUTHORIZATION_FAILED])
def test_a_delivery_the_broker_refused_for_good_is_not_retried(code):
    exc = delivery_error(KafkaError(code))
    assert isinstance(exc, KafkaException) and not isinstance(exc, TRANSIENT)


class FlakyProducer:
    """Fails the first ``away`` calls as a broker that is away, then acknowledges."""

    def __init__(self, away: int, error: Exception | None = None) -> None:
        self.away, self.error, self.calls = away, error, []

    async def send_all(self, records):
        self.calls.append(list(records))
        if len(self.calls) <= self.away:
            raise self.error or BrokerUnavailable("not acknowledged: Local: Message timed out")


def processor(producer: FlakyProducer) -> BatchProcessor:
    p = BatchProcessor("router", settings=Settings(), use_db=False)
    p.producer = producer  # type: ignore[assignment]
    return p


def status() -> Out:
    ev = new_event("sms.delivery", carrier="sim", carrier_message_id="SM1", status="delivered",
                   reported_at="2026-12-01T08:00:00.000Z")
    return Out("sms.delivery", "SM1", ev)


def test_send_waits_for_a_broker_that_is_away_and_sends_the_whole_set_again():
    producer = FlakyProducer(away=2)
    asyncio.run(processor(producer).send([status(), status()]))
    assert len(producer.calls) == 3
    assert producer.calls[0] == producer.calls[2] and len(producer.calls[2]) == 2


def test_send_raises_a_refusal_that_another_try_cannot_change():
    producer = FlakyProducer(away=1, error=KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)))
    with pytest.raises(KafkaException):
        asyncio.run(processor(producer).send([status()]))
    assert len(producer.calls) == 1
