"""Uploading a tier's prize cards: stored with the password encrypted and never shown again; a
file with duplicates, missing columns or the wrong encoding is refused naming the lines, and
nothing is stored."""

from __future__ import annotations

import pytest
from aiohttp import FormData
from sqlalchemy import func, select

from services.core.db.console_models import AuditEntry
from services.core.db.schemes import PrizeCard
from services.core.secrets import SecretBox

from .scheme_fixtures import make_scheme


@pytest.fixture
def scheme(console_db):
    return make_scheme(console_db)

GOOD = "card_number,password,instructions\nC001,pw-secret-1,Dial *100#\nC002,pw-secret-2,\n"


def upload(browser, lottery: int, tier: int, raw: bytes, name: str = "cards.csv"):
    form = FormData()
    form.add_field("csrf_token", browser.csrf)
    form.add_field("file", raw, filename=name, content_type="text/csv")
    resp = browser._run(browser.client.post(f"/lottery/{lottery}/tiers/{tier}/cards", data=form))
    return resp, browser._run(resp.text())


def cards(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(PrizeCard))


def test_an_owner_uploads_cards_whose_passwords_are_sealed_and_never_shown(browser, scheme, console, console_db):
    browser.sign_in("owner@acme.example")
    browser.get(f"/lottery/{scheme['lottery']}")
    resp, body = upload(browser, scheme["lottery"], scheme["tiers"][0], GOOD.encode())
    assert resp.status == 200 and "2 cards added" in body
    assert "pw-secret" not in body
    with console_db.session() as s:
        rows = s.scalars(select(PrizeCard).order_by(PrizeCard.id)).all()
        assert [r.card_number for r in rows] == ["C001", "C002"]
        assert b"pw-secret" not in rows[0].password_enc
        assert SecretBox(console.settings.secret_key).open(rows[0].password_enc) == "pw-secret-1"
        entry = s.scalar(select(AuditEntry).where(AuditEntry.object_type == "prize_cards"))
        assert entry.after["cards"] == 2 and "pw-secret" not in str(entry.after)
    for path in (f"/lottery/{scheme['lottery']}", f"/lottery/{scheme['lottery']}/stock", "/audit"):
        assert "pw-secret" not in browser.get(path)[1]


def test_duplicates_in_the_file_are_refused_with_their_line_numbers_and_nothing_is_stored(
        browser, scheme, console_db):
    browser.sign_in("owner@acme.example")
    browser.get(f"/lottery/{scheme['lottery']}")
    raw = b"card_number,password\nA1,p1\nA2,p2\nA1,p3\nA4,\n"
    resp, body = upload(browser, scheme["lottery"], scheme["tiers"][0], raw)
    assert resp.status == 422 and "Nothing was stored" in body
    assert "Line 4: card A1 is already on line 2." in body and "Line 5: the password is empty." in body
    assert cards(console_db) == 0
    # the same cards twice: the second upload names the lines already in the inventory
    upload(browser, scheme["lottery"], scheme["tiers"][0], GOOD.encode())
    resp, body = upload(browser, scheme["lottery"], scheme["tiers"][0], GOOD.encode())
    assert resp.status == 422 and "Line 2: card C001 is already in the inventory." in body
    assert cards(console_db) == 2


def test_missing_columns_and_wrong_encoding_are_refused(browser, scheme, console_db):
    browser.sign_in("owner@acme.example")
    browser.get(f"/lottery/{scheme['lottery']}")
    resp, body = upload(browser, scheme["lottery"], scheme["tiers"][0], b"number,pin_code\n1,2\n")
    assert resp.status == 422 and "missing column password" in body
    resp, body = upload(browser, scheme["lottery"], scheme["tiers"][0], "卡号,密码\n一,二\n".encode("gbk"))
    assert resp.status == 422 and "not UTF-8" in body
    assert cards(console_db) == 0


def test_the_chinese_headers_are_understood(browser, scheme, console_db):
    browser.sign_in("owner@acme.example")
    browser.get(f"/lottery/{scheme['lottery']}")
    resp, _ = upload(browser, scheme["lottery"], scheme["tiers"][1], "卡号,密码,说明\n甲1,密1,拨打\n".encode())
    assert resp.status == 200 and cards(console_db) == 1


def test_an_analyst_cannot_upload_and_another_tenant_gets_404(browser_factory, scheme, console_db):
    analyst = browser_factory()
    analyst.sign_in("analyst@acme.example")
    analyst.get(f"/lottery/{scheme['lottery']}")
    resp, _ = upload(analyst, scheme["lottery"], scheme["tiers"][0], GOOD.encode())
    assert resp.status == 403
    other = browser_factory()
    other.sign_in("owner@other.example")
    other.get("/lottery")
    resp, _ = upload(other, scheme["lottery"], scheme["tiers"][0], GOOD.encode())
    assert resp.status == 404
    assert cards(console_db) == 0
