"""The consent log: read-only opt-out state per number with its source; tenants."""

from datetime import UTC, datetime

from services.campaigns.domain import contacts
from services.core.db.models import OptOut


def _seed(db):
    with db.session() as s:
        s.add(OptOut(tenant_id="acme", msisdn="+8613800000001", opted_out=True,
                     source_event_id="5a0c3e1e-8b7e-4f47-b0a7-5cc8a6a1f0c2",
                     updated_at=datetime(2026, 11, 28, 10, 0, tzinfo=UTC)))
        s.add(OptOut(tenant_id="other", msisdn="+8613800000009", opted_out=True,
                     source_event_id="other-tenant-event", updated_at=datetime.now(UTC)))
        rows, _, _ = contacts.upsert(s, "acme", [contacts.validate({"msisdn": "+8613800000001"})])
        return rows[0].id


def test_the_log_lists_the_tenants_opt_outs_with_source_and_time(browser, console_db):
    _seed(console_db)
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get("/contacts/consent")
    assert resp.status == 200
    assert "+8613800000001" in body and "Opted out" in body and "5a0c3e1e-8b7e" in body
    assert "+8613800000009" not in body and "other-tenant-event" not in body
    assert "<form method=\"post\"" not in body.split('<main class="content">')[1]


def test_a_contacts_page_shows_its_consent_state(browser, console_db):
    cid = _seed(console_db)
    browser.sign_in("owner@acme.example")
    _, body = browser.get(f"/contacts/{cid}")
    assert "Opted out" in body and "until it texts START" in body


def test_searching_a_number_without_changes_says_messages_are_allowed(browser, console_db):
    _seed(console_db)
    browser.sign_in("owner@acme.example")
    _, body = browser.get("/contacts/consent?q=%2B8613800000009")
    assert "No consent change for this number" in body


def test_the_log_is_a_tenant_page(browser):
    browser.sign_in("ops@herald.example")
    assert browser.get("/contacts/consent")[0].status == 404
