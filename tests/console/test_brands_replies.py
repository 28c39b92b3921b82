"""Reply texts of a brand: edited per language beside a live preview, checked for the
placeholders each reply can fill, and used by the verifier's replies."""

from __future__ import annotations

from sqlalchemy import select

from services.core.db.console_models import AuditEntry
from services.core.db.schemes import Brand
from services.verifier.domain import replies

from .brand_fixtures import brand_with_product

REPEAT = "{brand}: checked {count} times, first by {first_number} on {first_at}. Beware of fakes."


def test_the_editor_shows_every_reply_with_its_default_preview(browser, console_db):
    brand_with_product(console_db)
    browser.sign_in("owner@acme.example")
    resp, body = browser.get("/brands/gold/replies?lang=en")
    assert resp.status == 200
    for label in ("Genuine", "Repeat", "Unknown code", "Mistyped", "Locked out"):
        assert label in body
    assert "Gold Leaf: your Gold-20s is genuine." in body  # the default, with the product's name
    assert "138****5678" in body  # the repeat names the first checker masked


def test_an_owner_saves_a_repeat_text_and_the_verifier_renders_it(browser, console_db):
    brand_with_product(console_db)
    browser.sign_in("owner@acme.example")
    browser.get("/brands/gold/replies?lang=en")
    resp, body = browser.post("/brands/gold/replies", {"lang": "en", "repeat": REPEAT})
    assert resp.status == 200 and "Reply texts saved" in body and REPEAT.replace("{", "") not in body
    with console_db.session() as s:
        b = s.scalar(select(Brand).where(Brand.slug == "gold"))
        assert b.templates == {"en": {"repeat": REPEAT}}
        audit = s.scalar(select(AuditEntry).where(AuditEntry.action == "update_replies"))
        assert audit.after == {"templates": {"en": {"repeat": REPEAT}}}
    text = replies.render("repeat", "en", b.templates, brand="Gold Leaf", count=2, first_at="x",
                          first_number="138****5678")
    assert text == "Gold Leaf: checked 2 times, first by 138****5678 on x. Beware of fakes."


def test_the_live_preview_fills_the_text_and_flags_an_unknown_placeholder(browser, console_db):
    brand_with_product(console_db)
    browser.sign_in("owner@acme.example")
    browser.get("/brands/gold/replies")
    resp, body = browser.post("/brands/gold/replies/preview",
                              {"lang": "zh", "kind": "locked", "locked": "{brand}：请{minutes}分钟后再试"})
    assert resp.status == 200 and "Gold Leaf：请60分钟后再试" in body and "Your text" in body
    resp, body = browser.post("/brands/gold/replies/preview",
                              {"lang": "en", "kind": "mistyped", "mistyped": "Bad {code}"})
    assert resp.status == 200 and "cannot be used yet" in body and "could not read that code" in body


def test_a_text_with_a_placeholder_its_reply_cannot_fill_is_refused_naming_it(browser, console_db):
    brand_with_product(console_db)
    browser.sign_in("owner@acme.example")
    browser.get("/brands/gold/replies")
    resp, body = browser.post("/brands/gold/replies", {"lang": "en", "genuine": "OK {points}",
                                                       "mistyped": "Check it"})
    assert resp.status == 422 and 'id="e-genuine"' in body and "{points} cannot be used here" in body
    resp, body = browser.post("/brands/gold/replies", {"lang": "en", "counterfeit": "Fake {brand"})
    assert resp.status == 422 and 'id="e-counterfeit"' in body
    with console_db.session() as s:
        assert s.scalar(select(Brand.templates).where(Brand.slug == "gold")) in ({}, None)


def test_an_analyst_previews_but_cannot_save(browser_factory, console_db):
    brand_with_product(console_db)
    analyst = browser_factory()
    analyst.sign_in("analyst@acme.example")
    resp, body = analyst.get("/brands/gold/replies")
    assert resp.status == 200 and "readonly" in body and "Save reply texts" not in body
    resp, _ = analyst.post("/brands/gold/replies", {"lang": "en", "genuine": "x"})
    assert resp.status == 403


def test_another_tenant_gets_404_for_the_replies_of_acmes_brand(browser_factory, console_db):
    brand_with_product(console_db)
    other = browser_factory()
    other.sign_in("owner@other.example")
    assert other.get("/brands/gold/replies")[0].status == 404
    assert other.post("/brands/gold/replies", {"lang": "en", "genuine": "x"})[0].status == 404
    assert other.post("/brands/gold/replies/preview", {"lang": "en", "kind": "genuine"})[0].status == 404
