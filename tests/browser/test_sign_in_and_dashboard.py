"""Journeys through sign-in, the dashboard in both languages, and the account lockout."""

from __future__ import annotations

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
