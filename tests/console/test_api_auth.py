"""The /v1 admin API's key check: one resolver for every API, keys refused when missing,
unknown or revoked (within the cache's time to live), and no cookie or form token involved."""

from __future__ import annotations

from services.console.api import RESOLVER_KEY
from services.core import tenancy


def key_for(db, tenant: str = "acme") -> str:
    with db.session() as s:
        return tenancy.issue_api_key(s, tenant, "ERP")


def test_a_request_without_a_key_is_refused_with_the_error_shape(browser):
    resp = browser._run(browser.client.get("/v1/campaigns"))
    assert resp.status == 401
    assert browser._run(resp.json()) == {"error": "missing API key (Authorization: Bearer <key>)"}


def test_an_unknown_or_malformed_key_is_refused(browser):
    for key in ("hk_0000000000_" + "x" * 40, "not-a-key"):
        resp = browser._run(browser.client.get("/v1/campaigns",
                                               headers={"Authorization": f"Bearer {key}"}))
        assert resp.status == 401
        assert browser._run(resp.json()) == {"error": "invalid API key"}


def test_a_key_is_accepted_as_bearer_or_x_api_key_without_any_csrf_token(browser, console_db):
    key = key_for(console_db)
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        resp = browser._run(browser.client.post("/v1/lists", json={"name": "vip"}, headers=headers))
        assert resp.status == 201, browser._run(resp.text())


def test_a_signed_in_console_session_is_not_an_api_key(browser):
    browser.sign_in("owner@acme.example")
    resp = browser._run(browser.client.get("/v1/campaigns"))
    assert resp.status == 401


def test_a_revoked_key_is_refused_once_the_cache_lets_go(browser, console_db):
    key = key_for(console_db)
    h = {"Authorization": f"Bearer {key}"}
    assert browser._run(browser.client.get("/v1/lists", headers=h)).status == 200
    with console_db.session() as s:
        tenancy.revoke_api_key(s, key.split("_")[1])
    browser.client.server.app[RESOLVER_KEY].forget()  # what ttl_s seconds do
    assert browser._run(browser.client.get("/v1/lists", headers=h)).status == 401


def test_the_resolver_caches_for_its_ttl_then_sees_the_revocation(console_db):
    key = key_for(console_db)
    now = [100.0]
    resolver = tenancy.KeyResolver(console_db.session, ttl_s=5, clock=lambda: now[0])
    who = resolver.resolve(key)
    assert who == tenancy.KeyIdentity("acme", key.split("_")[1])
    assert who.actor == f"api-key:{key.split('_')[1]}"
    with console_db.session() as s:
        tenancy.revoke_api_key(s, who.prefix)
    now[0] += 4.9
    assert resolver.resolve(key) == who
    now[0] += 0.2
    assert resolver.resolve(key) is None


def test_a_key_of_an_inactive_tenant_is_refused(console_db):
    key = key_for(console_db)
    with console_db.session() as s:
        from services.core.db.models import Tenant
        s.get(Tenant, "acme").active = False
    assert tenancy.KeyResolver(console_db.session).resolve(key) is None


def test_a_key_with_the_right_prefix_and_a_wrong_secret_is_refused(console_db):
    key = key_for(console_db)
    forged = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    assert tenancy.KeyResolver(console_db.session).resolve(forged) is None
