"""A suspended tenant: its API keys answer 403 naming the suspension (not a generic 401), at
once in the process that suspended it and within the key cache's time to live elsewhere;
resuming lets the same key in again; other tenants' keys are untouched."""

from __future__ import annotations

import pytest

from services.core import tenancy
from services.core.tenancy import KeyRefused, KeyResolver


def test_a_suspended_tenant_s_key_is_refused_with_403_naming_the_suspension(browser, browser_factory, console_db):
    with console_db.session() as s:
        key = tenancy.issue_api_key(s, "acme", "ERP")
        other_key = tenancy.issue_api_key(s, "other", "ERP")
    ops = browser_factory()
    ops.sign_in("ops@herald.example")
    ops.get("/operator")
    ops.post("/operator/tenants/acme/suspend")
    # (this app's key cache has not seen the key: it reads the suspension at once)
    resp = browser._run(browser.client.get("/v1/campaigns", headers={"Authorization": f"Bearer {key}"}))
    assert resp.status == 403
    assert "tenant acme is suspended" in browser._run(resp.json())["error"]
    resp = browser._run(browser.client.get("/v1/campaigns", headers={"Authorization": f"Bearer {other_key}"}))
    assert resp.status == 200


def test_the_resolver_refuses_suspended_keys_by_name_and_lets_them_in_once_resumed(console_db):
    with console_db.session() as s:
        key = tenancy.issue_api_key(s, "acme", "ERP")
        s.get(tenancy.Tenant, "acme").active = False
    keys = KeyResolver(console_db.session, ttl_s=0)
    with pytest.raises(KeyRefused) as refused:
        keys.check({"Authorization": f"Bearer {key}"})
    assert refused.value.status == 403 and "suspended" in refused.value.reason
    with console_db.session() as s:
        assert tenancy.authenticate(s, key) is None  # still no tenant for it
    with console_db.session() as s:
        s.get(tenancy.Tenant, "acme").active = True
    assert keys.check({"X-API-Key": key}).tenant_id == "acme"
    with pytest.raises(KeyRefused) as refused:
        keys.check({"X-API-Key": "hk_0000000000_" + "x" * 40})
    assert refused.value.status == 401
