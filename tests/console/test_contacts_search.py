"""The contacts page: search by number, name and field, sort, keyset pages, roles, tenants."""

import re

from services.campaigns.domain import contacts
from services.console.views import contacts as contacts_view


def _seed(db, tenant="acme", n=3):
    with db.session() as s:
        rows, _, _ = contacts.upsert(s, tenant, [
            contacts.validate({"msisdn": f"+861380000{i:04d}", "name": f"Person {i:04d}",
                               "city": "Shanghai" if i % 2 else "Beijing"}) for i in range(n)])
        return [r.id for r in rows]


def test_an_empty_account_is_told_to_import_or_add_contacts(browser):
    browser.sign_in("owner@acme.example")
    resp, body = browser.get("/contacts")
    assert resp.status == 200
    assert "No contacts yet" in body and 'href="/contacts/import"' in body


def test_contacts_are_found_by_part_of_the_number(browser, console_db):
    _seed(console_db, n=12)
    browser.sign_in("owner@acme.example")
    _, body = browser.get("/contacts?q=00011")
    assert "+8613800000011" in body and "+8613800000010" not in body


def test_contacts_are_found_by_name_and_by_a_custom_field(browser, console_db):
    _seed(console_db, n=4)
    browser.sign_in("analyst@acme.example")
    _, body = browser.get("/contacts?q=person+0002")
    assert "+8613800000002" in body and "+8613800000003" not in body
    _, body = browser.get("/contacts?q=beij&field=city")
    assert "+8613800000000" in body and "+8613800000002" in body and "+8613800000001" not in body


def test_a_search_without_matches_says_so_and_offers_to_clear_it(browser, console_db):
    _seed(console_db)
    browser.sign_in("owner@acme.example")
    _, body = browser.get("/contacts?q=nobody")
    assert "No contact matches" in body and "Clear the search" in body


def test_pages_follow_one_another_by_keyset_without_gaps_or_repeats(browser, console_db, monkeypatch):
    monkeypatch.setattr(contacts_view, "PAGE", 4)
    _seed(console_db, n=10)
    browser.sign_in("owner@acme.example")
    seen, url = [], "/contacts?sort=name&dir=desc"
    while url:
        _, body = browser.get(url)
        seen += re.findall(r"<code>(\+86138\d+)</code>", body)
        nxt = re.search(r'href="(\?[^"]*after=[^"]*)">Next page', body)
        url = "/contacts" + nxt.group(1).replace("&amp;", "&") if nxt else ""
    assert seen == [f"+861380000{i:04d}" for i in range(9, -1, -1)]


def test_another_tenants_contacts_are_never_listed(browser_factory, console_db):
    _seed(console_db, "acme")
    other = browser_factory()
    other.sign_in("owner@other.example")
    _, body = other.get("/contacts?q=%2B86138")
    assert "+8613800000001" not in body


def test_a_signed_out_visitor_and_a_platform_operator_cannot_list_contacts(browser):
    resp, _ = browser.get("/contacts")
    assert resp.url.path == "/login"
    browser.sign_in("ops@herald.example")
    resp, _ = browser.get("/contacts")
    assert resp.status == 404
