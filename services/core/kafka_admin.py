"""What an operator asks of the pipeline: every processor's /health (fetched concurrently, with a
short timeout) and each consumer group's lag per topic and partition, read through the Kafka
admin API (committed offsets of ``<prefix>herald-<processor>`` against the topics' high
watermarks). The console's pipeline page and scripts use it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx

from .settings import Settings

# The processes with a /health port in the settings, in the order a message meets them.
PROCESSES = ("ingress", "router", "egress", "campaigns", "verifier", "ledger", "bridge", "metrics",
             "console")
# The Faust processors, whose consumer group is <prefix>herald-<name>, and the catalogue topics
# their agents consume (Processor.consume in each services/<name>/app.py): every partition of
# these is shown, committed or not; topics a group committed on besides (a pattern consumer's,
# or metrics' list) are added from its offsets.
SOURCES = {
    "router": ("sms.inbound",),
    "egress": ("sms.outbound", "sms.delivery"),
    "campaigns": ("campaigns.inbound",),
    "verifier": ("codes.submitted",),
    "ledger": ("points.awarded", "points.commands"),
    "bridge": ("sms.status",),
    "metrics": (),
}
PROCESSORS = tuple(SOURCES)


@dataclass
class Health:
    name: str
    url: str
    status: str  # ok | degraded | down | unreachable
    detail: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class PartitionLag:
    topic: str  # catalogue name (no prefix)
    partition: int
    committed: int | None  # None: the group has committed nothing here yet
    high: int
    low: int = 0  # the earliest offset still on the broker

    @property
    def lag(self) -> int:
        start = self.committed if self.committed is not None else self.low
        return max(0, self.high - start)


@dataclass
class GroupLag:
    group: str
    processor: str
    state: str  # the group's state (Stable, Empty, Dead, ...) or "unknown"
    members: int
    partitions: list[PartitionLag] = field(default_factory=list)
    error: str = ""

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)


def health_urls(settings: Settings, host: str | None = None) -> dict[str, str]:
    h = host or ("127.0.0.1" if settings.web_host in ("0.0.0.0", "") else settings.web_host)
    return {name: f"http://{h}:{getattr(settings, f'{name}_port')}/health" for name in PROCESSES}


async def healths(settings: Settings, timeout: float = 1.5,
                  urls: dict[str, str] | None = None) -> list[Health]:
    """Every process's /health at once; one that does not answer within ``timeout`` is
    ``unreachable`` (stopped, or another host)."""
    urls = urls or health_urls(settings)

    async def one(client: httpx.AsyncClient, name: str, url: str) -> Health:
        try:
            r = await client.get(url)
        except httpx.HTTPError as exc:
            return Health(name, url, "unreachable", error=type(exc).__name__)
        try:
            body = r.json()
        except ValueError:
            body = {}
        status = body.get("status") if isinstance(body, dict) else None
        if r.status_code == 200:
            return Health(name, url, status or "ok", body if isinstance(body, dict) else {})
        return Health(name, url, status if status in ("degraded", "down") else "down",
                      body if isinstance(body, dict) else {}, error=f"HTTP {r.status_code}")

    async with httpx.AsyncClient(timeout=timeout) as client:
        return list(await asyncio.gather(*(one(client, n, u) for n, u in urls.items())))


def group_name(settings: Settings, processor: str) -> str:
    return f"{settings.topic_prefix}herald-{processor}"


def lag(settings: Settings, processors: tuple[str, ...] = PROCESSORS, timeout: float = 5.0,
        admin: Any = None) -> list[GroupLag]:
    """Each processor group's committed offsets against the high watermarks of every partition
    of its source topics (and of any other topic it committed on). A partition it has not
    committed on yet counts from the earliest record still there."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = admin or AdminClient(settings.kafka_config())
    groups = [group_name(settings, p) for p in processors]
    out = {g: GroupLag(g, p, "unknown", 0) for g, p in zip(groups, processors, strict=True)}
    try:
        described = admin.describe_consumer_groups(groups, request_timeout=timeout)
        for g, fut in described.items():
            try:
                d = fut.result()
                out[g].state = str(getattr(d.state, "name", d.state)).title()
                out[g].members = len(d.members)
            except Exception as exc:  # noqa: BLE001 - shown per group
                out[g].error = str(exc)
    except Exception as exc:  # noqa: BLE001
        for g in out.values():
            g.error = str(exc)
    committed: dict[str, list[Any]] = {}
    for g in groups:
        try:
            futs = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)],
                                                     request_timeout=timeout)
            res = futs[g].result()
            committed[g] = [tp for tp in res.topic_partitions if tp.offset is not None and tp.offset >= 0]
        except Exception as exc:  # noqa: BLE001
            out[g].error = out[g].error or str(exc)
            committed[g] = []
    prefix = settings.topic_prefix
    topics_of = {g: {tp.topic for tp in committed[g]} | {settings.topic(n) for n in SOURCES.get(p, ())}
                 for g, p in zip(groups, processors, strict=True)}
    names = sorted({n for ns in topics_of.values() for n in ns})
    md = admin.list_topics(timeout=timeout).topics if names else {}
    parts = {n: sorted(md[n].partitions) for n in names if n in md}
    wanted = [TopicPartition(n, p) for n, ps in parts.items() for p in ps]
    highs: dict[tuple[str, int], int] = {}
    lows: dict[tuple[str, int], int] = {}
    for spec, into in ((OffsetSpec.latest, highs), (OffsetSpec.earliest, lows)):
        if not wanted:
            break
        for tp, fut in admin.list_offsets({tp: spec() for tp in wanted}, request_timeout=timeout).items():
            try:
                into[(tp.topic, tp.partition)] = fut.result().offset
            except Exception:  # noqa: BLE001 - a partition without a leader just now: left out
                continue
    for g in groups:
        done = {(tp.topic, tp.partition): tp.offset for tp in committed[g]}
        for name in sorted(topics_of[g]):
            for p in parts.get(name, []):
                high = highs.get((name, p))
                if high is None:
                    continue
                # Not committed yet: the group starts from the earliest record still there.
                start = done.get((name, p))
                short = name[len(prefix):] if prefix and name.startswith(prefix) else name
                out[g].partitions.append(PartitionLag(short, p, start, high,
                                                      lows.get((name, p), 0)))
    return list(out.values())
