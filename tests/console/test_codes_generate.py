"""Code batches: generating N codes as a background job with a progress bar, the batch's
statistics, and the limits of a batch."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from services.console.domain import code_jobs
from services.core.db.console_models import AuditEntry
from services.core.db.schemes import Code, CodeBatch

from .brand_fixtures import SECRET, brand_with_product, verify, wait_batch


def _product_id(body: str) -> str:
    return re.search(r'<option value="(\d+)"[^>]*>Gold-20s', body).group(1)


def test_an_owner_generates_a_batch_and_watches_its_progress_to_the_end(browser, console_db):
    brand_with_product(console_db)
    browser.sign_in("owner@acme.example")
    resp, body = browser.get("/brands/codes")
    assert resp.status == 200 and "No code batch yet" in body
    resp, body = browser.post("/brands/codes", {"product": _product_id(body), "count": "2500",
                                                "note": "run 1"})
    assert resp.status == 200 and re.search(r"/brands/codes/\d+$", str(resp.url))
    batch_id = int(str(resp.url).rsplit("/", 1)[1])
    assert "Generating the codes" in body
    row = wait_batch(console_db, "acme", batch_id)
    assert row.status == "done" and row.printed == 2500
    resp, body = browser.get(f"/brands/codes/{batch_id}/progress")
    assert resp.status == 200 and "hx-trigger" not in body  # finished: the page stops polling
    assert "Printed" in body and "2,500" in body and "Download the file (once)" in body
    with console_db.session() as s:
        assert s.scalar(select(func.count()).select_from(Code).where(Code.batch_id == batch_id)) == 2500
        actions = [e.action for e in s.scalars(select(AuditEntry)
                                                .where(AuditEntry.object_type == "code_batch"))]
    assert actions == ["generate_started", "generate"]
    resp, body = browser.get("/brands/codes")
    assert f"#{batch_id}" in body and "run 1" in body and "ready to download" in body


def test_a_running_batch_shows_a_progress_bar_that_polls(browser, console_db):
    brand_with_product(console_db)
    batch_id = code_jobs.create(console_db, tenant_id="acme", actor="owner@acme.example",
                                product="gold-20", count=1000)  # recorded, not started yet
    browser.sign_in("owner@acme.example")
    resp, body = browser.get(f"/brands/codes/{batch_id}/progress")
    assert resp.status == 200 and 'hx-trigger="every 1s"' in body and 'role="progressbar"' in body
    assert "0 of 1,000 codes stored" in body
    code_jobs.execute(console_db, SECRET, batch_id, chunk=400)
    resp, body = browser.get(f"/brands/codes/{batch_id}/progress")
    assert "hx-trigger" not in body and "1,000" in body


def test_batch_statistics_count_verified_codes_and_repeat_queries(browser, console_db):
    brand_with_product(console_db)
    batch_id = code_jobs.create(console_db, tenant_id="acme", actor="t", product="gold-20", count=30)
    code_jobs.execute(console_db, SECRET, batch_id)
    with console_db.session() as s:
        codes = code_jobs.codes_in_file(code_jobs.download(s, SECRET, "acme", batch_id, "t")
                                        .file.read())
    assert verify(console_db, "acme", codes[0], "+8613812345678") == "genuine"
    assert verify(console_db, "acme", codes[0], "+8613912345678") == "repeat"
    assert verify(console_db, "acme", codes[0], "+8613912345678") == "repeat"
    assert verify(console_db, "acme", codes[1], "+8613812345678") == "genuine"
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get(f"/brands/codes/{batch_id}")
    stats = re.findall(r'class="stat-value">([^<]+)<', body)
    assert stats == ["30", "2", "2"]  # printed, verified at least once, repeat queries


def test_a_batch_out_of_range_or_without_product_is_refused_naming_the_field(browser, console_db):
    brand_with_product(console_db)
    browser.sign_in("owner@acme.example")
    _, body = browser.get("/brands/codes")
    pid = _product_id(body)
    for count in ("0", "1000001", "lots"):
        resp, body = browser.post("/brands/codes", {"product": pid, "count": count})
        assert resp.status == 422 and 'id="e-count"' in body, count
    resp, body = browser.post("/brands/codes", {"product": "99999", "count": "10"})
    assert resp.status == 422 and "Choose one of your products" in body
    with console_db.session() as s:
        assert s.scalar(select(func.count()).select_from(Code)) == 0


def test_an_analyst_sees_batches_but_cannot_generate(browser_factory, console_db):
    brand_with_product(console_db)
    analyst = browser_factory()
    analyst.sign_in("analyst@acme.example")
    resp, body = analyst.get("/brands/codes")
    assert resp.status == 200 and "Generate codes" not in body
    assert analyst.post("/brands/codes", {"product": "1", "count": "10"})[0].status == 403


def test_another_tenant_cannot_see_or_generate_for_acmes_products(browser_factory, console_db):
    brand_with_product(console_db)
    batch_id = code_jobs.create(console_db, tenant_id="acme", actor="t", product="gold-20", count=5)
    code_jobs.execute(console_db, SECRET, batch_id)
    other = browser_factory()
    other.sign_in("owner@other.example")
    assert other.get(f"/brands/codes/{batch_id}")[0].status == 404
    assert other.get(f"/brands/codes/{batch_id}/progress")[0].status == 404
    _, body = other.get("/brands/codes")
    assert f"#{batch_id}" not in body
    resp, _ = other.post("/brands/codes", {"product": "1", "count": "10"})  # acme's product id
    assert resp.status == 422
    with console_db.session() as s:
        assert s.scalar(select(func.count()).select_from(CodeBatch).where(CodeBatch.tenant_id == "other")) == 0
