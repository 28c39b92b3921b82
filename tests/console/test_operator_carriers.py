"""The operator's carriers page: the carriers file's configuration with no secret in the page,
egress's live state, rate limits, submissions and errors per minute from the metric windows;
tenant users get 404."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.core import kafka_admin as ka
from services.core.db.bridge_models import MetricWindow


@pytest.fixture
def carriers(console, tmp_path, monkeypatch):
    f = tmp_path / "carriers.json"
    f.write_text(json.dumps({"carriers": [
        {"name": "cmcc", "kind": "http", "submit_url": "https://user:pw123@sms.example/submit?sig=abc",
         "api_token": "TOKEN-SECRET-1", "webhook_secret": "HOOK-SECRET-2", "prefixes": ["+86"],
         "rate_per_second": 250, "priority": 10},
        {"name": "smsc", "kind": "smpp", "prefixes": ["+1"],
         "options": {"host": "smsc.example", "port": 2775, "system_id": "herald", "password": "SMPP-PW-3"}}]}))
    console.settings.carriers_file = str(f)

    async def healths(settings, timeout=1.5, urls=None):
        return [ka.Health("egress", "u", "degraded", {"checks": {"carriers": {
            "ok": False, "smsc": {"ok": False, "binds": 0, "state": "reconnecting"}}}})]
    monkeypatch.setattr(ka, "healths", healths)
    return f


def test_configuration_live_state_and_minutes_are_shown_without_secrets(browser, console_db, carriers):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with console_db.session() as s:
        for tenant, sent, failed in (("acme", 40, 2), ("other", 2, 1)):
            s.add(MetricWindow(granularity="minute", window_start=now, window_end=now + timedelta(minutes=1),
                               tenant_id=tenant, carrier="cmcc", sent=sent, failed=failed))
    browser.sign_in("ops@herald.example")
    resp, body = browser.get("/operator/carriers")
    assert resp.status == 200 and 'hx-get="/operator/carriers/live"' in body
    for secret in ("pw123", "TOKEN-SECRET-1", "HOOK-SECRET-2", "SMPP-PW-3", "sig=abc"):
        assert secret not in body
    assert "https://sms.example/submit" in body and "smsc.example:2775" in body and "+86" in body
    assert "250" in body and "not bound" in body and "reconnecting" in body
    assert 'class="sent-last">42<' in body and 'class="failed-last">3<' in body


def test_a_carriers_file_that_cannot_be_read_is_named(browser, console, carriers):
    carriers.write_text("{not json")
    browser.sign_in("ops@herald.example")
    resp, body = browser.get("/operator/carriers")
    assert resp.status == 200 and "The carriers file could not be read" in body


def test_tenant_users_get_404(browser_factory, carriers):
    for email in ("owner@acme.example", "owner@other.example"):
        b = browser_factory()
        b.sign_in(email)
        assert b.get("/operator/carriers")[0].status == 404
        assert b.get("/operator/carriers/live")[0].status == 404
