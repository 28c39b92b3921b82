"""A real processor (the router, as a process over the real broker) whose input topic gets
garbage between valid events: random bytes, bytes that are not UTF-8, JSON nested too deeply,
the wrong schema and a huge value. Each bad record lands on sms.inbound.dlq with its reason,
the valid events around them take effect, and the router stays healthy throughout."""

from __future__ import annotations

import base64
import json
import os

import httpx
import pytest
from confluent_kafka import Producer

from services.core.carriers import sign
from services.core.messages import message_id_for
from services.ingress.domain import mo_message_id
from tests.fuzz.conftest import WEBHOOK_SECRET
from tests.support.infra import read_topic

pytestmark = pytest.mark.e2e

GARBAGE = {
    b"random": os.urandom(64),
    b"not-utf8": b"\xff\xfe\xfd" + os.urandom(16),
    b"deep": b"[" * 100_000,
    b"wrong-schema": json.dumps({"event_type": "sms.inbound", "hello": "world"}).encode(),
    b"not-an-object": b"[1, 2, 3]",
    b"huge": json.dumps({"event_type": "x", "text": "y" * 900_000}).encode(),
}


def _mo(api, cmid: str) -> str:
    raw = json.dumps({"id": cmid, "from": "+8613812340000", "to": "10690077", "text": "HELP"}).encode()
    r = httpx.post(f"{api['ingress'].url}/carriers/fuzz/mo", content=raw, timeout=10,
                   headers={"X-Herald-Signature": sign(WEBHOOK_SECRET, raw)})
    assert r.status_code == 200, r.text
    return message_id_for("fuzzco", f"reply-{mo_message_id('fuzz', cmid)}")


def test_a_router_fed_garbage_dead_letters_each_record_with_its_reason_and_stays_healthy(api, fuzz_stack, carriers_file):
    router = fuzz_stack.start("services.router", HERALD_CARRIERS_FILE=str(carriers_file))
    producer = Producer({"bootstrap.servers": fuzz_stack.bootstrap, "message.max.bytes": 2_000_000})
    replies = [_mo(api, "before-garbage")]
    for key, value in GARBAGE.items():
        producer.produce(fuzz_stack.topic("sms.inbound"), key=key, value=value)
    assert producer.flush(10) == 0
    replies.append(_mo(api, "after-garbage"))

    wanted = {k.decode() for k in GARBAGE}
    try:
        dlq = read_topic(fuzz_stack.bootstrap, fuzz_stack.topic("sms.inbound.dlq"), timeout=60,
                         until=lambda rs: {r["key"] for r in rs} >= wanted)
    except AssertionError:
        dlq = read_topic(fuzz_stack.bootstrap, fuzz_stack.topic("sms.inbound.dlq"), timeout=5)
        pytest.fail(f"dead-lettered {sorted({r['key'] for r in dlq})}, not all of {sorted(wanted)}")
    by_key = {r["key"]: r for r in dlq}
    for key, value in GARBAGE.items():
        rec = by_key[key.decode()]
        assert rec["processor"] == "router" and rec["reason"], rec
        kept = base64.b64decode(rec["value_b64"])
        assert kept == value if key != b"huge" else value.startswith(kept) and len(kept) < len(value)
    assert by_key["not-utf8"]["error_type"] == "wrong_encoding"
    assert by_key["deep"]["error_type"] == "invalid_json" and "nested too deeply" in by_key["deep"]["reason"]
    assert by_key["wrong-schema"]["error_type"] == "schema_violation"
    assert f"value of {len(GARBAGE[b'huge'])} bytes" in by_key["huge"]["reason"]

    outbound = read_topic(fuzz_stack.bootstrap, fuzz_stack.topic("sms.outbound"), timeout=60,
                          until=lambda rs: set(replies) <= {r["message_id"] for r in rs})
    assert set(replies) <= {r["message_id"] for r in outbound}
    assert router.alive()
    r = httpx.get(f"{router.url}/health", timeout=5)
    assert r.status_code == 200 and r.json()["status"] == "ok"
