"""Codes as people type them from a printed card reach the verifier, for a tenant running a
scheme and for a tenant with a codes pattern rule; a text no rule matches gets the tenant's help
text or goes to its inbox, by the tenant's setting, and is counted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from services.core.db import Database
from services.core.db.bridge_models import WebhookEndpoint
from services.core.db.schemes import Brand
from services.core.schemas import encode, new_event, schema_for_topic
from services.core.tenancy import add_keyword, add_number, create_tenant, set_unmatched
from services.router.domain import Router

SCHEME, DEMO = "10690001", "10690000"
BUYER = "+8613800138000"
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
PRINTED = "K7QM4XPD2H9A"  # 11 random symbols and a check symbol, printed K7QM-4XPD-2H9A


@pytest.fixture
def db(sqlite_db: Database) -> Database:
    with sqlite_db.session() as s:
        # A tenant running the anti-counterfeit scheme, with no codes rule of its own.
        create_tenant(s, "acme", "Acme", help_text="Acme: text your code. STOP to quit.")
        add_number(s, "acme", SCHEME)
        s.add(Brand(tenant_id="acme", slug="acme", name="Acme", code_length=11))
        add_keyword(s, "acme", "INFO", "reply", reply_text="Acme news.")
        # A tenant whose codes come in by a pattern rule (as the demo seeds it).
        create_tenant(s, "demo", "Demo Institution")
        add_number(s, "demo", DEMO)
        add_keyword(s, "demo", "CODE", "codes")
        add_keyword(s, "demo", "", "codes", pattern=r"^[A-Za-z0-9]{12}$", priority=200)
    return sqlite_db


def route(db: Database, text: str, to: str) -> list:
    ev = new_event("sms.inbound", message_id=str(uuid.uuid4()), carrier="simulator",
                   carrier_message_id="SM-1", to=to, text=text,
                   received_at="2026-11-28T10:00:00.000Z", **{"from": BUYER})
    with db.session() as s:
        outs = Router().route(s, ev)
    for o in outs:
        encode(schema_for_topic(o.topic), o.value)
    return outs


TYPED = ["K7QM4XPD2H9A", "K7QM-4XPD-2H9A", "k7qm-4xpd-2h9a", "K7QM 4XPD 2H9A", "k7qm 4xpd 2h9a.",
         "Ｋ７ＱＭ－４ＸＰＤ－２Ｈ９Ａ", "Ｋ７ＱＭ　４ＸＰＤ　２Ｈ９Ａ", "K7QM—4XPD—2H9A", "K7QM_4XPD_2H9A",
         " K7QM - 4XPD - 2H9A "]


@pytest.mark.parametrize("to", [SCHEME, DEMO])
@pytest.mark.parametrize("text", TYPED)
def test_a_code_typed_as_printed_is_submitted_as_the_bare_code(db, to, text):
    [out] = route(db, text, to)
    assert out.topic == "codes.submitted" and out.key == PRINTED
    assert out.value["code"] == PRINTED


def test_a_code_typed_as_printed_after_the_keyword_is_submitted_as_the_bare_code(db):
    [out] = route(db, "code k7qm 4xpd-2h9a", DEMO)
    assert out.topic == "codes.submitted" and out.value["code"] == PRINTED


@pytest.mark.parametrize("text", ["please call me", "hello there", "K7QM-4XPD", "12345"])
def test_a_text_that_only_looks_like_a_code_is_not_submitted(db, text):
    [out] = route(db, text, SCHEME)
    assert out.topic == "sms.outbound" and out.value["attributes"] == {"kind": "unmatched"}


def unmatched_count(tenant: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("herald_router_unmatched_texts_total",
                                     {"tenant": tenant, "outcome": outcome}) or 0.0


def test_an_unmatched_text_gets_the_tenant_help_text_and_is_counted(db):
    before = unmatched_count("acme", "reply")
    [out] = route(db, "where is my parcel", SCHEME)
    assert out.topic == "sms.outbound" and out.value["to"] == BUYER
    assert out.value["text"] == "Acme: text your code. STOP to quit."
    assert unmatched_count("acme", "reply") == before + 1


def test_an_unmatched_text_of_a_tenant_without_help_text_names_the_tenant(db):
    [out] = route(db, "where is my parcel", DEMO)
    assert out.value["text"].startswith("Demo Institution:") and "HELP" in out.value["text"]


def test_an_unmatched_text_goes_to_the_inbox_when_the_tenant_says_so_and_is_counted(db):
    with db.session() as s:
        set_unmatched(s, "acme", "inbox")
    before = unmatched_count("acme", "inbox")
    [out] = route(db, "where is my parcel", SCHEME)
    assert out.topic == "tenant.acme.inbound" and out.value["text"] == "where is my parcel"
    assert unmatched_count("acme", "inbox") == before + 1


def test_an_unknown_unmatched_setting_is_refused(db):
    with pytest.raises(ValueError, match="unmatched must be one of"), db.session() as s:
        set_unmatched(s, "acme", "drop")


def test_an_unmatched_text_of_a_tenant_with_a_webhook_goes_to_its_inbox_by_default(db):
    with db.session() as s:
        s.add(WebhookEndpoint(tenant_id="acme", url="https://erp.example/hook",
                              secret_sealed="x", active=True, created_at=NOW, updated_at=NOW))
    [out] = route(db, "where is my parcel", SCHEME)
    assert out.topic == "tenant.acme.inbound"
    with db.session() as s:
        set_unmatched(s, "acme", "reply")
    [out] = route(db, "where is my parcel", SCHEME)
    assert out.topic == "sms.outbound" and out.value["attributes"] == {"kind": "unmatched"}
