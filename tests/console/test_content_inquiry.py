"""An inquiry's table upload and "try a query": the reply a contact would get, nothing sent."""

from services.core.db.campaigns_models import CampaignInbound, InquiryRow
from services.core.db.console_models import AuditEntry

from .campaign_fixtures import make


def _inquiry(db, tenant="acme"):
    return make(db, tenant=tenant, kind="inquiry", name="Orders", audience=None, template=None,
                config={"keyword": f"ORDER{tenant.upper()}", "source": "table",
                        "reply": "Order {argument}: {status}"})


def _upload(browser, cid, data: bytes):
    from aiohttp import FormData
    form = FormData()
    form.add_field("csrf_token", browser.csrf)
    form.add_field("table", data, filename="orders.csv", content_type="text/csv")
    resp = browser._run(browser.client.post(f"/campaigns/{cid}/table", data=form))
    return resp, browser._run(resp.text())


def test_an_uploaded_table_is_loaded_with_bad_rows_reported_and_audited(browser, console_db):
    cid = _inquiry(console_db)
    browser.sign_in("owner@acme.example")
    browser.get(f"/campaigns/{cid}")
    resp, body = _upload(browser, cid, "订单号,status\nA1,shipped\nA2,packed\nA1,again\n".encode())
    assert resp.status == 200
    assert "2 rows loaded, 1 rejected" in body and "key A1 appears twice" in body
    with console_db.session() as s:
        assert s.query(InquiryRow).filter_by(campaign_id=cid).count() == 2
        assert s.query(AuditEntry).filter_by(action="upload_table", object_id=cid).count() == 1


def test_a_table_without_the_replys_columns_is_refused_on_the_file_field(browser, console_db):
    cid = _inquiry(console_db)
    browser.sign_in("owner@acme.example")
    browser.get(f"/campaigns/{cid}")
    resp, body = _upload(browser, cid, b"key,eta\nA1,tomorrow\n")
    assert resp.status == 422
    assert 'id="e-table"' in body and "status" in body
    with console_db.session() as s:
        assert s.query(InquiryRow).filter_by(campaign_id=cid).count() == 0


def test_try_a_query_shows_the_reply_from_the_table_and_sends_nothing(browser, console_db):
    cid = _inquiry(console_db)
    browser.sign_in("owner@acme.example")
    browser.get(f"/campaigns/{cid}")
    _upload(browser, cid, b"key,status\nA1,shipped\n")
    browser.get(f"/campaigns/{cid}")
    resp, body = browser.post(f"/campaigns/{cid}/try", {"text": "orderacme a1"})
    assert resp.status == 200
    assert "Order a1: shipped" in body
    resp, body = browser.post(f"/campaigns/{cid}/try", {"text": "ORDERACME Z9"})
    assert "Sorry, we found nothing for Z9." in body
    with console_db.session() as s:
        assert s.query(CampaignInbound).count() == 0


def test_try_a_query_without_text_says_what_to_type(browser, console_db):
    cid = _inquiry(console_db)
    browser.sign_in("analyst@acme.example")
    browser.get(f"/campaigns/{cid}")
    resp, body = browser.post(f"/campaigns/{cid}/try", {"text": ""}, headers={"HX-Request": "true"})
    assert 'id="e-text"' in body and "ORDERACME 12345" in body


def test_an_analyst_can_try_but_not_upload(browser, console_db):
    cid = _inquiry(console_db)
    browser.sign_in("analyst@acme.example")
    _, page = browser.get(f"/campaigns/{cid}")
    assert f'action="/campaigns/{cid}/table"' not in page
    resp, _ = _upload(browser, cid, b"key,status\nA1,shipped\n")
    assert resp.status == 403
    with console_db.session() as s:
        assert s.query(InquiryRow).count() == 0


def test_another_tenants_inquiry_cannot_be_tried_or_loaded(browser, console_db):
    cid = _inquiry(console_db, tenant="other")
    browser.sign_in("owner@acme.example")
    browser.get("/campaigns")
    resp, _ = browser.post(f"/campaigns/{cid}/try", {"text": "ORDEROTHER A1"})
    assert resp.status == 404
    resp, _ = _upload(browser, cid, b"key,status\nA1,shipped\n")
    assert resp.status == 404
    with console_db.session() as s:
        assert s.query(InquiryRow).count() == 0
