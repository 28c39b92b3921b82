"""Ingress parsing rules, without HTTP or Kafka."""

from __future__ import annotations

import pytest

from services.carriers.http.webhooks import parse_dlr, parse_mo
from services.core.ratelimit import KeyedTokenBucket as TokenBucket
from services.ingress.domain import (
    BadRequest,
    complete_mo,
    mo_message_id,
    parse_send,
)


def test_a_retried_mo_webhook_gets_the_same_platform_id():
    a, _ = parse_mo("sim", {"id": "x1", "from": "+8613812345678", "to": "10690000", "text": "hi"})
    b, _ = parse_mo("sim", {"id": "x1", "from": "+8613812345678", "to": "10690000", "text": "hi"})
    assert a["message_id"] == b["message_id"] == mo_message_id("sim", "x1")
    assert a["event_id"] != b["event_id"]


def test_ucs2_hex_mo_text_is_decoded_and_marked_ucs2():
    ev, part = parse_mo("sim", {"id": "x2", "from": "+8613812345678", "to": "10690000",
                                "text": "积分👋".encode("utf-16-be").hex(), "coding": "ucs2"})
    assert ev["text"] == "积分👋" and ev["encoding"] == "ucs2" and part is None


def test_concatenated_parts_join_in_order():
    ev, part = parse_mo("sim", {"id": "p1", "from": "+8613812345678", "to": "10690000",
                                "text": "a", "concat": {"ref": 7, "total": 2, "seq": 1}})
    assert part.ref == "7" and part.total == 2
    whole = complete_mo(ev, ["Hello ", "world"])
    assert whole["text"] == "Hello world" and whole["parts"] == 2


@pytest.mark.parametrize(("body", "reason"), [
    ([], "JSON object"),
    ({"from": "+8613812345678", "to": "10690000", "text": "x"}, "'id' is required"),
    ({"id": "1", "from": "8613812345678", "to": "10690000", "text": "x"}, "E.164"),
    ({"id": "1", "from": "+8613812345678", "to": "abc", "text": "x"}, "short code"),
    ({"id": "1", "from": "+8613812345678", "to": "10690000", "text": ""}, "empty"),
    ({"id": "1", "from": "+8613812345678", "to": "10690000", "text": "x" * 1601}, "longer than 1600"),
    ({"id": "1", "from": "+8613812345678", "to": "10690000", "text": "0041", "coding": "klingon"},
     "cannot be decoded"),
    ({"id": "1", "from": "+8613812345678", "to": "10690000", "text": "x",
      "concat": {"ref": "r", "total": 2, "seq": 3}}, "seq <= total"),
])
def test_bad_mo_bodies_are_refused_with_a_reason(body, reason):
    with pytest.raises(BadRequest, match=reason):
        parse_mo("sim", body)


def test_dlr_statuses_of_carriers_map_onto_ours():
    assert parse_dlr("sim", {"carrier_message_id": "c", "status": "DELIVRD"})["status"] == "delivered"
    assert parse_dlr("sim", {"carrier_message_id": "c", "status": "failed"})["status"] == "undeliverable"
    ev = parse_dlr("sim", {"carrier_message_id": "c", "status": "expired", "reference": "not-ours"})
    assert "message_id" not in ev
    with pytest.raises(BadRequest, match="known delivery status"):
        parse_dlr("sim", {"carrier_message_id": "c", "status": "maybe"})


def test_the_idempotency_key_decides_the_message_id_and_the_body_cannot_pick_a_tenant():
    a = parse_send("acme", {"to": "+14155550100", "text": "hi"}, header_key="k-1")
    b = parse_send("acme", {"to": "+14155550100", "text": "hi", "request_id": "k-1"})
    assert a["message_id"] == b["message_id"] and a["tenant_id"] == "acme"
    assert parse_send("globex", {"to": "+14155550100", "text": "hi"}, "k-1")["message_id"] != a["message_id"]
    with pytest.raises(BadRequest, match="unknown field"):
        parse_send("acme", {"to": "+14155550100", "text": "hi", "tenant_id": "globex"})


def test_a_sender_number_must_belong_to_the_tenant_but_alphanumeric_ids_pass():
    with pytest.raises(BadRequest, match="not one of this tenant's numbers"):
        parse_send("acme", {"to": "+14155550100", "text": "hi", "from": "10690009"}, senders={"10690001"})
    ev = parse_send("acme", {"to": "+14155550100", "text": "hi", "from": "ACME"}, senders={"10690001"})
    assert ev["from"] == "ACME"


def test_validity_seconds_sets_an_expiry():
    ev = parse_send("acme", {"to": "+14155550100", "text": "hi", "validity_seconds": 60})
    assert ev["expires_at"] > ev["accepted_at"]
    with pytest.raises(BadRequest, match="validity_seconds"):
        parse_send("acme", {"to": "+14155550100", "text": "hi", "validity_seconds": 0})


def test_token_bucket_allows_the_burst_then_says_how_long_to_wait():
    tb = TokenBucket(rate=1.0, burst=2)
    assert tb.take("t") == 0.0 and tb.take("t") == 0.0
    wait = tb.take("t")
    assert 0 < wait <= 1.0
    assert tb.take("other") == 0.0  # tenants do not share a bucket


def _webhook(name: str) -> bytes:
    from pathlib import Path

    return (Path(__file__).resolve().parents[2] / "services/carriers/http/testdata/webhooks" / name).read_bytes()


def test_a_batched_dlr_body_gives_each_readable_report_and_names_the_refused_one_by_index():
    import json

    from services.carriers.base import WebhookRequest
    from services.carriers.http.webhooks import JsonWebhooks
    from services.core.carriers import Carrier
    from services.core.schemas import encode

    unit = JsonWebhooks(Carrier("sim", webhook_secret="s"))
    got = unit.parse(WebhookRequest("dlr", "http://h/carriers/sim/dlr", {}, _webhook("dlr_batch_mixed.json")))
    assert [(e["carrier_message_id"], e["status"]) for e in got.deliveries] == [
        ("c-1", "delivered"), ("c-3", "undeliverable")]
    assert got.deliveries[0]["message_id"] == "6f1c2a4e-1b7d-4c1e-9a55-0d1e2f3a4b5c"
    assert got.deliveries[1]["error_code"] == "034"
    assert got.deliveries[1]["reported_at"] == "2026-12-01T02:00:03.000Z"
    for e in got.deliveries:
        encode("sms.delivery", e)  # each one valid on the topic
    answer = json.loads(got.answer_body)
    assert got.answer_type == "application/json"
    assert answer["accepted"] == 2
    assert [r["index"] for r in answer["refused"]] == [1]
    assert "maybe" in answer["refused"][0]["reason"]


@pytest.mark.parametrize("reports, reason", [
    ([], "non-empty list"),
    ("c-1", "non-empty list"),
    ([{"carrier_message_id": "c", "status": "maybe"}], "no readable report: #0"),
    ([{"carrier_message_id": "c", "status": "delivered"}] * 1001, "at most 1000 reports"),
])
def test_a_batched_dlr_body_with_nothing_readable_is_refused_with_the_reason(reports, reason):
    from services.carriers.http.webhooks import parse_dlr_batch
    from services.core.sending import BadRequest

    with pytest.raises(BadRequest, match=reason):
        parse_dlr_batch("sim", reports)
