"""Level 2 end to end: ERPs over Kafka and over webhooks, every processor its own process over
the real broker and database (carrier simulator, ingress, router, egress, bridge).

The ERP is a plain confluent-kafka client, as an institution's system in any language would be.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid

import httpx
import pytest
from aiohttp import web
from confluent_kafka import Producer

from services.bridge.webhooks import set_endpoint, verify
from services.core.db import Database
from services.core.messages import message_id_for
from services.core.tenancy import set_unmatched
from services.ingress.domain import mo_message_id
from tests.support.infra import Stack, free_port, read_topic, wait_until
from tests.support.platform import start_platform
from tests.support.seed import seed_tenant

pytestmark = pytest.mark.e2e

ACME_NUMBER, GLOBEX_NUMBER = "10690011", "10690012"


class Receiver:
    """An ERP's webhook endpoint: answers 500 to the first request, then 200; records all."""

    def __init__(self, secret: str | None = None) -> None:
        self.port = free_port()
        self.secret = secret
        self.requests: list[dict] = []
        self.fail_first = 1
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/herald"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append({"headers": dict(request.headers), "body": body,
                              "event": json.loads(body), "at": time.time()})
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=500, text="down for maintenance")
        return web.Response(status=204)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/hooks/herald", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> Receiver:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@pytest.fixture(scope="module")
def bridge_platform(broker, tmp_path_factory):
    """One platform for the module: starting five processes per test would dominate its time."""
    from services.core.db.migrate import upgrade
    from services.core.topics import ensure_topics

    url = f"sqlite:///{tmp_path_factory.mktemp('bridge-db') / 'herald.db'}"
    upgrade(url)
    stack = Stack(broker.bootstrap, url)
    ensure_topics(stack.settings(topic_partitions=3))
    keys = {"acme": seed_tenant(stack, "acme", number=ACME_NUMBER),
            "globex": seed_tenant(stack, "globex", number=GLOBEX_NUMBER)}
    receiver = Receiver().start()
    db = Database(url)
    with db.session() as s:
        receiver.secret = set_endpoint(s, stack.settings(), "globex", receiver.url)
        # acme's ERP reads its texts from tenant.acme.inbound (no webhook): it takes them all
        set_unmatched(s, "acme", "inbox")
    db.dispose()
    tmp = tmp_path_factory.mktemp("bridge-platform")
    fast = {"HERALD_EGRESS_MAX_ATTEMPTS": "4", "HERALD_EGRESS_BACKOFF_BASE_MS": "50"}
    platform = start_platform(stack, tmp, **fast)
    bridge = stack.start("services.bridge", HERALD_WEBHOOK_BACKOFF_BASE_S="0.3",
                         HERALD_BRIDGE_TOPIC_REFRESH_MS="1000", **fast)
    platform.bridge, platform.receiver, platform.keys = bridge, receiver, keys
    yield platform
    try:
        assert all(p.alive() for p in [*platform.processors, bridge]), "a processor died"
    finally:
        stack.stop_all()
        receiver.stop()


class Erp:
    """The tenant's business system: publishes to its outbound topic, reads its own topics."""

    def __init__(self, stack: Stack, tenant: str) -> None:
        self.stack, self.tenant = stack, tenant
        self.producer = Producer({"bootstrap.servers": stack.bootstrap, "enable.idempotence": True})

    def publish(self, body: dict | bytes, key: str | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.producer.produce(self.stack.topic(f"tenant.{self.tenant}.outbound"), raw,
                              key=key.encode() if key else None)
        assert self.producer.flush(10) == 0

    def read(self, kind: str, until, timeout: float = 60) -> list[dict]:
        return read_topic(self.stack.bootstrap, self.stack.topic(f"tenant.{self.tenant}.{kind}"),
                          until=until, timeout=timeout)


def test_an_erp_request_on_its_topic_is_sent_and_its_status_comes_back_on_its_status_topic(
        bridge_platform):
    p = bridge_platform
    erp = Erp(p.stack, "acme")
    erp.publish({"request_id": "invoice-1001", "to": "+8613900001001",
                 "text": "Invoice 1001 is paid, thank you", "attributes": {"invoice": "1001"}},
                key="+8613900001001")
    mid = message_id_for("acme", "invoice-1001")
    (sub,) = wait_until(lambda: p.submissions(reference=mid), 60, what="ERP message at the carrier")
    assert sub["to"] == "+8613900001001" and sub["from"] == ACME_NUMBER
    statuses = erp.read("status", lambda rs: any(r["message_id"] == mid and r["status"] == "delivered"
                                                 for r in rs))
    mine = [r for r in statuses if r["message_id"] == mid]
    assert [r["status"] for r in mine] == ["accepted", "sent", "delivered"]
    assert all(r["tenant_id"] == "acme" and r["request_id"] == "invoice-1001" for r in mine)
    # The same request again (an ERP retry) is the same message, and is not sent twice.
    # Egress recognises it and announces the current status again, under the same event id.
    erp.publish({"request_id": "invoice-1001", "to": "+8613900001001",
                 "text": "Invoice 1001 is paid, thank you", "attributes": {"invoice": "1001"}},
                key="+8613900001001")
    again = erp.read("status", lambda rs: sum(r["message_id"] == mid and r["status"] == "delivered"
                                              for r in rs) >= 2)
    delivered = [r for r in again if r["message_id"] == mid and r["status"] == "delivered"]
    assert len({r["event_id"] for r in delivered}) == 1
    assert len(p.submissions(reference=mid)) == 1


def test_a_reply_to_an_inbound_text_reaches_the_texter_from_the_number_they_texted(bridge_platform):
    p = bridge_platform
    erp = Erp(p.stack, "acme")
    alice = "+8613900002001"
    assert p.mo("bridge-mo-1", alice, ACME_NUMBER, "Where is my order 5521?").status_code == 200
    inbound_id = mo_message_id("sim", "bridge-mo-1")
    (inbound,) = [r for r in erp.read("inbound", lambda rs: any(r["message_id"] == inbound_id
                                                                for r in rs))
                  if r["message_id"] == inbound_id]
    assert inbound["from"] == alice and inbound["tenant_id"] == "acme"
    # The ERP answers by id only: no 'to', no 'from'; the bridge addresses it.
    erp.publish({"request_id": f"answer-{inbound_id}", "in_reply_to": inbound_id,
                 "text": "Order 5521 leaves the warehouse today."})
    mid = message_id_for("acme", f"answer-{inbound_id}")
    (sub,) = wait_until(lambda: p.submissions(reference=mid), 60, what="the reply at the carrier")
    assert sub["to"] == alice and sub["from"] == ACME_NUMBER
    assert sub["text"] == "Order 5521 leaves the warehouse today."
    # Replying to an id that is not this tenant's inbound goes to its DLQ, not to anyone.
    erp.publish({"request_id": "answer-bogus", "in_reply_to": str(uuid.uuid4()), "text": "hello?"})
    dlq = erp.read("dlq", lambda rs: any(r["error_type"] == "unknown_inbound" for r in rs))
    assert any("in_reply_to" in r["reason"] for r in dlq if r["error_type"] == "unknown_inbound")


def test_a_request_claiming_another_tenant_is_rejected_to_its_own_dlq_with_the_reason(bridge_platform):
    p = bridge_platform
    erp = Erp(p.stack, "acme")
    erp.publish({"request_id": "sneaky-1", "tenant_id": "globex", "to": "+8613900003001",
                 "text": "Sent as someone else"})
    erp.publish(b"not json at all")
    erp.publish({"request_id": "no-text", "to": "+8613900003001"})
    dlq = erp.read("dlq", lambda rs: {"tenant_mismatch", "invalid_json", "schema_violation"}
                   <= {r["error_type"] for r in rs})
    by_kind = {r["error_type"]: r for r in dlq}
    sneaky = by_kind["tenant_mismatch"]
    assert "globex" in sneaky["reason"] and "tenant.acme.outbound" in sneaky["reason"]
    assert sneaky["tenant_id"] == "acme"  # the DLQ record is the publisher's, not the claimed one's
    assert json.loads(base64.b64decode(sneaky["value_b64"]))["request_id"] == "sneaky-1"
    assert "text" in by_kind["schema_violation"]["reason"]
    # Nothing of it reached the pipeline, under either tenant.
    for tenant in ("acme", "globex"):
        assert p.submissions(reference=message_id_for(tenant, "sneaky-1")) == []
    outbound = read_topic(p.stack.bootstrap, p.stack.topic("sms.outbound"), until=None, timeout=5)
    assert not [e for e in outbound if e["request_id"] in ("sneaky-1", "no-text")]
    # And globex's DLQ has nothing from acme.
    other = read_topic(p.stack.bootstrap, p.stack.topic("tenant.globex.dlq"), until=None, timeout=3)
    assert not [r for r in other if "sneaky" in base64.b64decode(r["value_b64"]).decode("utf-8", "replace")]


def test_a_webhook_gets_signed_deliveries_in_order_per_number_and_a_retry_after_a_500(bridge_platform):
    p = bridge_platform
    rx = p.receiver
    bob = "+8613900004001"
    assert p.mo("bridge-mo-2", bob, GLOBEX_NUMBER, "Is the shop open on Sunday?").status_code == 200
    inbound_id = mo_message_id("sim", "bridge-mo-2")
    erp = Erp(p.stack, "globex")
    erp.publish({"request_id": "sunday", "in_reply_to": inbound_id, "text": "Yes, 10:00-16:00."})
    mid = message_id_for("globex", "sunday")

    def delivered_events() -> list[dict]:
        seen, out = set(), []
        for r in rx.requests:
            eid = r["headers"]["X-Herald-Event-Id"]
            if eid not in seen:
                seen.add(eid)
                out.append(r["event"])
        return out

    wait_until(lambda: any(e.get("message_id") == mid and e.get("status") == "delivered"
                           for e in delivered_events()), 90, 0.2, "the delivered status by webhook")
    reqs = rx.requests
    # Every request is signed, and fresh.
    for r in reqs:
        assert verify(rx.secret, r["body"], r["headers"]), r["headers"]
        assert not verify("wrong-secret", r["body"], r["headers"])
        assert not verify(rx.secret, r["body"] + b" ", r["headers"])
    # The first one was answered 500 and came again (same event, next attempt).
    first = reqs[0]
    assert first["event"]["message_id"] == inbound_id and first["event"]["event_type"] == "sms.inbound"
    assert reqs[1]["headers"]["X-Herald-Event-Id"] == first["headers"]["X-Herald-Event-Id"]
    assert reqs[1]["headers"]["X-Herald-Attempt"] == "2"
    assert reqs[1]["headers"]["X-Herald-Delivery"] == first["headers"]["X-Herald-Delivery"]
    # In order for bob's number: his text first (nothing overtook it while it was retried), then
    # the statuses of the answer in their order.
    kinds = [(e["event_type"], e.get("status")) for e in delivered_events()
             if e.get("from") == bob or e.get("to") == bob]
    assert kinds == [("sms.inbound", None), ("sms.status", "accepted"), ("sms.status", "sent"),
                     ("sms.status", "delivered")]
    assert all(r["headers"]["X-Herald-Event"] == r["event"]["event_type"] for r in reqs)


def test_a_tenant_sees_the_bridges_webhook_deliveries_through_the_console_api(bridge_platform):
    """Failing for a day and replaying are shown in tests/integration/test_bridge_webhook_delivery.py;
    here the console's webhook API over what the running bridge delivered: its own deliveries
    only, with its API key."""
    url = f"{bridge_platform.console.url}/v1/webhooks"
    assert httpx.get(f"{url}/deliveries", timeout=5).status_code == 401
    bad = {"Authorization": "Bearer hk_0000000000_" + "x" * 40}
    assert httpx.get(f"{url}/deliveries", headers=bad, timeout=5).status_code == 401
    globex = {"Authorization": f"Bearer {bridge_platform.keys['globex']}"}
    r = httpx.get(f"{url}/deliveries", headers=globex, timeout=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["counts"].get("delivered", 0) >= 4 and not body["counts"].get("failed")
    retried = [d for d in body["deliveries"] if d["attempts"] >= 2]
    assert retried and retried[0]["last_status_code"] in (200, 204)
    acme = {"Authorization": f"Bearer {bridge_platform.keys['acme']}"}
    assert httpx.get(f"{url}/deliveries", headers=acme, timeout=5).json()["deliveries"] == []
    r = httpx.post(f"{url}/replay", headers=globex, json={}, timeout=5)
    assert r.status_code == 200 and r.json() == {"replayed": 0}
    assert httpx.post(f"{url}/replay", headers=globex, json={"ids": "all"}, timeout=5).status_code == 400
