"""The send page: one message or a list, sent now through the send API's code."""

import json
import re

import pytest

from services.core.db.console_models import AuditEntry
from services.core.db.models import Message, SenderNumber

from .fake_producer import FakeProducer

SEND_ID = re.compile(r'name="send_id" value="([^"]+)"')


@pytest.fixture
def producer(console, console_db, tmp_path):
    console.producer = FakeProducer()
    carriers = tmp_path / "carriers.json"
    carriers.write_text(json.dumps({"carriers": [
        {"name": "cn", "prefixes": ["+86"], "options": {"price_per_segment": 0.05, "currency": "CNY"}},
        {"name": "world", "prefixes": ["+"], "priority": 200}]}))
    console.settings = console.settings.model_copy(update={"carriers_file": str(carriers)})
    with console_db.session() as s:
        s.add(SenderNumber(number="10690001", tenant_id="acme"))
        s.add(SenderNumber(number="10690002", tenant_id="other"))
    return console.producer


def _send(browser, **fields):
    _, body = browser.get("/send")
    data = {"numbers": "", "text": "", "sender": "", "category": "transactional", "when": "now",
            "send_id": SEND_ID.search(body).group(1), **fields}
    return browser.post("/send", data)


def test_an_owner_sends_one_message_and_lands_on_its_timeline(browser, producer, console_db):
    browser.sign_in("owner@acme.example")
    resp, body = _send(browser, numbers="+86 138-1234-5678", text="Your parcel is here")
    assert resp.status == 200 and resp.url.path.startswith("/messages/")
    assert "Sent. The message is on its way." in body
    (topic, event, key), = producer.sent
    assert topic == "sms.outbound" and event["to"] == "+8613812345678" == key
    assert event["source"] == "api" and event["tenant_id"] == "acme"
    with console_db.session() as s:
        msg = s.get(Message, event["message_id"])
        assert msg.status == "accepted" and msg.text == "Your parcel is here"
        entry = s.query(AuditEntry).filter_by(action="send").one()
        assert entry.actor == "owner@acme.example" and entry.after["recipients"] == 1


def test_a_list_is_sent_one_message_per_number_without_repeats(browser, producer):
    browser.sign_in("owner@acme.example")
    resp, body = _send(browser, numbers="+8613800000001\n+8613800000002, +8613800000001",
                       text="Meeting at 3", sender="10690001")
    assert "Sent 2 messages." in body
    assert sorted(e["to"] for _, e, _ in producer.sent) == ["+8613800000001", "+8613800000002"]
    assert {e["from"] for _, e, _ in producer.sent} == {"10690001"}


def test_the_same_form_submitted_twice_sends_nothing_twice(browser, producer, console_db):
    browser.sign_in("owner@acme.example")
    _, page = browser.get("/send")
    data = {"numbers": "+8613800000001\n+8613800000002", "text": "Once only", "when": "now",
            "category": "transactional", "sender": "", "send_id": SEND_ID.search(page).group(1)}
    browser.post("/send", data)
    resp, body = browser.post("/send", data)
    assert "already sent" in body
    with console_db.session() as s:
        assert s.query(Message).filter_by(tenant_id="acme").count() == 2


def test_a_bad_number_and_an_empty_text_are_named_and_nothing_is_sent(browser, producer, console_db):
    browser.sign_in("owner@acme.example")
    resp, body = _send(browser, numbers="not a number", text="")
    assert resp.status == 422
    assert "Add at least one number" in body and "Write the message text." in body
    assert 'aria-describedby="e-recipients"' in body
    assert producer.sent == []
    with console_db.session() as s:
        assert s.query(Message).count() == 0


def test_another_tenants_number_cannot_be_the_sender(browser, producer):
    browser.sign_in("owner@acme.example")
    resp, body = _send(browser, numbers="+8613800000001", text="Hi", sender="10690002")
    assert resp.status == 422
    assert "Choose one of your numbers" in body
    assert producer.sent == []


def test_an_analyst_can_neither_open_the_send_page_nor_send(browser, producer):
    browser.sign_in("analyst@acme.example")
    resp, _ = browser.get("/send")
    assert resp.status == 403
    _, page = browser.get("/")
    assert 'href="/send"' not in page
    resp, _ = browser.post("/send", {"numbers": "+8613800000001", "text": "x", "when": "now",
                                     "send_id": "abcdefghijkl"})
    assert resp.status == 403
    assert producer.sent == []


def test_a_platform_operator_has_no_send_page(browser, producer):
    browser.sign_in("ops@herald.example")
    resp, _ = browser.get("/send")
    assert resp.status == 404


def test_a_send_without_the_csrf_token_is_refused(browser, producer):
    browser.sign_in("owner@acme.example")
    _, page = browser.get("/send")
    resp, _ = browser.post("/send", {"numbers": "+8613800000001", "text": "x", "when": "now",
                                     "send_id": SEND_ID.search(page).group(1)}, csrf=False)
    assert resp.status == 403
    assert producer.sent == []
