"""Consent across the running processes: a subscriber texts STOP (router), gets the router's
confirmation from the carrier (egress), and a tenant's send-API message that names the
confirmation's kind in its attributes (ingress) is suppressed, never submitted to the carrier."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from confluent_kafka import Producer

from services.core.schemas import encode, new_event
from tests.support.infra import free_port, read_topic, wait_until
from tests.support.seed import seed_tenant

pytestmark = pytest.mark.integration
NUMBER = "10690001"
QUITTER = "+8613800138123"


def iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_stop_is_confirmed_and_a_send_api_message_posing_as_the_confirmation_is_suppressed(stack, tmp_path):
    key = seed_tenant(stack, "acme", number=NUMBER)
    sim_port = free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    carriers = tmp_path / "carriers.json"
    carriers.write_text(json.dumps({"carriers": [{
        "name": "sim", "kind": "http", "submit_url": f"{sim}/submit", "api_token": "sim-token",
        "webhook_secret": "sim-secret", "prefixes": ["+"], "rate_per_second": 500, "timeout_s": 5}]}))
    stack.start("services.simulator", port=sim_port, health=False, HERALD_SIM_PORT=str(sim_port),
                HERALD_SIM_DLR_URL=f"http://127.0.0.1:{free_port()}/dlr")
    wait_until(lambda: httpx.get(f"{sim}/health", timeout=2).status_code == 200, 30, what="simulator")
    stack.start("services.router")
    stack.start("services.egress", HERALD_CARRIERS_FILE=str(carriers))
    ingress = stack.start("services.ingress", HERALD_CARRIERS_FILE=str(carriers))

    def submissions(message_id: str) -> list[dict]:
        return httpx.get(f"{sim}/submissions", params={"reference": message_id}, timeout=5).json()

    def status(message_id: str, wanted: str) -> dict:
        recs = read_topic(stack.bootstrap, stack.topic("sms.status"), timeout=60,
                          until=lambda rs: any(r["message_id"] == message_id and r["status"] == wanted
                                               for r in rs))
        return next(r for r in recs if r["message_id"] == message_id and r["status"] == wanted)

    stop = new_event("sms.inbound", message_id=str(uuid.uuid4()), carrier="sim", carrier_message_id="SM-STOP",
                     to=NUMBER, text="STOP", received_at=iso(datetime.now(UTC) - timedelta(seconds=5)),
                     **{"from": QUITTER})
    p = Producer({"bootstrap.servers": stack.bootstrap})
    p.produce(stack.topic("sms.inbound"), encode("sms.inbound", stop), key=QUITTER.encode())
    assert p.flush(10) == 0

    [confirmation] = read_topic(stack.bootstrap, stack.topic("sms.outbound"), timeout=60,
                                until=lambda rs: any(r.get("in_reply_to") == stop["message_id"] for r in rs))
    assert confirmation["source"] == "router"
    status(confirmation["message_id"], "sent")
    assert len(submissions(confirmation["message_id"])) == 1

    r = httpx.post(f"{ingress.url}/v1/messages", headers={"Authorization": f"Bearer {key}"},
                   json={"to": QUITTER, "text": "Big sale today!",
                         "attributes": {"kind": "optout_confirmation"}})
    assert r.status_code == 202, r.text
    suppressed = status(r.json()["message_id"], "suppressed")
    assert "opted out" in suppressed["reason"]
    assert submissions(r.json()["message_id"]) == []
