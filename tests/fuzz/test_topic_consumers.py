"""Every topic consumer's decode path fed random bytes, wrong JSON and huge values (hypothesis),
in process: an event either decodes to one its schema accepts, or is refused with a reason and a
kind that make a valid DLQ record. Nothing else may escape, or one bad record would crash the
processor and, redelivered, crash it again."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.bridge.domain import parse_request
from services.core.dlq import dlq_record
from services.core.schemas import EventInvalid, decode, encode, is_valid, schema_for_topic
from services.core.topics import CATALOGUE

# Every topic a processor consumes: the catalogue, and a tenant's topics the bridge reads.
TOPICS = sorted({t.name for t in CATALOGUE} | {"tenant.acme.outbound", "tenant.acme.inbound"})
DLQ_KINDS = {"invalid_json", "wrong_encoding", "schema_violation"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=15), inner, max_size=5),
    max_leaves=30)
envelope_keys = st.sampled_from(["event_id", "event_type", "tenant_id", "produced_at", "schema_version",
                                 "message_id", "to", "from", "text", "status", "carrier", "code"])
envelope_like = st.dictionaries(envelope_keys, json_values, max_size=10)
raw_values = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    envelope_like.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.text(max_size=200).map(lambda s: s.encode("utf-8")),
    st.integers(1, 200_000).map(lambda n: b'{"text": "' + b"x" * n + b'"}'),  # huge values
)


def _decoders(topic: str):
    """(schema the result must meet or None, decoder) for each consumer of the topic."""
    if topic.startswith("tenant.") and topic.endswith(".outbound"):
        # the bridge's ERP request decoder: JSON objects; the schema is checked after stamping
        yield None, lambda raw: parse_request(topic, raw)
    else:
        yield schema_for_topic(topic), lambda raw: decode(schema_for_topic(topic), raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(TOPICS), raw=raw_values)
@example(topic="sms.inbound", raw=b"[" * 100_000)  # nesting deeper than the JSON parser's stack
@example(topic="sms.outbound", raw=b'{"a":' * 50_000)
@example(topic="sms.delivery", raw=b"\xff\xfe\x00garbage")
@example(topic="sms.status", raw=None)
def test_any_bytes_on_any_topic_decode_to_a_valid_event_or_a_reasoned_dlq_record(topic, raw):
    for schema, decode_value in _decoders(topic):
        try:
            event = decode_value(raw)
        except EventInvalid as exc:
            assert exc.reason and exc.kind in DLQ_KINDS, (exc.reason, exc.kind)
            record = dlq_record(original_topic=topic, partition=0, offset=7, key=b"k", value=raw,
                                reason=exc.reason, error_type=exc.kind, processor="fuzz")
            encode("dlq", record)  # the DLQ record itself is valid, so it can be produced
            continue
        assert isinstance(event, dict)
        assert schema is None or is_valid(schema, event)


def test_a_dlq_record_of_a_value_near_the_broker_limit_stays_under_it():
    value = b"x" * 1_000_000
    record = dlq_record(original_topic="sms.inbound", partition=0, offset=1, key=None, value=value,
                        reason="value is not JSON", error_type="invalid_json", processor="router")
    assert len(encode("dlq", record)) < 500_000
    assert "value of 1000000 bytes" in record["reason"]
