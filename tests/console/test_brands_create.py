"""Brands page: the list, creating a brand and adding its products (fields named on error)."""

from __future__ import annotations

from sqlalchemy import select

from services.core.db.console_models import AuditEntry
from services.core.db.schemes import Brand, Product


def _brand(browser, slug="gold", name="Gold Leaf"):
    return browser.post("/brands", {"slug": slug, "name": name, "name_zh": "金叶", "language": "auto",
                                    "timezone": "Asia/Shanghai"})


def test_an_owner_creates_a_brand_and_a_product_and_both_are_audited(browser, console_db):
    browser.sign_in("owner@acme.example")
    resp, body = browser.get("/brands")
    assert resp.status == 200 and "No brand yet" in body
    resp, body = _brand(browser)
    assert resp.status == 200 and str(resp.url).endswith("/brands/gold")
    assert "Brand created" in body and "No product yet" in body
    resp, body = browser.post("/brands/gold/products", {"slug": "gold-20", "name": "Gold 20s",
                                                        "points": "10"})
    assert resp.status == 200 and "Gold 20s" in body and "gold-20" in body
    with console_db.session() as s:
        b = s.scalar(select(Brand).where(Brand.tenant_id == "acme"))
        assert (b.slug, b.name_zh, b.timezone) == ("gold", "金叶", "Asia/Shanghai")
        assert s.scalar(select(Product.points).where(Product.slug == "gold-20")) == 10
        actions = {(e.action, e.object_type) for e in s.scalars(select(AuditEntry))}
    assert {("create", "brand"), ("create", "product")} <= actions


def test_a_bad_brand_is_refused_naming_the_field_and_nothing_is_stored(browser, console_db):
    browser.sign_in("owner@acme.example")
    resp, body = browser.post("/brands", {"slug": "Gold Leaf!", "name": "Gold"})
    assert resp.status == 422 and 'id="e-slug"' in body and "lower-case" in body
    resp, body = browser.post("/brands", {"slug": "gold", "name": "Gold", "timezone": "Mars/Base"})
    assert resp.status == 422 and 'id="e-timezone"' in body and "Mars/Base" in body
    resp, body = browser.post("/brands", {"slug": "codes", "name": "Gold"})
    assert resp.status == 422 and 'id="e-slug"' in body
    _brand(browser)
    resp, body = _brand(browser, name="Again")
    assert resp.status == 422 and "already a brand" in body
    with console_db.session() as s:
        assert s.scalar(select(Brand.name).where(Brand.tenant_id == "acme")) == "Gold Leaf"


def test_a_bad_product_is_refused_naming_the_field(browser):
    browser.sign_in("owner@acme.example")
    _brand(browser)
    resp, body = browser.post("/brands/gold/products", {"slug": "gold-20", "name": "Gold", "points": "-3"})
    assert resp.status == 422 and 'id="e-points"' in body
    resp, body = browser.post("/brands/gold/products", {"slug": "gold-20", "name": ""})
    assert resp.status == 422 and 'id="e-name"' in body


def test_an_analyst_sees_brands_but_cannot_create_them(browser, browser_factory):
    owner = browser
    owner.sign_in("owner@acme.example")
    _brand(owner)
    analyst = browser_factory()
    analyst.sign_in("analyst@acme.example")
    resp, body = analyst.get("/brands")
    assert resp.status == 200 and "Gold Leaf" in body and 'action="/brands"' not in body
    resp, _ = analyst.post("/brands", {"slug": "silver", "name": "Silver"})
    assert resp.status == 403
    resp, _ = analyst.post("/brands/gold/products", {"slug": "g", "name": "G"})
    assert resp.status == 403


def test_another_tenant_gets_404_for_acmes_brand_and_cannot_add_to_it(browser, browser_factory):
    browser.sign_in("owner@acme.example")
    _brand(browser)
    other = browser_factory()
    other.sign_in("owner@other.example")
    resp, body = other.get("/brands/gold")
    assert resp.status == 404
    resp, _ = other.post("/brands/gold/products", {"slug": "fake", "name": "Fake"})
    assert resp.status == 404
    resp, body = other.get("/brands")
    assert "Gold Leaf" not in body


def test_signed_out_visitors_are_sent_to_sign_in(browser):
    resp, _ = browser.get("/brands", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/login")
