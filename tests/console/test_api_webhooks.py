"""The webhook API, now served by the console: a tenant lists its own deliveries only and
replays its failed ones; a replay is audited as the key that asked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.bridge import webhooks
from services.core import tenancy
from services.core.db.bridge_models import WebhookDelivery
from services.core.db.console_models import AuditEntry


@pytest.fixture
def keys(console_db):
    with console_db.session() as s:
        return {t: tenancy.issue_api_key(s, t, "erp") for t in ("acme", "other")}


@pytest.fixture
def failed_delivery(console, console_db) -> int:
    with console_db.session() as s:
        webhooks.set_endpoint(s, console.settings, "acme", "https://erp.example/hook")
    with console_db.session() as s:
        ep = webhooks.active_endpoint(s, "acme")
        event = {"event_id": "e-1", "event_type": "sms.status", "tenant_id": "acme",
                 "message_id": "m-1", "to": "+8613800000001", "status": "delivered"}
        webhooks.enqueue(s, ep, event, 60)
        d = s.scalar(select(WebhookDelivery))
        d.status, d.attempts, d.last_status_code = "failed", 9, 500
        d.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        return d.id


def get(browser, path: str, key: str | None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    resp = browser._run(browser.client.get(path, headers=headers))
    return resp.status, browser._run(resp.json())


def post(browser, path: str, key: str, body):
    resp = browser._run(browser.client.post(path, json=body, headers={"Authorization": f"Bearer {key}"}))
    return resp.status, browser._run(resp.json())


def test_deliveries_need_a_key(browser):
    assert get(browser, "/v1/webhooks/deliveries", None)[0] == 401


def test_a_tenant_sees_its_own_deliveries_and_not_another_tenants(browser, keys, failed_delivery):
    status, body = get(browser, "/v1/webhooks/deliveries?status=failed", keys["acme"])
    assert status == 200
    assert body["counts"] == {"failed": 1}
    assert [(d["id"], d["last_status_code"]) for d in body["deliveries"]] == [(failed_delivery, 500)]
    assert get(browser, "/v1/webhooks/deliveries", keys["other"])[1] == {"counts": {}, "deliveries": []}


def test_an_unknown_status_filter_is_refused_naming_the_field(browser, keys):
    status, body = get(browser, "/v1/webhooks/deliveries?status=lost", keys["acme"])
    assert status == 400 and body["field"] == "status"


def test_another_tenant_cannot_replay_a_delivery_by_its_id(browser, keys, failed_delivery, console_db):
    assert post(browser, "/v1/webhooks/replay", keys["other"], {"ids": [failed_delivery]}) == \
        (200, {"replayed": 0})
    with console_db.session() as s:
        assert s.get(WebhookDelivery, failed_delivery).status == "failed"
        assert s.scalar(select(AuditEntry.id)) is None


def test_a_replay_queues_the_failed_delivery_again_and_is_audited(browser, keys, failed_delivery,
                                                                  console_db):
    assert post(browser, "/v1/webhooks/replay", keys["acme"], {}) == (200, {"replayed": 1})
    with console_db.session() as s:
        d = s.get(WebhookDelivery, failed_delivery)
        assert (d.status, d.attempts) == ("pending", 0)
        row = s.scalar(select(AuditEntry))
        assert (row.action, row.actor, row.after["replayed"]) == (
            "replay", f"api-key:{keys['acme'].split('_')[1]}", 1)


def test_a_replay_body_other_than_ids_is_refused(browser, keys):
    status, body = post(browser, "/v1/webhooks/replay", keys["acme"], {"ids": "all"})
    assert status == 400 and body["field"] == "ids"
