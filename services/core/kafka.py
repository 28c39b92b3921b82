"""confluent-kafka for producers outside Faust (ingress, tooling, benchmarks): an asyncio
producer whose ``send`` returns only once the broker has acknowledged the record."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from .schemas import encode, schema_for_topic
from .settings import Settings

PRODUCER_GUARANTEES = {"acks": "all", "enable.idempotence": True}

# Delivery errors that say "the broker is away for now", not "this record is refused".
_AWAY = frozenset({KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._TRANSPORT,
                   KafkaError._ALL_BROKERS_DOWN, KafkaError.REQUEST_TIMED_OUT,
                   KafkaError.NOT_ENOUGH_REPLICAS, KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND})


class BrokerUnavailable(ConnectionError):
    """Records were not acknowledged because the broker (or enough of its replicas) could not be
    reached in time. A ConnectionError, so the cores' retry loop (``retry.TRANSIENT``) sends the
    batch again instead of giving up: back-pressure, not failure."""


def delivery_error(err: KafkaError) -> Exception:
    """The exception for a failed delivery: BrokerUnavailable when it is worth sending again."""
    if err.retriable() or err.code() in _AWAY:
        return BrokerUnavailable(f"not acknowledged: {err.str()}")
    return KafkaException(err)


class AsyncProducer:
    def __init__(self, settings: Settings, **config: Any) -> None:
        self.settings = settings
        conf = {
            **settings.kafka_config(),
            "linger.ms": 2,
            "compression.type": "lz4",
            "message.timeout.ms": 15000,
        }
        conf.update(config)
        # Not overridable: a write counts once min.insync.replicas copies have it (acks=all), and
        # librdkafka's retries after a lost ack (a broker dying mid-request) are not written twice.
        conf.update(PRODUCER_GUARANTEES)
        self._producer = Producer(conf)
        # send_raw's acknowledgements, handed to their event loops once per poll round: one
        # wake-up of the loop for all the records a produce request carried, not one each
        self._acks: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future, Any, Any]] = deque()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)
            self._hand_over_acks()
        self._hand_over_acks()

    def _hand_over_acks(self) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any, Any]]] = {}
        while True:
            try:  # a deque: callbacks that close()'s flush runs on another thread append safely
                loop, fut, err, msg = self._acks.popleft()
            except IndexError:
                break
            by_loop.setdefault(loop, []).append((fut, err, msg))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_all, settled)
            except RuntimeError:  # that loop is closed: nobody waits for these any more
                pass

    def check(self, timeout: float = 5.0) -> None:
        """Raise if the broker does not answer (used at start-up to fail fast)."""
        self._producer.list_topics(timeout=timeout)

    async def send_raw(self, topic: str, value: bytes, key: str | bytes | None = None) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()

        acks = self._acks

        def delivered(err, msg) -> None:
            acks.append((loop, fut, err, msg))

        self._producer.produce(self.settings.topic(topic), value, key=key, on_delivery=delivered)
        return await fut

    async def send(self, topic: str, event: dict[str, Any], key: str | None = None) -> Any:
        """Validate against the topic's schema, produce, and wait for the broker's ack."""
        return await self.send_raw(topic, encode(schema_for_topic(topic), event), key)

    async def send_all(self, records: Sequence[tuple[str, bytes, bytes | str | None]]) -> None:
        """Produce each ``(catalogue topic, value, key)`` and return once the broker acknowledged
        every one of them (one wake-up of the event loop per call, not per record); raise the
        first delivery error (``BrokerUnavailable`` when the broker was away)."""
        if records:
            await (await self.produce_all(records))

    async def produce_all(self, records: Sequence[tuple[str, bytes, bytes | str | None]]
                          ) -> asyncio.Future:
        """Produce each ``(catalogue topic, value, key)`` now, in order, and return the future of
        their acknowledgement without waiting for it: it completes once the broker acknowledged
        every one (or with the first delivery error, as ``send_all`` raises). Returns when the
        last record is in librdkafka's queue, so records of two calls awaited one after the
        other are produced in the order of the calls."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        if not records:
            fut.set_result(None)
            return fut
        pending = len(records)
        errors: list[Any] = []

        def delivered(err, _msg) -> None:
            # Runs on the poll thread only, so the count needs no lock.
            nonlocal pending
            if err is not None:
                errors.append(err)
            pending -= 1
            if pending == 0:
                if errors:
                    loop.call_soon_threadsafe(_set_exc, fut, delivery_error(errors[0]))
                else:
                    loop.call_soon_threadsafe(_set_result, fut, None)

        topic_of = self.settings.topic
        for topic, value, key in records:
            while True:
                try:
                    self._producer.produce(topic_of(topic), value, key=key, on_delivery=delivered)
                    break
                except BufferError:  # librdkafka's queue is full: let the poll thread drain it
                    await asyncio.sleep(0.005)
        return fut

    async def send_many(self, items: list[tuple[str, dict[str, Any], str | None]]) -> None:
        """``send`` for many events: all validated before any is produced, then produced at once
        and acknowledged together (``send_all``: one wake-up of the event loop, not one each)."""
        await self.send_all([(t, encode(schema_for_topic(t), e), k) for t, e, k in items])

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
        self._stop.set()
        self._poller.join(2)
        self._hand_over_acks()  # what flush acknowledged after the poll thread's last round


def _set_result(fut: asyncio.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exc(fut: asyncio.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def _settle_all(settled: list[tuple[asyncio.Future, Any, Any]]) -> None:
    for fut, err, msg in settled:
        if err is not None:
            _set_exc(fut, KafkaException(err))
        else:
            _set_result(fut, msg)
