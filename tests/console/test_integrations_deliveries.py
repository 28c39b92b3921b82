"""The webhook delivery log: response codes and attempts, status filter, keyset pages, live
refresh, and replay of failed deliveries (one or all); other tenants' deliveries are 404."""

from datetime import UTC, datetime, timedelta

from services.bridge import webhooks
from services.core.db.bridge_models import WebhookDelivery, WebhookEndpoint
from services.core.db.console_models import AuditEntry


def deliveries(console, db, tenant="acme", n=3, failed=(1,)):
    """n deliveries; those at the indexes in ``failed`` failed with HTTP 500 after 7 attempts."""
    now = datetime.now(UTC)
    with db.session() as s:
        webhooks.set_endpoint(s, console.settings, tenant, f"https://{tenant}.example/h")
        ep = s.query(WebhookEndpoint).filter_by(tenant_id=tenant).one()
        ids = []
        for i in range(n):
            webhooks.enqueue(s, ep, {"event_id": f"{tenant}-e{i}", "event_type": "sms.inbound",
                                     "from": f"+861380000{i:04d}"}, 86400, now=now)
            d = s.query(WebhookDelivery).filter_by(event_id=f"{tenant}-e{i}").one()
            if i in failed:
                d.status, d.attempts, d.last_status_code = "failed", 7, 500
                d.last_error = "HTTP 500: boom"
                d.expires_at = now - timedelta(seconds=1)
            ids.append(d.id)
        return ids


def status(db, delivery_id):
    with db.session() as s:
        return s.get(WebhookDelivery, delivery_id).status


def test_the_log_shows_each_deliverys_answer_and_attempts(browser, console, console_db):
    deliveries(console, console_db)
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get("/integrations/deliveries")
    assert resp.status == 200
    assert "HTTP 500" in body and "boom" in body and "+8613800000001" in body
    assert 'hx-trigger="every 3s"' in body
    resp, rows = browser.get("/integrations/deliveries/rows?status=failed")
    assert resp.status == 200 and "<html" not in rows
    assert "+8613800000001" in rows and "+8613800000000" not in rows


def test_the_log_pages_by_keyset(browser, console, console_db):
    ids = deliveries(console, console_db, n=55, failed=())
    browser.sign_in("owner@acme.example")
    _, body = browser.get("/integrations/deliveries")
    assert f"before={ids[5]}" in body  # newest 50 on the first page: ids[54]..ids[5]
    _, second = browser.get(f"/integrations/deliveries?before={ids[5]}")
    assert "+8613800000004" in second and "+8613800000054" not in second


def test_an_owner_replays_one_failed_delivery_and_it_is_audited(browser, console, console_db):
    ids = deliveries(console, console_db)
    browser.sign_in("owner@acme.example")
    browser.get("/integrations/deliveries")
    resp, body = browser.post(f"/integrations/deliveries/{ids[1]}/replay")
    assert resp.url.path == "/integrations/deliveries" and f"Delivery {ids[1]} is queued again" in body
    assert status(console_db, ids[1]) == "pending"
    _, body = browser.post(f"/integrations/deliveries/{ids[0]}/replay")
    assert "only failed deliveries can be replayed" in body
    with console_db.session() as s:
        assert s.query(AuditEntry).filter_by(object_type="webhook_deliveries").count() == 1


def test_replay_all_queues_every_failed_delivery(browser, console, console_db):
    ids = deliveries(console, console_db, n=4, failed=(0, 2))
    browser.sign_in("owner@acme.example")
    browser.get("/integrations/deliveries")
    _, body = browser.post("/integrations/deliveries/replay")
    assert "2 failed deliveries are queued again" in body
    assert [status(console_db, i) for i in ids] == ["pending"] * 4


def test_an_analyst_cannot_replay(browser, console, console_db):
    ids = deliveries(console, console_db)
    browser.sign_in("analyst@acme.example")
    _, body = browser.get("/integrations/deliveries")
    assert "/replay" not in body
    resp, _ = browser.post(f"/integrations/deliveries/{ids[1]}/replay")
    assert resp.status == 403 and status(console_db, ids[1]) == "failed"


def test_another_tenant_gets_404_for_acmes_delivery_and_never_sees_it(browser, console, console_db):
    ids = deliveries(console, console_db)
    deliveries(console, console_db, tenant="other", n=1, failed=())
    browser.sign_in("owner@other.example")
    _, body = browser.get("/integrations/deliveries")
    assert "+8613800000001" not in body and "+8613800000000" in body
    resp, _ = browser.post(f"/integrations/deliveries/{ids[1]}/replay")
    assert resp.status == 404 and status(console_db, ids[1]) == "failed"
    browser.post("/integrations/deliveries/replay")
    assert status(console_db, ids[1]) == "failed"
