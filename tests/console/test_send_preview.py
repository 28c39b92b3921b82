"""The live preview of the send form: encoding, segments, cost, and the text per contact."""

import json

import pytest
from aiohttp import FormData

from services.core.db.models import Contact


@pytest.fixture
def priced(console, tmp_path):
    carriers = tmp_path / "carriers.json"
    carriers.write_text(json.dumps({"carriers": [
        {"name": "cn", "prefixes": ["+86"], "options": {"price_per_segment": 0.05, "currency": "CNY"}}]}))
    console.settings = console.settings.model_copy(update={"carriers_file": str(carriers)})


def _preview(browser, **fields):
    browser.get("/send")
    return browser.client.post, browser.post("/send/preview", fields,
                                             headers={"X-CSRF-Token": browser.csrf})


def test_chinese_text_is_ucs2_with_its_segments_and_cost(browser, priced):
    browser.sign_in("owner@acme.example")
    _, (resp, body) = _preview(browser, numbers="+8613800000001\n+8613800000002", text="您好" * 40)
    assert resp.status == 200
    assert "UCS-2" in body
    # 80 UCS-2 characters are 2 parts each: 4 segments at 0.05 CNY
    assert ">4<" in body and "0.2 CNY" in body


def test_a_plain_text_is_gsm7(browser, priced):
    browser.sign_in("owner@acme.example")
    _, (resp, body) = _preview(browser, numbers="+8613800000001", text="Your code is 1234")
    assert "GSM-7" in body and "0.05 CNY" in body


def test_placeholders_are_filled_from_the_contact_and_the_csv(browser, priced, console_db):
    with console_db.session() as s:
        s.add(Contact(tenant_id="acme", msisdn="+8613800000001", name="Li Wei", fields={}))
        s.add(Contact(tenant_id="other", msisdn="+8613800000002", name="Not Yours", fields={}))
    browser.sign_in("owner@acme.example")
    browser.get("/send")
    csv = "msisdn,city\n+8613800000002,Hangzhou\n"
    form = FormData()
    form.add_field("numbers", "+8613800000001")
    form.add_field("text", "Hi {name|there} from {city|home}")
    form.add_field("file", csv.encode(), filename="people.csv", content_type="text/csv")
    resp = browser._run(browser.client.post("/send/preview", data=form,
                                            headers={"X-CSRF-Token": browser.csrf}))
    body = browser._run(resp.text())
    assert "Hi Li Wei from home" in body
    assert "Hi there from Hangzhou" in body  # another tenant's contact is not used
    assert "Not Yours" not in body


def test_a_placeholder_without_a_value_names_the_field_and_a_number(browser, priced):
    browser.sign_in("owner@acme.example")
    _, (resp, body) = _preview(browser, numbers="+8613800000001", text="Dear {name}")
    assert "{name} has no value for 1 recipient(s), such as +8613800000001" in body


def test_the_preview_needs_a_writer(browser, priced):
    browser.sign_in("analyst@acme.example")
    browser.get("/")
    resp, _ = browser.post("/send/preview", {"numbers": "+8613800000001", "text": "x"},
                           headers={"X-CSRF-Token": browser.csrf})
    assert resp.status == 403
