"""Egress as a process against the real broker, a migrated SQLite database and the carrier
simulator: sends, dedupe, opt-out suppression, retries, the DLQ and delivery reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from confluent_kafka import Producer

from services.core.messages import message_id_for
from services.core.schemas import encode, new_event
from tests.support.infra import free_port, read_topic, wait_until

pytestmark = pytest.mark.integration

TENANT = "acme"


def now_iso(delta_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta_s)).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


class Harness:
    def __init__(self, stack, tmp_path) -> None:
        self.stack = stack
        self.sim_port = free_port()
        self.sim = f"http://127.0.0.1:{self.sim_port}"
        self.producer = Producer({"bootstrap.servers": stack.bootstrap})
        self.carriers_file = tmp_path / "carriers.json"
        self.carriers_file.write_text(json.dumps({"carriers": [{
            "name": "sim", "kind": "http", "submit_url": f"{self.sim}/submit",
            "api_token": "sim-token", "webhook_secret": "sim-secret", "prefixes": ["+"],
            "rate_per_second": 500, "timeout_s": 5}]}))

    def start_simulator(self) -> None:
        # Nothing listens for the simulator's own DLR callbacks here; tests put DLRs on
        # sms.delivery themselves.
        self.stack.start("services.simulator", port=self.sim_port, health=False,
                         HERALD_SIM_PORT=str(self.sim_port),
                         HERALD_SIM_DLR_URL=f"http://127.0.0.1:{free_port()}/dlr")
        wait_until(lambda: httpx.get(f"{self.sim}/health", timeout=2).status_code == 200, 30,
                   what="simulator /health")
        self.control(dlr_enabled=False)

    def start_egress(self) -> None:
        self.stack.start("services.egress", HERALD_CARRIERS_FILE=str(self.carriers_file),
                         HERALD_EGRESS_MAX_ATTEMPTS="3", HERALD_EGRESS_BACKOFF_BASE_MS="20")

    def control(self, **behaviour) -> None:
        httpx.post(f"{self.sim}/control", json=behaviour, timeout=5).raise_for_status()

    def submissions(self, reference: str) -> list[dict]:
        return httpx.get(f"{self.sim}/submissions", params={"reference": reference}, timeout=5).json()

    def produce(self, topic: str, event: dict, key: str) -> None:
        self.producer.produce(self.stack.topic(topic), encode(topic, event), key=key.encode())
        assert self.producer.flush(10) == 0

    def outbound(self, request_id: str, to: str, text: str = "Your order has shipped.") -> str:
        mid = message_id_for(TENANT, request_id)
        ev = new_event("sms.outbound", tenant_id=TENANT, message_id=mid, request_id=request_id,
                       to=to, text=text, source="api", accepted_at=now_iso())
        self.produce("sms.outbound", ev, to)
        return mid

    def statuses(self, message_id: str, until: str, timeout: float = 60) -> list[dict]:
        def mine(recs: list[dict]) -> list[dict]:
            # Consumers dedupe status events by event_id (a duplicate request re-announces the
            # current status under the same id).
            seen: set[str] = set()
            out = []
            for r in recs:
                if r["message_id"] == message_id and r["event_id"] not in seen:
                    seen.add(r["event_id"])
                    out.append(r)
            return out

        recs = read_topic(self.stack.bootstrap, self.stack.topic("sms.status"),
                          until=lambda recs: any(r["status"] == until for r in mine(recs)),
                          timeout=timeout)
        return mine(recs)


@pytest.fixture
def harness(stack, tmp_path):
    h = Harness(stack, tmp_path)
    h.start_simulator()
    return h


def test_a_message_is_sent_once_and_a_delivery_report_marks_it_delivered(harness):
    h = harness
    h.start_egress()
    mid = h.outbound("order-1:shipped", "+14155550123")
    sent = h.statuses(mid, "sent")
    assert [r["status"] for r in sent] == ["accepted", "sent"]
    assert sent[1]["carrier"] == "sim" and sent[1]["encoding"] == "gsm7" and sent[1]["segments"] == 1
    subs = h.submissions(mid)
    assert len(subs) == 1 and subs[0]["to"] == "+14155550123"
    assert sent[1]["carrier_message_id"] == subs[0]["carrier_message_id"]

    # The same request id again: no second submission, no second 'sent'.
    h.outbound("order-1:shipped", "+14155550123")
    marker = h.outbound("order-2:shipped", "+14155550123")  # same partition, after the repeat
    h.statuses(marker, "sent")
    assert len(h.submissions(mid)) == 1
    assert [r["status"] for r in h.statuses(mid, "sent")] == ["accepted", "sent"]

    dlr = new_event("sms.delivery", carrier="sim", carrier_message_id=subs[0]["carrier_message_id"],
                    status="delivered", reported_at=now_iso())
    h.produce("sms.delivery", dlr, subs[0]["carrier_message_id"])
    assert [r["status"] for r in h.statuses(mid, "delivered")] == ["accepted", "sent", "delivered"]


def test_opt_outs_suppress_retries_ride_out_a_flaky_carrier_and_a_dead_one_is_waited_for(harness):
    h = harness
    # The STOP is on the topic before egress starts: egress reads it before it sends anything.
    stopped = "+14155550777"
    h.produce("optouts", new_event("optouts", tenant_id=TENANT, msisdn=stopped, opted_out=True,
                                   keyword="STOP", changed_at=now_iso(-60)), f"{TENANT}:{stopped}")
    h.start_egress()
    mid = h.outbound("promo-1", stopped)
    st = h.statuses(mid, "suppressed")
    assert [r["status"] for r in st] == ["accepted", "suppressed"] and "opted out" in st[1]["reason"]
    assert h.submissions(mid) == []

    # Every second submit fails with a 503: retries still get each message out.
    h.control(fail_ratio=0.5)
    flaky = [h.outbound(f"flaky-{i}", "+14155550100") for i in range(3)]
    for m in flaky:
        assert h.statuses(m, "sent")[-1]["status"] == "sent"
        assert len(h.submissions(m)) == 1
    assert httpx.get(f"{h.sim}/stats", timeout=5).json()["failed"] >= 1

    # The carrier is down: the message waits (not failed, not dead-lettered) and goes out once
    # the carrier answers again.
    h.control(fail_ratio=0, down=True)
    dead = h.outbound("down-1", "+14155550200")
    wait_until(lambda: httpx.get(f"{h.sim}/stats", timeout=5).json()["failed"] >= 3, 30,
               what="egress trying the carrier that is down")
    h.control(down=False)
    sent = h.statuses(dead, "sent")
    assert [r["status"] for r in sent] == ["accepted", "sent"]
    assert len(h.submissions(dead)) == 1
