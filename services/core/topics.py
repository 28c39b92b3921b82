"""The topic catalogue: every topic Herald uses, declared once, created idempotently.

``python -m services.core.topics`` (``make topics``) applies it to the broker in the settings:
it creates what is missing, grows partitions, names every topic whose replication or config
differs from the catalogue (drift) and sets the configs back; nothing is deleted. Replication
and ``min.insync.replicas`` come from the settings (``HERALD_TOPIC_REPLICATION``,
``HERALD_TOPIC_MIN_ISR``): 1 and 1 on one broker, 3 and 2 on a cluster.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field

from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from .settings import Settings, get_settings

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str  # what the record key is; all events of one key land on one partition
    description: str
    retention_ms: int = 7 * DAY_MS
    compacted: bool = False
    partitions: int | None = None  # None: the configured default
    dlq: bool = True
    configs: dict[str, str] = field(default_factory=dict)

    def broker_configs(self, settings: Settings | None = None) -> dict[str, str]:
        cfg = {"retention.ms": str(self.retention_ms)}
        if self.compacted:
            cfg = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
        if settings is not None:
            cfg["min.insync.replicas"] = str(settings.topic_min_isr)
        cfg.update(self.configs)
        return cfg


SMS_INBOUND = "sms.inbound"
SMS_OUTBOUND = "sms.outbound"
SMS_DELIVERY = "sms.delivery"
SMS_STATUS = "sms.status"
CODES_SUBMITTED = "codes.submitted"
POINTS_AWARDED = "points.awarded"
POINTS_COMMANDS = "points.commands"
CAMPAIGNS_INBOUND = "campaigns.inbound"
OPTOUTS = "optouts"
METRICS_MINUTE = "metrics.minute"
METRICS_HOUR = "metrics.hour"

CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec(SMS_INBOUND, "sender number", "Mobile-originated texts from carriers (MO)"),
    TopicSpec(SMS_OUTBOUND, "recipient number", "Send requests from ERPs, API, campaigns, replies"),
    TopicSpec(SMS_DELIVERY, "carrier message id", "Delivery reports from carriers (DLR)"),
    TopicSpec(SMS_STATUS, "platform message id", "Every status transition of an outbound message"),
    TopicSpec(CODES_SUBMITTED, "the code", "Anti-counterfeit code queries, ordered per code"),
    TopicSpec(POINTS_AWARDED, "member number", "Loyalty points earned by valid code queries"),
    TopicSpec(POINTS_COMMANDS, "member number", "Member commands to the ledger (balance, gifts)"),
    TopicSpec(CAMPAIGNS_INBOUND, "sender number", "Inbound texts the router hands to campaigns"),
    TopicSpec(OPTOUTS, "tenant:number", "Current opt-out state per tenant and number", compacted=True,
              dlq=False),
    TopicSpec(METRICS_MINUTE, "window dimensions", "Per-minute tumbling-window metrics for analysts",
              retention_ms=30 * DAY_MS, dlq=False),
    TopicSpec(METRICS_HOUR, "window dimensions", "Per-hour tumbling-window metrics for analysts",
              retention_ms=400 * DAY_MS, dlq=False),
)

BY_NAME = {t.name: t for t in CATALOGUE}


def dlq_name(topic: str) -> str:
    return f"{topic}.dlq"


def tenant_topics(tenant_id: str) -> tuple[TopicSpec, ...]:
    """The per-tenant topics of an ERP: it publishes send requests to ``outbound``, reads inbound
    texts, the status of its messages, and its rejected requests (``dlq``, with the reason).

    They have no ``.dlq`` twins: whatever the platform cannot take from a tenant topic goes to
    that tenant's own ``tenant.<id>.dlq``, the one DLQ its ERP is allowed to read.
    """
    return (
        TopicSpec(f"tenant.{tenant_id}.outbound", "recipient number",
                  f"Send requests from {tenant_id}'s ERP", dlq=False),
        TopicSpec(f"tenant.{tenant_id}.inbound", "sender number", f"Inbound texts for {tenant_id}'s ERP",
                  dlq=False),
        TopicSpec(f"tenant.{tenant_id}.status", "platform message id", f"Status for {tenant_id}'s ERP",
                  dlq=False),
        TopicSpec(tenant_dlq(tenant_id), "original key",
                  f"{tenant_id}'s requests the platform rejected, with the reason",
                  retention_ms=30 * DAY_MS, partitions=1, dlq=False),
    )


def tenant_dlq(tenant_id: str) -> str:
    return f"tenant.{tenant_id}.dlq"


def all_specs(extra: tuple[TopicSpec, ...] = ()) -> list[TopicSpec]:
    specs: list[TopicSpec] = []
    for spec in (*CATALOGUE, *extra):
        specs.append(spec)
        if spec.dlq:
            specs.append(TopicSpec(dlq_name(spec.name), "original key", f"Rejected {spec.name} events",
                                   retention_ms=30 * DAY_MS, partitions=1, dlq=False))
    return specs


def ensure_topics(settings: Settings | None = None, extra: tuple[TopicSpec, ...] = (),
                  timeout: float = 30.0) -> list[str]:
    """Create every catalogue topic that is missing, and grow partitions that are too few.

    Idempotent: topics that exist are left as they are. Returns the names it created.
    """
    settings = settings or get_settings()
    admin = AdminClient(settings.kafka_config())
    existing = admin.list_topics(timeout=timeout).topics
    new: list[NewTopic] = []
    grow: list[NewPartitions] = []
    for spec in all_specs(extra):
        name = settings.topic(spec.name)
        parts = spec.partitions or settings.topic_partitions
        if name not in existing:
            new.append(NewTopic(name, num_partitions=parts,
                                replication_factor=settings.topic_replication,
                                config=spec.broker_configs(settings)))
        elif len(existing[name].partitions) < parts:
            grow.append(NewPartitions(name, parts))
    created = []
    for name, fut in (admin.create_topics(new, operation_timeout=timeout).items() if new else []):
        try:
            fut.result()
            created.append(name)
        except Exception as exc:  # a concurrent creator is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    for _name, fut in (admin.create_partitions(grow).items() if grow else []):
        fut.result()
    wanted = {settings.topic(spec.name): spec.partitions or settings.topic_partitions
              for spec in all_specs(extra)}
    wait_for_topics(settings.kafka_config(), wanted, timeout, admin=admin)
    return created


@dataclass(frozen=True)
class Drift:
    """One way a topic on the broker differs from the catalogue."""

    topic: str
    what: str  # "replication" or a config name
    want: str
    have: str
    fixed: bool = False

    def __str__(self) -> str:
        state = "fixed" if self.fixed else "NOT fixed"
        hint = ("; raising replication moves data: reassign its partitions with Kafka's "
                "kafka-reassign-partitions tool") if self.what == "replication" and not self.fixed else ""
        return f"{self.topic}: {self.what} is {self.have}, catalogue says {self.want} ({state}{hint})"


def find_drift(settings: Settings | None = None, extra: tuple[TopicSpec, ...] = (),
               admin: AdminClient | None = None, timeout: float = 30.0) -> list[Drift]:
    """Every existing catalogue topic whose replication factor or broker configs differ from the
    catalogue under these settings (topics that do not exist are not drift: ensure_topics makes
    them)."""
    settings = settings or get_settings()
    admin = admin or AdminClient(settings.kafka_config())
    topics = admin.list_topics(timeout=timeout).topics
    specs = {settings.topic(spec.name): spec for spec in all_specs(extra)}
    present = {name: spec for name, spec in specs.items() if name in topics}
    drift: list[Drift] = []
    for name in sorted(present):
        replicas = {len(p.replicas) for p in topics[name].partitions.values()}
        if replicas and replicas != {settings.topic_replication}:
            drift.append(Drift(name, "replication", str(settings.topic_replication),
                               "/".join(str(r) for r in sorted(replicas))))
    if not present:
        return drift
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in sorted(present)]
    for res, fut in admin.describe_configs(resources, request_timeout=timeout).items():
        have = {k: v.value for k, v in fut.result().items()}
        for key, want in present[res.name].broker_configs(settings).items():
            if have.get(key) != want:
                drift.append(Drift(res.name, key, want, str(have.get(key))))
    return drift


def fix_drift(drift: list[Drift], settings: Settings | None = None,
              admin: AdminClient | None = None, timeout: float = 30.0) -> list[Drift]:
    """Set drifted configs back to the catalogue's values (incrementally: other configs on the
    topic stay). Replication is reported, not changed: raising it copies every partition to new
    brokers, a reassignment an operator starts deliberately; until then the topic's
    min.insync.replicas is left too. Returns the drift, ``fixed`` set."""
    settings = settings or get_settings()
    admin = admin or AdminClient(settings.kafka_config())
    short = {d.topic for d in drift if d.what == "replication"}
    by_topic: dict[str, list[Drift]] = {}
    for d in drift:
        # A min.insync.replicas above a topic's replication would refuse every write to it.
        if d.what == "replication" or (d.what == "min.insync.replicas" and d.topic in short):
            continue
        by_topic.setdefault(d.topic, []).append(d)
    fixed: set[tuple[str, str]] = set()
    if by_topic:
        resources = [ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
            ConfigEntry(d.what, d.want, incremental_operation=AlterConfigOpType.SET) for d in ds])
            for topic, ds in by_topic.items()]
        for res, fut in admin.incremental_alter_configs(resources, request_timeout=timeout).items():
            fut.result()
            fixed.update((res.name, d.what) for d in by_topic[res.name])
    return [Drift(d.topic, d.what, d.want, d.have, (d.topic, d.what) in fixed) for d in drift]


def wait_for_topics(kafka: str | dict, wanted: dict[str, int] | list[str], timeout: float = 30.0,
                    admin: AdminClient | None = None) -> None:
    """Return once the broker's metadata shows each topic (with at least the given number of
    partitions, each with a leader); raise TimeoutError naming the missing ones.

    A topic the controller has just created can still be unknown to the broker's metadata for
    a moment; a consumer group that forms in that moment is assigned nothing and would sit idle
    until its next metadata refresh. Creating topics and starting processors both wait here.
    """
    config = {"bootstrap.servers": kafka} if isinstance(kafka, str) else kafka
    bootstrap = config["bootstrap.servers"]
    need = dict(wanted) if isinstance(wanted, dict) else {name: 1 for name in wanted}
    admin = admin or AdminClient(config)
    deadline = time.monotonic() + timeout
    missing = sorted(need)
    while True:
        try:
            topics = admin.list_topics(timeout=max(1.0, min(5.0, deadline - time.monotonic()))).topics
        except Exception:  # noqa: BLE001 - the broker may still be starting; try again
            topics = {}
        missing = sorted(
            name for name, parts in need.items()
            if name not in topics or topics[name].error is not None
            or len(topics[name].partitions) < parts
            or any(p.leader < 0 for p in topics[name].partitions.values()))
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topics not visible on {bootstrap} after {timeout:.0f}s: "
                               f"{', '.join(missing[:10])}")
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    """Create what is missing, grow partitions, name drift and set configs back. Exit 1 when
    drift remains that only an operator can fix (replication), or with ``--check`` when there is
    any drift at all (nothing is changed then)."""
    ap = argparse.ArgumentParser(prog="python -m services.core.topics", description=main.__doc__)
    ap.add_argument("--check", action="store_true", help="report drift only; change nothing")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    s = get_settings()
    admin = AdminClient(s.kafka_config())
    made: list[str] = []
    if args.check:
        drift = find_drift(s, admin=admin)
    else:
        made = ensure_topics(s)
        drift = fix_drift(find_drift(s, admin=admin), s, admin=admin)
    for d in drift:
        print(f"drift: {d}")
    print(f"topics: {len(all_specs())} in catalogue, {len(made)} created, {len(drift)} drifted "
          f"(replication {s.topic_replication}, min.insync.replicas {s.topic_min_isr}) "
          f"on {s.kafka_bootstrap}")
    return 1 if any(not d.fixed for d in drift) else 0


if __name__ == "__main__":
    sys.exit(main())
