"""One message's page: its timeline from accepted to delivered or failed."""

from datetime import UTC, datetime, timedelta

from services.core.messages import record_accepted, transition
from services.core.schemas import new_event


def _message(db, tenant="acme", fail=False):
    with db.session() as s:
        event = new_event("sms.outbound", tenant, message_id="6f1c0e7e-0000-4000-8000-000000000001"
                          if tenant == "acme" else "6f1c0e7e-0000-4000-8000-000000000002",
                          request_id=f"r-{tenant}", to="+8613800000001", text="Your order shipped",
                          source="api", category="transactional",
                          accepted_at="2026-03-10T12:00:00.000Z")
        msg, _ = record_accepted(s, event)
        msg.segments, msg.encoding = 1, "gsm7"
        at = datetime(2026, 3, 10, 12, 0, 1, tzinfo=UTC)
        transition(s, msg, "sent", carrier="sim", at=at)
        if fail:
            transition(s, msg, "failed", reason="undeliverable: absent subscriber", carrier="sim",
                       at=at + timedelta(seconds=2))
        else:
            transition(s, msg, "delivered", carrier="sim", at=at + timedelta(seconds=2))
        return msg.id


def test_the_timeline_shows_each_step_with_its_carrier(browser, console_db):
    mid = _message(console_db)
    browser.sign_in("owner@acme.example")
    resp, body = browser.get(f"/messages/{mid}")
    assert resp.status == 200
    steps = body[body.index('class="timeline"'):]
    assert steps.index(">accepted<") < steps.index(">sent<") < steps.index(">delivered<")
    assert "sim" in body and "GSM-7" in body and "Your order shipped" in body


def test_a_failure_shows_its_error(browser, console_db):
    mid = _message(console_db, fail=True)
    browser.sign_in("owner@acme.example")
    _, body = browser.get(f"/messages/{mid}")
    assert "undeliverable: absent subscriber" in body


def test_another_tenants_message_is_not_found(browser, console_db):
    mid = _message(console_db, tenant="other")
    browser.sign_in("owner@acme.example")
    resp, body = browser.get(f"/messages/{mid}")
    assert resp.status == 404 and "Your order shipped" not in body
    resp, _ = browser.get("/messages/not-an-id")
    assert resp.status == 404


def test_the_live_timeline_stops_polling_once_the_message_is_settled(browser, console_db):
    mid = _message(console_db)
    browser.sign_in("owner@acme.example")
    resp, body = browser.get(f"/messages/{mid}", headers={"HX-Request": "true"})
    assert resp.status == 286 and "<html" not in body


def test_an_analyst_sees_the_timeline(browser, console_db):
    mid = _message(console_db)
    browser.sign_in("analyst@acme.example")
    resp, _ = browser.get(f"/messages/{mid}")
    assert resp.status == 200
