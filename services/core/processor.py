"""The one way a Herald processor is built: a Faust app with /health and /metrics, streams that
decode and validate each event (sending what fails to ``<topic>.dlq`` with the reason), a plain
handler that holds the domain logic, and sends that are acknowledged by the broker before the
consumed offsets may be committed.

Start-up order: settings -> database -> Faust app (producer, consumer, web) -> run until
SIGTERM/SIGINT -> stop in reverse order.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from . import metrics
from .db import Database
from .dlq import dlq_record
from .health import HealthCheck
from .schemas import EventInvalid, decode, encode, schema_for_topic
from .settings import Settings, get_settings
from .topics import dlq_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Out:
    """An event a handler wants produced: catalogue topic name, key, event."""

    topic: str
    key: str | None
    value: dict[str, Any]


@dataclass(frozen=True)
class In:
    """A decoded, validated event and where it came from."""

    event: dict[str, Any]
    key: str | None
    partition: int
    offset: int


class Rejected(Exception):
    """Raised by a handler for one event that is well-formed but cannot be processed."""

    def __init__(self, reason: str, kind: str = "rejected") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


Handler = Callable[[list[In]], Sequence[Out] | Awaitable[Sequence[Out]]]

# Infrastructure errors mean "try again later", never "the event is bad".
TRANSIENT = (OperationalError, PoolTimeout, ConnectionError)


class Processor:
    def __init__(self, name: str, port: int | None = None, settings: Settings | None = None,
                 use_db: bool = True) -> None:
        self.name = name
        self.settings = s = settings or get_settings()
        logging.basicConfig(level=s.log_level.upper().replace("WARN", "WARNING"),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.db = Database(s.database_url) if use_db else None
        self.port = port if port is not None else getattr(s, f"{name}_port", 8090)
        self.app = faust.App(
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
        )
        Path(self.app.conf.datadir).mkdir(parents=True, exist_ok=True)
        self._topics: dict[str, faust.TopicT] = {}
        self.health = HealthCheck(s.kafka_bootstrap, self.db)
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
        schema_name = schema or schema_for_topic(topic_name)
        is_async = inspect.iscoroutinefunction(handler)

        async def call(items: list[In]) -> Sequence[Out]:
            if is_async:
                return await handler(items)
            return await asyncio.to_thread(handler, items)

        async def call_until_done(items: list[In]) -> Sequence[Out] | Exception:
            delay = 0.2
            while True:
                try:
                    return await call(items)
                except TRANSIENT as exc:
                    log.warning("%s: transient failure, retrying in %.1fs: %s", self.name, delay,
                                type(exc).__name__)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                except Exception as exc:  # noqa: BLE001 - decided per event below
                    return exc

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
                    good.append((In(data, key, msg.partition, msg.offset), msg))
                if not good:
                    continue
                result = await call_until_done([g[0] for g in good])
                if not isinstance(result, Exception):
                    await self.send(result)
                else:
                    # Find the culprit(s): each event alone.
                    for item, msg in good:
                        single = await call_until_done([item])
                        if isinstance(single, Exception):
                            kind = single.kind if isinstance(single, Rejected) else "processing_error"
                            reason = single.reason if isinstance(single, Rejected) else (
                                f"{type(single).__name__}: {single}")
                            if kind == "processing_error":
                                log.exception("%s: handler failed", self.name, exc_info=single)
                            await self.to_dlq(topic_name, msg, reason, kind,
                                              item.event.get("tenant_id"))
                        else:
                            await self.send(single)
                metrics.BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - t0)

        agent.__name__ = f"{self.name}_{topic_name.replace('.', '_')}"
        self.app.agent(source, name=f"{self.name}.{topic_name}")(agent)

    # -- web ----------------------------------------------------------------------------------
    def _install_pages(self) -> None:
        app = self.app

        @app.page("/health")
        async def health(web, request):
            status = await self.health.status()
            status["processor"] = self.name
            return web.json(status, status=200 if status["status"] == "ok" else 503)

        @app.page("/metrics")
        async def prom(web, request):
            body, ctype = metrics.render()
            return web.bytes(body, content_type=ctype.split(";")[0])

    # -- running ------------------------------------------------------------------------------
    def check_dependencies(self) -> None:
        """Fail fast with a clear message when the database is unreachable."""
        if self.db is not None:
            try:
                self.db.ping()
            except Exception as exc:
                sys.exit(f"{self.name}: database {self.db.engine.url!r} unreachable: {exc}")

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
