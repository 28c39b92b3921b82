"""The foundation against the real broker and databases: the broker is Apache Kafka on Java,
topics are created idempotently, events round-trip through a Faust agent, bad bytes reach the
DLQ with the reason and the original bytes, migrations run up and down."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource
from sqlalchemy import inspect

from services.core.db.migrate import downgrade, upgrade
from services.core.db.session import make_engine
from services.core.schemas import encode, new_event
from services.core.topics import OPTOUTS, all_specs, ensure_topics, wait_for_topics
from tests.support.infra import Stack, read_topic, wait_until

pytestmark = pytest.mark.integration


def test_the_broker_is_apache_kafka_running_on_java(broker):
    cmdline = Path(f"/proc/{broker.pid}/cmdline").read_bytes().split(b"\0")
    assert Path(cmdline[0].decode()).name == "java"
    assert b"kafka.Kafka" in cmdline
    assert any(b"kafka_2.13-4." in part for part in cmdline) or any(
        b".libs/*" in part for part in cmdline)


def test_topic_catalogue_is_created_once_and_again_changes_nothing(broker):
    s = Stack(broker.bootstrap, "sqlite://")
    created = ensure_topics(s.settings(topic_partitions=2))
    assert sorted(created) == sorted(s.topic(t.name) for t in all_specs())
    assert ensure_topics(s.settings(topic_partitions=2)) == []
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    md = admin.list_topics(timeout=10).topics
    assert len(md[s.topic("sms.inbound")].partitions) == 2
    assert len(md[s.topic("sms.inbound.dlq")].partitions) == 1
    res = ConfigResource(ConfigResource.Type.TOPIC, s.topic(OPTOUTS))
    cfg = list(admin.describe_configs([res]).values())[0].result()
    assert cfg["cleanup.policy"].value == "compact"
    # Growing the configured partition count grows existing topics.
    ensure_topics(s.settings(topic_partitions=4))
    wait_until(lambda: len(admin.list_topics(timeout=10).topics[s.topic("sms.inbound")].partitions)
               == 4, 15, what="sms.inbound grown to 4 partitions")


def test_topics_are_visible_when_ensure_topics_returns_and_a_missing_one_is_named(broker):
    s = Stack(broker.bootstrap, "sqlite://")
    ensure_topics(s.settings(topic_partitions=3))
    # no wait here: visible, with every partition led, the moment ensure_topics returns
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
    for spec in all_specs():
        topic = md[s.topic(spec.name)]
        assert topic.error is None and all(p.leader >= 0 for p in topic.partitions.values())
    wait_for_topics(broker.bootstrap, {s.topic("sms.inbound"): 3}, timeout=5)
    with pytest.raises(TimeoutError, match=r"nobody\.sms\.inbound"):
        wait_for_topics(broker.bootstrap, ["nobody.sms.inbound", s.topic("sms.inbound")], timeout=1)
    with pytest.raises(TimeoutError, match="sms.inbound"):  # fewer partitions than asked for
        wait_for_topics(broker.bootstrap, {s.topic("sms.inbound"): 5}, timeout=1)


def test_a_processor_whose_topics_do_not_exist_stops_with_a_clear_message(broker, tmp_path):
    s = Stack(broker.bootstrap, f"sqlite:///{tmp_path / 'h.db'}")  # no topics made for this prefix
    upgrade(s.database_url)
    proc = s.start("services.router", health=False, HERALD_TOPIC_WAIT_S="2")
    try:
        proc.popen.wait(60)
        log = proc.log_path.read_text()
        assert proc.popen.returncode != 0
        assert f"{s.prefix}sms.inbound" in log and "make topics" in log
    finally:
        s.stop_all()


def test_an_event_produced_with_confluent_kafka_is_read_by_a_faust_agent_and_bad_bytes_reach_the_dlq(stack):
    """The verifier's Faust agent consumes codes.submitted: a valid event passes decoding, while
    invalid JSON, non-UTF-8 bytes and a schema violation each land in codes.submitted.dlq with
    the reason, the original bytes and the source offset."""
    proc = stack.start("services.verifier")
    valid = new_event("codes.submitted", tenant_id="acme", submission_id=str(uuid.uuid4()),
                      code="ABCD2345", **{"from": "+8613812345678"}, to="10690001",
                      inbound_message_id=str(uuid.uuid4()), received_at="2026-11-28T10:00:00Z")
    bad = {
        b"{not json": "invalid_json",
        "{\"code\": \"caf\u00e9\"}".encode("latin-1"): "wrong_encoding",
        json.dumps({**valid, "from": "12345"}).encode(): "schema_violation",
    }
    p = Producer({"bootstrap.servers": stack.bootstrap})
    topic = stack.topic("codes.submitted")
    for raw in bad:
        p.produce(topic, raw, key=b"K1")
    p.produce(topic, encode("codes.submitted", valid), key=b"ABCD2345")
    assert p.flush(10) == 0

    dlq = read_topic(stack.bootstrap, stack.topic("codes.submitted.dlq"),
                     until=lambda recs: len(recs) >= 4, timeout=60)
    assert len(dlq) == 4
    by_bytes = {base64.b64decode(r["value_b64"]): r for r in dlq}
    for raw, kind in bad.items():
        rec = by_bytes[raw]
        assert rec["error_type"] == kind
        assert rec["original_topic"] == topic
        assert rec["offset"] is not None and rec["partition"] is not None
        assert rec["processor"] == "verifier"
        assert rec["reason"]
    assert "from" in by_bytes[json.dumps({**valid, "from": "12345"}).encode()]["reason"]
    # The valid event passed decoding and reached the verifier's handler, which rejects it for
    # its own reason (no brand is set up for tenant "acme"), not as bad bytes.
    valid_rec = next(r for r in dlq if r["error_type"] not in bad.values())
    assert json.loads(base64.b64decode(valid_rec["value_b64"]))["code"] == "ABCD2345"
    assert proc.alive(), "bad input must not crash the processor"


def test_migrations_run_up_and_down(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    tables = set(inspect(engine).get_table_names())
    assert {"tenants", "api_keys", "sender_numbers", "keywords", "contacts", "opt_outs",
            "messages", "message_events"} <= tables
    engine.dispose()
    downgrade(database_url)
    engine = make_engine(database_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(database_url)
