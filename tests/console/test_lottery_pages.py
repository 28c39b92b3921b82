"""The lottery list, a lottery's page with its live stock, and a new lottery whose odds must add
up (refused naming the field, nothing stored)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from services.core.db.console_models import AuditEntry
from services.core.db.schemes import Lottery, PrizeTier

from .scheme_fixtures import make_scheme


@pytest.fixture
def scheme(console_db):
    return make_scheme(console_db)


def test_the_list_shows_each_lottery_with_its_stock_and_an_empty_state_before_any(browser, console_db):
    browser.sign_in("owner@acme.example")
    _, body = browser.get("/lottery")
    assert "No lottery yet" in body and 'href="/lottery/new"' in body


def test_a_lottery_page_shows_tiers_caps_and_a_live_stock_partial(browser, scheme):
    browser.sign_in("analyst@acme.example")
    _, body = browser.get("/lottery")
    assert "Spring" in body and "low stock" in body  # no cards uploaded yet
    resp, body = browser.get(f"/lottery/{scheme['lottery']}")
    assert resp.status == 200 and "50 yuan card" in body
    assert f'hx-get="/lottery/{scheme["lottery"]}/stock"' in body and 'hx-trigger="every 3s"' in body
    assert "Upload cards" not in body  # analysts see, never change
    resp, body = browser.get(f"/lottery/{scheme['lottery']}/stock")
    assert resp.status == 200 and "cards-left" in body


def test_an_owner_creates_a_lottery_with_tiers_and_it_is_audited(browser, scheme, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/lottery/new")
    resp, body = browser.post("/lottery/new", {
        "name": "Summer", "brand": str(scheme["brand"]), "product": str(scheme["product"]), "budget": "1000",
        "tiers-0-name": "Phone card", "tiers-0-odds": "5%", "tiers-0-cap": "20", "tiers-0-daily_cap": "2",
        "tiers-0-value": "50", "tiers-1-name": "Small card", "tiers-1-odds": "1/10", "tiers-1-cap": "100"})
    assert resp.status == 200 and "The lottery is open" in body
    with console_db.session() as s:
        lot = s.scalar(select(Lottery).where(Lottery.name == "Summer"))
        tiers = s.scalars(select(PrizeTier).where(PrizeTier.lottery_id == lot.id).order_by(PrizeTier.id)).all()
        assert [(t.odds, t.cap, t.daily_cap, t.value_cents) for t in tiers] == [(0.05, 20, 2, 5000),
                                                                               (0.1, 100, None, 0)]
        assert lot.budget_cents == 100000
        assert s.scalar(select(AuditEntry).where(AuditEntry.object_type == "lottery")).actor


def test_odds_that_add_up_to_more_than_one_are_refused_naming_the_field_and_nothing_is_stored(
        browser, scheme, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/lottery/new")
    resp, body = browser.post("/lottery/new", {
        "name": "Greedy", "brand": str(scheme["brand"]),
        "tiers-0-name": "A", "tiers-0-odds": "0.7", "tiers-0-cap": "1",
        "tiers-1-name": "B", "tiers-1-odds": "0.6", "tiers-1-cap": "1"})
    assert resp.status == 422
    assert "add up to 1.3, more than 1" in body and 'name="tiers-1-odds"' in body
    assert 'aria-invalid="true"' in body
    resp, body = browser.post("/lottery/new", {
        "name": "Odd", "brand": str(scheme["brand"]), "tiers-0-name": "A", "tiers-0-odds": "abc",
        "tiers-0-cap": "1"})
    assert resp.status == 422 and "Enter odds such as 0.05" in body
    with console_db.session() as s:
        assert s.scalar(select(func.count()).select_from(Lottery)) == 1


def test_an_analyst_cannot_create_a_lottery(browser, scheme):
    browser.sign_in("analyst@acme.example")
    resp, _ = browser.get("/lottery/new")
    assert resp.status == 403
    resp, _ = browser.post("/lottery/new", {"name": "X", "brand": str(scheme["brand"])})
    assert resp.status == 403


def test_another_tenant_gets_404_for_acmes_lottery_whatever_the_url(browser, scheme):
    browser.sign_in("owner@other.example")
    lot, tier = scheme["lottery"], scheme["tiers"][0]
    for path in (f"/lottery/{lot}", f"/lottery/{lot}/stock", f"/lottery/{lot}/draws"):
        resp, _ = browser.get(path)
        assert resp.status == 404, path
    _, body = browser.get("/lottery")
    assert "Spring" not in body
    resp, _ = browser.post(f"/lottery/{lot}/tiers/{tier}", {"name": "x", "odds": "0.1", "cap": "1"})
    assert resp.status == 404
    resp, _ = browser.post(f"/lottery/{lot}/active", {"active": "0"})
    assert resp.status == 404


def test_a_platform_operator_gets_404_on_the_lottery_pages(browser, scheme):
    browser.sign_in("ops@herald.example")
    resp, _ = browser.get("/lottery")
    assert resp.status == 404


def test_the_lottery_points_and_club_pages_speak_chinese(browser, scheme):
    browser.sign_in("owner@acme.example")
    browser.get("/lottery")
    browser.post("/profile/language", {"locale": "zh_Hans", "next": "/lottery"})
    _, body = browser.get(f"/lottery/{scheme['lottery']}")
    assert "抽奖与库存" in body and "库存不足" in body and "会员俱乐部" in body
    browser.get("/lottery/new")
    resp, body = browser.post("/lottery/new", {
        "name": "贪心", "brand": str(scheme["brand"]), "tiers-0-name": "A", "tiers-0-odds": "0.7",
        "tiers-0-cap": "1", "tiers-1-name": "B", "tiers-1-odds": "0.6", "tiers-1-cap": "1"})
    assert resp.status == 422 and "各奖项概率之和为 1.3，超过了1" in body
    _, body = browser.get("/points")
    assert "积分门槛" in body and "礼品目录" in body
    _, body = browser.get("/club")
    assert "还没有俱乐部" in body
