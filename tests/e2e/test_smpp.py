"""The messaging path over SMPP, every processor its own process: an MO arrives on a bind,
reaches the router, and the reply goes out over a bind to jSMPP's SMSC simulator, whose
receipt (decimal id, for a hex submit id) turns it delivered.

Two SMSCs Herald did not write: jSMPP's simulator carries the outbound traffic (its own canned
MO comes from `555`, not a subscriber number, and is refused); smpp34's server is the carrier
the subscriber texts through, in national form as many SMSCs send it (TON 2, made
international by the carrier's `national_country_code`)."""

from __future__ import annotations

import json

import pytest

from services.core.messages import message_id_for
from tests.support.infra import read_topic, wait_until
from tests.support.platform import Platform
from tests.support.seed import seed_tenant
from tests.support.smsc import JsmppSimulator, ThreadedSmpp34

pytestmark = pytest.mark.e2e
NUMBER = "10690001"
JSMPP_PORT, SMPP34_PORT = 19460, 19461


@pytest.fixture
def jsmpp():
    sim = JsmppSimulator(JSMPP_PORT)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def mo_smsc():
    smsc = ThreadedSmpp34(SMPP34_PORT)
    smsc.start()
    yield smsc
    smsc.stop()


def smpp_carrier(name: str, port: int, prefixes: list[str], **options) -> dict:
    return {"name": name, "kind": "smpp", "api_token": "herald", "prefixes": prefixes,
            "priority": 10, "rate_per_second": 1000, "timeout_s": 3,
            "options": {"host": "127.0.0.1", "port": port, "system_id": "herald",
                        "reconnect_min_s": 0.2, "reconnect_max_s": 1, **options}}


@pytest.fixture
def platform(stack, tmp_path, jsmpp, mo_smsc):
    key = seed_tenant(stack, "acme", number=NUMBER, help_text="Acme help: text INFO. Reply STOP to opt out.")
    carriers = tmp_path / "carriers.json"
    carriers.write_text(json.dumps({"carriers": [
        smpp_carrier("jsmpp", JSMPP_PORT, ["+"]),
        smpp_carrier("mobile", SMPP34_PORT, [], national_country_code="86")]}))
    env = {"HERALD_CARRIERS_FILE": str(carriers)}
    ingress = stack.start("services.ingress", **env)
    router = stack.start("services.router", **env)
    egress = stack.start("services.egress", **env)  # /health is ok once a bind is up
    p = Platform(stack, sim=None, ingress=ingress, router=router, egress=egress, console=None)
    p.key = key
    wait_until(lambda: mo_smsc.esmes, 20, what="egress bound to the subscribers' SMSC")
    yield p
    assert all(proc.alive() for proc in (ingress, router, egress)), "a processor died during the test"


def test_an_mo_over_smpp_is_answered_over_the_jsmpp_bind_and_its_receipt_marks_it_delivered(
        platform, stack, mo_smsc, jsmpp):
    resp = mo_smsc.deliver(NUMBER, b"help", source_addr="13812345678", source_addr_ton=2,
                           source_addr_npi=1, dest_addr_ton=0)
    assert resp.command_status == 0  # answered only after the broker took the MO
    (mo,) = read_topic(stack.bootstrap, stack.topic("sms.inbound"), until=lambda rs: len(rs) >= 1)
    assert (mo["carrier"], mo["from"], mo["to"], mo["text"]) == ("mobile", "+8613812345678", NUMBER, "help")

    reply_id = message_id_for("acme", f"reply-{mo['message_id']}")
    msg = platform.wait_status(platform.key, reply_id, "delivered", timeout=30)
    assert [h["status"] for h in msg["history"]] == ["accepted", "sent", "delivered"]
    assert "Receiving submit_sm 'Acme help" in jsmpp.log  # it went out to jSMPP,
    assert b"\x01\x018613812345678\x00".hex() in jsmpp.log  # to the subscriber (a PDU it logged)
    statuses = read_topic(stack.bootstrap, stack.topic("sms.status"),
                          until=lambda rs: any(s["message_id"] == reply_id and s["status"] == "delivered"
                                               for s in rs))
    sent = next(s for s in statuses if s["message_id"] == reply_id and s["status"] == "sent")
    assert sent["carrier"] == "jsmpp"


def test_jsmpps_mo_from_a_short_number_is_refused_and_the_bind_stays_up(platform, jsmpp):
    wait_until(lambda: "Could not send deliver_sm" in jsmpp.log, 20, what="the canned MO answered")
    assert "Negative response 00000065" in jsmpp.log  # ESME_RX_P_APPN: do not send it again
    log = platform.egress.log_path.read_text(errors="replace")
    assert "refusing a deliver_sm (mo) from 555" in log and "not an international number" in log
    r = platform.send(platform.key, to="+8613900000001", text="still bound")
    platform.wait_status(platform.key, r.json()["message_id"], "delivered", timeout=30)
