"""Journeys through sign-in, the dashboard in both languages, and the account lockout."""

from __future__ import annotations

from datetime import UTC, datetime

from playwright.sync_api import expect

from .conftest import shot, sign_in


def test_an_owner_signs_in_and_sees_the_dashboard_with_live_figures(env, page):
    t = env.tenant("bdash")
    page.goto(f"{env.url}/")
    expect(page).to_have_url(f"{env.url}/login?next=/")
    shot(page, "sign-in")
    sign_in(page, env, t.email)
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator(".stat-label").first).to_have_text("Sent")
    expect(page.locator("#figures")).to_have_attribute("hx-trigger", "every 5s")
    shot(page, "dashboard")


def test_the_chinese_ui_renders_the_dashboard(env, page):
    t = env.tenant("bzh")
    sign_in(page, env, t.email)
    page.select_option("select[name=locale]", "zh_Hans")
    expect(page.locator("h1")).to_have_text("仪表盘")
    expect(page.locator(".sidebar")).to_contain_text("联系人")
    expect(page.locator(".stat-label").nth(3)).to_have_text("送达率")
    shot(page, "dashboard-zh")
    # The choice is the user's: it holds on the next page and the next sign-in.
    page.goto(f"{env.url}/audit")
    expect(page.locator("h1")).to_have_text("审计日志")


def test_five_wrong_passwords_lock_the_account(env, page):
    t = env.tenant("block")
    for _ in range(5):
        sign_in(page, env, t.email, "wrong-password-1")
    expect(page.locator(".flash-error")).to_contain_text("locked")
    sign_in(page, env, t.email)  # the right password is refused while locked
    expect(page.locator(".flash-error")).to_contain_text("locked")
    expect(page).to_have_url(f"{env.url}/login")
    shot(page, "sign-in-locked")


def chart_axes(page) -> list[dict]:
    """Per chart on the dashboard: its bars, their titles, and each axis label's bounding box
    (Playwright's) and whether the label's text is cut short."""
    out = []
    cards = page.locator("#figures .card", has=page.locator("svg.chart"))
    for c in range(cards.count()):
        card = cards.nth(c)
        labels = card.locator(".axis")
        out.append({
            "bars": card.locator("svg.chart rect").count(),
            "titles": card.locator("svg.chart rect title").count(),
            "boxes": [labels.nth(i).bounding_box() for i in range(labels.count())],
            "texts": labels.all_text_contents(),
            "cut": labels.evaluate_all("els => els.filter(e => e.scrollWidth > e.clientWidth).length"),
        })
    return out


def hours_today() -> set[int]:
    """Bars the today chart may have: one per hour so far in the tenant's zone (UTC here), read
    around the page load so that an hour turning over in between is no failure."""
    return {datetime.now(UTC).hour + 1}


def assert_labels_apart(axes: list[dict], bars: set[int], where: str) -> None:
    assert len(axes) == 2, where  # sent and delivered
    for axis in axes:
        assert axis["bars"] == axis["titles"] and axis["bars"] in bars, (where, axis)
        boxes = sorted(axis["boxes"], key=lambda b: b["x"])
        assert boxes, (where, axis)
        for left, right in zip(boxes, boxes[1:], strict=False):
            assert left["x"] + left["width"] <= right["x"], (where, axis["texts"], left, right)
        assert axis["cut"] == 0, (where, axis["texts"])


def test_the_chart_labels_stay_apart_in_both_languages_and_at_the_narrowest_layout(env, page):
    t = env.tenant("baxis")
    for i in range(3):  # a bar to see in the screenshot, in the hour now
        r = env.platform.send(t.key, to=f"+861381234{i:04d}", text="Hello", request_id=f"axis-{i}")
        assert r.status_code in (200, 202), r.text
    sign_in(page, env, t.email)
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator(".stat-value").first).to_have_text("3", timeout=60000)
    for locale, title in (("en", "Dashboard"), ("zh_Hans", "仪表盘")):
        page.set_viewport_size({"width": 1366, "height": 860})
        page.select_option("select[name=locale]", locale)
        expect(page.locator("h1")).to_have_text(title)
        hours = hours_today()
        page.goto(f"{env.url}/?period=today")
        assert_labels_apart(chart_axes(page), hours | hours_today(), f"{locale} today")
        page.goto(f"{env.url}/?period=30d")
        assert_labels_apart(chart_axes(page), {31}, f"{locale} 30 days")
        # The narrowest the cards get while they sit side by side (the grid breaks at 900px).
        page.set_viewport_size({"width": 901, "height": 860})
        assert_labels_apart(chart_axes(page), {31}, f"{locale} 30 days at 901px")
        shot(page, f"dashboard-{locale}-30-days-901px")
        hours = hours_today()
        page.goto(f"{env.url}/?period=today")
        assert_labels_apart(chart_axes(page), hours | hours_today(), f"{locale} today at 901px")
    page.set_viewport_size({"width": 1366, "height": 860})
    page.goto(f"{env.url}/?period=today")
    shot(page, "dashboard-zh-hour-labels")
