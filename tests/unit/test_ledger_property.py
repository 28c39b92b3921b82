"""Property: for any order and duplication of award and redemption events, in any batching, the
balance equals the distinct awards minus the distinct successful redemptions, is never
negative, and every command gets the outcome a simple model of the ledger predicts."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from services.core.db import Database
from services.core.db.migrate import upgrade
from services.core.db.schemes import (
    GiftCard,
    LedgerAccount,
    Redemption,
)
from services.core.schemas import new_event
from services.core.secrets import SecretBox
from services.core.tenancy import create_tenant
from services.ledger.domain import Ledger, add_gift_cards, balance, by_member, create_gift

SECRET = "test-secret"
MEMBERS = ("+14155550001", "+8613800000002")
GIFTS = {1: (30, 2), 2: (75, 1)}  # number: (cost, cards in stock); gift 3 does not exist


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'herald.db'}"
    upgrade(url)
    d = Database(url)
    yield d
    d.dispose()


awards = st.lists(st.tuples(st.sampled_from(MEMBERS), st.integers(1, 60)), min_size=1, max_size=6)
commands = st.lists(st.tuples(st.sampled_from(MEMBERS), st.sampled_from([1, 2, 3])), min_size=1, max_size=5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(awards=awards, commands=commands, data=st.data())
def test_balance_is_distinct_awards_minus_distinct_redemptions_and_never_negative(db, awards, commands, data):
    tenant = f"t{uuid.uuid4().hex[:12]}"
    with db.session() as s:
        create_tenant(s, tenant, tenant)
        for number, (cost, stock) in GIFTS.items():
            create_gift(s, tenant, number, f"gift {number}", cost)
            add_gift_cards(s, SecretBox(SECRET), tenant, number, [(f"{tenant}-{number}-{i}", "pw", "") for i in range(stock)])
    award_events = [new_event("points.awarded", tenant, entry_id=str(uuid.uuid4()), member=m, points=p,
                              reason="genuine code", source_event_id=str(uuid.uuid4()))
                    for m, p in awards]
    command_events = [new_event("points.commands", tenant, command_id=str(uuid.uuid4()), member=m,
                                command="redeem", gift=g, reply_from="10690001", inbound_message_id=str(uuid.uuid4()))
                      for m, g in commands]
    pool = [("a", e) for e in award_events] + [("c", e) for e in command_events]
    # any order, any duplication (every event at least once), any batching
    stream = data.draw(st.permutations(pool + data.draw(st.lists(st.sampled_from(pool), max_size=12))))
    cuts = data.draw(st.lists(st.integers(1, 4), min_size=len(stream), max_size=len(stream)))

    model_balance = dict.fromkeys(MEMBERS, 0)
    model_stock = {n: stock for n, (_, stock) in GIFTS.items()}
    seen_awards: set[str] = set()
    outcome: dict[str, str] = {}

    def model(kind: str, ev: dict) -> None:
        if kind == "a":
            if ev["source_event_id"] not in seen_awards:
                seen_awards.add(ev["source_event_id"])
                model_balance[ev["member"]] += ev["points"]
            return
        if ev["command_id"] in outcome:
            return
        gift = GIFTS.get(ev["gift"])
        if gift is None:
            outcome[ev["command_id"]] = "unknown_gift"
        elif model_balance[ev["member"]] < gift[0]:
            outcome[ev["command_id"]] = "insufficient"
        elif model_stock[ev["gift"]] == 0:
            outcome[ev["command_id"]] = "out_of_stock"
        else:
            outcome[ev["command_id"]] = "redeemed"
            model_balance[ev["member"]] -= gift[0]
            model_stock[ev["gift"]] -= 1

    ledger = Ledger(SECRET)
    i = 0
    while i < len(stream):
        # a batch holds events of one topic, as a consumer of one topic would get them
        kind = stream[i][0]
        size = cuts[i]
        batch = []
        while i < len(stream) and stream[i][0] == kind and len(batch) < size:
            batch.append(stream[i][1])
            i += 1
        with db.session() as s:
            if kind == "a":
                ledger.handle_awards(s, batch)
            else:
                ledger.handle_commands(s, batch)
        # Kafka orders one member's events only (they are keyed by member); the ledger takes a
        # batch member by member, so the model does too (gifts of one inventory go in that order).
        for ev in by_member(batch):
            model(kind, ev)
        with db.session() as s:
            for m in MEMBERS:
                now = balance(s, tenant, m)
                assert now >= 0
                assert now == model_balance[m]

    distinct_awards = {e["source_event_id"]: e for e in award_events}
    with db.session() as s:
        stored = {r.command_id: r for r in s.scalars(select(Redemption).where(Redemption.tenant_id == tenant))}
        assert {cid: r.outcome for cid, r in stored.items()} == outcome
        for m in MEMBERS:
            credited = sum(e["points"] for e in distinct_awards.values() if e["member"] == m)
            spent = sum(r.cost for r in stored.values() if r.member == m and r.outcome == "redeemed")
            assert balance(s, tenant, m) == credited - spent >= 0
            cached = s.scalar(select(LedgerAccount.balance).where(LedgerAccount.tenant_id == tenant,
                                                                  LedgerAccount.member == m)) or 0
            assert cached == credited - spent
        handed_out = s.scalars(select(GiftCard.command_id).where(GiftCard.tenant_id == tenant,
                                                                 GiftCard.command_id.is_not(None))).all()
        assert sorted(handed_out) == sorted(cid for cid, o in outcome.items() if o == "redeemed")
