"""Scheduling a send: it becomes a one-off notification campaign to a list of the recipients."""

import re
from datetime import datetime, timedelta

import pytest

from services.core.db.campaigns_models import Campaign, ContactListMember
from services.core.db.console_models import AuditEntry

from .fake_producer import FakeProducer

SEND_ID = re.compile(r'name="send_id" value="([^"]+)"')


@pytest.fixture
def producer(console):
    console.producer = FakeProducer()
    return console.producer


def _schedule(browser, at: str, **fields):
    _, page = browser.get("/send")
    return browser.post("/send", {"numbers": "+8613800000001\n+8613800000002", "text": "Hello {name|friend}",
                                  "category": "transactional", "sender": "", "when": "later",
                                  "schedule_at": at, "send_id": SEND_ID.search(page).group(1), **fields})


def test_a_scheduled_send_becomes_a_notification_campaign_and_sends_nothing_now(browser, producer, console_db):
    browser.sign_in("owner@acme.example")
    at = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    resp, body = _schedule(browser, at)
    assert resp.url.path.startswith("/campaigns/")
    assert producer.sent == []
    with console_db.session() as s:
        c = s.query(Campaign).filter_by(tenant_id="acme").one()
        assert c.kind == "notification" and c.status == "scheduled" and c.scheduled_at is not None
        assert c.template == "Hello {name|friend}" and c.audience_kind == "list"
        assert s.query(ContactListMember).filter_by(list_id=c.audience_ref).count() == 2
        assert s.query(AuditEntry).filter_by(action="schedule_send", object_id=c.id).count() == 1


def test_a_time_in_the_past_is_refused_naming_the_field(browser, producer, console_db):
    browser.sign_in("owner@acme.example")
    resp, body = _schedule(browser, "2020-01-01T09:00")
    assert resp.status == 422
    assert "Pick a time in the future" in body
    with console_db.session() as s:
        assert s.query(Campaign).count() == 0


def test_an_analyst_cannot_schedule(browser, producer, console_db):
    browser.sign_in("analyst@acme.example")
    resp, _ = browser.post("/send", {"numbers": "+8613800000001", "text": "x", "when": "later",
                                     "schedule_at": "2999-01-01T09:00", "send_id": "abcdefghijkl"})
    assert resp.status == 403
    with console_db.session() as s:
        assert s.query(Campaign).count() == 0
