"""Revoking a batch: its codes stop verifying (the "not one of ours" reply), its figures stay,
its unread file goes; owners only, audited, 404 for another tenant."""

from __future__ import annotations

from sqlalchemy import func, select

from services.console.domain import code_jobs
from services.core.db.console_models import AuditEntry, ConsoleCodeFilePart
from services.core.db.schemes import Code

from .brand_fixtures import SECRET, brand_with_product, verify


def _batch_with_codes(db, count=20):
    batch_id = code_jobs.create(db, tenant_id="acme", actor="t", product="gold-20", count=count)
    code_jobs.execute(db, SECRET, batch_id)
    with db.session() as s:
        codes = code_jobs.codes_in_file(code_jobs.download(s, SECRET, "acme", batch_id, "t").file.read())
    return batch_id, codes


def test_an_owner_revokes_a_batch_and_its_codes_read_as_not_ours(browser, console_db):
    brand_with_product(console_db)
    batch_id, codes = _batch_with_codes(console_db)
    assert verify(console_db, "acme", codes[0], "+8613812345678") == "genuine"
    browser.sign_in("owner@acme.example")
    browser.get(f"/brands/codes/{batch_id}")
    resp, body = browser.post(f"/brands/codes/{batch_id}/revoke")
    assert resp.status == 200 and "The batch is revoked" in body and "Revoked by owner@acme.example" in body
    assert 'class="stat-value">1<' in body  # verified at least once, as it was when revoked
    assert verify(console_db, "acme", codes[1], "+8613812345678") == "counterfeit"
    with console_db.session() as s:
        assert s.scalar(select(func.count()).select_from(Code).where(Code.batch_id == batch_id)) == 0
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "revoke"))
    assert entry.before == {"status": "done", "printed": 20, "verified": 1, "repeats": 0}
    resp, body = browser.post(f"/brands/codes/{batch_id}/revoke")
    assert "already revoked" in body


def test_revoking_an_unread_batch_deletes_its_file(browser, console_db):
    brand_with_product(console_db)
    batch_id = code_jobs.create(console_db, tenant_id="acme", actor="t", product="gold-20", count=5)
    code_jobs.execute(console_db, SECRET, batch_id)
    browser.sign_in("owner@acme.example")
    browser.get(f"/brands/codes/{batch_id}")
    browser.post(f"/brands/codes/{batch_id}/revoke")
    with console_db.session() as s:
        assert s.scalar(select(func.count()).select_from(ConsoleCodeFilePart)) == 0
    resp = browser._run(browser.client.post(f"/brands/codes/{batch_id}/download",
                                            data={"csrf_token": browser.csrf}))
    assert resp.status == 410 and "revoked" in browser._run(resp.text())


def test_an_analyst_cannot_revoke(browser_factory, console_db):
    brand_with_product(console_db)
    batch_id, _codes = _batch_with_codes(console_db)
    analyst = browser_factory()
    analyst.sign_in("analyst@acme.example")
    resp, body = analyst.get(f"/brands/codes/{batch_id}")
    assert "Revoke batch" not in body
    assert analyst.post(f"/brands/codes/{batch_id}/revoke")[0].status == 403
    with console_db.session() as s:
        assert s.scalar(select(func.count()).select_from(Code).where(Code.batch_id == batch_id)) == 20


def test_another_tenant_gets_404_and_acmes_codes_stay(browser_factory, console_db):
    brand_with_product(console_db)
    batch_id, _codes = _batch_with_codes(console_db)
    other = browser_factory()
    other.sign_in("owner@other.example")
    other.get("/brands/codes")
    assert other.post(f"/brands/codes/{batch_id}/revoke")[0].status == 404
    with console_db.session() as s:
        assert s.scalar(select(func.count()).select_from(Code).where(Code.batch_id == batch_id)) == 20
