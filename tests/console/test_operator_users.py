"""The operator's users and audit tabs: the users of every tenant (tenant, role, last sign-in,
locked; no hashes) and the platform audit log filtered by tenant; tenant users get 404."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.console.domain import audit
from services.core.db.console_models import ConsoleUser


def test_the_users_of_every_tenant_are_listed_with_role_last_sign_in_and_lock(browser, console_db):
    with console_db.session() as s:
        u = s.query(ConsoleUser).filter_by(email="owner@other.example").one()
        u.locked_until = datetime.now(UTC) + timedelta(minutes=10)
    browser.sign_in("ops@herald.example")
    resp, body = browser.get("/operator/users")
    assert resp.status == 200
    for email in ("owner@acme.example", "analyst@acme.example", "owner@other.example", "ops@herald.example"):
        assert email in body
    assert "locked" in body and "never" in body and "argon2" not in body
    _, body = browser.get("/operator/users?tenant=other")
    assert "owner@other.example" in body and "owner@acme.example" not in body
    _, body = browser.get("/operator/users?tenant=-")
    assert "ops@herald.example" in body and "owner@acme.example" not in body


def test_the_platform_audit_log_is_filtered_by_tenant(browser, console_db):
    with console_db.session() as s:
        audit.record(s, tenant_id=None, actor="ops@herald.example", action="suspend", object_type="tenant",
                     object_id="other")
        audit.record(s, tenant_id="acme", actor="owner@acme.example", action="create", object_type="list",
                     object_id="vip-acme")
        audit.record(s, tenant_id="other", actor="owner@other.example", action="create", object_type="list",
                     object_id="vip-other")
    browser.sign_in("ops@herald.example")
    _, body = browser.get("/operator/audit")
    assert "suspend" in body and "vip-acme" not in body
    _, body = browser.get("/operator/audit?tenant=acme")
    assert "vip-acme" in body and "vip-other" not in body and "suspend" not in body
    assert browser.get("/operator/audit?tenant=nobody")[0].status == 404


def test_tenant_users_get_404(browser_factory):
    for email in ("owner@acme.example", "owner@other.example"):
        b = browser_factory()
        b.sign_in(email)
        assert b.get("/operator/users")[0].status == 404
        assert b.get("/operator/audit?tenant=acme")[0].status == 404
