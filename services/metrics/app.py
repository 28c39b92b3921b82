"""The metrics processor's Faust app: the pipeline's topics in, window totals in the database,
closed windows out to ``metrics.minute`` / ``metrics.hour``, and running totals on /metrics.

Start-up: settings -> database -> Faust app (agents on five topics, the publishing timer, web)
-> run until SIGTERM/SIGINT -> stop in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

from services.core import inbound_log, topics
from services.core.db.bridge_models import METRIC_FIELDS
from services.core.processor import In, Out, Processor
from services.core.settings import Settings

from . import domain

log = logging.getLogger(__name__)

SOURCES = (topics.SMS_INBOUND, topics.SMS_OUTBOUND, topics.SMS_STATUS, topics.CODES_SUBMITTED,
           topics.POINTS_AWARDED)
# Read only for the tenants' inbox log (which rule handled an inbound text), not counted.
INBOX_SOURCES = (topics.CAMPAIGNS_INBOUND, topics.POINTS_COMMANDS)
LABELS = list(domain.DIMENSIONS)

# Running totals for Prometheus (each worker exports its share; sum() them).
STREAM = {f: Counter(f"herald_stream_{f}_total", f"Events counted as {f}, by dimension", LABELS)
          for f in METRIC_FIELDS if not f.startswith("latency_")}
LATENCY = Histogram("herald_stream_delivery_latency_seconds", "Request to delivery report",
                    LABELS[:4], buckets=(1, 5, 30, 60, 300))
EVENT_LAG = Histogram("herald_metrics_event_lag_seconds",
                      "From an event's production to its counting in the window totals",
                      buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
PUBLISH_LAG = Histogram("herald_metrics_publish_lag_seconds",
                        "From a window's end to its publication", ["granularity"],
                        buckets=(1, 2, 5, 10, 30, 60, 120, 300, 900, 3600))
LAST_WINDOW = Gauge("herald_metrics_last_published_window_end_seconds",
                    "End of the latest window published", ["granularity"])
PRUNE_EVERY_S = 600.0


class Metrics:
    def __init__(self, p: Processor) -> None:
        assert p.db is not None
        self.p, self.db, self.settings = p, p.db, p.settings
        self.counter = domain.Counter(domain.Regions.from_file(p.settings.metrics_regions_file))
        self._last_prune = 0.0

    def handler(self, topic: str):
        def handle(items: list[In]) -> list[Out]:
            with self.db.session() as s:
                incs = [inc for i in items for inc in self.counter.count(s, topic, i.event)]
                new = domain.fresh(s, incs)
                domain.apply(s, new)
                # The console's inbox: one batch write with the counts (services/core/inbound_log.py).
                inbound_log.record(s, topic, [i.event for i in items],
                                   owner=lambda number: self.counter._owner(s, number))
            self._export(new)  # committed: now the running totals may move
            return []
        return handle

    @staticmethod
    def _export(incs: list[domain.Increment]) -> None:
        now = datetime.now(UTC)
        for inc in incs:
            labels = [getattr(inc.dims, d) for d in domain.DIMENSIONS]
            for k, v in inc.deltas.items():
                if k in STREAM:
                    STREAM[k].labels(*labels).inc(v)
            if inc.deltas.get("latency_count"):
                LATENCY.labels(*labels[:4]).observe(inc.deltas["latency_sum_ms"] / 1000)
            if inc.lag_from is not None:
                EVENT_LAG.observe(max(0.0, (now - inc.lag_from).total_seconds()))

    def _due(self) -> list[tuple[int, int, str, str, dict, datetime]]:
        now = datetime.now(UTC)
        with self.db.session() as s:
            rows = domain.due(s, now, self.settings.metrics_grace_s)
            out = []
            for w in rows:
                topic, key, event = domain.window_event(w, now)
                out.append((w.id, w.revision, topic, key, event, domain._aware(w.window_end)))
            if time.monotonic() - self._last_prune > PRUNE_EVERY_S:
                self._last_prune = time.monotonic()
                domain.prune(s, now)
            return out

    def _mark(self, published: list[tuple[int, int]]) -> None:
        with self.db.session() as s:
            domain.mark_published(s, published)

    def _attribute(self) -> list[domain.Increment]:
        with self.db.session() as s:
            return domain.attribute_pending(s)

    async def attribute(self) -> None:
        # Prometheus counters cannot move between labels (they only go up), so they keep a raced
        # status under the attribution known when it was counted; totals stay right, and the
        # exact per-campaign figures are the metrics topics'.
        await asyncio.to_thread(self._attribute)

    async def publish(self) -> int:
        """Send the windows that are due, wait for the broker, then mark them published. A crash
        in between publishes them again with the same event ids (consumers dedupe)."""
        due = await asyncio.to_thread(self._due)
        if not due:
            return 0
        await self.p.send([Out(topic, key, event) for _, _, topic, key, event, _ in due])
        await asyncio.to_thread(self._mark, [(i, rev) for i, rev, *_ in due])
        now = datetime.now(UTC)
        for _, _, _, _, event, end in due:
            PUBLISH_LAG.labels(event["granularity"]).observe(max(0.0, (now - end).total_seconds()))
            LAST_WINDOW.labels(event["granularity"]).set(end.timestamp())
        return len(due)


def build(settings: Settings | None = None) -> Processor:
    p = Processor("metrics", settings=settings)
    m = Metrics(p)
    for topic in SOURCES + INBOX_SOURCES:
        p.consume(topic, m.handler(topic))

    async def publish_windows() -> None:
        # A loop, not a timer: a publish that outlasts the interval under load delays the next
        # one instead of overlapping it. A failure (database or broker away) is logged by
        # ``every`` and the next run tries again.
        await m.attribute()
        while await m.publish() >= 500:  # a backlog: keep going
            pass

    p.every(p.settings.metrics_flush_s, publish_windows, name="metrics.publish_windows")

    return p
