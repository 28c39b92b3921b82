"""The batched processor core for the hot processors (router, egress, verifier, ledger): one
confluent-kafka consumer read with ``consume(num_messages=N)`` (librdkafka, C, batched), one
acknowledged confluent producer, asyncio, and an aiohttp server for /health and /metrics.

The guarantees are those of the Faust core (``services.core.processor``), which the same tests
pin: each record is decoded and validated (bad bytes go to ``<topic>.dlq`` with the reason and
the original bytes); the handler runs over the batch, then over each event alone if the batch
fails (``batches.Isolating``); transient failures are retried with backoff, never
dead-lettered; every output is acknowledged by the broker (acks=all, idempotent) before the
batch's offsets are committed, synchronously and explicitly. After a crash the uncommitted
records are delivered again, and every effect is idempotent by event id: that is the recovery
path.

Start-up: settings -> database -> producer -> start hooks -> web server -> consumer -> running
hooks and ``every`` loops; SIGTERM/SIGINT stops them in reverse order, after the batch in hand
is finished and committed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from . import metrics
from .batches import Isolating
from .db import Database
from .dlq import dlq_record
from .events import Handler, In, Out
from .health import HealthCheck, fail_fast
from .kafka import AsyncProducer
from .retry import until_done
from .schemas import EventInvalid, decode, encode, schema_for_topic
from .settings import Settings, get_settings
from .topics import dlq_name
from .webservice import add_health_routes

log = logging.getLogger(__name__)

Hook = Callable[[], Any]  # a function or coroutine function without arguments

POLL_TIMEOUT_S = 0.2  # how long one consume() waits for a first record; bounds the stop delay
# Chosen by measurement (docs/performance.md): a batch's outputs leave in a few requests.
PRODUCER_LINGER_MS = 5
PRODUCER_COMPRESSION = "lz4"


@dataclass
class _Source:
    topic: str  # catalogue name
    schema: str
    handler: Handler
    is_async: bool
    batch: int
    within: float
    isolating: Isolating[Message] | None = None


class BatchProcessor:
    """The ``Processor`` API (consume, every, send, health, db, settings, name, main, and the
    on_start/on_running/on_stop hooks) over librdkafka. ``Processor(name)`` returns one of these
    for ``core="librdkafka"``."""

    core = "librdkafka"

    def __init__(self, name: str, port: int | None = None, settings: Settings | None = None,
                 use_db: bool = True) -> None:
        self.name = name
        self.settings = s = settings or get_settings()
        logging.basicConfig(level=s.log_level.upper().replace("WARN", "WARNING").replace("CRIT", "CRITICAL"),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.db = Database(s.database_url) if use_db else None
        self.port = port if port is not None else getattr(s, f"{name}_port", 8090)
        self.health = HealthCheck(s.kafka_config(), self.db)
        self.group = f"{s.topic_prefix}herald-{name}"  # the Faust core's group: offsets carry over
        self._sources: dict[str, _Source] = {}  # by full topic name
        self._jobs: list[tuple[str, float, Callable[[], Awaitable[object]]]] = []
        self._on_start: list[Hook] = []
        self._on_running: list[Hook] = []
        self._on_stop: list[Hook] = []
        self.producer: AsyncProducer | None = None
        self._consumer: Consumer | None = None
        self._assigned: set[tuple[str, int]] = set()
        self._revoked_while_gathering = False
        self._stopping = asyncio.Event()

    # -- declaring ----------------------------------------------------------------------------
    def consume(self, topic_name: str, handler: Handler, *, batch: int = 500,
                within: float = 0.02, schema: str | None = None) -> None:
        """Run ``handler`` over batches of validated events of ``topic_name``: up to ``batch``
        records, gathered for at most ``within`` seconds after the first one arrived."""
        src = _Source(topic_name, schema or schema_for_topic(topic_name), handler,
                      inspect.iscoroutinefunction(handler), batch, within)
        src.isolating = Isolating(self.name, lambda items, src=src: self._call(src, items),
                                  self.send,
                                  lambda item, msg, reason, kind, src=src: self._dead_letter(
                                      src.topic, msg, reason, kind, item.event.get("tenant_id")))
        self._sources[self.settings.topic(topic_name)] = src

    def every(self, interval: float, job: Callable[[], Awaitable[object]], *, name: str) -> None:
        """Run ``job`` with ``interval`` seconds between the end of one run and the start of the
        next, while the processor runs; runs never overlap, and one that raises is logged and
        the next tries again."""
        self._jobs.append((name, interval, job))

    def on_start(self, hook: Hook) -> None:
        """Before any record is consumed (egress: read the opt-outs to their end)."""
        self._on_start.append(hook)

    def on_running(self, hook: Hook) -> None:
        """Once consuming (egress: bind SMPP sessions, whose MO is produced through us)."""
        self._on_running.append(hook)

    def on_stop(self, hook: Hook) -> None:
        """After the last batch is committed, before the producer and database close."""
        self._on_stop.append(hook)

    # -- producing ----------------------------------------------------------------------------
    async def send(self, outs: Sequence[Out]) -> None:
        """Produce each event (validated against its topic's schema) and wait for the broker's
        acknowledgement of all of them: only then may the inputs' offsets be committed. While
        the broker is away the whole set is sent again with backoff (its consumers are
        idempotent by event id), instead of the processor giving up and exiting."""
        if not outs:
            return
        assert self.producer is not None, "send() before the processor started"
        records = []
        counts: dict[str, int] = {}
        for o in outs:
            records.append((o.topic, encode(schema_for_topic(o.topic), o.value),
                            o.key.encode("utf-8") if o.key is not None else None))
            counts[o.topic] = counts.get(o.topic, 0) + 1
        producer = self.producer
        await until_done(lambda: producer.send_all(records), what=f"{self.name}: producing")
        for topic, n in counts.items():
            metrics.EVENTS_OUT.labels(self.name, topic).inc(n)

    async def _dead_letter(self, topic: str, msg: Message, reason: str, kind: str,
                           tenant_id: str | None) -> None:
        rec = dlq_record(original_topic=msg.topic(), partition=msg.partition(), offset=msg.offset(),
                         key=msg.key(), value=msg.value(), reason=reason, error_type=kind,
                         processor=self.name, tenant_id=tenant_id)
        metrics.DLQ.labels(self.name, topic, kind).inc()
        log.warning("%s: to %s.dlq (%s): %s", self.name, topic, kind, reason[:300])
        await self.send([Out(dlq_name(topic), rec["key"], rec)])

    # -- consuming ----------------------------------------------------------------------------
    async def _call(self, src: _Source, items: list[In]) -> Sequence[Out]:
        async def attempt() -> Sequence[Out]:
            if src.is_async:
                return await src.handler(items)  # type: ignore[misc]
            return await asyncio.to_thread(src.handler, items)  # type: ignore[arg-type]

        return await until_done(attempt, what=f"{self.name}: {src.topic}")

    async def _handle(self, src: _Source, msgs: list[Message]) -> None:
        metrics.EVENTS_IN.labels(self.name, src.topic).inc(len(msgs))
        good: list[tuple[In, Message]] = []
        for msg in msgs:
            value = msg.value()
            try:
                data = decode(src.schema, value)
            except EventInvalid as exc:
                await self._dead_letter(src.topic, msg, exc.reason, exc.kind, None)
                continue
            key = msg.key()
            good.append((In(data, key.decode("utf-8", "replace") if key is not None else None,
                            msg.partition(), msg.offset(), raw=value), msg))
        assert src.isolating is not None
        await src.isolating.run(good)

    async def _consume_loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        size = max(src.batch for src in self._sources.values())
        within = min(src.within for src in self._sources.values())

        def commit(offsets: list[TopicPartition]) -> None:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                # The group rebalanced while the batch ran: its new owner reads these records
                # again, and every effect of them is idempotent.
                log.warning("%s: commit failed, the batch will be redelivered: %s", self.name, exc)

        def next_batch(done: list[TopicPartition]) -> list[Message]:
            # The last batch's offsets first (its outputs are acknowledged), in the same trip
            # to the worker thread as the gathering of the next batch.
            if done:
                commit(done)
            # consume(n, timeout) returns only when n records are in or the timeout is over: on
            # a quiet topic that would hold the first record for the whole timeout. Wait for a
            # first record, then gather the rest of the batch for at most ``within``.
            msgs = consumer.consume(size, 0)
            if not msgs:
                msgs = consumer.consume(1, POLL_TIMEOUT_S)
                if not msgs:
                    return msgs
            if len(msgs) < size:
                msgs += consumer.consume(size - len(msgs), within)
            if self._revoked_while_gathering:
                # The group took partitions away between the calls above: their records are
                # the new owner's now, and nothing of them is handled or committed here.
                self._revoked_while_gathering = False
                msgs = [m for m in msgs if (m.topic(), m.partition()) in self._assigned]
            return msgs

        done: list[TopicPartition] = []
        while not self._stopping.is_set():
            msgs = await asyncio.to_thread(next_batch, done)
            done = []
            by_topic: dict[str, list[Message]] = {}
            last: dict[tuple[str, int], int] = {}
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        log.warning("%s: consumer: %s", self.name, err)
                    continue
                topic = m.topic()
                by_topic.setdefault(topic, []).append(m)
                last[(topic, m.partition())] = m.offset()  # in order within a partition
            if not last:
                continue
            t0 = time.perf_counter()
            # Topics are independent, as the Faust core's agents are; within one, order holds.
            await asyncio.gather(*(self._handle(self._sources[t], ms) for t, ms in by_topic.items()))
            # Only now, with every output acknowledged, may the offsets move on: committed
            # (synchronously) before the next batch is gathered, or before the consumer closes.
            done = [TopicPartition(t, part, off + 1) for (t, part), off in last.items()]
            metrics.BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - t0)
        if done:
            await asyncio.to_thread(commit, done)

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(tp.topic, tp.partition) for tp in partitions}
        log.info("%s: assigned %s", self.name, _tps(partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Served inside consume(), so no batch is being handled: the last one was handled and
        # committed before this gathering began. Records of these partitions gathered so far
        # are dropped (next_batch), so nothing of another member's partitions is committed.
        self._assigned -= {(tp.topic, tp.partition) for tp in partitions}
        self._revoked_while_gathering = True
        log.info("%s: revoked %s", self.name, _tps(partitions))

    def consumer_config(self) -> dict[str, Any]:
        s = self.settings
        return {
            **s.kafka_config(),
            "group.id": self.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(s.session_timeout_s * 1000),
            "heartbeat.interval.ms": int(max(1.0, s.session_timeout_s / 5) * 1000),
            # a topic that appears (or grows) after start is noticed within this
            "topic.metadata.refresh.interval.ms": 30_000,
            # Prefetch a few batches, not librdkafka's default 64 MB: resident memory stays low
            # when a campaign puts 100,000 messages in front of egress.
            "queued.min.messages": 5_000,
            "queued.max.messages.kbytes": 8_192,
        }

    def producer_config(self) -> dict[str, Any]:
        return {"linger.ms": PRODUCER_LINGER_MS, "compression.type": PRODUCER_COMPRESSION,
                "client.id": f"herald-{self.name}"}

    # -- running ------------------------------------------------------------------------------
    def check_dependencies(self) -> None:
        """Fail fast when the database or a consumed topic is missing (``health.fail_fast``)."""
        fail_fast(self.name, self.settings, self.db, list(self._sources))

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Start everything, run until ``stop`` is set (or SIGTERM/SIGINT when it is not
        given), then stop in reverse order."""
        if stop is not None:
            self._stopping = stop
        else:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._stopping.set)
        self.producer = AsyncProducer(self.settings, **self.producer_config())
        runner: web.AppRunner | None = None
        tasks: list[asyncio.Task] = []
        consuming: asyncio.Task | None = None
        try:
            await asyncio.to_thread(self.producer.check)
            for hook in self._on_start:
                await _call_hook(hook)
            app = web.Application()
            add_health_routes(app, self.name, self.health)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, self.settings.web_host, self.port).start()
            if self._sources:
                self._consumer = Consumer(self.consumer_config())
                self._consumer.subscribe(list(self._sources), on_assign=self._on_assign,
                                         on_revoke=self._on_revoke)
                consuming = asyncio.create_task(self._consume_loop(), name=f"{self.name}.consume")
            for hook in self._on_running:
                tasks.append(asyncio.create_task(_call_hook(hook)))
            for name, interval, job in self._jobs:
                tasks.append(asyncio.create_task(self._every(name, interval, job), name=name))
            log.info("%s: running (librdkafka core, group %s, http port %d)", self.name,
                     self.group, self.port)
            waiter = asyncio.create_task(self._stopping.wait())
            watched = {waiter} | ({consuming} if consuming else set())
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if consuming in done and consuming.exception() is not None:
                log.error("%s: consumer stopped: %r", self.name, consuming.exception())
            self._stopping.set()
            waiter.cancel()
            log.info("%s: stopping", self.name)
        finally:
            self._stopping.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if consuming is not None:
                try:
                    await asyncio.wait_for(consuming, 60)  # finishes and commits the batch in hand
                except Exception:  # noqa: BLE001 - its records are redelivered
                    log.exception("%s: the last batch did not finish", self.name)
            if self._consumer is not None:
                await asyncio.to_thread(self._consumer.close)  # leaves the group at once
                self._consumer = None
            if runner is not None:
                await runner.cleanup()
            for hook in reversed(self._on_stop):
                try:
                    await _call_hook(hook)
                except Exception:  # noqa: BLE001 - the rest must still stop
                    log.exception("%s: a stop hook failed", self.name)
            await asyncio.to_thread(self.producer.close)
            if self.db is not None:
                self.db.dispose()
        if consuming is not None and consuming.done() and not consuming.cancelled() \
                and consuming.exception() is not None:
            raise consuming.exception()  # type: ignore[misc]

    async def _every(self, name: str, interval: float, job: Callable[[], Awaitable[object]]) -> None:
        while not self._stopping.is_set():
            try:
                await job()
            except Exception:  # noqa: BLE001 - the next run tries again
                log.exception("%s: %s failed; trying again in %.1fs", self.name, name, interval)
            try:
                await asyncio.wait_for(self._stopping.wait(), interval)
            except TimeoutError:
                pass

    def main(self) -> None:
        self.check_dependencies()
        try:
            asyncio.run(self.run())
        except (OSError, RuntimeError, KafkaException) as exc:
            sys.exit(f"{self.name}: failed: {exc}")


async def _call_hook(hook: Hook) -> None:
    result = hook()
    if inspect.isawaitable(result):
        await result


def _tps(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
