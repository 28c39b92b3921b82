"""Subscription schedules and topics can be disabled, enabled and removed, by the domain and
through the admin API; a disabled or removed schedule fires no more, and an enabled one does
not make up for the times it was off."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from services.campaigns.domain import campaigns, subscriptions
from services.campaigns.domain.campaigns import CampaignError
from services.console.app import build_app
from services.console.web import Console
from services.core.db.campaigns_models import Subscriber, SubscriptionSchedule, SubscriptionTopic
from services.core.settings import Settings
from services.core.tenancy import add_number, create_tenant, issue_api_key

NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
FIRST = datetime(2026, 6, 16, 8, 0, tzinfo=UTC)  # "0 8 * * *" in UTC after NOW


@pytest.fixture
def db(sqlite_db):
    with sqlite_db.session() as s:
        create_tenant(s, "acme", "Acme", default_sender="10690001")
        add_number(s, "acme", "10690001")
        topic = subscriptions.create_topic(s, "acme", {"name": "news"})
        subscriptions.subscribe(s, topic, "+8613800000001", NOW)
        subscriptions.add_schedule(s, topic, {"cron": "0 8 * * *", "text": "Hello"}, NOW)
    return sqlite_db


def schedule_id(db) -> int:
    with db.session() as s:
        return s.scalar(select(SubscriptionSchedule.id))


def test_a_disabled_schedule_does_not_fire(db):
    with db.session() as s:
        sch = subscriptions.update_schedule(s, subscriptions.get_topic(s, "acme", "news"),
                                            schedule_id(db), {"active": False}, NOW)
        assert sch.active is False
    with db.session() as s:
        assert subscriptions.fire_due(s, FIRST + timedelta(minutes=1)) == []


def test_a_schedule_enabled_again_fires_next_after_now_not_for_the_missed_times(db):
    sid = schedule_id(db)
    with db.session() as s:
        subscriptions.update_schedule(s, subscriptions.get_topic(s, "acme", "news"), sid,
                                      {"active": False}, NOW)
    later = FIRST + timedelta(days=3, hours=1)
    with db.session() as s:
        sch = subscriptions.update_schedule(s, subscriptions.get_topic(s, "acme", "news"), sid,
                                            {"active": True}, later)
        assert sch.next_run_at.replace(tzinfo=UTC) == FIRST + timedelta(days=4)
    with db.session() as s:
        assert subscriptions.fire_due(s, later) == []


def test_a_deleted_schedule_is_gone_and_fires_no_more(db):
    sid = schedule_id(db)
    with db.session() as s:
        assert subscriptions.delete_schedule(s, subscriptions.get_topic(s, "acme", "news"), sid) == sid
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(SubscriptionSchedule)) == 0
        assert subscriptions.fire_due(s, FIRST + timedelta(minutes=1)) == []


@pytest.mark.parametrize("body", [{}, {"active": "no"}, {"active": False, "cron": "* * * * *"}])
def test_a_schedule_update_other_than_active_is_refused_with_what_works(db, body):
    with db.session() as s, pytest.raises(CampaignError, match='expected {"active": true}'):
        subscriptions.update_schedule(s, subscriptions.get_topic(s, "acme", "news"), schedule_id(db),
                                      body, NOW)


def test_a_schedule_of_another_topic_is_not_found(db):
    with db.session() as s:
        other = subscriptions.create_topic(s, "acme", {"name": "sports"})
        with pytest.raises(CampaignError, match="no schedule") as exc:
            subscriptions.delete_schedule(s, other, schedule_id(db))
        assert exc.value.status == 404


def test_a_topic_is_deleted_with_its_schedules_and_subscribers(db):
    with db.session() as s:
        assert subscriptions.delete_topic(s, "acme", "news") == "NEWS"
    with db.session() as s:
        for model in (SubscriptionTopic, SubscriptionSchedule, Subscriber):
            assert s.scalar(select(func.count()).select_from(model)) == 0


def test_a_topic_a_campaign_still_sends_to_is_not_deleted(db):
    with db.session() as s:
        (cid,) = subscriptions.fire_due(s, FIRST)
    with db.session() as s, pytest.raises(CampaignError, match=f"still being sent to by {cid}"):
        subscriptions.delete_topic(s, "acme", "news")
    with db.session() as s:
        campaigns.act(s, "acme", cid, "cancel")
    with db.session() as s:
        assert subscriptions.delete_topic(s, "acme", "news") == "NEWS"


def test_the_admin_api_disables_and_deletes_a_schedule(db):
    with db.session() as s:
        key = issue_api_key(s, "acme")
    sid = schedule_id(db)

    async def drive() -> list[tuple[int, dict]]:
        app: web.Application = build_app(Console(Settings(database_url=db.url), db))
        async with TestClient(TestServer(app)) as c:
            h = {"Authorization": f"Bearer {key}"}
            out = []
            for method, path, body in [
                ("PATCH", f"/v1/topics/news/schedules/{sid}", {"active": False}),
                ("GET", "/v1/topics/news/schedules", None),
                ("PATCH", f"/v1/topics/news/schedules/{sid}", {"cron": "* * * * *"}),
                ("DELETE", f"/v1/topics/news/schedules/{sid}", None),
                ("DELETE", f"/v1/topics/news/schedules/{sid}", None),
                ("DELETE", "/v1/topics/news", None),
            ]:
                r = await c.request(method, path, json=body, headers=h)
                out.append((r.status, await r.json()))
            return out

    (off, listed, bad, gone, again, topic) = asyncio.run(drive())
    assert off[0] == 200 and off[1]["active"] is False
    assert listed[1]["schedules"][0]["active"] is False
    assert bad[0] == 400 and "delete the schedule and add a new one" in bad[1]["error"]
    assert gone == (200, {"deleted": sid})
    assert again[0] == 404
    assert topic == (200, {"deleted": "NEWS"})
