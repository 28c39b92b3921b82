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

Overlap (``consume(..., in_flight=2)``): while one batch's outputs await their acknowledgements,
the next batch is gathered, handled and produced. Batches are still handled one after the other
(the handler never runs twice at once), their outputs are produced in batch order, and offsets
are committed strictly in batch order, each batch's only once its own outputs and every earlier
batch's are acknowledged. A batch whose delivery failed is produced again before any later one
is settled, and every later batch already produced is produced again behind it, so the last
copy of each output keeps the batches' order. On a revocation the batches in flight are drained
(acknowledged ones committed in order) before the partitions go.

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
import threading
import time
from collections import deque
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
from .retry import TRANSIENT, until_done
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
# How long a revocation waits for a batch in flight to learn its acknowledgements' outcome; a
# delivery report comes within the producer's message.timeout.ms (15 s).
REVOKE_DRAIN_S = 20.0
# What the hot processors (router, egress, verifier, ledger) pass as ``in_flight``: the next batch
# is gathered and handled while the previous one's outputs await their acks; effects are
# idempotent by event id and offsets still commit in batch order after the acks
# (docs/performance.md, parts 4 and 5).
OVERLAP = 2

Record = tuple[str, bytes, bytes | None]  # (catalogue topic, value, key) as the producer takes it


@dataclass
class _Source:
    topic: str  # catalogue name
    schema: str
    handler: Handler
    is_async: bool
    batch: int
    within: float
    in_flight: int


class _Batch:
    """One gathered batch from its handling to its commit: the offsets it commits, the outputs
    its handling produced (dead letters included), in produce order, and their acks."""

    def __init__(self, offsets: dict[tuple[str, int], int]) -> None:
        self.offsets = offsets  # (topic, partition) -> next offset to read
        self.records: list[Record] = []
        self.counts: dict[str, int] = {}
        self.started = time.perf_counter()
        self.seq = 0  # when its outputs were produced (the pipeline's produce counter)
        self.acked: asyncio.Future | None = None  # the acknowledgement of ``records``
        self.known = threading.Event()  # ``acked`` is done (for the revocation's thread)
        self.settled = False  # acknowledged for good, after any producing again: committable

    def add(self, records: list[Record], counts: dict[str, int]) -> None:
        self.records += records
        for topic, n in counts.items():
            self.counts[topic] = self.counts.get(topic, 0) + n

    def acknowledged(self) -> bool:
        """Settled, or (from another thread) its first produce is known acknowledged."""
        if self.settled:
            return True
        fut = self.acked
        return fut is not None and self.known.is_set() and not fut.cancelled() \
            and fut.exception() is None


class _InFlight:
    """The batches handled and produced whose offsets are not committed yet, oldest first.
    They are settled (acknowledged, produced again if need be) in order and committed in order;
    ``drain`` is the revocation's way to commit what it may, from the consumer's thread."""

    def __init__(self) -> None:
        self.batches: deque[_Batch] = deque()
        self.produced = 0  # produce calls so far (originals and copies)
        self.copied_at = 0  # ``produced`` at the last copy: batches first produced before it
        # are behind an output produced again, so they are produced again too

    def add(self, batch: _Batch, acked: asyncio.Future) -> None:
        self.produced += 1
        batch.seq, batch.acked = self.produced, acked
        acked.add_done_callback(lambda _f: batch.known.set())
        self.batches.append(batch)

    def unsettled(self) -> list[_Batch]:
        return [b for b in self.batches if not b.settled]

    def oldest_unsettled(self) -> _Batch | None:
        return next((b for b in self.batches if not b.settled), None)

    def copied(self) -> None:
        self.produced += 1
        self.copied_at = self.produced

    def must_copy(self, batch: _Batch) -> bool:
        return batch.seq < self.copied_at

    def committable(self) -> list[TopicPartition]:
        """The offsets of the settled batches at the head, taken out: each partition's latest."""
        merged: dict[tuple[str, int], int] = {}
        while self.batches and self.batches[0].settled:
            merged.update(self.batches.popleft().offsets)
        return [TopicPartition(t, part, off) for (t, part), off in merged.items()]

    def drain(self, revoked: set[tuple[str, int]], timeout: float) -> list[TopicPartition]:
        """On a revocation (the consumer's thread, the event loop free): the offsets of the
        batches at the head whose outputs are acknowledged, in order, waiting up to ``timeout``
        for each outcome. From the first batch that is not (failed, timed out, or due to be
        produced again), the revoked partitions' offsets are dropped: their records go to the
        new owner, which handles them again."""
        merged: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + timeout
        in_order = True
        for b in self.batches:
            if in_order and not b.settled:
                b.known.wait(max(0.0, deadline - time.monotonic()))
                in_order = b.acknowledged() and not self.must_copy(b)
            if in_order:
                merged.update(b.offsets)
                b.offsets = {}  # committed here; settling it later commits nothing more
            else:
                b.offsets = {tp: off for tp, off in b.offsets.items() if tp not in revoked}
        return [TopicPartition(t, part, off) for (t, part), off in merged.items()]


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
        self._in_flight = _InFlight()
        self._stopping = asyncio.Event()

    # -- declaring ----------------------------------------------------------------------------
    def consume(self, topic_name: str, handler: Handler, *, batch: int = 500,
                within: float = 0.02, in_flight: int = 1, schema: str | None = None) -> None:
        """Run ``handler`` over batches of validated events of ``topic_name``: up to ``batch``
        records, gathered for at most ``within`` seconds after the first one arrived.
        ``in_flight``: how many batches' outputs may await their acknowledgements at once (2:
        the next batch is gathered and handled meanwhile; 1: each batch is committed before the
        next is gathered). One consumer serves every topic, so the smallest value given wins."""
        if in_flight < 1:
            raise ValueError("in_flight: at least 1")
        self._sources[self.settings.topic(topic_name)] = _Source(
            topic_name, schema or schema_for_topic(topic_name), handler,
            inspect.iscoroutinefunction(handler), batch, within, in_flight)

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
        records, counts = _records(outs)
        producer = self.producer
        await until_done(lambda: producer.send_all(records), what=f"{self.name}: producing")
        _count_out(self.name, counts)

    def _dead_letter(self, batch: _Batch, topic: str, msg: Message, reason: str, kind: str,
                     tenant_id: str | None) -> None:
        rec = dlq_record(original_topic=msg.topic(), partition=msg.partition(), offset=msg.offset(),
                         key=msg.key(), value=msg.value(), reason=reason, error_type=kind,
                         processor=self.name, tenant_id=tenant_id)
        metrics.DLQ.labels(self.name, topic, kind).inc()
        log.warning("%s: to %s.dlq (%s): %s", self.name, topic, kind, reason[:300])
        batch.add(*_records([Out(dlq_name(topic), rec["key"], rec)]))

    # -- consuming ----------------------------------------------------------------------------
    async def _call(self, src: _Source, items: list[In]) -> Sequence[Out]:
        async def attempt() -> Sequence[Out]:
            if src.is_async:
                return await src.handler(items)  # type: ignore[misc]
            return await asyncio.to_thread(src.handler, items)  # type: ignore[arg-type]

        return await until_done(attempt, what=f"{self.name}: {src.topic}")

    async def _handle(self, src: _Source, msgs: list[Message], batch: _Batch) -> None:
        """Validate, handle (batch, then each event alone) and collect the outputs and dead
        letters into ``batch``, in order; they are produced once the whole batch is handled."""
        metrics.EVENTS_IN.labels(self.name, src.topic).inc(len(msgs))
        good: list[tuple[In, Message]] = []
        for msg in msgs:
            value = msg.value()
            try:
                data = decode(src.schema, value)
            except EventInvalid as exc:
                self._dead_letter(batch, src.topic, msg, exc.reason, exc.kind, None)
                continue
            key = msg.key()
            good.append((In(data, key.decode("utf-8", "replace") if key is not None else None,
                            msg.partition(), msg.offset(), raw=value), msg))

        async def collect(outs: Sequence[Out]) -> None:
            batch.add(*_records(outs))  # validated now: a bad output fails here, as send() does

        async def dead_letter(item: In, msg: Message, reason: str, kind: str) -> None:
            self._dead_letter(batch, src.topic, msg, reason, kind, item.event.get("tenant_id"))

        await Isolating(self.name, lambda items: self._call(src, items), collect,
                        dead_letter).run(good)

    async def _settle(self, batch: _Batch) -> None:
        """Wait for ``batch``'s acknowledgements; if its delivery failed for a reason that passes,
        or an earlier batch was produced again after it, produce it again (with backoff) until
        acknowledged. Called for the oldest unsettled batch only, so batches settle in order."""
        flight = self._in_flight
        assert batch.acked is not None and self.producer is not None
        try:
            await batch.acked
            again = flight.must_copy(batch)
        except TRANSIENT as exc:  # the broker was away: nothing later may commit before this
            log.warning("%s: a batch's outputs were not acknowledged (%s); producing them again "
                        "before any later batch commits", self.name, exc)
            again = True
        if again:
            producer, records = self.producer, batch.records
            await until_done(lambda: producer.send_all(records), what=f"{self.name}: producing")
            flight.copied()
        batch.settled = True
        _count_out(self.name, batch.counts)
        metrics.BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - batch.started)

    async def _consume_loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None and self.producer is not None
        size = max(src.batch for src in self._sources.values())
        within = min(src.within for src in self._sources.values())
        depth = min(src.in_flight for src in self._sources.values())
        flight = self._in_flight
        producer = self.producer

        def next_batch(done: list[TopicPartition]) -> list[Message]:
            # The settled batches' offsets first (their outputs are acknowledged), in the same
            # trip to the worker thread as the gathering of the next batch.
            if done:
                self._commit(done)
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

        while not self._stopping.is_set():
            # What is acknowledged already settles without waiting and commits on this trip.
            while (oldest := flight.oldest_unsettled()) is not None and oldest.known.is_set():
                await self._settle(oldest)
            msgs = await asyncio.to_thread(next_batch, flight.committable())
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
                if (oldest := flight.oldest_unsettled()) is not None:
                    await self._settle(oldest)  # nothing new: commit what is in flight soon
                continue
            batch = _Batch({tp: off + 1 for tp, off in last.items()})
            # Topics are independent, as the Faust core's agents are; within one, order holds.
            await asyncio.gather(*(self._handle(self._sources[t], ms, batch)
                                   for t, ms in by_topic.items()))
            # Produced now, in batch order (produce_all returns once they are queued); the
            # offsets wait for the acknowledgements, this batch's and every earlier one's.
            flight.add(batch, await producer.produce_all(batch.records))
            while len(flight.unsettled()) >= depth:
                await self._settle(flight.oldest_unsettled())  # type: ignore[arg-type]
        # Stopping: every batch in hand is acknowledged, then committed, before the consumer closes.
        while (oldest := flight.oldest_unsettled()) is not None:
            await self._settle(oldest)
        if done := flight.committable():
            await asyncio.to_thread(self._commit, done)

    def _commit(self, offsets: list[TopicPartition]) -> None:
        assert self._consumer is not None
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The group rebalanced while the batch ran: its new owner reads these records
            # again, and every effect of them is idempotent.
            log.warning("%s: commit failed, the batch will be redelivered: %s", self.name, exc)

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(tp.topic, tp.partition) for tp in partitions}
        log.info("%s: assigned %s", self.name, _tps(partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Served inside consume(), between batches: none is being handled, but batches may be
        # in flight (handled, produced, not yet committed). Those whose outputs are acknowledged
        # are committed now, in order, while the partitions are still ours; from the first that
        # is not, the revoked partitions' records are the new owner's to handle again. Records
        # of these partitions gathered so far are dropped (next_batch).
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= revoked
        self._revoked_while_gathering = True
        if done := self._in_flight.drain(revoked, REVOKE_DRAIN_S):
            self._commit(done)
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
            # Prefetch a few batches (two of 500 are in flight), not librdkafka's default 64 MB:
            # resident memory stays low when a campaign puts 100,000 messages in front of egress.
            # The prefetched records, their decompressed buffers and queue entries hold ~16 MB
            # of egress (heaptrack); 1,000 / 2 MB took ~10 MB off its peak but cost the
            # verification path a quarter of its rate (the next batch waited for its records),
            # so it stays at 5,000 / 8 MB (docs/performance.md, egress's memory).
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


def _records(outs: Sequence[Out]) -> tuple[list[Record], dict[str, int]]:
    """Outputs -> records for the producer, each validated against its topic's schema (a bad
    output raises EventInvalid: producers never send bad events), and a count per topic."""
    records: list[Record] = []
    counts: dict[str, int] = {}
    for o in outs:
        records.append((o.topic, encode(schema_for_topic(o.topic), o.value),
                        o.key.encode("utf-8") if o.key is not None else None))
        counts[o.topic] = counts.get(o.topic, 0) + 1
    return records, counts


def _count_out(processor: str, counts: dict[str, int]) -> None:
    for topic, n in counts.items():
        metrics.EVENTS_OUT.labels(processor, topic).inc(n)


def _tps(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
