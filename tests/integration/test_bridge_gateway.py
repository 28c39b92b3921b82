"""The bridge as a process over the real broker: tenant topics are found by pattern, also those
created while it runs; a status for a tenant whose topics do not exist yet creates them; and a
bridge killed mid-stream loses no request (each is forwarded at least once, under one id)."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Producer

from services.core.db import Database
from services.core.messages import message_id_for
from services.core.schemas import encode, new_event
from services.core.tenancy import create_tenant
from tests.support.infra import read_topic, wait_until
from tests.support.seed import seed_tenant

pytestmark = pytest.mark.integration


def publish(stack, tenant: str, bodies: list[dict]) -> None:
    p = Producer({"bootstrap.servers": stack.bootstrap})
    for b in bodies:
        p.produce(stack.topic(f"tenant.{tenant}.outbound"), json.dumps(b).encode(), key=b["to"].encode())
    assert p.flush(10) == 0


def forwarded(stack, ids: set[str], timeout: float = 60) -> list[dict]:
    return read_topic(stack.bootstrap, stack.topic("sms.outbound"), timeout=timeout,
                      until=lambda rs: ids <= {r["message_id"] for r in rs})


def test_a_tenant_created_while_the_bridge_runs_is_served(stack):
    seed_tenant(stack, "acme", number="10690001")
    stack.start("services.bridge", HERALD_BRIDGE_TOPIC_REFRESH_MS="1000")
    seed_tenant(stack, "late", number="10690002")  # topics made after the bridge subscribed
    publish(stack, "late", [{"request_id": "hello-1", "to": "+8613900000001", "text": "hi"}])
    (out,) = [r for r in forwarded(stack, {message_id_for("late", "hello-1")})
              if r["tenant_id"] == "late"]
    assert out["source"] == "erp" and out["to"] == "+8613900000001"


def test_status_for_a_tenant_without_topics_creates_them_and_is_forwarded(stack):
    db = Database(stack.database_url)
    with db.session() as s:
        create_tenant(s, "bare", "Bare")  # no topics made for it
    db.dispose()
    stack.start("services.bridge")
    ev = new_event("sms.status", "bare", message_id="c4d5e6f7-a8b9-4c0d-9e1f-2a3b4c5d6e7f",
                   to="+8613800138000", status="sent", occurred_at="2026-11-28T10:00:00Z",
                   carrier="sim")
    p = Producer({"bootstrap.servers": stack.bootstrap})
    p.produce(stack.topic("sms.status"), encode("sms.status", ev), key=ev["message_id"].encode())
    assert p.flush(10) == 0
    got = wait_until(lambda: read_topic(stack.bootstrap, stack.topic("tenant.bare.status"),
                                        until=lambda rs: rs, timeout=5), 60, 0.5,
                     "the status on tenant.bare.status")
    assert got[0] == ev


def test_a_bridge_killed_mid_stream_forwards_every_request_after_its_restart(stack):
    seed_tenant(stack, "acme", number="10690001")
    bridge = stack.start("services.bridge")
    bodies = [{"request_id": f"bulk-{i}", "to": f"+86139000{i:05d}", "text": f"n{i}"} for i in range(60)]
    publish(stack, "acme", bodies[:30])
    wait_until(lambda: read_topic(stack.bootstrap, stack.topic("sms.outbound"), until=None, timeout=2),
               30, 0.05, "the first requests forwarded")
    bridge.kill()
    publish(stack, "acme", bodies[30:])
    stack.start("services.bridge")
    ids = {message_id_for("acme", b["request_id"]) for b in bodies}
    recs = forwarded(stack, ids, timeout=90)
    assert {r["message_id"] for r in recs} == ids
    # Redelivered ones are the same event: same event id and message id, so egress sends once.
    by_id: dict[str, set[str]] = {}
    for r in recs:
        by_id.setdefault(r["message_id"], set()).add(r["event_id"])
    assert all(len(v) == 1 for v in by_id.values())
