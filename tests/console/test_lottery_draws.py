"""The draw log (each draw's inputs and result), the winners with masked numbers, and an
owner's re-send of a winner's card message, audited."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from services.core.db.console_models import AuditEntry
from services.core.schemas import new_event, now_iso
from services.core.secrets import SecretBox
from services.verifier.domain import admin
from services.verifier.domain.codes import CodeHasher, create_batch
from services.verifier.domain.verify import Verifier

from .fake_producer import FakeProducer
from .scheme_fixtures import make_scheme


@pytest.fixture
def scheme(console_db):
    return make_scheme(console_db)

WINNER = "+8613812345678"


@pytest.fixture
def drawn(scheme, console, console_db):
    """Twenty first queries of genuine codes through the verifier's own domain code."""
    key = console.settings.secret_key
    with console_db.session() as s:
        admin.add_prize_cards(s, SecretBox(key), scheme["tiers"][0],
                              [(f"CARD{i:04d}", f"pw-{i}", "Dial *100#") for i in range(10)])
        admin.add_prize_cards(s, SecretBox(key), scheme["tiers"][1],
                              [(f"SMALL{i:04d}", f"spw-{i}", "") for i in range(30)])
        _, codes = create_batch(s, CodeHasher(key), "acme", "gold-20", 20)
    verifier = Verifier(key)
    events = [new_event("codes.submitted", "acme", submission_id=str(uuid.uuid4()), code=c, to="10690001",
                        inbound_message_id=str(uuid.uuid4()), received_at=now_iso(), **{"from": WINNER})
              for c in codes]
    with console_db.session() as s:
        verifier.handle(s, events)
    return scheme


def test_the_draw_log_shows_each_draw_with_its_inputs_and_outcome(browser, drawn):
    browser.sign_in("analyst@acme.example")
    resp, body = browser.get(f"/lottery/{drawn['lottery']}/draws")
    assert resp.status == 200
    assert body.count("<tr>") == 21  # the header and twenty draws
    assert "HMAC" in body and '"method"' in body and "138****5678" in body
    assert WINNER not in body and "13812345678" not in body


def test_winners_are_listed_with_masked_numbers_and_cards_and_no_password(browser, drawn):
    browser.sign_in("owner@acme.example")
    resp, body = browser.get(f"/lottery/{drawn['lottery']}/draws?outcome=won")
    assert resp.status == 200 and "Winners" in body and "Re-send card" in body
    assert "138****5678" in body and "••••" in body and "pw-" not in body


def test_an_owner_resends_a_winners_card_message_and_it_is_audited(browser, drawn, console, console_db):
    console.producer = FakeProducer()
    browser.sign_in("owner@acme.example")
    _, body = browser.get(f"/lottery/{drawn['lottery']}/draws?outcome=won")
    draw_id = body.split("/draws/")[1].split("/resend")[0]
    resp, body = browser.post(f"/lottery/{drawn['lottery']}/draws/{draw_id}/resend")
    assert resp.status == 200 and "sent again" in body
    (topic, event, key), = console.producer.sent
    assert topic == "sms.outbound" and event["to"] == WINNER and event["attributes"]["kind"] == "prize"
    assert event["request_id"].startswith("prize-resend-")
    with console_db.session() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "resend"))
        assert entry.object_id == draw_id and "pw-" not in str(entry.after)


def test_only_an_owner_resends_and_another_tenant_gets_404(browser_factory, drawn, console):
    console.producer = FakeProducer()
    owner = browser_factory()
    owner.sign_in("owner@acme.example")
    _, body = owner.get(f"/lottery/{drawn['lottery']}/draws?outcome=won")
    draw_id = body.split("/draws/")[1].split("/resend")[0]
    analyst = browser_factory()
    analyst.sign_in("analyst@acme.example")
    _, body = analyst.get(f"/lottery/{drawn['lottery']}/draws?outcome=won")
    assert "Re-send card" not in body
    resp, _ = analyst.post(f"/lottery/{drawn['lottery']}/draws/{draw_id}/resend")
    assert resp.status == 403
    other = browser_factory()
    other.sign_in("owner@other.example")
    other.get("/lottery")
    resp, _ = other.post(f"/lottery/{drawn['lottery']}/draws/{draw_id}/resend")
    assert resp.status == 404
    resp, _ = other.get(f"/lottery/{drawn['lottery']}/draws?outcome=won")
    assert resp.status == 404
    assert console.producer.sent == []
