"""The Faust core behind ``Processor(name)`` (the default core): a Faust app whose streams decode
and validate each event (sending what fails to ``<topic>.dlq`` with the reason), a plain handler
that holds the domain logic, sends that are acknowledged by the broker before the consumed
offsets may be committed, and /health and /metrics. Kept where Faust's tables and timers earn
their place (campaigns, metrics, bridge).

Imported only by a processor that runs on it (``services.core.processor`` imports it when a Faust
processor is made): Faust, aiokafka and mode cost a librdkafka-core process about 15 MB of
resident memory for nothing (docs/performance.md, egress's memory).

Start-up order: settings -> database -> Faust app (producer, consumer, web) -> run until
SIGTERM/SIGINT -> stop in reverse order.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import faust
import mode
from aiokafka import TopicPartition as AioTP
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

from . import metrics
from .batches import Isolating
from .db import Database
from .dlq import dlq_record
from .events import Handler, In, Out
from .health import HealthCheck, fail_fast
from .processor import Processor
from .retry import until_done
from .schemas import EventInvalid, decode, encode, schema_for_topic
from .settings import Settings, get_settings
from .topics import dlq_name
from .webservice import add_health_routes

log = logging.getLogger(__name__)


class QuietWorker(faust.Worker):
    """Faust's worker without its terminal spinner. To spin on every log record, the spinner
    sets the root logger to DEBUG whenever the level is WARN or above, so every ``debug()`` call
    in aiokafka and Faust (one per produced message) builds a record only for the handler to drop
    it: about a tenth of a busy processor's CPU. Without it the root logger keeps the level asked."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
        super().on_setup_root_logger(logger, level)


def partition_is_quiet(highwater: int | None, position: int | None, committed: int | None,
                       read: int | None) -> bool:
    """Nothing on this partition waits for us: no record was read or fetched that is not
    committed yet. ``highwater``/``position``: aiokafka's log end and fetch position (None
    before the first fetch response); ``committed``: the next offset Faust committed;
    ``read``: the last offset the stream read."""
    if highwater is None:
        return read is None  # not fetched yet, and nothing ever read from it
    if committed is not None and committed >= highwater:
        return True
    return read is None and position is not None and position >= highwater


class QuietPartitionsConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's livelock detector logs ERRORs ("Has not committed TP(...)", "Aiokafka has not sent
    fetch request for TP(...) since start") about partitions that merely receive nothing. A
    quiet partition has nothing to commit or fetch: only partitions with records waiting are
    checked, and those still log ERROR when they stall."""

    def verify_event_path(self, now: float, tp: Any) -> None:
        if self._quiet(tp):
            return None
        return super().verify_event_path(now, tp)

    def _quiet(self, tp: Any) -> bool:
        try:
            assignment = self._ensure_consumer()._fetcher._subscriptions.subscription.assignment
            state = assignment.state_value(AioTP(tp.topic, tp.partition)) if assignment else None
        except AttributeError:  # not started, or aiokafka internals moved: let Faust decide
            return False
        if state is None:
            return False
        parent = self.consumer
        position = state.position if state.has_valid_position else None
        return partition_is_quiet(state.highwater, position, parent._committed_offset[tp],
                                  parent._read_offset[tp])


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return QuietPartitionsConsumerThread(self, loop=self.loop, beacon=self.beacon)


class IdempotentProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer with acks=all and idempotence always on (Faust turns idempotence
    on only inside transactions; aiokafka's own default is acks=1, which ignores
    min.insync.replicas): a write counts once a quorum of replicas has it, and a retry after a
    lost ack is not written twice."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    Producer = IdempotentProducer


class HeraldApp(faust.App):
    """A Faust app whose consumer does not report quiet partitions as failures."""

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


class FaustProcessor(Processor):
    """``Processor(name)`` on the Faust core."""

    def __init__(self, name: str, port: int | None = None, settings: Settings | None = None,
                 use_db: bool = True, *, core: str | None = None) -> None:
        self.name = name
        self.settings = s = settings or get_settings()
        logging.basicConfig(level=s.log_level.upper().replace("WARN", "WARNING"),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.db = Database(s.database_url) if use_db else None
        self.port = port if port is not None else getattr(s, f"{name}_port", 8090)
        self.app = HeraldApp(
            f"{s.topic_prefix}herald-{name}",
            broker=[f"kafka://{b}" for b in s.kafka_bootstrap.split(",")],
            store="memory://",
            key_serializer="raw",
            value_serializer="raw",
            web_port=self.port,
            web_bind=s.web_host,
            web_host=s.web_host,
            datadir=str(Path(".run").resolve() / "faust" / f"{s.topic_prefix}{name}-{self.port}"),
            broker_session_timeout=s.session_timeout_s,
            broker_heartbeat_interval=max(1.0, s.session_timeout_s / 5),
            broker_commit_interval=s.commit_interval_s,
            consumer_auto_offset_reset="earliest",
            topic_disable_leader=True,
            producer_acks=-1,
            producer_linger_ms=2,
            web_access_log=None,
            Worker=QuietWorker,
            broker_credentials=faust.SASLCredentials(
                username=s.kafka_username, password=s.kafka_password.get_secret_value(),
                mechanism=s.kafka_sasl_mechanism, ssl_context=s.kafka_ssl_context(),
            ) if s.kafka_sasl else faust.SSLCredentials(s.kafka_ssl_context()) if s.kafka_tls else None,
            # a topic that appears (or grows) after start is noticed within this, not 5 minutes
            consumer_metadata_max_age_ms=30_000,
        )
        Path(self.app.conf.datadir).mkdir(parents=True, exist_ok=True)
        self._topics: dict[str, faust.TopicT] = {}
        self._sources: list[str] = []  # full names of the topics the agents consume
        self._hooks: list[Callable[..., Any]] = []
        self.health = HealthCheck(s.kafka_config(), self.db)
        self._install_pages()

    # -- topics and sending -------------------------------------------------------------------
    def topic(self, name: str) -> faust.TopicT:
        t = self._topics.get(name)
        if t is None:
            t = self._topics[name] = self.app.topic(self.settings.topic(name), key_type=bytes,
                                                    value_type=bytes, internal=False)
        return t

    async def send(self, outs: Sequence[Out]) -> None:
        """Produce each event (validated against its topic's schema) and wait for the broker's
        acknowledgement of all of them: only then may the inputs' offsets be committed."""
        futs = []
        for o in outs:
            raw = encode(schema_for_topic(o.topic), o.value)
            key = o.key.encode("utf-8") if o.key is not None else None
            futs.append(await self.topic(o.topic).send(key=key, value=raw))
            metrics.EVENTS_OUT.labels(self.name, o.topic).inc()
        if futs:
            await asyncio.gather(*futs)

    async def to_dlq(self, topic: str, message: Any, reason: str, kind: str,
                     tenant_id: str | None = None) -> None:
        rec = dlq_record(original_topic=self.settings.topic(topic),
                         partition=getattr(message, "partition", None),
                         offset=getattr(message, "offset", None),
                         key=getattr(message, "key", None), value=getattr(message, "value", None),
                         reason=reason, error_type=kind, processor=self.name, tenant_id=tenant_id)
        metrics.DLQ.labels(self.name, topic, kind).inc()
        log.warning("%s: to %s.dlq (%s): %s", self.name, topic, kind, reason[:300])
        await self.send([Out(dlq_name(topic), rec["key"], rec)])

    # -- consuming ----------------------------------------------------------------------------
    def consume(self, topic_name: str, handler: Handler, *, batch: int = 200,
                within: float = 0.02, schema: str | None = None) -> None:
        """Run ``handler`` over batches of validated events of ``topic_name``.

        Bad bytes go to the DLQ. A handler failure on a batch is retried one event at a time so
        a single bad event goes to the DLQ and the others still take effect. Database or broker
        outages are retried with backoff, never dead-lettered.
        """
        source = self.topic(topic_name)
        self._sources.append(self.settings.topic(topic_name))
        schema_name = schema or schema_for_topic(topic_name)
        is_async = inspect.iscoroutinefunction(handler)

        async def call(items: list[In]) -> Sequence[Out]:
            async def attempt() -> Sequence[Out]:
                if is_async:
                    return await handler(items)
                return await asyncio.to_thread(handler, items)

            return await until_done(attempt, what=f"{self.name}: {topic_name}")

        async def dead_letter(item: In, msg: Any, reason: str, kind: str) -> None:
            await self.to_dlq(topic_name, msg, reason, kind, item.event.get("tenant_id"))

        isolating: Isolating[Any] = Isolating(self.name, call, self.send, dead_letter)

        async def agent(stream):
            async for events in stream.take_events(batch, within=within):
                t0 = time.perf_counter()
                good: list[tuple[In, Any]] = []
                for ev in events:
                    msg = ev.message
                    metrics.EVENTS_IN.labels(self.name, topic_name).inc()
                    try:
                        data = decode(schema_name, msg.value)
                    except EventInvalid as exc:
                        await self.to_dlq(topic_name, msg, exc.reason, exc.kind)
                        continue
                    key = msg.key.decode("utf-8", "replace") if isinstance(msg.key, bytes) else msg.key
                    good.append((In(data, key, msg.partition, msg.offset, raw=msg.value), msg))
                if not good:
                    continue
                await isolating.run(good)
                metrics.BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - t0)

        agent.__name__ = f"{self.name}_{topic_name.replace('.', '_')}"
        self.app.agent(source, name=f"{self.name}.{topic_name}")(agent)

    def consume_pattern(self, name: str, pattern: str, handler: Handler, *,
                        decoder: Callable[[str, bytes | None], dict[str, Any]] | None = None,
                        dlq_for: Callable[[str], str] = dlq_name,
                        tenant_for: Callable[[str, dict[str, Any]], str | None] | None = None,
                        batch: int = 200, refresh_ms: int = 5000) -> None:
        """Like ``consume``, over every topic whose catalogue name matches ``pattern`` (a Python
        regex, fully matched), including topics created while the processor runs.

        faust-streaming 0.15 cannot subscribe by pattern (its aiokafka driver subscribes to
        names only), so this runs a confluent-kafka consumer with a regex subscription in its own
        consumer group ``<prefix>herald-<processor>-<name>``, beside the Faust agents. The
        guarantees are the same: outputs (and DLQ records) are acknowledged by the broker
        before the batch's offsets are committed; a handler failure is retried event by event.
        Each ``In`` carries the catalogue name of its topic. ``dlq_for`` names the DLQ of a
        topic, ``decoder`` turns bytes into an event (default: the topic's schema), and
        ``tenant_for`` says whose DLQ record it is (default: the event's tenant_id).
        """
        consumer = PatternConsumer(self, name, pattern, handler, decoder=decoder, dlq_for=dlq_for,
                                   tenant_for=tenant_for, batch=batch, refresh_ms=refresh_ms)
        self.app.service(consumer)

    def every(self, interval: float, job: Callable[[], Awaitable[object]], *, name: str) -> None:
        """Run ``job`` again and again with ``interval`` seconds between the end of one run and the
        start of the next, while the app runs. Unlike a Faust timer, runs never overlap (a slow
        run under load only delays the next one, it does not warn of overlapping). A run that
        raises is logged and the next one tries again."""
        app = self.app

        async def loop() -> None:
            while not app.should_stop:
                try:
                    await job()
                except Exception:  # noqa: BLE001 - the next run tries again
                    log.exception("%s: %s failed; trying again in %.1fs", self.name, name, interval)
                await app.sleep(interval)

        loop.__name__ = name
        app.task(loop)

    def on_start(self, hook: Callable[[], Any]) -> None:
        """Before any agent consumes (on Faust's worker-init); a plain function."""

        def init(sender: Any = None, **kwargs: Any) -> None:
            if inspect.isawaitable(hook()):
                raise TypeError("an on_start hook of the Faust core must be a plain function")

        self._hooks.append(init)  # kept referenced: Faust's signals may hold weak references
        self.app.on_worker_init.connect(init)

    def on_running(self, hook: Callable[[], Awaitable[object]]) -> None:
        """Once the app runs."""

        async def task() -> None:
            await hook()

        task.__name__ = getattr(hook, "__name__", "on_running")
        self.app.task(task)

    def on_stop(self, hook: Callable[[], Any]) -> None:
        """Before the app shuts down."""

        async def stop(sender: Any = None, **kwargs: Any) -> None:
            result = hook()
            if inspect.isawaitable(result):
                await result

        self._hooks.append(stop)
        self.app.on_before_shutdown.connect(stop)

    # -- web ----------------------------------------------------------------------------------
    def _install_pages(self) -> None:
        # Faust's web server is aiohttp: the same routes as every other Herald service.
        add_health_routes(self.app.web.web_app, self.name, self.health)

    # -- running ------------------------------------------------------------------------------
    def check_dependencies(self) -> None:
        """Fail fast when the database or a consumed topic is missing (``health.fail_fast``)."""
        fail_fast(self.name, self.settings, self.db, self._sources)

    def main(self) -> None:
        self.check_dependencies()
        level = {"warning": "warn"}.get(self.settings.log_level, self.settings.log_level)
        sys.argv = [f"herald-{self.name}", "worker", "-l", level, "--web-port", str(self.port),
                    "--web-host", self.settings.web_host, "--web-bind", self.settings.web_host]
        try:
            self.app.main()
        finally:
            if self.db is not None:
                self.db.dispose()


_ERE_SPECIAL = re.compile(r"([.\[\]{}()\\*+?^$|])")


class PatternConsumer(mode.Service):
    """The engine of ``Processor.consume_pattern``: a confluent-kafka consumer subscribed by regex,
    run as a service of the Faust app (started with it, stopped before it)."""

    def __init__(self, p: FaustProcessor, name: str, pattern: str, handler: Handler, *,
                 decoder: Callable[[str, bytes | None], dict[str, Any]] | None,
                 dlq_for: Callable[[str], str],
                 tenant_for: Callable[[str, dict[str, Any]], str | None] | None,
                 batch: int, refresh_ms: int) -> None:
        super().__init__()
        self.p, self.name, self.handler, self.batch = p, name, handler, batch
        s = p.settings
        self.prefix = s.topic_prefix
        self.regex = re.compile(pattern)
        # librdkafka subscribes by a POSIX regex when the name starts with '^'. Patterns given
        # here are meant to be simple enough to read the same in both dialects; each topic is
        # checked again against the Python regex before its records are handled.
        self.subscription = "^" + _ERE_SPECIAL.sub(r"\\\1", self.prefix) + pattern.lstrip("^")
        self.decoder = decoder or (lambda topic, raw: decode(schema_for_topic(topic), raw))
        self.dlq_for, self.tenant_for = dlq_for, tenant_for
        self.is_async = inspect.iscoroutinefunction(handler)
        self.config = {
            **s.kafka_config(),
            "group.id": f"{s.topic_prefix}herald-{p.name}-{name}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(s.session_timeout_s * 1000),
            "heartbeat.interval.ms": int(max(1.0, s.session_timeout_s / 5) * 1000),
            "topic.metadata.refresh.interval.ms": refresh_ms,
        }
        self._consumer: Consumer | None = None
        self._done = asyncio.Event()
        self.isolating: Isolating[Any] = Isolating(
            p.name, self._call, p.send,
            lambda item, msg, reason, kind: self._dlq(item.topic or "", msg, reason, kind,
                                                      self._tenant(item.topic or "", item.event)))

    def _catalogue_name(self, topic: str) -> str:
        return topic[len(self.prefix):] if self.prefix and topic.startswith(self.prefix) else topic

    async def on_start(self) -> None:
        self._consumer = Consumer(self.config)
        self._consumer.subscribe([self.subscription])
        log.info("%s: consuming topics matching %s (group %s)", self.p.name, self.subscription,
                 self.config["group.id"])

    async def on_stop(self) -> None:
        try:
            await asyncio.wait_for(self._done.wait(), 30)
        except TimeoutError:
            log.warning("%s: pattern consumer %s did not finish its batch in time", self.p.name,
                        self.name)
        if self._consumer is not None:
            await asyncio.to_thread(self._consumer.close)
            self._consumer = None

    async def _call(self, items: list[In]) -> Sequence[Out]:
        async def attempt() -> Sequence[Out]:
            if self.is_async:
                return await self.handler(items)
            return await asyncio.to_thread(self.handler, items)

        return await until_done(attempt, what=f"{self.p.name}: {self.name}")

    async def _dlq(self, topic: str, msg: Any, reason: str, kind: str, tenant_id: str | None) -> None:
        target = self.dlq_for(topic)
        rec = dlq_record(original_topic=msg.topic(), partition=msg.partition(), offset=msg.offset(),
                         key=msg.key(), value=msg.value(), reason=reason, error_type=kind,
                         processor=self.p.name, tenant_id=tenant_id)
        metrics.DLQ.labels(self.p.name, topic, kind).inc()
        log.warning("%s: to %s (%s): %s", self.p.name, target, kind, reason[:300])
        await self.p.send([Out(target, rec["key"], rec)])

    def _tenant(self, topic: str, event: dict[str, Any]) -> str | None:
        return self.tenant_for(topic, event) if self.tenant_for else event.get("tenant_id")

    async def _handle(self, msgs: list[Any]) -> None:
        good: list[tuple[In, Any]] = []
        for msg in msgs:
            topic = self._catalogue_name(msg.topic())
            if not self.regex.fullmatch(topic):
                continue  # the broker-side regex was wider than ours
            metrics.EVENTS_IN.labels(self.p.name, self.name).inc()
            try:
                event = self.decoder(topic, msg.value())
            except EventInvalid as exc:
                await self._dlq(topic, msg, exc.reason, exc.kind, self._tenant(topic, {}))
                continue
            key = msg.key().decode("utf-8", "replace") if msg.key() is not None else None
            good.append((In(event, key, msg.partition(), msg.offset(), topic, msg.value()), msg))
        await self.isolating.run(good)

    @mode.Service.task
    async def _consume_loop(self) -> None:
        try:
            while not self.should_stop and self._consumer is not None:
                msgs = await asyncio.to_thread(self._consumer.consume, self.batch, 0.25)
                records = []
                for m in msgs:
                    if m.error() is None:
                        records.append(m)
                    elif m.error().code() != KafkaError._PARTITION_EOF:
                        log.warning("%s: %s: %s", self.p.name, self.name, m.error())
                if not records:
                    continue
                t0 = time.perf_counter()
                await self._handle(records)
                # Only now, with every output acknowledged, may the offsets move on.
                last: dict[tuple[str, int], int] = {}
                for m in records:
                    last[(m.topic(), m.partition())] = max(last.get((m.topic(), m.partition()), -1),
                                                           m.offset())
                offsets = [TopicPartition(t, part, off + 1) for (t, part), off in last.items()]
                try:
                    await asyncio.to_thread(self._consumer.commit, offsets=offsets,
                                            asynchronous=False)
                except KafkaException as exc:
                    # A rebalance took the partitions away: their new owner sees the batch
                    # again, and every effect of it is idempotent.
                    log.warning("%s: %s: commit failed: %s", self.p.name, self.name, exc)
                metrics.BATCH_SECONDS.labels(self.p.name).observe(time.perf_counter() - t0)
        except Exception:
            log.exception("%s: pattern consumer %s stopped", self.p.name, self.name)
            raise
        finally:
            self._done.set()
