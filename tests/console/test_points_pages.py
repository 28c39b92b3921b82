"""Points and gifts: points per valid code, thresholds in order with their messages, the gift
catalogue and its card uploads, redemptions, and a member's balance and entries."""

from __future__ import annotations

import uuid

import pytest
from aiohttp import FormData
from sqlalchemy import func, select

from services.core.card_files import parse_cards
from services.core.db.console_models import AuditEntry
from services.core.db.schemes import GiftCard, LoyaltyProgram, Product
from services.core.schemas import new_event
from services.core.secrets import SecretBox
from services.ledger import admin as ledger_admin
from services.ledger.domain import Ledger

from .scheme_fixtures import make_scheme

MEMBER = "+8613900001111"


@pytest.fixture
def scheme(console_db):
    return make_scheme(console_db)


@pytest.fixture
def redeemed(scheme, console, console_db):
    """A member awarded 30 points who redeemed gift 1 through the ledger's own domain code."""
    key = console.settings.secret_key
    with console_db.session() as s:
        tea = ledger_admin.add_gift(s, "acme", 1, "Tea voucher", 20, "茶券")
        ledger_admin.add_gift(s, "acme", 2, "Phone card", 500)
        ledger_admin.upload_gift_cards(s, SecretBox(key), "acme", tea.id,
                                       parse_cards(b"card_number,password\nG1,gpw-1\nG2,gpw-2\n"))
    ledger = Ledger(key)
    award = new_event("points.awarded", "acme", entry_id=str(uuid.uuid4()), member=MEMBER, points=30,
                      reason="genuine code", source_event_id=str(uuid.uuid4()), product="gold-20",
                      reply_from="10690001")
    redeem = new_event("points.commands", "acme", command_id=str(uuid.uuid4()), member=MEMBER, command="redeem",
                       gift=1, reply_from="10690001", inbound_message_id=str(uuid.uuid4()))
    with console_db.session() as s:
        ledger.handle_awards(s, [award])
    with console_db.session() as s:
        ledger.handle_commands(s, [redeem])
    return scheme


def upload(browser, gift_id: int, raw: bytes):
    form = FormData()
    form.add_field("csrf_token", browser.csrf)
    form.add_field("file", raw, filename="gifts.csv", content_type="text/csv")
    resp = browser._run(browser.client.post(f"/points/gifts/{gift_id}/cards", data=form))
    return resp, browser._run(resp.text())


def test_the_page_shows_products_gifts_redemptions_and_live_figures(browser, redeemed):
    browser.sign_in("owner@acme.example")
    resp, body = browser.get("/points")
    assert resp.status == 200
    assert "Gold 20s" in body and "Tea voucher" in body and "redeemed" in body and "out_of_stock" not in body
    assert 'hx-get="/points/figures"' in body and 'hx-trigger="every 3s"' in body
    assert MEMBER in body and "gpw-" not in body
    _, body = browser.get("/points/figures")
    assert 'id="pf-redeemed">1<' in body


def test_an_analyst_sees_masked_numbers_and_no_forms(browser, redeemed):
    browser.sign_in("analyst@acme.example")
    _, body = browser.get("/points")
    assert "139****1111" in body and MEMBER not in body and "Add gift" not in body
    resp, _ = browser.post("/points/gifts", {"number": "3", "name": "x", "cost": "5"})
    assert resp.status == 403


def test_a_members_balance_and_ledger_entries(browser, redeemed):
    browser.sign_in("owner@acme.example")
    resp, body = browser.get(f"/points/members?number={MEMBER.replace('+', '%2B')}")
    assert resp.status == 200 and 'id="balance">10<' in body
    assert "+30" in body and "-20" in body and "Tea voucher" in body
    resp, body = browser.get("/points/members?number=12ab")
    assert resp.status == 422 and "international format" in body
    _, body = browser.get("/points/members")
    assert MEMBER in body


def test_points_per_code_are_saved_and_negative_points_refused(browser, scheme, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/points")
    resp, body = browser.post(f"/points/products/{scheme['product']}", {"points": "-5"})
    assert resp.status == 422 and "cannot be negative" in body
    resp, body = browser.post(f"/points/products/{scheme['product']}", {"points": "25"})
    assert resp.status == 200 and "saved" in body
    with console_db.session() as s:
        assert s.get(Product, scheme["product"]).points == 25
        assert s.scalar(select(AuditEntry).where(AuditEntry.object_type == "product_points")).after == {"points": 25}


def test_thresholds_out_of_order_are_refused_naming_the_field_and_nothing_stored(browser, scheme, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/points")
    resp, body = browser.post("/points/thresholds", {"rows": "3", "thresholds-0-points": "100",
                                                     "thresholds-1-points": "50"})
    assert resp.status == 422 and "Thresholds go up in order: 50 comes after 100." in body
    assert 'name="thresholds-1-points" value="50"' in body
    with console_db.session() as s:
        assert s.get(LoyaltyProgram, "acme") is None
    resp, body = browser.post("/points/thresholds", {
        "rows": "2", "thresholds-0-points": "50", "thresholds-0-message_en": "{balance} points! {menu}",
        "thresholds-0-message_zh": "已有{balance}积分", "thresholds-1-points": "200"})
    assert resp.status == 200 and "thresholds are saved" in body
    with console_db.session() as s:
        row = s.get(LoyaltyProgram, "acme")
        assert row.thresholds == [50, 200] and row.templates["zh"]["threshold_50"] == "已有{balance}积分"


def test_gifts_are_added_and_their_cards_uploaded_once(browser, scheme, console_db):
    browser.sign_in("owner@acme.example")
    browser.get("/points")
    resp, body = browser.post("/points/gifts", {"number": "1", "name": "Tea", "cost": "0"})
    assert resp.status == 422 and "at least 1 point" in body
    resp, body = browser.post("/points/gifts", {"number": "1", "name": "Tea", "cost": "20"})
    assert resp.status == 200 and "Upload its virtual cards" in body
    resp, body = browser.post("/points/gifts", {"number": "1", "name": "Again", "cost": "20"})
    assert resp.status == 422 and "Gift 1 exists already" in body
    with console_db.session() as s:
        gift_id = ledger_admin.gifts(s, "acme")[0].gift.id
    resp, body = upload(browser, gift_id, b"card_number,password\nX1,s1\nX1,s2\n")
    assert resp.status == 422 and "Line 3: card X1 is already on line 2." in body
    resp, body = upload(browser, gift_id, b"card_number,password\nX1,s1\nX2,s2\n")
    assert resp.status == 200 and "2 cards added" in body and "s1" not in body.split("flash")[1][:200]
    with console_db.session() as s:
        assert s.scalar(select(func.count()).select_from(GiftCard)) == 2


def test_another_tenant_gets_404_for_acmes_products_and_gifts(browser, redeemed, console_db):
    with console_db.session() as s:
        gift_id = ledger_admin.gifts(s, "acme")[0].gift.id
    browser.sign_in("owner@other.example")
    _, body = browser.get("/points")
    assert "Tea voucher" not in body and MEMBER not in body
    resp, _ = browser.post(f"/points/products/{redeemed['product']}", {"points": "1"})
    assert resp.status == 404
    resp, _ = browser.post(f"/points/gifts/{gift_id}/active", {"active": "0"})
    assert resp.status == 404
    resp, _ = upload(browser, gift_id, b"card_number,password\nY1,s1\n")
    assert resp.status == 404
    _, body = browser.get(f"/points/members?number={MEMBER.replace('+', '%2B')}")
    assert "No points for this number" in body
