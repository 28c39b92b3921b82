"""The campaigns list: search, filters, sort, keyset pages, empty states, other tenants."""

from .campaign_fixtures import make


def test_an_empty_account_is_told_how_to_create_the_first_campaign(browser):
    browser.sign_in("owner@acme.example")
    resp, body = browser.get("/campaigns")
    assert resp.status == 200
    assert "No campaign yet" in body and 'href="/campaigns/new"' in body


def test_the_list_searches_by_name_and_filters_by_status(browser, console_db):
    make(console_db, name="March bills")
    make(console_db, name="Spring sale", kind="promotion", start=False)
    browser.sign_in("owner@acme.example")
    _, body = browser.get("/campaigns?q=march")
    assert "March bills" in body and "Spring sale" not in body
    _, body = browser.get("/campaigns?status=draft")
    assert "Spring sale" in body and "March bills" not in body
    _, body = browser.get("/campaigns?q=nothing-like-this")
    assert "No campaign matches" in body


def test_the_list_sorts_by_name_and_pages_without_repeating(browser, console_db):
    names = [f"Campaign {i:02d}" for i in range(30)]
    for n in names:
        make(console_db, name=n)
    browser.sign_in("owner@acme.example")
    _, first = browser.get("/campaigns?sort=name&dir=asc")
    assert first.index("Campaign 00") < first.index("Campaign 01")
    assert "Campaign 25" not in first and "Next page" in first
    import html
    import re
    nxt = html.unescape(re.search(r'href="(\?[^"]*after=[^"]*)"', first).group(1))
    _, second = browser.get("/campaigns" + nxt)
    assert "Campaign 25" in second and "Campaign 29" in second and "Campaign 24" not in second


def test_another_tenants_campaigns_are_not_listed(browser, console_db):
    make(console_db, tenant="other", name="Other's secret plan")
    browser.sign_in("owner@acme.example")
    _, body = browser.get("/campaigns")
    assert "Other&#39;s secret plan" not in body and "secret plan" not in body


def test_an_analyst_sees_the_list_without_the_new_button(browser, console_db):
    make(console_db, name="March bills")
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get("/campaigns")
    assert resp.status == 200 and "March bills" in body
    assert 'href="/campaigns/new"' not in body


def test_a_platform_operator_gets_404_on_the_tenant_page(browser):
    browser.sign_in("ops@herald.example")
    resp, _ = browser.get("/campaigns")
    assert resp.status == 404


def test_the_chinese_ui_translates_the_campaign_pages(browser, console_db):
    make(console_db, name="March bills")
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns")
    browser.post("/profile/language", {"locale": "zh_Hans", "next": "/campaigns"})
    _, body = browser.get("/campaigns")
    assert "新建活动" in body and "按名称或编号搜索" in body and "已排期" in body
    _, body = browser.get("/campaigns/new?kind=survey")
    assert "添加问题" in body and "问题代号" in body
    _, body = browser.get("/campaigns/topics")
    assert "还没有订阅主题" in body
