"""DLQ replay (services/core/dlq_replay.py, `herald dlq`) against the real broker: an outbound
message that failed for good is reset and delivered once through egress and the carrier
simulator, its history keeping both tries; an inbound text dead-lettered for an unknown number is
re-injected once the number is assigned, and handled once."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest

from services.cli.commands import main as herald
from services.core import dlq_replay as dq
from services.core.db import Database
from services.core.db.console_models import AuditEntry
from services.core.db.models import Message, MessageEvent
from services.core.dlq import dlq_record
from services.core.schemas import encode, new_event
from services.core.tenancy import add_number
from services.router.domain import CACHE_TTL_S
from tests.integration.test_egress import TENANT, Harness, now_iso
from tests.support.infra import read_topic, wait_until
from tests.support.seed import seed_tenant

pytestmark = pytest.mark.integration


def test_a_failed_outbound_message_is_replayed_and_delivered_once(stack, tmp_path, capsys):
    seed_tenant(stack, TENANT)
    h = Harness(stack, tmp_path)
    h.start_simulator()
    h.control(reject_prefix="+1415")  # the carrier refuses this number for good
    h.start_egress()
    db = Database(stack.database_url)
    settings = stack.settings()

    mid = h.outbound("order-9:shipped", "+14155550199")
    assert h.statuses(mid, "failed")[-1]["reason"].startswith("sim refused")
    # The event as egress dead-letters what it cannot send, original bytes and all.
    [original] = [r for r in read_topic(stack.bootstrap, stack.topic("sms.outbound"), decode_json=False)
                  if json.loads(r.value())["message_id"] == mid]
    rec = dlq_record(original_topic=stack.topic("sms.outbound"), partition=original.partition(),
                     offset=original.offset(), key=original.key(), value=original.value(),
                     reason="gave up: carrier refused", error_type="processing_error",
                     processor="egress", tenant_id=TENANT)
    h.producer.produce(stack.topic("sms.outbound.dlq"), encode("dlq", rec), key=rec["key"].encode())
    assert h.producer.flush(10) == 0

    h.control(reject_prefix=None)  # the carrier takes it now
    page = dq.read(settings, "sms.outbound.dlq")
    [letter] = [d for d in page.letters if d.message_id == mid]
    assert letter.reason == "gave up: carrier refused" and letter.original_topic == stack.topic("sms.outbound")

    argv = ["--database-url", stack.database_url, "--bootstrap", stack.bootstrap,
            "--topic-prefix", stack.prefix]
    assert herald([*argv, "dlq", "replay", "sms.outbound.dlq", letter.ref, "--actor", "ops"]) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "reset_and_resent"

    statuses = h.statuses(mid, "sent")
    assert [r["status"] for r in statuses] == ["accepted", "failed", "accepted", "sent"]
    [sub] = h.submissions(mid)  # the refused try never reached the carrier's log; this one did
    dlr = new_event("sms.delivery", carrier="sim", carrier_message_id=sub["carrier_message_id"],
                    status="delivered", reported_at=now_iso())
    h.produce("sms.delivery", dlr, sub["carrier_message_id"])
    h.statuses(mid, "delivered")

    # A second replay of the same record changes nothing.
    assert herald([*argv, "dlq", "replay", "sms.outbound.dlq", letter.ref]) == 1
    assert json.loads(capsys.readouterr().out)["outcome"] == "already_replayed"
    marker = h.outbound("order-10:shipped", "+14155550199")
    h.statuses(marker, "sent")
    assert len(h.submissions(mid)) == 1
    with db.session() as s:
        msg = s.get(Message, mid)
        assert (msg.status, msg.attempt) == ("delivered", 2)
        history = sorted(s.query(MessageEvent.event_id).filter_by(message_id=mid).all())
        assert [e for (e,) in history] == sorted([f"{mid}:accepted", f"{mid}:failed",
                                                  f"{mid}:accepted:2", f"{mid}:sent:2",
                                                  f"{mid}:delivered:2"])
        [entry] = s.query(AuditEntry).filter_by(action="replay").all()
        assert entry.actor == "cli:ops" and entry.after["message_id"] == mid
    assert herald([*argv, "dlq", "show", "sms.outbound.dlq", letter.ref]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["replay"]["outcome"] == "reset_and_resent" and json.loads(shown["value"])["message_id"] == mid
    db.dispose()


def test_a_dead_lettered_inbound_text_is_reinjected_and_handled_once(stack):
    seed_tenant(stack, TENANT, keywords=[("INFO", "reply", {"reply_text": "Acme news."})])
    stack.start("services.router")
    settings = stack.settings()
    ev = new_event("sms.inbound", message_id=str(uuid.uuid4()), carrier="simulator",
                   carrier_message_id=f"SM-{uuid.uuid4().hex[:8]}", to="10699999", text="INFO",
                   received_at=now_iso(), **{"from": "+8613800000077"})
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": stack.bootstrap})
    p.produce(stack.topic("sms.inbound"), encode("sms.inbound", ev), key=ev["from"].encode())
    assert p.flush(10) == 0
    read_topic(stack.bootstrap, stack.topic("sms.inbound.dlq"),
               until=lambda recs: any(json.loads(base64.b64decode(r["value_b64"]))["message_id"]
                                      == ev["message_id"] for r in recs), timeout=60)
    [letter] = [d for d in dq.read(settings, "sms.inbound.dlq").letters
                if d.message_id == ev["message_id"]]
    assert letter.error_type == "unknown_destination"

    db = Database(stack.database_url)
    with db.session() as s:
        add_number(s, TENANT, "10699999")  # the operator gives the number to acme
    time.sleep(CACHE_TTL_S + 1)  # the router's cached "nobody's number" expires
    first = dq.replay(settings, db, [letter], "console:ops@herald.example")
    again = dq.replay(settings, db, [dq.fetch(settings, "sms.inbound.dlq", letter.partition, letter.offset)],
                      "console:ops@herald.example")
    assert [o.outcome for o in first + again] == ["reinjected", "already_replayed"]

    def replies() -> list[dict]:
        return [r for r in read_topic(stack.bootstrap, stack.topic("sms.outbound"))
                if r.get("in_reply_to") == ev["message_id"]]
    wait_until(replies, 60, what="the router's reply to the re-injected text")
    marker = new_event("sms.inbound", message_id=str(uuid.uuid4()), carrier="simulator",
                       carrier_message_id="SM-marker", to="10690001", text="INFO",
                       received_at=now_iso(), **{"from": "+8613800000077"})
    p.produce(stack.topic("sms.inbound"), encode("sms.inbound", marker), key=marker["from"].encode())
    assert p.flush(10) == 0
    read_topic(stack.bootstrap, stack.topic("sms.outbound"),
               until=lambda recs: any(r.get("in_reply_to") == marker["message_id"] for r in recs),
               timeout=60)
    [reply] = replies()
    assert reply["text"] == "Acme news." and reply["to"] == "+8613800000077"
    db.dispose()
