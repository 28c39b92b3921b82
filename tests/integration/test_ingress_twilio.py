"""A Twilio-style carrier (services/carriers/twilio/) through the running ingress process and the
real broker: form-encoded callbacks signed with X-Twilio-Signature; a signed MO reaches
sms.inbound, a status callback reaches sms.delivery, and a bad signature is refused with 401
and publishes nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import urlencode

import httpx
import pytest

from tests.support.infra import read_topic

pytestmark = pytest.mark.integration
AUTH_TOKEN = "twilio-auth-token"
SUBSCRIBER = "+8613812345678"


def twilio_signature(key: str, url: str, params: dict[str, str]) -> str:
    # Twilio's documented scheme, written out here so the test does not check the unit by itself
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(key.encode(), data.encode(), hashlib.sha1).digest()).decode()


def post_form(url: str, params: dict[str, str], signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return httpx.post(url, content=urlencode(params).encode(), headers=headers, timeout=10)


@pytest.fixture
def ingress(stack, tmp_path):
    carriers = tmp_path / "carriers.json"
    carriers.write_text(json.dumps({"carriers": [{
        "name": "tw", "kind": "twilio", "submit_url": "http://127.0.0.1:9/2010-04-01/Accounts/AC1/Messages.json",
        "api_token": AUTH_TOKEN, "prefixes": ["+"]}]}))
    return stack.start("services.ingress", HERALD_CARRIERS_FILE=str(carriers))


def mo_params(sid: str, body: str) -> dict[str, str]:
    return {"MessageSid": sid, "AccountSid": "AC1", "From": SUBSCRIBER, "To": "10690001",
            "Body": body, "NumSegments": "1"}


def test_a_signed_twilio_mo_reaches_sms_inbound_and_is_answered_with_empty_twiml(stack, ingress):
    url = f"{ingress.url}/carriers/tw/mo"
    params = mo_params("SM0001", "余额 please")
    r = post_form(url, params, twilio_signature(AUTH_TOKEN, url, params))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/xml") and b"<Response></Response>" in r.content
    (mo,) = read_topic(stack.bootstrap, stack.topic("sms.inbound"), until=lambda rs: len(rs) >= 1)
    assert (mo["carrier"], mo["carrier_message_id"], mo["from"], mo["to"], mo["text"]) == (
        "tw", "SM0001", SUBSCRIBER, "10690001", "余额 please")


def test_a_twilio_mo_with_a_bad_signature_is_refused_and_publishes_nothing(stack, ingress):
    url = f"{ingress.url}/carriers/tw/mo"
    params = mo_params("SM0002", "refused")
    good = twilio_signature(AUTH_TOKEN, url, params)
    refused = [
        post_form(url, params, None),  # unsigned
        post_form(url, params, twilio_signature("another-token", url, params)),  # wrong key
        post_form(url, {**params, "Body": "tampered"}, good),  # signed, then changed
        post_form(url, params, twilio_signature(AUTH_TOKEN, url + "?x=1", params)),  # other URL
    ]
    assert [r.status_code for r in refused] == [401, 401, 401, 401]
    assert all("signature" in r.json()["error"] for r in refused)
    # Then a good one from the same subscriber (same partition): it is the only record.
    ok = mo_params("SM0003", "accepted")
    assert post_form(url, ok, twilio_signature(AUTH_TOKEN, url, ok)).status_code == 200
    records = read_topic(stack.bootstrap, stack.topic("sms.inbound"),
                         until=lambda rs: any(r["carrier_message_id"] == "SM0003" for r in rs))
    assert [r["carrier_message_id"] for r in records] == ["SM0003"]


def test_twilio_status_callbacks_reach_sms_delivery_in_heralds_vocabulary(stack, ingress):
    url = f"{ingress.url}/carriers/tw/dlr"
    delivered = {"MessageSid": "SM0100", "MessageStatus": "delivered", "AccountSid": "AC1"}
    failed = {"MessageSid": "SM0101", "MessageStatus": "undelivered", "ErrorCode": "30005",
              "AccountSid": "AC1"}
    # A forged "failed" for the same message first: published, it would come before the real
    # one on the message's partition.
    forged = {**delivered, "MessageStatus": "failed"}
    assert post_form(url, forged, twilio_signature("another-token", url, forged)).status_code == 401
    for params in (delivered, failed):
        r = post_form(url, params, twilio_signature(AUTH_TOKEN, url, params))
        assert r.status_code == 200, r.text
    records = read_topic(stack.bootstrap, stack.topic("sms.delivery"), until=lambda rs: len(rs) >= 2)
    got = [(r["carrier_message_id"], r["carrier"], r["status"], r.get("error_code")) for r in records]
    assert sorted(got) == [("SM0100", "tw", "delivered", None), ("SM0101", "tw", "undeliverable", "30005")]
