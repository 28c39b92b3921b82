"""Who may text a number that said STOP: only Herald's own confirmation of that STOP. A tenant
cannot make its message pass for one, whatever it puts in ``attributes``, through the send API,
an ERP topic or a campaign. The STOP and the confirmation go through the real router, the send
API's real handler and the bridge's gateway; egress decides against the opt-out in the database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.bridge.domain import Gateway
from services.campaigns.domain.events import outbound as campaign_outbound
from services.core.carriers import Carrier
from services.core.schemas import encode, new_event
from services.core.settings import Settings
from services.core.tenancy import add_number, create_tenant, issue_api_key
from services.egress import domain as egress
from services.egress.optouts import OptOutView
from services.router.domain import Router
from tests.support.ingress_client import call_send_api

NUMBER = "10690001"
QUITTER = "+8613800138000"
CARRIERS = {"sim": Carrier(name="sim", submit_url="http://sim/submit", prefixes=("+",), priority=10)}
CONFIRMATION = {"kind": "optout_confirmation"}


def iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture
def db(sqlite_db):
    with sqlite_db.session() as s:
        create_tenant(s, "acme", "Acme", default_sender=NUMBER)
        add_number(s, "acme", NUMBER)
    return sqlite_db


@pytest.fixture
def stop(db) -> dict:
    """The quitter texted STOP a minute ago; the router recorded it and made its confirmation."""
    text = new_event("sms.inbound", message_id=str(uuid.uuid4()), carrier="sim", carrier_message_id="SM-1",
                     to=NUMBER, text="STOP", received_at=iso(datetime.now(UTC) - timedelta(minutes=1)),
                     **{"from": QUITTER})
    with db.session() as s:
        outs = Router().route(s, text)
    [confirmation] = [o.value for o in outs if o.topic == "sms.outbound"]
    return confirmation


def egress_decides(db, event: dict) -> egress.Decision:
    encode("sms.outbound", event)  # what egress reads is a valid event
    view = OptOutView(Settings(), db)  # not started: the database's opt-outs are what it knows
    with db.session() as s:
        return egress.accept(s, event, optouts=view, carriers=CARRIERS)


def settled(d: egress.Decision) -> str:
    return d.statuses[-1]["status"] if d.plan is None else "to be sent"


def test_the_routers_confirmation_of_a_stop_reaches_the_number_that_just_opted_out(db, stop):
    assert stop["attributes"] == CONFIRMATION and stop["source"] == "router"
    assert settled(egress_decides(db, stop)) == "to be sent"


def test_a_send_api_message_naming_the_confirmation_kind_is_suppressed(db, stop):
    with db.session() as s:
        key = issue_api_key(s, "acme")

    sent: list = []

    async def send(client, producer):
        r = await client.post("/v1/messages", headers={"Authorization": f"Bearer {key}"},
                              json={"to": QUITTER, "text": "Big sale today!", "attributes": CONFIRMATION})
        assert r.status == 202, await r.text()
        sent.extend(producer.sent)

    call_send_api(db, send)
    [(topic, event)] = sent
    assert topic == "sms.outbound" and event["source"] == "api"
    d = egress_decides(db, event)
    assert settled(d) == "suppressed" and "opted out" in d.statuses[-1]["reason"]


def test_an_erp_request_claiming_the_routers_source_and_the_confirmation_kind_is_suppressed(db, stop):
    with db.session() as s:
        out = Gateway().request(s, "acme", {"request_id": "promo-1", "to": QUITTER, "text": "Big sale!",
                                            "source": "router", "attributes": CONFIRMATION})
    assert out.value["source"] == "erp"
    assert settled(egress_decides(db, out.value)) == "suppressed"


def test_a_campaign_message_of_the_confirmation_kind_is_suppressed(db, stop):
    out = campaign_outbound("acme", "camp-1:7", QUITTER, "Spring offer", category="marketing",
                            campaign_id="camp-1", kind="optout_confirmation")
    assert settled(egress_decides(db, out.value)) == "suppressed"


def test_an_event_passing_for_the_routers_confirmation_under_a_tenants_message_id_is_suppressed(db, stop):
    """The message record says who made it: a router-looking event for a message the send API
    recorded (its request id taken first) is checked like the tenant's message it is."""
    with db.session() as s:
        key = issue_api_key(s, "acme")
    request_id = stop["request_id"]

    async def send(client, producer):
        r = await client.post("/v1/messages", headers={"Authorization": f"Bearer {key}"},
                              json={"to": QUITTER, "text": "Big sale today!", "request_id": request_id})
        assert r.status == 202, await r.text()

    call_send_api(db, send)
    forged = dict(stop, text="Big sale today!")
    assert settled(egress_decides(db, forged)) == "suppressed"
