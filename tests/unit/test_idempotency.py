"""An idempotency key names one request: the same request again answers with the original
message, another request under the same key is refused and names what differs (send API: 409;
ERP topics: the tenant's DLQ). Through the send API's real handlers and the bridge's gateway."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from services.bridge.domain import Gateway
from services.core.db.models import Message
from services.core.messages import message_id_for
from services.core.processor import Rejected
from services.core.tenancy import add_number, create_tenant, issue_api_key
from tests.support.ingress_client import call_send_api

FIRST = {"to": "+8613800138000", "text": "Your order 1 shipped.", "request_id": "order-1"}


@pytest.fixture
def db(sqlite_db):
    with sqlite_db.session() as s:
        create_tenant(s, "acme", "Acme", default_sender="10690001")
        add_number(s, "acme", "10690001")
    return sqlite_db


@pytest.fixture
def auth(db) -> dict:
    with db.session() as s:
        return {"Authorization": f"Bearer {issue_api_key(s, 'acme')}"}


def messages(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Message))


def test_reused_request_id_with_other_recipient_and_text_is_refused_naming_the_mismatch(db, auth):
    async def go(client, producer):
        first = await client.post("/v1/messages", headers=auth, json=FIRST)
        assert first.status == 202
        other = await client.post("/v1/messages", headers=auth,
                                  json={**FIRST, "to": "+8613900139000", "text": "Hello stranger"})
        body = await other.json()
        assert other.status == 409, body
        assert "order-1" in body["error"] and "to, text" in body["error"]
        assert body["message_id"] == message_id_for("acme", "order-1")
        assert [e["to"] for _t, e in producer.sent] == [FIRST["to"]]  # the other one is not sent

    call_send_api(db, go)
    assert messages(db) == 1


def test_an_identical_retry_answers_with_the_original_message(db, auth):
    async def go(client, producer):
        first = await (await client.post("/v1/messages", headers=auth, json=FIRST)).json()
        again = await client.post("/v1/messages", headers=auth, json=FIRST)
        body = await again.json()
        assert again.status == 200 and body["duplicate"] is True
        assert body["message_id"] == first["message_id"] and body["to"] == FIRST["to"]
        # Published again (egress dedupes): it delivers the message if the first publish was lost.
        assert [e["message_id"] for _t, e in producer.sent] == [first["message_id"]] * 2

    call_send_api(db, go)


def test_a_reused_idempotency_key_header_with_another_sender_is_refused(db, auth):
    async def go(client, producer):
        body = {"to": FIRST["to"], "text": FIRST["text"]}
        headers = {**auth, "Idempotency-Key": "k-9"}
        assert (await client.post("/v1/messages", headers=headers, json=body)).status == 202
        other = await client.post("/v1/messages", headers=headers, json={**body, "from": "Acme"})
        assert other.status == 409 and "from" in (await other.json())["error"]

    call_send_api(db, go)


def test_a_batch_item_reusing_a_key_with_another_body_is_refused_alone(db, auth):
    async def go(client, producer):
        assert (await client.post("/v1/messages", headers=auth, json=FIRST)).status == 202
        r = await client.post("/v1/messages/batch", headers=auth, json={"messages": [
            {**FIRST, "text": "Changed text"}, FIRST, {**FIRST, "request_id": "order-2"}]})
        res = await r.json()
        assert r.status == 202 and (res["accepted"], res["rejected"]) == (2, 1)
        refused, retry, new = res["results"]
        assert refused["status"] == 409 and "text" in refused["error"]
        assert retry["duplicate"] is True and new["duplicate"] is False
        assert [e["request_id"] for _t, e in producer.sent] == ["order-1", "order-1", "order-2"]
        assert producer.sent[1][1]["text"] == FIRST["text"]

    call_send_api(db, go)


def test_a_request_id_taken_by_a_message_herald_made_itself_is_refused(db, auth):
    with db.session() as s:
        s.add(Message(id=message_id_for("acme", "reply-x"), tenant_id="acme", request_id="reply-x",
                      recipient=FIRST["to"], text="Acme: you are unsubscribed.", source="router"))

    async def go(client, producer):
        r = await client.post("/v1/messages", headers=auth,
                              json={"to": FIRST["to"], "text": "Acme: you are unsubscribed.",
                                    "request_id": "reply-x"})
        assert r.status == 409 and "did not accept" in (await r.json())["error"]
        assert producer.sent == []

    call_send_api(db, go)


def erp(db, **body):
    with db.session() as s:
        return Gateway().request(s, "acme", body)


def test_an_erp_request_reusing_a_key_with_another_body_is_dead_lettered_with_the_reason(db):
    first = erp(db, **FIRST)
    assert erp(db, **FIRST).value["message_id"] == first.value["message_id"]  # a retry passes
    with pytest.raises(Rejected) as exc:
        erp(db, **{**FIRST, "to": "+8613900139000"})
    assert exc.value.kind == "idempotency_conflict" and "order-1" in exc.value.reason
    assert "differs in to" in exc.value.reason
    assert messages(db) == 1
