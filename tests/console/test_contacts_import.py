"""CSV import from the console: a job with progress, the user's choice for bad rows, the report of
rejected rows as CSV, roles and tenants."""

import io
import re
import time

from sqlalchemy import func, select

from services.core.db.campaigns_models import ContactList
from services.core.db.console_models import AuditEntry, ContactImportJob
from services.core.db.models import Contact

GOOD = "".join(f"+86139{i:08d},Person {i}\n" for i in range(50))
BAD = "12345,Too short\n=HYPERLINK(\"x\"),Formula\n+8613900000001,Twice\n"


def _file(text: str, encoding: str = "utf-8", name: str = "people.csv") -> io.BytesIO:
    f = io.BytesIO(text.encode(encoding))
    f.name = name
    return f


def _upload(browser, text, mode="good", encoding="utf-8", **extra):
    browser.get("/contacts/import")
    return browser.post("/contacts/import", {"file": _file(text, encoding), "mode": mode, **extra})


def _wait(browser, job_url: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        _, body = browser.get(job_url + "/progress")
        if "hx-trigger" not in body:
            return body
        time.sleep(0.1)
    raise AssertionError("the import did not finish")


def _count(db):
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Contact).where(Contact.tenant_id == "acme"))


def test_good_rows_are_imported_and_bad_ones_reported_with_line_and_reason(browser, console_db):
    browser.sign_in("owner@acme.example")
    resp, body = _upload(browser, "msisdn,name\n" + GOOD + BAD, mode="good", list="Spring fair")
    assert re.fullmatch(r"/contacts/imports/[0-9a-f]{32}", resp.url.path)
    assert 'role="progressbar"' in body or "Import finished" in body
    body = _wait(browser, resp.url.path)
    assert "50 contacts imported" in body and "3 rows were rejected" in body
    assert "<td class=\"num\">52</td>" in body and "E.164" in body and "duplicate" in body
    assert _count(console_db) == 50
    with console_db.session() as s:
        assert s.scalar(select(ContactList.name)) == "Spring fair"
        actions = set(s.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "contact_import")))
        assert actions == {"import_started", "import"}


def test_with_import_nothing_a_file_with_bad_rows_changes_nothing(browser, console_db):
    browser.sign_in("owner@acme.example")
    resp, _ = _upload(browser, "msisdn,name\n" + GOOD + BAD, mode="atomic")
    body = _wait(browser, resp.url.path)
    assert "Nothing was imported" in body and "3 rows are bad" in body
    assert _count(console_db) == 0


def test_the_report_of_rejected_rows_downloads_as_csv_that_a_spreadsheet_cannot_run(browser, console_db):
    browser.sign_in("owner@acme.example")
    resp, _ = _upload(browser, "msisdn,name\n" + BAD.replace("=HYPERLINK", "+SUM"))
    _wait(browser, resp.url.path)
    r, text = browser.get(resp.url.path + "/rejects.csv")
    assert r.status == 200 and r.content_type == "text/csv"
    lines = text.lstrip("\ufeff").splitlines()
    assert lines[0] == "line,reason" and lines[1].startswith("2,")
    assert all(not line.split(",", 1)[1].startswith(("=", "+", "-", "@", '"=', '"+')) for line in lines[1:])


def test_a_gb18030_file_with_chinese_headers_is_imported(browser, console_db):
    browser.sign_in("owner@acme.example")
    resp, _ = _upload(browser, "手机号,姓名\n+8613900000009,张三\n", encoding="gb18030")
    body = _wait(browser, resp.url.path)
    assert "1 contacts imported" in body or "Import finished" in body
    with console_db.session() as s:
        assert s.scalar(select(Contact.name)) == "张三"


def test_a_file_without_a_number_column_fails_with_what_to_do(browser, console_db):
    browser.sign_in("owner@acme.example")
    resp, _ = _upload(browser, "name\nSomeone\n")
    body = _wait(browser, resp.url.path)
    assert "The file was not imported." in body and "no phone number column" in body


def test_the_form_names_a_missing_file_and_a_missing_choice(browser):
    browser.sign_in("owner@acme.example")
    browser.get("/contacts/import")
    resp, body = browser.post("/contacts/import", {"mode": "", "list": "x"})
    assert resp.status == 422 and 'id="e-file"' in body and "Choose what happens" in body


def test_the_result_survives_a_reload_and_an_interrupted_job_says_nothing_was_imported(browser, console_db):
    browser.sign_in("owner@acme.example")
    resp, _ = _upload(browser, "msisdn\n+8613900000001\n")
    _wait(browser, resp.url.path)
    _, body = browser.get(resp.url.path)
    assert "Import finished" in body
    with console_db.session() as s:
        s.add(ContactImportJob(id="f" * 32, tenant_id="acme", actor="x", filename="lost.csv",
                               status="running", rejects=[]))
    _, body = browser.get("/contacts/imports/" + "f" * 32)
    assert "the console restarted during this import; nothing was imported" in body


def test_an_analyst_cannot_import(browser, console_db):
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get("/contacts/import")
    assert resp.status == 200 and 'name="file"' not in body
    resp, _ = browser.post("/contacts/import", {"file": _file("msisdn\n+8613900000001\n"), "mode": "good"})
    assert resp.status == 403 and _count(console_db) == 0


def test_another_tenants_import_and_its_report_are_404(browser_factory, console_db):
    acme = browser_factory()
    acme.sign_in("owner@acme.example")
    resp, _ = _upload(acme, "msisdn\n12\n")
    _wait(acme, resp.url.path)
    other = browser_factory()
    other.sign_in("owner@other.example")
    assert other.get(resp.url.path)[0].status == 404
    assert other.get(resp.url.path + "/rejects.csv")[0].status == 404
    assert other.get(resp.url.path + "/progress")[0].status == 404
