"""Journeys: import a contacts file with bad rows; create an API key, send with it through the
send API, and follow the message's timeline; another tenant's user gets 404 for all of it."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect

from .conftest import shot, sign_in

BAD_LINES = {101: "12345", 502: "not-a-number", 903: "+86 138"}


def contacts_csv(rows: int = 1000) -> str:
    lines = ["msisdn,name,city"]
    for i in range(rows):
        line_no = i + 2  # the header is line 1
        number = BAD_LINES.get(line_no, f"+86139{i:08d}")
        lines.append(f"{number},Customer {i},Hangzhou")
    return "\n".join(lines) + "\n"


def test_a_thousand_row_file_with_three_bad_rows_imports_the_good_ones_and_names_the_bad(env, page, tmp_path):
    t = env.tenant("bimport")
    path = tmp_path / "customers.csv"
    path.write_text(contacts_csv())
    sign_in(page, env, t.email)
    page.goto(f"{env.url}/contacts/import")
    page.set_input_files("input[name=file]", str(path))
    page.check("input[name=mode][value=good]")
    page.fill("input[name=list]", "customers")
    page.click("form[action='/contacts/import'] button[type=submit], form[action='/contacts/import'] button.primary")
    result = page.locator("#import-progress")
    expect(result).to_contain_text("997 contacts imported", timeout=60000)
    expect(result).to_contain_text("3 rows were rejected")
    lines = [int(x) for x in result.locator("tbody tr td.num").all_inner_texts()]
    assert lines == sorted(BAD_LINES)
    shot(page, "contacts-import-report")
    page.goto(f"{env.url}/contacts/lists")
    expect(page.locator("body")).to_contain_text("customers")
    expect(page.locator("body")).to_contain_text("997")
    page.goto(f"{env.url}/contacts")
    shot(page, "contacts")


def test_an_api_key_made_in_the_console_sends_and_the_message_timeline_shows_delivery(env, page, chromium):
    t = env.tenant("bapi")
    sign_in(page, env, t.email)
    page.goto(f"{env.url}/integrations")
    page.fill("input[name=label]", "ERP production")
    page.click("text=Create key")
    key = page.locator("#new-key").inner_text().strip()
    assert re.fullmatch(r"hk_[a-z0-9]{10}_[A-Za-z0-9_-]{20,64}", key)
    shot(page, "integrations-new-key")
    page.reload()
    expect(page.locator("body")).not_to_contain_text(key)  # shown once

    r = httpx.post(f"{env.platform.ingress.url}/v1/messages", timeout=10,
                   headers={"Authorization": f"Bearer {key}"},
                   json={"to": "+8613812340001", "text": "Your parcel is at the Xihu locker.",
                         "request_id": "browser-api-1"})
    assert r.status_code in (200, 202), r.text
    message_id = r.json()["message_id"]

    page.goto(f"{env.url}/messages")
    expect(page.locator("body")).to_contain_text("+8613812340001")
    page.goto(f"{env.url}/messages/{message_id}")
    expect(page.locator(".timeline")).to_contain_text("delivered", timeout=60000)
    expect(page.locator(".timeline")).to_contain_text("sent")
    shot(page, "message-timeline")

    # A user of another tenant tampering with the URL gets 404, for the message and the key.
    other = env.tenant("bapi-other")
    ctx = chromium.new_context()
    intruder = ctx.new_page()
    sign_in(intruder, env, other.email)
    resp = intruder.goto(f"{env.url}/messages/{message_id}")
    assert resp.status == 404
    expect(intruder.locator("body")).not_to_contain_text("+8613812340001")
    prefix = key.split("_")[1]
    token = intruder.locator("input[name=csrf_token]").first.get_attribute("value")
    resp = intruder.request.post(f"{env.url}/integrations/keys/{prefix}/revoke",
                                 form={"csrf_token": token})
    assert resp.status == 404
    ctx.close()
    # and the key still works
    assert httpx.get(f"{env.platform.ingress.url}/v1/messages/{message_id}", timeout=10,
                     headers={"Authorization": f"Bearer {key}"}).status_code == 200
