"""The inbox: conversations per number with the rule that handled each text, and replies."""

import pytest

from services.core import inbound_log, topics
from services.core.db.console_models import AuditEntry
from services.core.db.models import Message

from .fake_producer import FakeProducer


def _text(db, tenant, sender, text, mid, at="2026-03-10T12:00:00Z", kind="keyword_reply"):
    with db.session() as s:
        inbound_log.record(s, topics.SMS_INBOUND, [{"message_id": mid, "from": sender, "to": "10690001",
                                                    "text": text, "received_at": at}],
                           owner=lambda number: tenant)
        inbound_log.record(s, topics.SMS_OUTBOUND, [{
            "message_id": mid[:-1] + "f", "in_reply_to": mid, "tenant_id": tenant, "source": "router",
            "attributes": {"kind": kind}}])


@pytest.fixture
def producer(console):
    console.producer = FakeProducer()
    return console.producer


@pytest.fixture
def texts(console_db):
    _text(console_db, "acme", "+8613800000001", "HOURS please", "aaaaaaaa-0000-4000-8000-000000000001")
    _text(console_db, "acme", "+8613800000001", "thanks!", "aaaaaaaa-0000-4000-8000-000000000002",
          at="2026-03-10T12:05:00Z", kind="unmatched")
    _text(console_db, "other", "+8613800000003", "secret of other", "aaaaaaaa-0000-4000-8000-000000000003")


def test_conversations_are_listed_per_number_with_the_latest_text(browser, texts):
    browser.sign_in("owner@acme.example")
    _, body = browser.get("/inbox")
    assert body.count('href="/inbox/%2B8613800000001"') == 1
    assert "thanks!" in body and "secret of other" not in body


def test_a_conversation_shows_each_text_with_what_handled_it(browser, texts):
    browser.sign_in("owner@acme.example")
    resp, body = browser.get("/inbox/%2B8613800000001")
    assert resp.status == 200
    assert body.index("HOURS please") < body.index("thanks!")
    assert "router:keyword_reply" in body and "router:unmatched" in body


def test_a_reply_is_sent_from_the_number_texted_and_audited(browser, texts, producer, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/inbox/%2B8613800000001")
    resp, body = browser.post("/inbox/%2B8613800000001/reply", {"text": "We open at 9.",
                                                                "send_id": "abcdefghijkl"})
    assert "Reply sent." in body
    (topic, event, _), = producer.sent
    assert event["to"] == "+8613800000001" and event["from"] == "10690001"
    assert event["in_reply_to"] == "aaaaaaaa-0000-4000-8000-000000000002"
    with console_db.session() as s:
        assert s.get(Message, event["message_id"]).tenant_id == "acme"
        assert s.query(AuditEntry).filter_by(action="reply").count() == 1
    assert "We open at 9." in browser.get("/inbox/%2B8613800000001")[1]


def test_an_empty_reply_is_refused_naming_the_field(browser, texts, producer):
    browser.sign_in("owner@acme.example")
    browser.get("/inbox/%2B8613800000001")
    resp, body = browser.post("/inbox/%2B8613800000001/reply", {"text": " ", "send_id": "abcdefghijkl"})
    assert resp.status == 422 and "Write the reply." in body
    assert producer.sent == []


def test_another_tenants_conversation_is_not_found_and_cannot_be_answered(browser, texts, producer):
    browser.sign_in("owner@acme.example")
    resp, body = browser.get("/inbox/%2B8613800000003")
    assert resp.status == 404 and "secret of other" not in body
    resp, _ = browser.post("/inbox/%2B8613800000003/reply", {"text": "hi", "send_id": "abcdefghijkl"})
    assert resp.status == 404
    assert producer.sent == []


def test_an_analyst_reads_the_inbox_but_cannot_reply(browser, texts, producer):
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get("/inbox/%2B8613800000001")
    assert resp.status == 200 and "Send reply" not in body
    resp, _ = browser.post("/inbox/%2B8613800000001/reply", {"text": "hi", "send_id": "abcdefghijkl"})
    assert resp.status == 403
    assert producer.sent == []


def test_an_empty_inbox_says_how_texts_arrive(browser):
    browser.sign_in("owner@acme.example")
    _, body = browser.get("/inbox")
    assert "No text has come in yet" in body
