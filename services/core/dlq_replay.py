"""Dead letters: list the records of any ``<topic>.dlq`` (or a tenant's ``tenant.<id>.dlq``),
show one, and replay chosen ones. ``herald dlq list|show|replay`` and the console's DLQ page
(operator area) both call this module.

Replay never duplicates an effect:

* each DLQ position (topic, partition, offset) is replayed at most once (``dlq_replays``, a
  unique row taken before anything is sent; a second replay answers ``already_replayed``);
* a dead-lettered ``sms.outbound`` event whose message is ``failed`` has its message reset to
  ``accepted`` in a new try (``services.core.messages.reset_for_replay``: attempt-numbered
  history ids and status event ids, so the history keeps both tries), then the original event
  goes back to ``sms.outbound``; a message still ``accepted`` is resent as it is; one that was
  sent, delivered, suppressed or expired since is not sent again (``skipped``). Egress sends a
  message only while it is ``accepted``, so a replayed event that arrives twice sends once;
* any other event goes back, byte for byte, to the topic it was read from, where its consumer
  recognises a repeat by its event id, as it does any redelivery;
* bytes that are not a valid event of their topic are not replayed (``invalid``): they would
  only come back to the DLQ. Fix the producer and send again instead.

Every replay is written to the audit log (platform-wide; the tenant is in the entry).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .db import Database
from .db.models import DlqReplay, Message
from .messages import reset_for_replay
from .schemas import EventInvalid, decode, schema_for_topic
from .settings import Settings
from .topics import SMS_OUTBOUND

Send = Callable[[str, bytes | None, bytes], None]  # (broker topic, key, value), raises on failure

PAGE = 50
POLL_TIMEOUT_S = 5.0


@dataclass
class DlqTopic:
    """A DLQ topic on the broker and how many records it holds (high minus low watermark)."""

    name: str  # broker-side name
    catalogue: str  # without the prefix
    count: int
    partitions: int


@dataclass
class DeadLetter:
    """One record of a DLQ topic: where it is, and the envelope's fields (schemas/dlq/v1.json)."""

    dlq_topic: str  # broker-side name
    partition: int
    offset: int
    original_topic: str = ""
    source_partition: int | None = None
    source_offset: int | None = None
    key: str | None = None
    value: bytes = b""
    reason: str = ""
    error_type: str = ""
    processor: str = ""
    failed_at: str = ""
    tenant_id: str | None = None
    event_id: str = ""
    problem: str | None = None  # the DLQ record itself could not be read as an envelope
    replay: dict[str, Any] | None = None  # when it was replayed: outcome, actor, at

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def failed_time(self) -> datetime | None:
        try:
            return datetime.fromisoformat(self.failed_at.replace("Z", "+00:00")) if self.failed_at else None
        except ValueError:
            return None

    @property
    def text(self) -> str | None:
        """The original bytes as text, or None when they are not UTF-8."""
        try:
            return self.value.decode("utf-8")
        except UnicodeDecodeError:
            return None

    @property
    def pretty(self) -> str | None:
        """The original bytes as indented JSON when they are JSON, else as text."""
        text = self.text
        if text is None:
            return None
        try:
            return json.dumps(json.loads(text), ensure_ascii=False, indent=2)
        except ValueError:
            return text

    @property
    def value_b64(self) -> str:
        return base64.b64encode(self.value).decode("ascii")

    @property
    def message_id(self) -> str | None:
        try:
            event = json.loads(self.value)
        except ValueError:
            return None
        mid = event.get("message_id") if isinstance(event, dict) else None
        return mid if isinstance(mid, str) else None

    def as_dict(self) -> dict[str, Any]:
        return {"dlq_topic": self.dlq_topic, "partition": self.partition, "offset": self.offset,
                "original_topic": self.original_topic, "source_partition": self.source_partition,
                "source_offset": self.source_offset, "key": self.key, "reason": self.reason,
                "error_type": self.error_type, "processor": self.processor,
                "failed_at": self.failed_at, "tenant_id": self.tenant_id,
                "message_id": self.message_id, "value": self.text, "value_b64": self.value_b64,
                "problem": self.problem, "replay": self.replay}


@dataclass
class Outcome:
    """What replaying one record did."""

    ref: str
    # resent | reset_and_resent | reinjected | skipped | already_replayed | invalid | failed
    outcome: str
    detail: str = ""
    message_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("resent", "reset_and_resent", "reinjected")

    def as_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "outcome": self.outcome, "detail": self.detail,
                "message_id": self.message_id}


@dataclass
class Page:
    letters: list[DeadLetter] = field(default_factory=list)
    older: int | None = None  # the ``before`` of the next (older) page, on a one-partition topic


# -- names ---------------------------------------------------------------------------------------

def is_dlq(name: str) -> bool:
    return name.endswith(".dlq")


def broker_name(settings: Settings, topic: str) -> str:
    """``sms.outbound.dlq`` or its broker-side name -> the broker-side name."""
    prefix = settings.topic_prefix
    return topic if prefix and topic.startswith(prefix) else settings.topic(topic)


def catalogue_name(settings: Settings, broker_topic: str) -> str:
    prefix = settings.topic_prefix
    return broker_topic[len(prefix):] if prefix and broker_topic.startswith(prefix) else broker_topic


# -- reading -------------------------------------------------------------------------------------

def parse(dlq_topic: str, partition: int, offset: int, raw: bytes | None) -> DeadLetter:
    """A DLQ record's bytes -> a DeadLetter (``problem`` says why when they are not an envelope)."""
    letter = DeadLetter(dlq_topic, partition, offset)
    try:
        env = json.loads(raw or b"")
        if not isinstance(env, dict):
            raise ValueError("not a JSON object")
        letter.value = base64.b64decode(env.get("value_b64") or "", validate=True)
    except (ValueError, TypeError) as exc:
        letter.problem = f"not a DLQ envelope: {exc}"
        letter.value = raw or b""
        return letter
    letter.original_topic = str(env.get("original_topic") or "")
    letter.source_partition = env.get("partition")
    letter.source_offset = env.get("offset")
    letter.key = env.get("key")
    letter.reason = str(env.get("reason") or "")
    letter.error_type = str(env.get("error_type") or "")
    letter.processor = str(env.get("processor") or "")
    letter.failed_at = str(env.get("failed_at") or "")
    letter.tenant_id = env.get("tenant_id")
    letter.event_id = str(env.get("event_id") or "")
    return letter


def _consumer(settings: Settings):
    from confluent_kafka import Consumer

    return Consumer({**settings.kafka_config(), "group.id": "herald-dlq-reader",
                     "enable.auto.commit": False, "enable.partition.eof": True,
                     "auto.offset.reset": "earliest"})


def topics(settings: Settings, timeout: float = POLL_TIMEOUT_S) -> list[DlqTopic]:
    """Every DLQ topic under this installation's prefix, with its record count."""
    from confluent_kafka import TopicPartition

    c = _consumer(settings)
    try:
        md = c.list_topics(timeout=timeout).topics
        out = []
        for name in sorted(md):
            if not (is_dlq(name) and name.startswith(settings.topic_prefix)):
                continue
            count = 0
            for p in md[name].partitions:
                low, high = c.get_watermark_offsets(TopicPartition(name, p), timeout=timeout)
                count += max(0, high - low)
            out.append(DlqTopic(name, catalogue_name(settings, name), count, len(md[name].partitions)))
        return out
    finally:
        c.close()


def _read_range(c: Any, topic: str, partition: int, start: int, end: int,
                timeout: float) -> list[DeadLetter]:
    from confluent_kafka import KafkaError, TopicPartition

    if end <= start:
        return []
    c.assign([TopicPartition(topic, partition, start)])
    out: list[DeadLetter] = []
    while True:
        msgs = c.consume(num_messages=min(500, end - start), timeout=timeout)
        if not msgs:
            break
        done = False
        for m in msgs:
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    done = True
                    continue
                raise RuntimeError(f"reading {topic}: {m.error()}")
            if m.offset() >= end:
                done = True
                continue
            out.append(parse(topic, m.partition(), m.offset(), m.value()))
            if m.offset() >= end - 1:
                done = True
        if done:
            break
    c.unassign()
    return out


def read(settings: Settings, topic: str, *, limit: int = PAGE, before: int | None = None,
         timeout: float = POLL_TIMEOUT_S) -> Page:
    """The newest ``limit`` records of a DLQ topic (per partition), newest first; ``before`` pages
    back through a one-partition topic (DLQ topics have one partition). Never reads more than the
    page from the broker."""
    from confluent_kafka import TopicPartition

    name = broker_name(settings, topic)
    c = _consumer(settings)
    try:
        md = c.list_topics(name, timeout=timeout).topics.get(name)
        if md is None or md.error is not None:
            raise LookupError(f"no topic {name}")
        page = Page()
        for p in sorted(md.partitions):
            low, high = c.get_watermark_offsets(TopicPartition(name, p), timeout=timeout)
            end = min(high, before) if before is not None else high
            start = max(low, end - limit)
            page.letters += _read_range(c, name, p, start, end, timeout)
            if len(md.partitions) == 1 and start > low:
                page.older = start
        page.letters.sort(key=lambda d: (d.failed_at, d.offset), reverse=True)
        return page
    finally:
        c.close()


def fetch(settings: Settings, topic: str, partition: int, offset: int,
          timeout: float = POLL_TIMEOUT_S) -> DeadLetter | None:
    """One record by its position, or None when the topic no longer holds it."""
    from confluent_kafka import TopicPartition

    name = broker_name(settings, topic)
    c = _consumer(settings)
    try:
        md = c.list_topics(name, timeout=timeout).topics.get(name)
        if md is None or md.error is not None or partition not in md.partitions:
            return None
        low, high = c.get_watermark_offsets(TopicPartition(name, partition), timeout=timeout)
        if not low <= offset < high:
            return None
        got = _read_range(c, name, partition, offset, offset + 1, timeout)
        return got[0] if got and got[0].offset == offset else None
    finally:
        c.close()


def with_replays(s: Session, letters: list[DeadLetter]) -> list[DeadLetter]:
    """Fill in ``replay`` of the records that were replayed (one query)."""
    if not letters:
        return letters
    topics_ = {d.dlq_topic for d in letters}
    offsets = {d.offset for d in letters}
    rows = s.scalars(select(DlqReplay).where(DlqReplay.dlq_topic.in_(topics_),
                                             DlqReplay.offset.in_(offsets)))
    done = {(r.dlq_topic, r.partition, r.offset): r for r in rows}
    for d in letters:
        r = done.get((d.dlq_topic, d.partition, d.offset))
        if r is not None:
            d.replay = {"outcome": r.outcome, "actor": r.actor, "at": r.replayed_at,
                        "message_id": r.message_id}
    return letters


# -- replaying -----------------------------------------------------------------------------------

def producer_send(settings: Settings) -> tuple[Send, Callable[[], None]]:
    """A send that waits for the broker's acknowledgement (acks=all, idempotent), and its close."""
    from confluent_kafka import KafkaException, Producer

    from .kafka import PRODUCER_GUARANTEES

    p = Producer({**settings.kafka_config(), "message.timeout.ms": 15000, **PRODUCER_GUARANTEES})

    def send(topic: str, key: bytes | None, value: bytes) -> None:
        errors: list[Any] = []
        p.produce(topic, value, key=key, on_delivery=lambda err, _msg: errors.append(err))
        p.flush(20)
        if not errors:
            raise KafkaException(f"no acknowledgement from the broker for {topic}")
        if errors[0] is not None:
            raise KafkaException(errors[0])

    return send, lambda: p.flush(5)


def _check(settings: Settings, letter: DeadLetter) -> str | None:
    """Why the record cannot be replayed, or None."""
    if letter.problem:
        return letter.problem
    if not letter.original_topic or is_dlq(letter.original_topic):
        return "the record names no topic to go back to"
    if not letter.original_topic.startswith(settings.topic_prefix):
        return f"{letter.original_topic} is not a topic of this installation"
    original = catalogue_name(settings, letter.original_topic)
    try:
        decode(schema_for_topic(original), letter.value)
    except EventInvalid as exc:
        return f"the original bytes are not a valid {original} event ({exc.reason}); " \
               f"they would only come back to the DLQ"
    return None


def _claim(db: Database, settings: Settings, letter: DeadLetter, actor: str) -> Outcome:
    """The database side of one replay, committed before anything is sent: the DLQ position
    taken, the message reset when it failed, the audit entry. Returns what is to be sent."""
    from services.console.domain import audit

    original = catalogue_name(settings, letter.original_topic)
    mid = letter.message_id if original == SMS_OUTBOUND else None
    now = datetime.now(UTC)
    with db.session() as s:
        row = DlqReplay(dlq_topic=letter.dlq_topic, partition=letter.partition, offset=letter.offset,
                        original_topic=letter.original_topic, tenant_id=letter.tenant_id,
                        message_id=mid, outcome="pending", actor=actor[:254], replayed_at=now)
        try:
            with s.begin_nested():
                s.add(row)
                s.flush()
        except IntegrityError:
            return Outcome(letter.ref, "already_replayed",
                           "this record was replayed before; it is not replayed twice", mid)
        before: dict[str, Any] | None = None
        if mid is None:
            outcome = Outcome(letter.ref, "reinjected", f"back to {letter.original_topic}")
        else:
            msg = s.get(Message, mid)
            if msg is None or msg.status == "accepted":
                outcome = Outcome(letter.ref, "resent", "sent to egress again", mid)
            elif msg.status == "failed":
                before = {"status": msg.status, "reason": msg.reason, "attempt": msg.attempt}
                reset_for_replay(s, msg, f"replayed from {letter.dlq_topic} by {actor}", now)
                outcome = Outcome(letter.ref, "reset_and_resent",
                                  f"reset to accepted (try {msg.attempt}) and sent to egress again", mid)
            else:
                outcome = Outcome(letter.ref, "skipped",
                                  f"the message is {msg.status} since; it is not sent again", mid)
        row.outcome = outcome.outcome
        audit.record(s, tenant_id=None, actor=actor, action="replay", object_type="dlq_record",
                     object_id=f"{letter.dlq_topic}:{letter.ref}", before=before,
                     after={"outcome": outcome.outcome, "tenant": letter.tenant_id,
                            "original_topic": letter.original_topic, "message_id": mid,
                            "reason": letter.reason[:300]})
    return outcome


def _release(db: Database, letter: DeadLetter, actor: str, error: str) -> None:
    """Sending failed after the claim: free the DLQ position so the replay can be tried again
    (a reset message stays 'accepted' in its new try; the next replay resends it)."""
    from services.console.domain import audit

    with db.session() as s:
        row = s.scalar(select(DlqReplay).where(DlqReplay.dlq_topic == letter.dlq_topic,
                                               DlqReplay.partition == letter.partition,
                                               DlqReplay.offset == letter.offset))
        if row is not None:
            s.delete(row)
        audit.record(s, tenant_id=None, actor=actor, action="replay_failed", object_type="dlq_record",
                     object_id=f"{letter.dlq_topic}:{letter.ref}", after={"error": error[:300]})


def replay(settings: Settings, db: Database, letters: list[DeadLetter], actor: str,
           send: Send | None = None) -> list[Outcome]:
    """Replay each record (see the module's doc); one Outcome per record, in order."""
    close: Callable[[], None] | None = None
    if send is None and letters:
        send, close = producer_send(settings)
    out: list[Outcome] = []
    try:
        for letter in letters:
            why = _check(settings, letter)
            if why is not None:
                out.append(Outcome(letter.ref, "invalid", why, letter.message_id))
                continue
            outcome = _claim(db, settings, letter, actor)
            if outcome.ok:
                assert send is not None
                try:
                    send(letter.original_topic,
                         letter.key.encode("utf-8") if letter.key is not None else None, letter.value)
                except Exception as exc:  # noqa: BLE001 - reported, and the replay can be retried
                    _release(db, letter, actor, str(exc))
                    outcome = Outcome(letter.ref, "failed", f"the broker did not take it: {exc}",
                                      outcome.message_id)
            out.append(outcome)
    finally:
        if close is not None:
            close()
    return out


def parse_ref(ref: str) -> tuple[int, int]:
    """``<partition>:<offset>`` (or a bare offset, partition 0) -> (partition, offset)."""
    part, _, off = ref.strip().rpartition(":")
    try:
        partition, offset = int(part or 0), int(off)
    except ValueError:
        raise ValueError(f"{ref!r} is not a record position (partition:offset)") from None
    if partition < 0 or offset < 0:
        raise ValueError(f"{ref!r} is not a record position (partition:offset)")
    return partition, offset
