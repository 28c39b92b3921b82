"""The ERP gateway's rules, on a migrated SQLite database and no broker."""

from __future__ import annotations

import json

import pytest

from services.bridge.domain import (
    Gateway,
    InboundNotSeen,
    parse_request,
    prune_inbound,
    record_inbound,
    status_copy,
    tenant_of,
)
from services.core.db.bridge_models import BridgeInbound
from services.core.messages import message_id_for
from services.core.processor import Rejected
from services.core.schemas import EventInvalid, new_event, validate
from services.core.tenancy import add_number, create_tenant

INBOUND_ID = "1e2d3c4b-5a69-4788-96a5-b4c3d2e1f0a9"


@pytest.fixture
def db(sqlite_db):
    with sqlite_db.session() as s:
        create_tenant(s, "acme", "Acme")
        add_number(s, "acme", "10690001")
        create_tenant(s, "globex", "Globex")
        add_number(s, "globex", "10690002")
        create_tenant(s, "gone", "Gone", active=False)
    return sqlite_db


def request(db, tenant: str, **body):
    with db.session() as s:
        return Gateway().request(s, tenant, body)


def inbound(tenant: str = "acme", sender: str = "+8613800138000", to: str = "10690001") -> dict:
    return new_event("sms.inbound", tenant, message_id=INBOUND_ID, carrier="sim",
                     carrier_message_id="SM-1", to=to, text="where is my parcel?",
                     received_at="2026-11-28T10:00:00Z", **{"from": sender})


def test_a_request_is_stamped_with_the_topics_tenant_and_the_idempotent_message_id(db):
    out = request(db, "acme", request_id="order-1", to="+8613900000001", text="Shipped")
    e = out.value
    assert out.topic == "sms.outbound" and out.key == "+8613900000001"
    assert e["tenant_id"] == "acme" and e["source"] == "erp"
    assert e["message_id"] == message_id_for("acme", "order-1")
    validate("sms.outbound", e)
    again = request(db, "acme", request_id="order-1", to="+8613900000001", text="Shipped")
    assert again.value["message_id"] == e["message_id"] and again.value["event_id"] == e["event_id"]


def test_platform_fields_in_the_body_are_replaced_not_trusted(db):
    e = request(db, "acme", request_id="order-2", to="+8613900000001", text="x", source="verifier",
                message_id="00000000-0000-4000-8000-000000000000", tenant_id="acme").value
    assert e["source"] == "erp" and e["message_id"] == message_id_for("acme", "order-2")


def test_a_body_naming_another_tenant_is_rejected_with_the_reason(db):
    with pytest.raises(Rejected) as exc:
        request(db, "acme", request_id="r", to="+8613900000001", text="x", tenant_id="globex")
    assert exc.value.kind == "tenant_mismatch"
    assert "globex" in exc.value.reason and "tenant.acme.outbound" in exc.value.reason


@pytest.mark.parametrize("body, kind, words", [
    ({"to": "+8613900000001", "text": "x"}, "schema_violation", "request_id"),
    ({"request_id": "bad key!", "to": "+8613900000001", "text": "x"}, "schema_violation", "request_id"),
    ({"request_id": "r", "to": "12345", "text": "x"}, "schema_violation", "to"),
    ({"request_id": "r", "to": "+8613900000001"}, "schema_violation", "text"),
    ({"request_id": "r", "to": "+8613900000001", "text": "x", "colour": "red"}, "schema_violation",
     "colour"),
    ({"request_id": "r", "to": "+8613900000001", "text": "x", "from": "10690002"}, "sender_not_owned",
     "10690002"),
])
def test_invalid_requests_are_rejected_with_a_reason_that_names_the_problem(db, body, kind, words):
    with pytest.raises(Rejected) as exc:
        request(db, "acme", **body)
    assert exc.value.kind == kind and words in exc.value.reason


def test_an_alphanumeric_sender_is_not_checked_against_the_numbers(db):
    assert request(db, "acme", request_id="r", to="+8613900000001", text="x",
                   **{"from": "AcmeShop"}).value["from"] == "AcmeShop"


def test_an_inactive_or_unknown_tenant_cannot_send(db):
    for tenant in ("gone", "nobody"):
        with pytest.raises(Rejected) as exc:
            request(db, tenant, request_id="r", to="+8613900000001", text="x")
        assert exc.value.kind == "unknown_tenant"


def test_a_reply_by_inbound_id_goes_to_the_texter_from_the_number_they_texted(db):
    with db.session() as s:
        assert record_inbound(s, "acme", inbound())
        assert not record_inbound(s, "acme", inbound())  # a redelivery changes nothing
    e = request(db, "acme", request_id="ans-1", in_reply_to=INBOUND_ID, text="Tomorrow").value
    assert e["to"] == "+8613800138000" and e["from"] == "10690001" and e["in_reply_to"] == INBOUND_ID


def test_a_reply_that_contradicts_its_inbound_is_rejected(db):
    with db.session() as s:
        record_inbound(s, "acme", inbound())
    with pytest.raises(Rejected) as exc:
        request(db, "acme", request_id="a", in_reply_to=INBOUND_ID, text="x", to="+8613999999999")
    assert exc.value.kind == "reply_mismatch"
    with pytest.raises(Rejected) as exc:
        request(db, "acme", request_id="a", in_reply_to=INBOUND_ID, text="x", **{"from": "AcmeShop"})
    assert exc.value.kind == "reply_mismatch"


def test_a_reply_to_another_tenants_inbound_looks_like_an_unknown_one(db):
    with db.session() as s:
        record_inbound(s, "globex", inbound("globex", to="10690002"))
    with pytest.raises(InboundNotSeen):
        request(db, "acme", request_id="a", in_reply_to=INBOUND_ID, text="x")


def test_old_inbound_records_are_pruned(db):
    from datetime import UTC, datetime, timedelta

    with db.session() as s:
        record_inbound(s, "acme", inbound())
    with db.session() as s:
        assert prune_inbound(s, 30, now=datetime.now(UTC) + timedelta(days=31)) == 1
        assert s.get(BridgeInbound, INBOUND_ID) is None


def test_request_bytes_must_be_a_json_object():
    assert parse_request("tenant.acme.outbound", json.dumps({"a": 1}).encode()) == {"a": 1}
    for raw, kind in [(b"{bad", "invalid_json"), (b"\xff\xfe", "wrong_encoding"), (b"[1]", "schema_violation"),
                      (None, "invalid_json")]:
        with pytest.raises(EventInvalid) as exc:
            parse_request("tenant.acme.outbound", raw)
        assert exc.value.kind == kind


def test_tenant_topics_name_their_tenant():
    assert tenant_of("tenant.acme-coffee.outbound") == "acme-coffee"
    assert tenant_of("tenant.a_1.dlq") == "a_1"
    with pytest.raises(ValueError):
        tenant_of("sms.outbound")


def test_a_status_copy_goes_to_the_tenants_status_topic_unchanged():
    ev = new_event("sms.status", "acme", message_id=INBOUND_ID, to="+8613800138000", status="sent",
                   occurred_at="2026-11-28T10:00:00Z")
    out = status_copy(ev)
    assert out.topic == "tenant.acme.status" and out.key == INBOUND_ID and out.value is ev
