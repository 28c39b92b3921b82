"""What the public API fuzzer found, each pinned by one request against the running console and
ingress (tests/fuzz/test_public_api.py finds such things; these keep them fixed)."""

from __future__ import annotations

import json

import httpx
import pytest
from jsonschema import Draft202012Validator

from services.console.api import OPENAPI

pytestmark = pytest.mark.e2e
DOC = json.loads(OPENAPI.read_text())


def _schema(name: str) -> Draft202012Validator:
    """A component schema of the document, its $refs resolved against the document."""
    return Draft202012Validator({**DOC["components"]["schemas"][name], "components": DOC["components"]})


def _client(api, proc: str) -> httpx.Client:
    return httpx.Client(base_url=api[proc].url, timeout=10,
                        headers={"Authorization": f"Bearer {api['key']}"})


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_contact_path_that_is_no_phone_number_is_not_found_rather_than_a_bad_request(api, method):
    with _client(api, "console") as c:
        r = c.request(method, "/v1/contacts/not-a-number")
    assert r.status_code == 404, r.text
    assert r.json()["error"] == "no contact not-a-number"


def test_replaying_webhook_deliveries_by_ids_beyond_the_id_range_replays_nothing(api):
    with _client(api, "console") as c:
        r = c.post("/v1/webhooks/replay", json={"ids": [2**90, -5, 0]})
    assert r.status_code == 200, r.text
    assert r.json() == {"replayed": 0}


def test_a_batch_with_no_message_accepted_is_an_error_that_names_each_reason(api):
    with _client(api, "ingress") as c:
        r = c.post("/v1/messages/batch", json={"messages": [{"to": "", "text": "hi"}]})
    assert r.status_code == 400
    body = r.json()
    assert _schema("Error").is_valid(body), body
    assert body["accepted"] == 0 and body["results"][0]["error"].startswith("'to' must be an E.164")


@pytest.mark.parametrize(("text", "encoding"), [("Your code is 123456", "gsm7"), ("您好", "ucs2")])
def test_the_documented_encodings_are_those_the_send_api_answers(api, text, encoding):
    with _client(api, "ingress") as c:
        preview = c.post("/v1/messages/preview", json={"text": text})
        sent = c.post("/v1/messages", json={"to": "+8613812345678", "text": text})
    assert preview.status_code == 200 and sent.status_code == 202, (preview.text, sent.text)
    assert preview.json()["encoding"] == sent.json()["encoding"] == encoding
    assert _schema("Preview").is_valid(preview.json())
    assert _schema("SendResult").is_valid(sent.json())


def test_content_times_carry_their_utc_offset_as_rfc_3339_asks(api):
    with _client(api, "console") as c:
        put = c.put("/v1/content/fuzz-menu", json={"body": "Latte 30, Mocha 32"})
        listed = c.get("/v1/content")
    assert put.status_code == 200 and listed.status_code == 200, (put.text, listed.text)
    (item,) = [i for i in listed.json()["content"] if i["name"] == "fuzz-menu"]
    assert item["updated_at"].endswith("+00:00"), item
    assert _schema("ContentItem").is_valid(item)


def test_a_body_nested_deeper_than_the_json_parser_goes_is_a_bad_request(api):
    with _client(api, "console") as c:
        r = c.post("/v1/contacts", content=b"[" * 100_000, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "nested too deeply" in r.json()["error"]
