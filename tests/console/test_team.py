"""The team page: owners add people with a role, change roles, unlock and deactivate."""

import re

from services.core.db.console_models import AuditEntry, ConsoleUser


def test_an_owner_adds_an_operator_who_can_sign_in_with_the_password_shown_once(browser, browser_factory, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/team")
    resp, body = browser.post("/team", {"email": "Clerk@Acme.example", "name": "Clerk", "role": "operator"})
    assert resp.status == 200
    password = re.search(r'id="temporary-password">([^<]+)<', body).group(1)
    _, again = browser.get("/team")
    assert password not in again  # shown once
    clerk = browser_factory()
    resp, body = clerk.sign_in("clerk@acme.example", password)
    assert resp.url.path == "/" and "Clerk" in body
    with console_db.session() as s:
        u = s.query(ConsoleUser).filter_by(email="clerk@acme.example").one()
        assert (u.tenant_id, u.role) == ("acme", "operator")
        entry = s.query(AuditEntry).filter_by(object_type="user", action="create").one()
        assert entry.actor == "owner@acme.example" and "password" not in (entry.after or {})


def test_a_bad_email_is_named_next_to_its_field(browser):
    browser.sign_in("owner@acme.example")
    browser.get("/team")
    resp, body = browser.post("/team", {"email": "not-an-email", "name": "X", "role": "operator"})
    assert resp.status == 422
    assert 'id="e-email"' in body and "Enter an email address" in body


def test_an_analyst_cannot_add_people(browser, console_db):
    browser.sign_in("analyst@acme.example")
    browser.get("/team")
    resp, _ = browser.post("/team", {"email": "x@acme.example", "name": "X", "role": "owner"})
    assert resp.status == 403
    with console_db.session() as s:
        assert s.query(ConsoleUser).filter_by(email="x@acme.example").count() == 0


def test_an_owner_of_another_tenant_gets_404_for_acme_users(browser, console_db):
    with console_db.session() as s:
        analyst = s.query(ConsoleUser).filter_by(email="analyst@acme.example").one().id
    browser.sign_in("owner@other.example")
    browser.get("/team")
    for action in ("deactivate", "unlock", "reset-password"):
        resp, _ = browser.post(f"/team/{analyst}/{action}")
        assert resp.status == 404
    resp, _ = browser.post(f"/team/{analyst}/role", {"role": "owner"})
    assert resp.status == 404
    with console_db.session() as s:
        u = s.query(ConsoleUser).filter_by(email="analyst@acme.example").one()
        assert (u.active, u.role) == (True, "analyst")


def test_a_deactivated_user_is_signed_out_and_cannot_sign_in(browser, browser_factory, console_db):
    analyst = browser_factory()
    analyst.sign_in("analyst@acme.example")
    with console_db.session() as s:
        uid = s.query(ConsoleUser).filter_by(email="analyst@acme.example").one().id
    browser.sign_in("owner@acme.example")
    browser.get("/team")
    browser.post(f"/team/{uid}/deactivate")
    resp, _ = analyst.get("/")
    assert resp.url.path == "/login"
    resp, _ = analyst.sign_in("analyst@acme.example")
    assert resp.status == 401
