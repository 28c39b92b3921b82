"""Doubles for the operator pages' Kafka side (the broker-backed path is in
tests/integration/test_dlq_replay.py and tests/browser/test_operator.py)."""

from __future__ import annotations

import base64
import json

from services.core import dlq_replay as dq
from services.core.dlq import dlq_record
from services.core.schemas import encode


def letter_of(event: dict, *, topic: str = "sms.outbound", offset: int = 0, reason: str = "boom",
              tenant: str | None = "acme") -> dq.DeadLetter:
    raw = encode(topic, event)
    rec = dlq_record(original_topic=topic, partition=1, offset=40 + offset, key=event.get("from", event.get("to")),
                     value=raw, reason=reason, error_type="processing_error", processor="egress",
                     tenant_id=tenant)
    return dq.parse(f"{topic}.dlq", 0, offset, json.dumps(rec).encode())


class FakeDlq:
    """One DLQ topic in memory, and what was sent back to the broker."""

    def __init__(self, monkeypatch, letters: list[dq.DeadLetter], topic: str = "sms.outbound.dlq"):
        self.topic, self.letters, self.sent = topic, letters, []
        monkeypatch.setattr(dq, "topics", lambda settings, timeout=0: [
            dq.DlqTopic(topic, topic, len(letters), 1), dq.DlqTopic("sms.inbound.dlq", "sms.inbound.dlq", 0, 1)])
        monkeypatch.setattr(dq, "read", self.read)
        monkeypatch.setattr(dq, "fetch", self.fetch)
        monkeypatch.setattr(dq, "producer_send", lambda settings: (self.send, lambda: None))

    def read(self, settings, topic, *, limit=50, before=None, timeout=0):
        if topic != self.topic:
            raise LookupError(f"no topic {topic}")
        return dq.Page(list(reversed(self.letters)))

    def fetch(self, settings, topic, partition, offset, timeout=0):
        for d in self.letters:
            if topic == self.topic and (d.partition, d.offset) == (partition, offset):
                return dq.parse(d.dlq_topic, d.partition, d.offset, json.dumps({
                    "original_topic": d.original_topic, "partition": d.source_partition,
                    "offset": d.source_offset, "key": d.key, "reason": d.reason,
                    "error_type": d.error_type, "processor": d.processor, "failed_at": d.failed_at,
                    "tenant_id": d.tenant_id, "value_b64": base64.b64encode(d.value).decode()}).encode())
        return None

    def send(self, topic, key, value):
        self.sent.append((topic, key, value))
