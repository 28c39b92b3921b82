"""The router as a process against the real broker and a migrated SQLite database: HELP gets a
reply, STOP opts out (optouts record, one confirmation reply, OptOut row), and a text to an
unknown number lands in sms.inbound.dlq with the reason while the router carries on."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from confluent_kafka import Producer

from services.core.db import Database
from services.core.db.models import OptOut
from services.core.schemas import encode, new_event
from services.core.tenancy import add_keyword, add_number, create_tenant
from services.core.topics import ensure_topics, tenant_topics
from tests.support.infra import read_topic, wait_until

pytestmark = pytest.mark.integration

NUMBER = "10690001"
HELP_TEXT = "Acme: text INFO for news. Reply STOP to opt out."
STOP_REPLY = "Acme: you are unsubscribed."


def inbound(text: str, sender: str, to: str = NUMBER) -> dict:
    return new_event("sms.inbound", message_id=str(uuid.uuid4()), carrier="simulator",
                     carrier_message_id=f"SM-{uuid.uuid4().hex[:8]}", to=to, text=text,
                     received_at="2026-11-28T10:00:00.000Z", **{"from": sender})


def test_router_answers_help_honours_stop_and_dead_letters_unknown_destinations(stack):
    db = Database(stack.database_url)
    with db.session() as s:
        create_tenant(s, "acme", "Acme Tobacco", help_text=HELP_TEXT, stop_reply=STOP_REPLY)
        add_number(s, "acme", NUMBER)
        add_keyword(s, "acme", "INFO", "reply", reply_text="Acme news: all systems go.")
    ensure_topics(stack.settings(topic_partitions=3), extra=tenant_topics("acme"))
    proc = stack.start("services.router")

    helper, quitter, stranger = "+8613800000001", "+8613800000002", "+8613800000003"
    help_ev = inbound("help", helper)
    stop_ev = inbound("退订。", quitter)
    lost_ev = inbound("hello", stranger, to="10699999")
    after_ev = inbound("INFO", stranger)  # behind the dead-lettered one, on the same partition
    p = Producer({"bootstrap.servers": stack.bootstrap})
    for ev in (help_ev, stop_ev, lost_ev, after_ev):
        p.produce(stack.topic("sms.inbound"), encode("sms.inbound", ev), key=ev["from"].encode())
    assert p.flush(10) == 0

    replies = read_topic(stack.bootstrap, stack.topic("sms.outbound"),
                         until=lambda recs: len(recs) >= 3, timeout=60)
    by_reply_to = {r["in_reply_to"]: r for r in replies}
    assert len(replies) == 3
    help_reply = by_reply_to[help_ev["message_id"]]
    assert (help_reply["to"], help_reply["from"], help_reply["text"]) == (helper, NUMBER, HELP_TEXT)
    assert help_reply["request_id"] == f"reply-{help_ev['message_id']}"
    stop_reply = by_reply_to[stop_ev["message_id"]]
    assert (stop_reply["to"], stop_reply["text"]) == (quitter, STOP_REPLY)
    assert stop_reply["attributes"] == {"kind": "optout_confirmation"}
    assert by_reply_to[after_ev["message_id"]]["text"] == "Acme news: all systems go."

    [optout] = read_topic(stack.bootstrap, stack.topic("optouts"), until=lambda recs: recs,
                          timeout=30)
    assert (optout["tenant_id"], optout["msisdn"], optout["opted_out"]) == ("acme", quitter, True)
    assert optout["keyword"] == "退订" and optout["source_message_id"] == stop_ev["message_id"]

    def optout_row():
        with db.session() as s:
            return s.get(OptOut, ("acme", quitter))
    row = wait_until(optout_row, 10, what="the OptOut row")
    assert row.opted_out is True and row.source_event_id == stop_ev["message_id"]

    [dead] = read_topic(stack.bootstrap, stack.topic("sms.inbound.dlq"), until=lambda recs: recs,
                        timeout=30)
    assert dead["reason"] == "no tenant for destination 10699999"
    assert dead["error_type"] == "unknown_destination" and dead["processor"] == "router"
    assert json.loads(base64.b64decode(dead["value_b64"]))["message_id"] == lost_ev["message_id"]

    assert proc.alive()
    proc.wait_healthy(10)
    db.dispose()
