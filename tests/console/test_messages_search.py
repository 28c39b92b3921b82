"""The messages page: search by number, status, campaign and date, keyset pages."""

import re
import uuid
from datetime import UTC, datetime, timedelta

from services.core.db.models import Message

BASE = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _seed(db, tenant="acme", n=1, to="+8613800000001", status="accepted", campaign=None, at=BASE):
    with db.session() as s:
        for i in range(n):
            s.add(Message(id=str(uuid.uuid4()), tenant_id=tenant, request_id=str(uuid.uuid4()),
                          recipient=to, text=f"{tenant} message {i}", source="api", status=status,
                          campaign_id=campaign, accepted_at=at - timedelta(minutes=i),
                          updated_at=at))


def _ids(body):
    return re.findall(r'href="/messages/([0-9a-f-]{36})"', body)


def test_messages_are_listed_newest_first_in_keyset_pages_without_repeats(browser, console_db):
    _seed(console_db, n=120)
    browser.sign_in("owner@acme.example")
    seen, url = [], "/messages"
    while url:
        _, body = browser.get(url)
        seen += _ids(body)
        m = re.search(r'href="(\?[^"]*after=[^"]+)"', body)
        url = "/messages" + m.group(1).replace("&amp;", "&") if m else ""
    assert len(seen) == 120 == len(set(seen))
    assert "acme message 0" in browser.get("/messages")[1]


def test_search_by_number_status_campaign_and_dates(browser, console_db):
    _seed(console_db, n=2, to="+8613800000009", status="delivered")
    _seed(console_db, n=3, to="+8613800000001", status="failed", campaign="c1")
    _seed(console_db, n=1, to="+8613800000001", at=BASE - timedelta(days=5))
    browser.sign_in("owner@acme.example")
    assert len(_ids(browser.get("/messages?number=%2B86 138 0000 0009")[1])) == 2
    assert len(_ids(browser.get("/messages?status=failed")[1])) == 3
    assert len(_ids(browser.get("/messages?campaign=c1")[1])) == 3
    assert len(_ids(browser.get("/messages?since=2026-03-04&until=2026-03-06")[1])) == 1
    assert len(_ids(browser.get("/messages?since=2026-03-10")[1])) == 5


def test_another_tenants_messages_never_show(browser, console_db):
    _seed(console_db, tenant="other", n=3)
    browser.sign_in("owner@acme.example")
    _, body = browser.get("/messages?number=%2B8613800000001")
    assert _ids(body) == [] and "other message" not in body
    assert "No message matches" in body


def test_a_partial_number_is_refused_naming_the_field(browser, console_db):
    browser.sign_in("owner@acme.example")
    resp, body = browser.get("/messages?number=12ab")
    assert "Enter a full number in international format" in body


def test_an_empty_account_says_what_to_do(browser):
    browser.sign_in("owner@acme.example")
    _, body = browser.get("/messages")
    assert "No message sent yet" in body and 'href="/send"' in body


def test_an_analyst_can_search_but_is_not_offered_to_send(browser, console_db):
    _seed(console_db, n=1)
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get("/messages")
    assert resp.status == 200 and len(_ids(body)) == 1


def test_the_rows_refresh_alone_for_the_live_table(browser, console_db):
    _seed(console_db, n=2)
    browser.sign_in("owner@acme.example")
    resp, body = browser.get("/messages/rows?status=accepted")
    assert resp.status == 200 and "<html" not in body and len(_ids(body)) == 2


def test_signed_out_visitors_are_sent_to_sign_in(browser):
    resp, _ = browser.get("/messages")
    assert resp.url.path == "/login"
