"""Sender numbers on the keywords page: owners add a number no other tenant holds and remove
their own; a number held by another tenant is refused on the field."""

from services.core import tenancy
from services.core.db.console_models import AuditEntry
from services.core.db.models import SenderNumber


def numbers(db, tenant):
    with db.session() as s:
        return sorted(n.number for n in s.query(SenderNumber).filter_by(tenant_id=tenant))


def test_an_owner_adds_a_free_number_and_sees_it_listed_with_an_audit_entry(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/keywords")
    resp, body = browser.post("/keywords/numbers", {"number": "1069 0001"})
    assert resp.status == 200 and "10690001 is now one of your numbers" in body
    assert "<code>10690001</code>" in body
    assert numbers(console_db, "acme") == ["10690001"]
    with console_db.session() as s:
        e = s.query(AuditEntry).filter_by(object_type="sender_number").one()
        assert (e.action, e.actor, e.after["number"]) == ("create", "owner@acme.example", "10690001")


def test_a_number_another_tenant_holds_is_refused_on_the_field(browser, console_db):
    with console_db.session() as s:
        tenancy.add_number(s, "other", "10690002")
    browser.sign_in("owner@acme.example")
    browser.get("/keywords")
    resp, body = browser.post("/keywords/numbers", {"number": "10690002"})
    assert resp.status == 422
    assert 'id="e-number"' in body and "10690002 belongs to another account" in body
    assert numbers(console_db, "acme") == []


def test_a_malformed_number_is_refused_naming_the_field(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/keywords")
    resp, body = browser.post("/keywords/numbers", {"number": "call me"})
    assert resp.status == 422 and 'id="e-number"' in body and "3 to 15 digits" in body


def test_an_owner_removes_a_number_but_not_one_a_rule_uses(browser, console_db):
    with console_db.session() as s:
        tenancy.add_number(s, "acme", "10690001")
        tenancy.add_number(s, "acme", "10690003")
        tenancy.add_keyword(s, "acme", "INFO", "reply", number="10690003", reply_text="hi")
    browser.sign_in("owner@acme.example")
    browser.get("/keywords")
    resp, body = browser.post("/keywords/numbers/remove", {"number": "10690001"})
    assert resp.status == 200 and "10690001 is no longer one of your numbers" in body
    resp, body = browser.post("/keywords/numbers/remove", {"number": "10690003"})
    assert "Routing rules use 10690003" in body
    assert numbers(console_db, "acme") == ["10690003"]


def test_an_analyst_sees_the_numbers_but_cannot_add_or_remove(browser, console_db):
    with console_db.session() as s:
        tenancy.add_number(s, "acme", "10690001")
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get("/keywords")
    assert resp.status == 200 and "10690001" in body and 'action="/keywords/numbers"' not in body
    resp, _ = browser.post("/keywords/numbers", {"number": "10690009"})
    assert resp.status == 403
    resp, _ = browser.post("/keywords/numbers/remove", {"number": "10690001"})
    assert resp.status == 403
    assert numbers(console_db, "acme") == ["10690001"]


def test_another_tenants_owner_cannot_remove_acmes_number(browser, console_db):
    with console_db.session() as s:
        tenancy.add_number(s, "acme", "10690001")
    browser.sign_in("owner@other.example")
    _, body = browser.get("/keywords")
    assert "<code>10690001</code>" not in body
    resp, _ = browser.post("/keywords/numbers/remove", {"number": "10690001"})
    assert resp.status == 404
    assert numbers(console_db, "acme") == ["10690001"]


def test_a_post_without_the_form_token_is_refused(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/keywords")
    resp, _ = browser.post("/keywords/numbers", {"number": "10690001"}, csrf=False)
    assert resp.status == 403 and numbers(console_db, "acme") == []
