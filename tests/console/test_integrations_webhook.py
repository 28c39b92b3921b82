"""The webhook endpoint on the integrations page: an owner adds it (secret shown once), changes
its address (same secret), rotates the secret (shown once), turns it off and on; analysts and
other tenants cannot."""

import re

from services.bridge import webhooks
from services.core.db.bridge_models import WebhookEndpoint, WebhookSecrets
from services.core.db.console_models import AuditEntry

SECRET = re.compile(r'id="new-secret">(whsec_[^<]+)<')


def endpoint(db, tenant="acme"):
    with db.session() as s:
        return s.query(WebhookEndpoint).filter_by(tenant_id=tenant).one_or_none()


def opened(console, ep) -> str:
    return WebhookSecrets(console.settings.secret_key).open(ep.secret_sealed)


def test_an_owner_adds_a_webhook_and_its_secret_is_shown_once_and_signs(browser, console, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/integrations")
    resp, body = browser.post("/integrations/webhook", {"url": "https://erp.acme.example/hook"})
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    secret = SECRET.search(body).group(1)
    ep = endpoint(console_db)
    assert ep.url == "https://erp.acme.example/hook" and ep.active and opened(console, ep) == secret
    _, again = browser.get("/integrations")
    assert secret not in again and "https://erp.acme.example/hook" in again
    with console_db.session() as s:
        e = s.query(AuditEntry).filter_by(object_type="webhook_endpoint").one()
        assert e.action == "create" and secret not in str(e.after)


def test_a_bad_address_is_named_on_its_field(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/integrations")
    resp, body = browser.post("/integrations/webhook", {"url": "erp.acme.example"})
    assert resp.status == 422 and 'id="e-url"' in body and "https://" in body
    assert endpoint(console_db) is None


def test_changing_the_address_keeps_the_secret_and_rotating_replaces_it(browser, console, console_db):
    with console_db.session() as s:
        first = webhooks.set_endpoint(s, console.settings, "acme", "https://old.example/h")
    browser.sign_in("owner@acme.example")
    browser.get("/integrations")
    resp, body = browser.post("/integrations/webhook", {"url": "https://new.example/h"})
    assert "secret stays the same" in body and not SECRET.search(body)
    assert opened(console, endpoint(console_db)) == first
    resp, body = browser.post("/integrations/webhook/rotate")
    second = SECRET.search(body).group(1)
    assert second != first and opened(console, endpoint(console_db)) == second


def test_an_owner_turns_the_webhook_off_and_on_again_with_the_same_secret(browser, console, console_db):
    with console_db.session() as s:
        secret = webhooks.set_endpoint(s, console.settings, "acme", "https://erp.example/h")
    browser.sign_in("owner@acme.example")
    browser.get("/integrations")
    _, body = browser.post("/integrations/webhook/disable")
    assert "Webhooks are off" in body and not endpoint(console_db).active
    _, body = browser.post("/integrations/webhook/enable")
    ep = endpoint(console_db)
    assert "Webhooks are on again" in body and ep.active and opened(console, ep) == secret
    with console_db.session() as s:
        actions = [e.action for e in s.query(AuditEntry).filter_by(object_type="webhook_endpoint")]
        assert actions == ["disable", "enable"]


def test_an_analyst_sees_the_webhook_but_cannot_change_it(browser, console, console_db):
    with console_db.session() as s:
        webhooks.set_endpoint(s, console.settings, "acme", "https://erp.example/h")
    browser.sign_in("analyst@acme.example")
    _, body = browser.get("/integrations")
    assert "https://erp.example/h" in body and "/integrations/webhook/rotate" not in body
    for path in ("/integrations/webhook/rotate", "/integrations/webhook/disable"):
        resp, _ = browser.post(path)
        assert resp.status == 403
    resp, _ = browser.post("/integrations/webhook", {"url": "https://evil.example/h"})
    assert resp.status == 403 and endpoint(console_db).url == "https://erp.example/h"


def test_another_tenant_never_sees_or_touches_acmes_webhook(browser, console, console_db):
    with console_db.session() as s:
        webhooks.set_endpoint(s, console.settings, "acme", "https://erp.acme.example/h")
    browser.sign_in("owner@other.example")
    _, body = browser.get("/integrations")
    assert "erp.acme.example" not in body and "No webhook yet" in body
    for path in ("/integrations/webhook/rotate", "/integrations/webhook/disable"):
        resp, _ = browser.post(path)
        assert resp.status == 404
    ep = endpoint(console_db)
    assert ep.active and endpoint(console_db, "other") is None
