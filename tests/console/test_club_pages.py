"""The member club: clubs are subscription topics joined by SMS (SUB <club>) or from the
console; a research invitation turns a product's verified buyers or a club's members into a
contact list for a survey or club campaign."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from services.core.db.campaigns_models import ContactList, ContactListMember, Subscriber
from services.core.db.console_models import AuditEntry
from services.core.db.models import Keyword
from services.core.db.schemes import CodeQuery

from .scheme_fixtures import make_scheme

BUYERS = ["+8613900000001", "+8613900000002", "+8613900000003"]


@pytest.fixture
def scheme(console_db):
    sc = make_scheme(console_db)
    now = datetime.now(UTC)
    with console_db.session() as s:
        for i, n in enumerate(BUYERS + [BUYERS[0]]):
            s.add(CodeQuery(submission_id=str(uuid.uuid4()), tenant_id="acme", brand_id=sc["brand"],
                            product_id=sc["product"], msisdn=n, reply_from="10690001",
                            outcome="genuine" if i < 3 else "repeat", received_at=now))
    return sc


def open_club(browser, name="VIP"):
    browser.get("/club")
    return browser.post("/club", {"name": name, "description": "Our best buyers"})


def test_an_owner_opens_a_club_and_adds_and_removes_a_member_audited(browser, scheme, console_db):
    browser.sign_in("owner@acme.example")
    _, body = browser.get("/club")
    assert "No club yet" in body
    resp, body = open_club(browser)
    assert resp.status == 200 and "texting SUB VIP" in body
    with console_db.session() as s:  # SUB and UNSUB texts now reach campaigns, where the club is
        assert dict(s.execute(select(Keyword.keyword, Keyword.action).where(Keyword.tenant_id == "acme")).all()) \
            == {"SUB": "campaigns", "UNSUB": "campaigns"}
    resp, body = browser.post("/club/VIP/members", {"number": "+86 139 0000 0009", "action": "join"})
    assert "+8613900000009 joined the club." in body and "+8613900000009" in body
    resp, body = browser.post("/club/VIP/members", {"number": "12", "action": "join"})
    assert resp.status == 422 and "international format" in body
    resp, body = browser.post("/club/VIP/members", {"number": "+8613900000009", "action": "leave"})
    assert "left the club" in body
    with console_db.session() as s:
        assert s.scalar(select(func.count()).select_from(Subscriber).where(Subscriber.active.is_(True))) == 0
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.object_type.in_(["club", "club_member"]))
                            .order_by(AuditEntry.id)).all()
        assert actions == ["create", "join", "leave"]


def test_a_club_name_that_cannot_follow_sub_is_refused_naming_the_field(browser, scheme):
    browser.sign_in("owner@acme.example")
    resp, body = open_club(browser, "VIP CLUB!")
    assert resp.status == 422 and "1 to 32 letters or digits" in body and 'aria-invalid="true"' in body
    open_club(browser)
    resp, body = open_club(browser)
    assert resp.status == 422 and "exists already" in body


def test_verified_buyers_of_a_product_become_a_list_for_a_survey(browser, scheme, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/club")
    resp, body = browser.post("/club/invite", {"source": f"product:{scheme['product']}",
                                               "list_name": "Gold buyers survey", "kind": "survey"},
                              allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/campaigns/new?kind=survey"
    with console_db.session() as s:
        lst = s.scalar(select(ContactList).where(ContactList.name == "Gold buyers survey"))
        assert s.scalar(select(func.count()).select_from(ContactListMember)
                        .where(ContactListMember.list_id == lst.id)) == 3
    resp, body = browser.post("/club/invite", {"source": f"product:{scheme['product']}", "list_name": ""})
    assert resp.status == 422 and "Name the list" in body


def test_an_analyst_sees_members_masked_and_cannot_change(browser_factory, scheme):
    owner = browser_factory()
    owner.sign_in("owner@acme.example")
    open_club(owner)
    owner.post("/club/VIP/members", {"number": "+8613900000009", "action": "join"})
    analyst = browser_factory()
    analyst.sign_in("analyst@acme.example")
    _, body = analyst.get("/club?club=VIP")
    assert "139****0009" in body and "+8613900000009" not in body
    resp, _ = analyst.post("/club/VIP/members", {"number": "+8613900000008", "action": "join"})
    assert resp.status == 403
    resp, _ = analyst.post("/club/invite", {"source": "club:VIP", "list_name": "x"})
    assert resp.status == 403


def test_another_tenant_gets_404_for_acmes_club_and_products(browser_factory, scheme):
    owner = browser_factory()
    owner.sign_in("owner@acme.example")
    open_club(owner)
    other = browser_factory()
    other.sign_in("owner@other.example")
    resp, _ = other.get("/club?club=VIP")
    assert resp.status == 404
    resp, _ = other.post("/club/VIP/members", {"number": "+8613900000008", "action": "join"})
    assert resp.status == 404
    for source in (f"product:{scheme['product']}", "club:VIP"):
        resp, _ = other.post("/club/invite", {"source": source, "list_name": "steal"})
        assert resp.status == 404, source
