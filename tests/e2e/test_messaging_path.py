"""The messaging path end to end, every processor its own process over the real broker and
database: carrier MO in at ingress, routed, replied, sent through the carrier simulator, and
its delivery report turning the message delivered."""

from __future__ import annotations

import httpx
import pytest

from services.core.messages import message_id_for
from services.ingress.domain import mo_message_id
from tests.support.infra import read_topic, wait_until
from tests.support.platform import start_platform
from tests.support.seed import seed_tenant

pytestmark = pytest.mark.e2e
NUMBER = "10690001"
ALICE = "+8613812345678"


@pytest.fixture
def platform(stack, tmp_path):
    key = seed_tenant(stack, "acme", number=NUMBER, help_text="Acme help: text INFO. Reply STOP to opt out.")
    p = start_platform(stack, tmp_path, HERALD_EGRESS_MAX_ATTEMPTS="4",
                       HERALD_EGRESS_BACKOFF_BASE_MS="50")
    p.key = key
    yield p
    pids = {proc.module: proc.popen.pid for proc in p.processors}
    assert all(proc.alive() for proc in p.processors), "a processor died during the test"
    assert pids == {proc.module: proc.popen.pid for proc in p.processors}


def test_help_is_answered_through_the_carrier_and_its_dlr_marks_it_delivered(platform, stack):
    r = platform.mo("mo-1", ALICE, NUMBER, "help")
    assert r.status_code == 200, r.text
    inbound_id = mo_message_id("sim", "mo-1")
    reply_id = message_id_for("acme", f"reply-{inbound_id}")
    (sub,) = wait_until(lambda: platform.submissions(reference=reply_id), 60,
                        what="HELP reply at the simulator")
    assert sub["to"] == ALICE and "Acme help" in sub["text"] and sub["from"] == NUMBER
    msg = platform.wait_status(platform.key, reply_id, "delivered")
    assert [h["status"] for h in msg["history"]] == ["accepted", "sent", "delivered"]
    statuses = read_topic(stack.bootstrap, stack.topic("sms.status"),
                          until=lambda rs: any(s["message_id"] == reply_id and s["status"] == "delivered"
                                               for s in rs))
    unique = {s["event_id"]: s["status"] for s in statuses if s["message_id"] == reply_id}
    assert list(unique.values()) == ["accepted", "sent", "delivered"]


def test_the_same_idempotency_key_twice_yields_one_delivered_message(platform):
    body = {"to": "+8613900000001", "text": "Your order 77 has shipped", "request_id": "ship-77"}
    r1, r2 = platform.send(platform.key, **body), platform.send(platform.key, **body)
    assert r1.json()["message_id"] == r2.json()["message_id"]
    mid = r1.json()["message_id"]
    platform.wait_status(platform.key, mid, "delivered")
    assert len(platform.submissions(reference=mid)) == 1


def test_after_stop_a_send_to_that_number_is_suppressed(platform):
    bob = "+8613900000002"
    assert platform.mo("mo-stop", bob, NUMBER, "ＳＴＯＰ！").status_code == 200
    confirm = message_id_for("acme", f"reply-{mo_message_id('sim', 'mo-stop')}")
    platform.wait_status(platform.key, confirm, "delivered")  # the one confirmation goes out
    r = platform.send(platform.key, to=bob, text="Big sale today!", category="marketing")
    mid = r.json()["message_id"]
    msg = platform.wait_status(platform.key, mid, "suppressed")
    assert msg["reason"]
    assert platform.submissions(reference=mid) == []


def test_a_300_character_chinese_text_leaves_as_five_ucs2_segments(platform):
    r = platform.send(platform.key, to="+8613900000003", text="积" * 300)
    assert r.json()["segments"] == 5
    mid = r.json()["message_id"]
    (sub,) = wait_until(lambda: platform.submissions(reference=mid), 60, what="submission")
    assert sub["encoding"] == "ucs2" and sub["segments"] == 5 and sub["text"] == "积" * 300
    msg = platform.wait_status(platform.key, mid, "delivered")
    assert msg["segments"] == 5 and msg["encoding"] == "ucs2"


def test_with_half_the_carrier_requests_failing_every_message_still_arrives(platform):
    platform.control(fail_ratio=0.5)
    ids = [platform.send(platform.key, to=f"+861390000010{i}", text=f"flaky {i}").json()["message_id"]
           for i in range(6)]
    for mid in ids:
        # A message whose tries all meet failures is parked and redriven with a growing delay
        # (back-pressure, not failure), so its delivery can take longer than a minute.
        platform.wait_status(platform.key, mid, "delivered", timeout=180)
        assert len(platform.submissions(reference=mid)) == 1


def test_with_the_carrier_down_a_message_waits_and_is_sent_once_when_it_is_back(platform, stack):
    # An outage is back-pressure, not failure: the message is parked, not failed or dead-lettered.
    platform.control(down=True)
    mid = platform.send(platform.key, to="+8613900000020", text="after the outage").json()["message_id"]
    short = platform.send(platform.key, to="+8613900000021", text="only for two seconds",
                          validity_seconds=2).json()["message_id"]
    # Past its validity while it waited, the short one expires (it never failed).
    assert platform.wait_status(platform.key, short, "expired")["status"] == "expired"
    assert platform.message(platform.key, mid)["status"] == "accepted"
    platform.control(down=False)
    platform.wait_status(platform.key, mid, "delivered", timeout=90)
    assert len(platform.submissions(to="+8613900000020")) == 1
    assert platform.submissions(to="+8613900000021") == []
    assert read_topic(stack.bootstrap, stack.topic("sms.outbound.dlq"), timeout=2) == []


def test_malformed_webhooks_and_calls_get_4xx_and_no_processor_restarts(platform):
    url = platform.ingress.url
    assert httpx.post(f"{url}/carriers/sim/mo", content=b"{bad").status_code == 401
    assert platform.mo("x", "123", NUMBER, "hi").status_code == 400
    assert platform.send(platform.key, to="+1", text="hi").status_code == 400
    assert platform.send(platform.key, to="+8613900000030", text="x" * 2000).status_code == 400
    assert platform.send("hk_0000000000_" + "y" * 40, to="+8613900000030", text="hi").status_code == 401
    assert httpx.post(f"{url}/v1/messages", json={"to": "+8613900000030", "text": "hi"}).status_code == 401
    # An MO to a number no tenant owns is published, then dead-lettered by the router with the reason.
    assert platform.mo("orphan", ALICE, "10699999", "hello").status_code == 200
    dlq = read_topic(platform.stack.bootstrap, platform.stack.topic("sms.inbound.dlq"),
                     until=lambda rs: len(rs) >= 1)
    assert "10699999" in dlq[0]["reason"]
