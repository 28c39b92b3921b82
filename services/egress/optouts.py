"""Every egress worker's own view of the compacted ``optouts`` topic.

Each worker reads the topic whole (assigned every partition from the beginning, no consumer
group, no commits), so whichever worker gets a recipient's partition of sms.outbound knows that
recipient's opt-outs. ``start()`` returns only once the records that existed at start time are
applied: a worker never sends before it knows who said STOP. The database's opt_outs table
(written by the router) is consulted too, so a STOP the database has but the topic view has not
read yet still counts; of the two, the newer state wins.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime
from typing import NamedTuple

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.db import Database
from services.core.db.models import OptOut
from services.core.messages import parse_ts
from services.core.schemas import EventInvalid, decode
from services.core.settings import Settings
from services.core.topics import OPTOUTS
from services.core.utc import aware

log = logging.getLogger(__name__)


class OptOutState(NamedTuple):
    opted_out: bool
    changed_at: datetime


def state_blocks(state: OptOutState | None, accepted_at: datetime) -> bool:
    """An opt-out blocks a message accepted at or after it (a STOP does not recall earlier sends)."""
    return state is not None and state.opted_out and state.changed_at <= aware(accepted_at)


def newer(mem: OptOutState | None, db: OptOutState | None) -> OptOutState | None:
    """The later of the topic view's and the database's state (the view's on a tie)."""
    if mem is None or (db is not None and db.changed_at > mem.changed_at):
        return db
    return mem


def db_state(s: Session, tenant_id: str, msisdn: str) -> OptOutState | None:
    row = s.get(OptOut, (tenant_id, msisdn))
    return None if row is None else OptOutState(row.opted_out, aware(row.updated_at))


class OptOutView:
    """tenant:msisdn -> the latest opt-out state, kept current by a background consumer thread."""

    def __init__(self, settings: Settings, db: Database | None = None, poll_s: float = 0.2) -> None:
        self.settings = settings
        self.db = db
        self.topic = settings.topic(OPTOUTS)
        self.poll_s = poll_s
        self._states: dict[str, OptOutState] = {}
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.applied = 0

    # -- reading ------------------------------------------------------------------------------
    def state(self, tenant_id: str, msisdn: str, s: Session | None = None) -> OptOutState | None:
        """The newer of the topic view's and the database's state for the number."""
        mem = self._states.get(f"{tenant_id}:{msisdn}")
        db = None
        if s is not None:
            db = db_state(s, tenant_id, msisdn)
        elif self.db is not None:
            with self.db.session() as own:
                db = db_state(own, tenant_id, msisdn)
        return newer(mem, db)

    def is_opted_out(self, tenant_id: str, msisdn: str, accepted_at: datetime,
                     s: Session | None = None) -> bool:
        return state_blocks(self.state(tenant_id, msisdn, s), accepted_at)

    def blocked_many(self, s: Session, items: list[tuple[str, str, datetime]]) -> list[bool]:
        """``is_opted_out`` for many (tenant, msisdn, accepted_at) at once: one database query
        per tenant in the batch instead of one per message."""
        by_tenant: dict[str, set[str]] = {}
        for tenant_id, msisdn, _at in items:
            by_tenant.setdefault(tenant_id, set()).add(msisdn)
        db: dict[tuple[str, str], OptOutState] = {}
        for tenant_id, numbers in by_tenant.items():
            rows = s.execute(select(OptOut.msisdn, OptOut.opted_out, OptOut.updated_at).where(
                OptOut.tenant_id == tenant_id, OptOut.msisdn.in_(sorted(numbers))))
            for msisdn, opted_out, updated_at in rows:
                db[(tenant_id, msisdn)] = OptOutState(opted_out, aware(updated_at))
        out = []
        for tenant_id, msisdn, accepted_at in items:
            mem = self._states.get(f"{tenant_id}:{msisdn}")
            out.append(state_blocks(newer(mem, db.get((tenant_id, msisdn))), accepted_at))
        return out

    def __len__(self) -> int:
        return len(self._states)

    # -- applying records -------------------------------------------------------------------
    def apply(self, key: bytes | str | None, value: bytes | None) -> None:
        """One record of the topic: a state, or a tombstone (value None) that forgets the key."""
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        if value is None:
            if key is not None:
                self._states.pop(key, None)
            return
        try:
            ev = decode(OPTOUTS, value)
        except EventInvalid as exc:
            # The topic has no DLQ (it is a state table); a bad record is skipped, loudly.
            log.error("optouts: skipping invalid record with key %r: %s", key, exc.reason)
            return
        # The event, not the key, says whose state it is; the key is only the compaction key.
        k = f"{ev['tenant_id']}:{ev['msisdn']}"
        new = OptOutState(bool(ev["opted_out"]), aware(parse_ts(ev["changed_at"])))
        old = self._states.get(k)
        if old is None or new.changed_at >= old.changed_at:
            self._states[k] = new
        self.applied += 1

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        """Start reading; return once every record present now has been applied.

        Raises RuntimeError when the topic cannot be read (missing, broker down) within
        ``timeout``: egress must not send without knowing the opt-outs."""
        if self._thread is not None:
            self._caught_up.wait(timeout)
            return
        self._thread = threading.Thread(target=self._run, args=(timeout,), name="optouts-view",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._caught_up.wait(0.1):
            if self._error is not None:
                raise RuntimeError(f"optouts view of {self.topic} failed: {self._error}") from self._error
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"optouts view of {self.topic} not caught up within {timeout:.0f}s")
        log.info("optouts view caught up: %d numbers from %s", len(self._states), self.topic)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _run(self, timeout: float) -> None:
        consumer = None
        try:
            # group.id is required by librdkafka, but with assign() and no commits the group is
            # never joined: every worker reads every partition.
            consumer = Consumer({
                **self.settings.kafka_config(),
                "group.id": f"herald-egress-optouts-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
            })
            parts = self._partitions(consumer, timeout)
            # Where "caught up" is: the end of each partition as of now.
            remaining: dict[int, int] = {}
            for p in parts:
                low, high = self._watermarks(consumer, p, timeout)
                if high > low:
                    remaining[p] = high
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in parts])
            if not remaining:
                self._caught_up.set()
            last_refresh = time.monotonic()
            while not self._stop.is_set():
                msg = consumer.poll(self.poll_s)
                if msg is None:
                    if remaining:
                        self._check_positions(consumer, remaining)
                    if time.monotonic() - last_refresh > 30:
                        last_refresh = time.monotonic()
                        parts = self._grow(consumer, parts)
                    continue
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        log.warning("optouts view: %s", msg.error())
                    continue
                self.apply(msg.key(), msg.value())
                p = msg.partition()
                if p in remaining and msg.offset() + 1 >= remaining[p]:
                    del remaining[p]
                    if not remaining:
                        self._caught_up.set()
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            log.exception("optouts view stopped")
        finally:
            if consumer is not None:
                consumer.close()

    def _check_positions(self, consumer: Consumer, remaining: dict[int, int]) -> None:
        # Compaction leaves gaps: the last offset before the end may never arrive as a record.
        for tp in consumer.position([TopicPartition(self.topic, p) for p in list(remaining)]):
            if tp.offset >= 0 and tp.offset >= remaining[tp.partition]:
                del remaining[tp.partition]
        if not remaining:
            self._caught_up.set()

    def _partitions(self, consumer: Consumer, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        while True:
            md = consumer.list_topics(self.topic, timeout=max(1.0, deadline - time.monotonic()))
            t = md.topics.get(self.topic)
            if t is not None and t.error is None and t.partitions:
                return sorted(t.partitions)
            if time.monotonic() > deadline or self._stop.is_set():
                raise RuntimeError(f"topic {self.topic} not found (run `make topics`)")
            time.sleep(0.5)

    def _watermarks(self, consumer: Consumer, partition: int, timeout: float) -> tuple[int, int]:
        # A topic created a moment ago may have no leader yet: that passes, so try again.
        deadline = time.monotonic() + timeout
        while True:
            try:
                return consumer.get_watermark_offsets(TopicPartition(self.topic, partition),
                                                      timeout=max(1.0, deadline - time.monotonic()))
            except KafkaException as exc:
                if time.monotonic() > deadline or self._stop.is_set():
                    raise
                log.info("optouts view: end offsets of partition %d not yet known: %s", partition, exc)
                time.sleep(0.5)

    def _grow(self, consumer: Consumer, parts: list[int]) -> list[int]:
        """Read partitions added to the topic since start."""
        try:
            t = consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
        except Exception:  # noqa: BLE001 - tried again at the next refresh
            return parts
        new = sorted(set(t.partitions) - set(parts)) if t is not None and t.partitions else []
        if new:
            consumer.incremental_assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in new])
            log.info("optouts view: reading new partitions %s", new)
        return parts + new
