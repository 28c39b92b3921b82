"""Ingress as a process against the real broker: webhooks and the send API publish only what
is valid, answer only after the broker acknowledged, and give clear 4xx reasons otherwise."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from services.core.carriers import sign
from tests.support.infra import read_topic
from tests.support.seed import seed_tenant

pytestmark = pytest.mark.integration
SECRET = "sim-secret"  # deploy/carriers.json's simulator carrier


def signed_post(url: str, body: dict | bytes, secret: str = SECRET) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return httpx.post(url, content=raw, headers={"X-Herald-Signature": sign(secret, raw),
                                                 "Content-Type": "application/json"})


@pytest.fixture
def ingress(stack):
    key = seed_tenant(stack, "acme")
    other_key = seed_tenant(stack, "globex", number="10690002")
    proc = stack.start("services.ingress")
    return proc, key, other_key


def test_send_api_accepts_once_per_idempotency_key_and_reports_segments(stack, ingress):
    proc, key, _ = ingress
    auth = {"Authorization": f"Bearer {key}"}
    body = {"to": "+8613812345678", "text": "你" * 300, "request_id": "order-77"}
    r1 = httpx.post(f"{proc.url}/v1/messages", json=body, headers=auth)
    r2 = httpx.post(f"{proc.url}/v1/messages", json=body, headers=auth)
    assert r1.status_code == 202, r1.text
    assert r2.status_code == 200 and r2.json()["duplicate"] is True
    assert r1.json()["message_id"] == r2.json()["message_id"]
    assert r1.json()["encoding"] == "ucs2" and r1.json()["segments"] == 5
    out = read_topic(stack.bootstrap, stack.topic("sms.outbound"), until=lambda r: len(r) >= 2)
    assert {e["message_id"] for e in out} == {r1.json()["message_id"]}
    assert all(e["tenant_id"] == "acme" and e["source"] == "api" for e in out)
    got = httpx.get(f"{proc.url}/v1/messages/{r1.json()['message_id']}", headers=auth).json()
    assert got["status"] == "accepted" and got["history"][0]["status"] == "accepted"


def test_dry_run_preview_publishes_nothing(stack, ingress):
    proc, key, _ = ingress
    auth = {"Authorization": f"Bearer {key}"}
    r = httpx.post(f"{proc.url}/v1/messages?dry_run=true", headers=auth,
                   json={"to": "+14155550100", "text": "x" * 161})
    assert r.status_code == 200 and r.json() == {"dry_run": True, "encoding": "gsm7",
                                                 "segments": 2, "characters": 161, "units": 161}
    p = httpx.post(f"{proc.url}/v1/messages/preview", headers=auth, json={"text": "€" * 81})
    assert p.json()["segments"] == 2 and p.json()["units"] == 162
    assert read_topic(stack.bootstrap, stack.topic("sms.outbound"), timeout=2) == []


def test_batch_send_reports_each_item(stack, ingress):
    proc, key, _ = ingress
    r = httpx.post(f"{proc.url}/v1/messages/batch", headers={"Authorization": f"Bearer {key}"},
                   json={"messages": [{"to": "+14155550101", "text": "a"},
                                      {"to": "555", "text": "b"},
                                      {"to": "+14155550102", "text": "c"}]})
    assert r.status_code == 202
    res = r.json()
    assert res["accepted"] == 2 and res["rejected"] == 1
    assert "E.164" in res["results"][1]["error"]
    out = read_topic(stack.bootstrap, stack.topic("sms.outbound"), until=lambda r: len(r) >= 2)
    assert sorted(e["to"] for e in out) == ["+14155550101", "+14155550102"]


def test_another_tenants_message_does_not_exist(stack, ingress):
    proc, key, other_key = ingress
    r = httpx.post(f"{proc.url}/v1/messages", headers={"Authorization": f"Bearer {key}"},
                   json={"to": "+14155550103", "text": "private"})
    mid = r.json()["message_id"]
    assert httpx.get(f"{proc.url}/v1/messages/{mid}",
                     headers={"Authorization": f"Bearer {other_key}"}).status_code == 404


@pytest.mark.parametrize(("path", "kind", "body", "headers", "status", "reason"), [
    ("/v1/messages", "api", b"{not json", None, 400, "not JSON"),
    ("/v1/messages", "api", {"to": "12345", "text": "hi"}, None, 400, "E.164"),
    ("/v1/messages", "api", {"to": "+0123456789", "text": "hi"}, None, 400, "E.164"),
    ("/v1/messages", "api", {"to": "+14155550100", "text": "x" * 1601}, None, 400, "limit is 1600"),
    ("/v1/messages", "api", {"to": "+14155550100", "text": ""}, None, 400, "empty"),
    ("/v1/messages", "api", {"to": "+14155550100", "text": "hi", "tenant": "globex"}, None, 400,
     "unknown field"),
    ("/v1/messages", "api", {"to": "+14155550100", "text": "hi", "from": "10690002"}, None, 400,
     "not one of this tenant's numbers"),
    ("/v1/messages", "none", {"to": "+14155550100", "text": "hi"}, None, 401, "missing API key"),
    ("/v1/messages", "bad", {"to": "+14155550100", "text": "hi"}, None, 401, "invalid API key"),
    ("/carriers/sim/mo", "sig", {"id": "m1", "from": "+8613800000000", "to": "10690001",
                                 "text": "HI"}, {"X-Herald-Signature": "sha256=00"}, 401, "signature"),
    ("/carriers/nope/mo", "sig", {"id": "m1"}, None, 404, "unknown carrier"),
    ("/carriers/sim/mo", "signed", b"\xff\xfe", None, 400, "not UTF-8"),
    ("/carriers/sim/mo", "signed", {"id": "m1", "from": "12", "to": "10690001", "text": "x"}, None,
     400, "E.164"),
    ("/carriers/sim/mo", "signed", {"id": "m1", "from": "+8613800000000", "to": "10690001",
                                    "text": "zz", "coding": "ucs2"}, None, 400, "cannot be decoded"),
    ("/carriers/sim/dlr", "signed", {"carrier_message_id": "c1", "status": "bogus"}, None, 400,
     "not a known delivery status"),
])
def test_malformed_requests_get_a_clear_4xx_and_publish_nothing(stack, ingress, path, kind, body,
                                                                headers, status, reason):
    proc, key, _ = ingress
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"Content-Type": "application/json", **(headers or {})}
    if kind == "api":
        h["Authorization"] = f"Bearer {key}"
    elif kind == "bad":
        h["Authorization"] = "Bearer hk_0000000000_" + "x" * 40
    elif kind == "signed":
        h["X-Herald-Signature"] = sign(SECRET, raw)
    r = httpx.post(f"{proc.url}{path}", content=raw, headers=h)
    assert r.status_code == status, r.text
    assert reason in r.json()["error"]
    assert proc.alive()
    for topic in ("sms.inbound", "sms.outbound", "sms.delivery"):
        assert read_topic(stack.bootstrap, stack.topic(topic), timeout=1) == []


def test_mo_in_ucs2_and_concatenated_parts_arrive_whole(stack, ingress):
    proc, _, _ = ingress
    url = f"{proc.url}/carriers/sim/mo"
    r = signed_post(url, {"id": "u1", "from": "+8613812345678", "to": "10690001",
                          "text": "你好👋".encode("utf-16-be").hex(), "coding": "ucs2"})
    assert r.status_code == 200, r.text
    parts = ["The first part of a long text, ", "then the second, ", "and the 最后 part."]
    ref = uuid.uuid4().hex[:6]
    for seq in (3, 1, 2):  # out of order, and one retried
        r = signed_post(url, {"id": f"p{seq}", "from": "+8613812345679", "to": "10690001",
                              "text": parts[seq - 1], "concat": {"ref": ref, "total": 3, "seq": seq}})
        assert r.status_code in (200, 202), r.text
    assert signed_post(url, {"id": "p2", "from": "+8613812345679", "to": "10690001",
                             "text": parts[1], "concat": {"ref": ref, "total": 3, "seq": 2}}
                       ).status_code == 202
    got = read_topic(stack.bootstrap, stack.topic("sms.inbound"), until=lambda r: len(r) >= 2)
    texts = {e["from"]: e for e in got}
    assert texts["+8613812345678"]["text"] == "你好👋"
    assert texts["+8613812345679"]["text"] == "".join(parts)
    assert texts["+8613812345679"]["parts"] == 3


def test_dlr_webhook_is_published_keyed_by_message(stack, ingress):
    proc, _, _ = ingress
    mid = str(uuid.uuid4())
    r = signed_post(f"{proc.url}/carriers/sim/dlr", {"carrier_message_id": "abc", "reference": mid,
                                                     "status": "DELIVRD"})
    assert r.status_code == 200
    (dlr,) = read_topic(stack.bootstrap, stack.topic("sms.delivery"), until=lambda r: len(r) >= 1)
    assert dlr["status"] == "delivered" and dlr["message_id"] == mid and dlr["carrier"] == "sim"


def test_a_batched_dlr_webhook_publishes_each_readable_report_and_names_the_refused_one(stack, ingress):
    proc, _, _ = ingress
    mids = [str(uuid.uuid4()) for _ in range(3)]
    reports = [{"carrier_message_id": f"b-{i}", "reference": mid, "status": "DELIVRD"}
               for i, mid in enumerate(mids)]
    reports.insert(1, {"carrier_message_id": "b-bad", "status": "bogus"})
    r = signed_post(f"{proc.url}/carriers/sim/dlr", {"reports": reports})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["accepted"] == 3 and [x["index"] for x in answer["refused"]] == [1]
    got = read_topic(stack.bootstrap, stack.topic("sms.delivery"), until=lambda r: len(r) >= 3)
    assert sorted(d["message_id"] for d in got) == sorted(mids)  # each keyed by its message
    assert {d["status"] for d in got} == {"delivered"}


def test_send_rate_limit_answers_429_with_retry_after(stack):
    key = seed_tenant(stack, "busy")
    proc = stack.start("services.ingress", HERALD_API_RATE_PER_SECOND="0.5",
                       HERALD_API_RATE_BURST="2")
    codes = [httpx.post(f"{proc.url}/v1/messages", headers={"Authorization": f"Bearer {key}"},
                        json={"to": "+14155550100", "text": f"n{i}"}).status_code for i in range(3)]
    assert codes == [202, 202, 429]
    r = httpx.post(f"{proc.url}/v1/messages", headers={"Authorization": f"Bearer {key}"},
                   json={"to": "+14155550100", "text": "again"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "rate limit" in r.json()["error"]
