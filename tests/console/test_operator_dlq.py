"""The operator's DLQ browser and replay (services/core/dlq_replay.py, as `herald dlq` uses it):
records listed with their reason, one shown with its original bytes, chosen ones replayed once,
a failed message reset into a new try, every replay audited; tenant users get 404."""

from __future__ import annotations

import uuid

import pytest

from services.core.db.console_models import AuditEntry
from services.core.db.models import DlqReplay, Message, MessageEvent
from services.core.messages import message_id_for, record_accepted, transition
from services.core.schemas import new_event
from tests.console.operator_fixtures import FakeDlq, letter_of


def outbound(request_id: str = "order-1") -> dict:
    return new_event("sms.outbound", tenant_id="acme", message_id=message_id_for("acme", request_id),
                     request_id=request_id, to="+8613800000001", text="Your parcel left.",
                     source="api", accepted_at="2026-12-01T02:00:00.000Z")


@pytest.fixture
def failed(console_db):
    ev = outbound()
    with console_db.session() as s:
        msg, _ = record_accepted(s, ev)
        transition(s, msg, "failed", reason="boom")
    return ev


def test_the_dead_letters_are_listed_with_their_reason_and_shown_with_the_original_bytes(browser, monkeypatch, failed):
    FakeDlq(monkeypatch, [letter_of(failed, reason="carrier connection failed")])
    browser.sign_in("ops@herald.example")
    resp, body = browser.get("/operator/dlq/sms.outbound.dlq")
    assert resp.status == 200 and "carrier connection failed" in body and 'value="0:0"' in body
    resp, body = browser.get("/operator/dlq/sms.outbound.dlq/0/0")
    assert resp.status == 200 and "Your parcel left." in body and failed["message_id"] in body
    resp, _ = browser.get("/operator/dlq/sms.outbound.dlq/0/9")
    assert resp.status == 404


def test_replaying_a_failed_message_resets_it_into_a_new_try_once_and_audits_it(browser, monkeypatch, console_db, failed):
    fake = FakeDlq(monkeypatch, [letter_of(failed)])
    browser.sign_in("ops@herald.example")
    browser.get("/operator/dlq/sms.outbound.dlq")
    resp, body = browser.post("/operator/dlq/sms.outbound.dlq/replay", {"ref": "0:0"})
    assert resp.status == 200 and "1 of 1 record replayed" in body and "reset and sent again" in body
    assert [(t, v) for t, _, v in fake.sent] == [("sms.outbound", letter_of(failed).value)]
    browser.post("/operator/dlq/sms.outbound.dlq/replay", {"ref": "0:0"})
    assert len(fake.sent) == 1  # replayed once only
    with console_db.session() as s:
        msg = s.get(Message, failed["message_id"])
        assert (msg.status, msg.attempt) == ("accepted", 2)
        ids = {e.event_id for e in s.query(MessageEvent).filter_by(message_id=msg.id)}
        assert ids == {f"{msg.id}:accepted", f"{msg.id}:failed", f"{msg.id}:accepted:2"}
        assert s.query(DlqReplay).one().outcome == "reset_and_resent"
        [entry] = s.query(AuditEntry).filter_by(action="replay").all()
        assert entry.actor == "ops@herald.example" and entry.before["status"] == "failed"


def test_a_message_that_moved_on_is_not_sent_again_and_bad_bytes_are_not_replayed(browser, monkeypatch, console_db, failed):
    bad = letter_of(failed, offset=1)
    bad.value = b'{"not": "an event"'
    delivered = outbound("order-2")
    with console_db.session() as s:
        msg, _ = record_accepted(s, delivered)
        transition(s, msg, "delivered")
    fake = FakeDlq(monkeypatch, [bad, letter_of(delivered, offset=2)])
    browser.sign_in("ops@herald.example")
    browser.get("/operator/dlq/sms.outbound.dlq")
    _, body = browser.post("/operator/dlq/sms.outbound.dlq/replay", {"ref": ["0:1", "0:2"]})
    assert "0 of 2 records replayed" in body and "not a valid event" in body and "has moved on" in body
    assert fake.sent == []


def test_other_events_go_back_to_their_topic_byte_for_byte(browser, monkeypatch):
    ev = new_event("sms.inbound", message_id=str(uuid.uuid4()), carrier="sim", carrier_message_id="SM-1",
                   to="10690001", text="INFO", received_at="2026-12-01T02:00:00.000Z", **{"from": "+8613800000002"})
    letter = letter_of(ev, topic="sms.inbound")
    fake = FakeDlq(monkeypatch, [letter], topic="sms.inbound.dlq")
    browser.sign_in("ops@herald.example")
    browser.get("/operator/dlq/sms.inbound.dlq")
    _, body = browser.post("/operator/dlq/sms.inbound.dlq/replay", {"ref": "0:0"})
    assert "back on its topic" in body
    assert fake.sent == [("sms.inbound", b"+8613800000002", letter.value)]


def test_tenant_users_get_404_and_nothing_is_replayed(browser_factory, monkeypatch, failed):
    fake = FakeDlq(monkeypatch, [letter_of(failed)])
    for email in ("owner@acme.example", "owner@other.example", "analyst@acme.example"):
        b = browser_factory()
        b.sign_in(email)
        assert b.get("/operator/dlq")[0].status == 404
        assert b.get("/operator/dlq/sms.outbound.dlq/0/0")[0].status == 404
        assert b.post("/operator/dlq/sms.outbound.dlq/replay", {"ref": "0:0"})[0].status == 404
    assert fake.sent == []
