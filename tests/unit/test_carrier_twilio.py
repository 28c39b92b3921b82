"""The Twilio-style carrier unit, table-driven over its fixtures: signatures (Twilio's documented
vectors pin the scheme), MO and status callbacks made Herald's events, and submissions' answers
mapped to the named carrier errors."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest

import services.carriers as carriers
from services.carriers import Submission, WebhookRequest
from services.carriers.twilio.webhooks import signature
from services.core.carriers import Carrier
from services.core.schemas import validate
from services.core.sending import BadRequest
from tests.support.carrier_http import answer_with, carrier_answering

TESTDATA = Path(carriers.__file__).parent / "twilio" / "testdata"
WEBHOOKS = sorted((TESTDATA / "webhooks").glob("*.json"))
SUBMITS = sorted((TESTDATA / "submit").glob("*.json"))


def twilio(**options) -> Carrier:
    return Carrier("tw", kind="twilio", api_token=options.pop("token", "12345"),
                   submit_url="https://api.example.org/2010-04-01/Accounts/AC123/Messages.json",
                   options={"account_sid": "AC123", **options})


def request_of(case: dict) -> WebhookRequest:
    params = [tuple(p) for p in case["params"]]
    body = case["raw_body"].encode() if "raw_body" in case else urlencode(params).encode()
    headers = {"content-type": "application/x-www-form-urlencoded"}
    sig = case.get("signature")
    if sig == "sign":  # signed as the carrier would, by the scheme the documented vectors pin
        sig = signature(case.get("token", "12345"), case["url"], params)
    if sig:
        headers["x-twilio-signature"] = sig
    return WebhookRequest(case["kind"], case.get("seen_url", case["url"]), headers, body)


@pytest.mark.parametrize("path", WEBHOOKS, ids=[p.stem for p in WEBHOOKS])
def test_a_twilio_webhook_is_verified_and_made_heralds_events_as_its_fixture_says(path):
    case = json.loads(path.read_text())
    unit = carriers.webhooks(twilio(token=case.get("token", "12345"), **case.get("options", {})))
    req = request_of(case)
    expect = case["expect"]
    assert unit.verify(req) is expect["verified"], case["description"]
    if not expect["verified"] or set(expect) == {"verified"}:
        return
    if "error" in expect:
        with pytest.raises(BadRequest, match=expect["error"]):
            unit.parse(req)
        return
    inbound = unit.parse(req)
    if "answer_type" in expect:
        assert inbound.answer_type == expect["answer_type"]
    if "mo" in expect:
        ((event, part),) = inbound.mo
        assert part is None and inbound.deliveries == ()
        validate("sms.inbound", event)
        assert {k: event.get(k) for k in expect["mo"]} == expect["mo"]
        assert event["carrier"] == "tw"
    if "delivery" in expect:
        (event,) = inbound.deliveries
        validate("sms.delivery", event)
        assert {k: event.get(k) for k in expect["delivery"]} == expect["delivery"]


def test_a_retried_mo_callback_gets_the_same_platform_id():
    case = json.loads((TESTDATA / "webhooks" / "mo_single.json").read_text())
    unit = carriers.webhooks(twilio())
    (a, _), = unit.parse(request_of(case)).mo
    (b, _), = unit.parse(request_of(case)).mo
    assert a["message_id"] == b["message_id"] and a["event_id"] != b["event_id"]


def test_a_signature_made_with_another_token_is_refused():
    case = json.loads((TESTDATA / "webhooks" / "mo_single.json").read_text())
    assert carriers.webhooks(twilio(token="another")).verify(request_of(case)) is False


@pytest.mark.parametrize("path", SUBMITS, ids=[p.stem for p in SUBMITS])
def test_a_twilio_submission_answer_is_mapped_as_its_fixture_says(path):
    case = json.loads(path.read_text())
    a = case["answer"]
    answer = answer_with(a["status"], a["json"] if "json" in a else a.get("text", ""), a.get("headers", {}))
    sub = Submission("m-1", "+14155550123", "+14155550100", "Your code is 7F3K", "gsm7", 1)

    async def go():
        async with carrier_answering(answer) as (url, seen):
            carrier = twilio(status_callback="https://sms.example.org/carriers/tw/dlr")
            conn = carriers.twilio.connector.TwilioConnector(
                Carrier(**{**carrier.__dict__, "submit_url": url}))
            try:
                return await conn.submit(sub)
            except carriers.CarrierError as exc:
                return exc
            finally:
                await conn.close()
                received.extend(seen)

    received: list = []
    outcome = asyncio.run(go())
    expect = case["expect"]
    if "error" in expect:
        assert isinstance(outcome, getattr(carriers, expect["error"]))
        if "reason" in expect:
            assert outcome.reason == expect["reason"]
        if "retry_after" in expect:
            assert outcome.retry_after == expect["retry_after"]
    else:
        assert outcome.carrier_message_id == expect["carrier_message_id"]
    (req,) = received
    assert req.headers["authorization"] == "Basic " + base64.b64encode(b"AC123:12345").decode()
    assert dict(parse_qsl(req.body.decode())) == {
        "To": "+14155550123", "From": "+14155550100", "Body": "Your code is 7F3K",
        "StatusCallback": "https://sms.example.org/carriers/tw/dlr"}


def test_a_twilio_carrier_without_an_account_sid_is_refused_at_start_up():
    with pytest.raises(ValueError, match="account_sid"):
        carriers.build(Carrier("tw", kind="twilio", submit_url="https://x", api_token="t"))


def test_every_kind_maps_only_onto_the_sms_delivery_vocabulary():
    from services.carriers.base import DELIVERY_STATUSES
    from services.carriers.http.webhooks import DLR_STATUS as JSON_STATUS
    from services.carriers.twilio.webhooks import STATUS as TWILIO_STATUS
    from services.egress.dlr import DLR_STATUS as MESSAGE_STATUS

    assert set(JSON_STATUS.values()) <= set(DELIVERY_STATUSES)
    assert set(TWILIO_STATUS.values()) <= set(DELIVERY_STATUSES)
    assert set(MESSAGE_STATUS) <= set(DELIVERY_STATUSES)
