"""Subscription topics with subscriber counts, and their schedules: add, turn off and on,
delete; topics deleted; roles and other tenants."""

from datetime import UTC, datetime

from services.campaigns.domain import subscriptions
from services.core.db.campaigns_models import SubscriptionSchedule, SubscriptionTopic
from services.core.db.console_models import AuditEntry


def _topic(db, tenant="acme", name="NEWS", subscribers=2):
    with db.session() as s:
        t = subscriptions.create_topic(s, tenant, {"name": name})
        for i in range(subscribers):
            subscriptions.subscribe(s, t, f"+1555000000{i}", datetime.now(UTC))
        return t.id


def _schedules(db):
    with db.session() as s:
        return [(x.cron, x.active) for x in s.query(SubscriptionSchedule).all()]


def test_an_owner_creates_a_topic_and_sees_how_contacts_join(browser, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/topics")
    resp, body = browser.post("/campaigns/topics", {"topic": "news", "description": "Daily news"})
    assert resp.status == 200 and "SUB NEWS" in body
    with console_db.session() as s:
        assert s.query(SubscriptionTopic).filter_by(tenant_id="acme", name="NEWS").count() == 1
        assert s.query(AuditEntry).filter_by(object_type="topic", action="create").count() == 1
    resp, body = browser.post("/campaigns/topics", {"topic": "news"})
    assert resp.status == 422 and 'id="e-topic"' in body and "exists" in body


def test_topics_show_their_subscriber_counts(browser, console_db):
    _topic(console_db, subscribers=3)
    browser.sign_in("analyst@acme.example")
    _, body = browser.get("/campaigns/topics")
    assert "3 subscribers" in body


def test_a_schedule_is_added_turned_off_and_on_and_deleted(browser, console_db):
    _topic(console_db)
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/topics")
    resp, body = browser.post("/campaigns/topics/NEWS/schedules", {
        "cron": "0 8 * * 1-5", "timezone": "Asia/Shanghai", "send": "text", "text": "Good morning"})
    assert resp.status == 200 and "The schedule is added to NEWS." in body
    assert _schedules(console_db) == [("0 8 * * 1-5", True)]
    with console_db.session() as s:
        sid = s.query(SubscriptionSchedule).one().id
    browser.post(f"/campaigns/topics/NEWS/schedules/{sid}/disable")
    assert _schedules(console_db) == [("0 8 * * 1-5", False)]
    browser.post(f"/campaigns/topics/NEWS/schedules/{sid}/enable")
    assert _schedules(console_db) == [("0 8 * * 1-5", True)]
    resp, body = browser.post(f"/campaigns/topics/NEWS/schedules/{sid}/delete")
    assert "The schedule is deleted." in body
    assert _schedules(console_db) == []
    with console_db.session() as s:
        actions = [e.action for e in s.query(AuditEntry).filter_by(object_type="schedule")
                   .order_by(AuditEntry.id)]
        assert actions == ["create", "disable", "enable", "delete"]


def test_a_bad_cron_line_is_shown_on_its_field(browser, console_db):
    _topic(console_db)
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/topics")
    resp, body = browser.post("/campaigns/topics/NEWS/schedules", {
        "cron": "every morning", "timezone": "UTC", "send": "text", "text": "Hi"})
    assert resp.status == 422 and 'id="e-cron"' in body
    assert _schedules(console_db) == []


def test_a_topic_is_deleted_with_its_schedules(browser, console_db):
    _topic(console_db)
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns/topics")
    browser.post("/campaigns/topics/NEWS/schedules", {"cron": "0 8 * * *", "send": "text",
                                                      "text": "Hi"})
    resp, body = browser.post("/campaigns/topics/NEWS/delete")
    assert "The topic NEWS is deleted." in body
    with console_db.session() as s:
        assert s.query(SubscriptionTopic).count() == 0 and s.query(SubscriptionSchedule).count() == 0


def test_an_analyst_cannot_change_topics_or_schedules(browser, console_db):
    _topic(console_db)
    browser.sign_in("analyst@acme.example")
    browser.get("/campaigns/topics")
    for path, data in (("/campaigns/topics", {"topic": "X"}),
                       ("/campaigns/topics/NEWS/schedules", {"cron": "0 8 * * *", "text": "Hi",
                                                             "send": "text"}),
                       ("/campaigns/topics/NEWS/delete", {})):
        resp, _ = browser.post(path, data)
        assert resp.status == 403
    assert _schedules(console_db) == []


def test_another_tenants_topic_is_404_whatever_the_url(browser, console_db):
    _topic(console_db, tenant="other", name="SECRET")
    with console_db.session() as s:
        t = s.query(SubscriptionTopic).filter_by(name="SECRET").one()
        x = subscriptions.add_schedule(s, t, {"cron": "0 8 * * *", "text": "x"}, datetime.now(UTC))
        sid = x.id
    browser.sign_in("owner@acme.example")
    _, body = browser.get("/campaigns/topics")
    assert "SECRET" not in body
    for path in ("/campaigns/topics/SECRET/schedules", f"/campaigns/topics/SECRET/schedules/{sid}/disable",
                 f"/campaigns/topics/SECRET/schedules/{sid}/delete", "/campaigns/topics/SECRET/delete"):
        resp, _ = browser.post(path, {"cron": "0 9 * * *", "send": "text", "text": "y"})
        assert resp.status == 404, path
    assert _schedules(console_db) == [("0 8 * * *", True)]
