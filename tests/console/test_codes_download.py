"""The printable file of a batch: downloaded once, by an owner, audited; the second download
is refused with a clear message; a large batch comes as a ZIP of CSVs."""

from __future__ import annotations

import io
import zipfile

from sqlalchemy import func, select

from services.console.domain import code_jobs
from services.core.db.console_models import AuditEntry, ConsoleCodeFilePart
from services.verifier.domain.codes import CodeFormat

from .brand_fixtures import SECRET, brand_with_product, verify


def _batch(db, count: int) -> int:
    batch_id = code_jobs.create(db, tenant_id="acme", actor="owner@acme.example", product="gold-20",
                                count=count)
    code_jobs.execute(db, SECRET, batch_id)
    return batch_id


def _download(browser, batch_id):
    browser.get(f"/brands/codes/{batch_id}")
    resp = browser._run(browser.client.post(f"/brands/codes/{batch_id}/download",
                                            data={"csrf_token": browser.csrf}))
    return resp, browser._run(resp.read())


def test_an_owner_downloads_the_csv_once_and_the_second_download_is_refused(browser, console_db):
    brand_with_product(console_db)
    batch_id = _batch(console_db, 120)
    browser.sign_in("owner@acme.example")
    resp, data = _download(browser, batch_id)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    assert f'filename="codes-gold-20-batch-{batch_id}.csv"' in resp.headers["Content-Disposition"]
    assert resp.headers["Cache-Control"] == "no-store"
    lines = data.decode().splitlines()
    assert lines[0] == "code,printed,product,batch" and len(lines) == 121
    codes = code_jobs.codes_in_file(data)
    assert len(set(codes)) == 120 and all(CodeFormat().fits(c) for c in codes)
    assert verify(console_db, "acme", codes[7], "+8613812345678") == "genuine"  # the file's codes are live

    resp, body = _download(browser, batch_id)
    assert resp.status == 410
    text = body.decode()
    assert "already downloaded by owner@acme.example" in text and "only once" in text
    with console_db.session() as s:
        assert s.scalar(select(func.count()).select_from(ConsoleCodeFilePart)) == 0  # no clear copy left
        downloads = s.scalars(select(AuditEntry).where(AuditEntry.action == "download")).all()
    assert len(downloads) == 1 and downloads[0].actor == "owner@acme.example"
    assert downloads[0].after == {"file": f"codes-gold-20-batch-{batch_id}.csv", "codes": 120}
    _, page = browser.get(f"/brands/codes/{batch_id}")
    assert "Downloaded by owner@acme.example" in page and "Download the file (once)" not in page


def test_a_large_batch_downloads_as_a_zip_of_csv_files(browser, console_db, monkeypatch):
    monkeypatch.setattr(code_jobs, "ZIP_OVER", 100)
    monkeypatch.setattr(code_jobs, "PART_ROWS", 100)
    monkeypatch.setattr(code_jobs, "CHUNK", 50)
    brand_with_product(console_db)
    batch_id = _batch(console_db, 250)
    browser.sign_in("owner@acme.example")
    resp, data = _download(browser, batch_id)
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = sorted(zf.namelist())
        sizes = [len(zf.read(n).decode().splitlines()) - 1 for n in names]
    assert names == [f"codes-gold-20-batch-{batch_id}-part-00{i}.csv" for i in (1, 2, 3)]
    assert sizes == [100, 100, 50]
    assert len(set(code_jobs.codes_in_file(data))) == 250


def test_an_analyst_cannot_download(browser_factory, console_db):
    brand_with_product(console_db)
    batch_id = _batch(console_db, 10)
    analyst = browser_factory()
    analyst.sign_in("analyst@acme.example")
    resp, body = analyst.get(f"/brands/codes/{batch_id}")
    assert "Only an owner of this account can download it" in body
    resp, _ = _download(analyst, batch_id)
    assert resp.status == 403
    with console_db.session() as s:
        assert s.scalar(select(func.count()).select_from(ConsoleCodeFilePart)) == 1  # still there


def test_another_tenant_gets_404_and_the_file_stays_for_its_owner(browser_factory, console_db):
    brand_with_product(console_db)
    batch_id = _batch(console_db, 10)
    other = browser_factory()
    other.sign_in("owner@other.example")
    other.get("/brands/codes")
    resp, _ = _download(other, batch_id)
    assert resp.status == 404
    with console_db.session() as s:
        assert s.scalar(select(func.count()).select_from(ConsoleCodeFilePart)) == 1


def test_a_download_without_the_form_token_is_refused(browser, console_db):
    brand_with_product(console_db)
    batch_id = _batch(console_db, 10)
    browser.sign_in("owner@acme.example")
    resp = browser._run(browser.client.post(f"/brands/codes/{batch_id}/download", data={}))
    assert resp.status == 403
