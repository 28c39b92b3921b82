"""The points ledger against a migrated SQLite file: awards once per cause, balance is the sum,
thresholds notify once, GIFT lists, GIFT n redeems, and refusals change nothing."""

from __future__ import annotations

import logging
import uuid

import pytest
from sqlalchemy import func, select

from services.core.db import Database
from services.core.db.migrate import upgrade
from services.core.db.schemes import (
    GiftCard,
    LedgerAccount,
    LedgerEntry,
    Redemption,
    ThresholdNotification,
)
from services.core.schemas import new_event, validate
from services.core.secrets import SecretBox
from services.core.tenancy import create_tenant
from services.ledger.domain import Ledger, add_gift_cards, balance, create_gift, set_program

SECRET = "test-secret"
M, CN = "+14155550123", "+8613812345678"


@pytest.fixture
def db(database_url):
    """A migrated database of each kind under test (SQLite; PostgreSQL when configured)."""
    upgrade(database_url)
    d = Database(database_url)
    with d.session() as s:
        create_tenant(s, "acme", "Acme")
        create_gift(s, "acme", 1, "10 yuan phone card", 30, "10元话费卡")
        create_gift(s, "acme", 2, "Tea set", 500)
        add_gift_cards(s, SecretBox(SECRET), "acme", 1, [("GC-1", "secret-1", "Dial *100#."),
                                                          ("GC-2", "secret-2", "Dial *100#.")])
    yield d
    d.dispose()


def award(points: int, member: str = M, source: str | None = None) -> dict:
    return new_event("points.awarded", "acme", entry_id=str(uuid.uuid4()), member=member, points=points,
                     reason="genuine code", source_event_id=source or str(uuid.uuid4()), reply_from="10690001")


def command(kind: str, gift: int | None = None, member: str = M) -> dict:
    return new_event("points.commands", "acme", command_id=str(uuid.uuid4()), member=member, command=kind,
                     gift=gift, reply_from="10690001", inbound_message_id=str(uuid.uuid4()))


def run(db, ledger, awards=(), commands=()):
    with db.session() as s:
        outs = ledger.handle_awards(s, list(awards)) + ledger.handle_commands(s, list(commands))
    for o in outs:
        validate(o.topic, o.value)
    return [o.value for o in outs]


def bal(db, member=M):
    with db.session() as s:
        total = balance(s, "acme", member)
        cached = s.scalar(select(LedgerAccount.balance).where(LedgerAccount.member == member)) or 0
    assert total == cached
    return total


def test_an_award_counts_once_however_often_it_is_delivered(db):
    ledger = Ledger(SECRET)
    a = award(10)
    run(db, ledger, [a, a])
    run(db, Ledger(SECRET), [a])
    assert bal(db) == 10
    b = dict(award(5), source_event_id=a["source_event_id"])  # another event, same cause
    run(db, ledger, [b])
    assert bal(db) == 10
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 1


def test_crossing_a_threshold_notifies_once_with_the_gift_menu(db):
    ledger = Ledger(SECRET)
    a1, a2, a3 = award(20), award(15), award(20)
    assert run(db, ledger, [a1]) == []
    [note] = run(db, ledger, [a2])
    assert note["text"] == ("You have 35 points: you can pick a gift! 1. 10 yuan phone card - 30 points\n"
                            "2. Tea set - 500 points (sold out)")
    assert note["request_id"] == f"threshold-{a2['entry_id']}-30" and note["from"] == "10690001"
    again = run(db, ledger, [a2])  # a redelivery re-sends the same notification (egress dedupes)
    assert [(n["request_id"], n["event_id"], n["text"]) for n in again] == [
        (note["request_id"], note["event_id"], note["text"])]
    assert run(db, ledger, [a3]) == []  # 55: no new threshold
    run(db, ledger, commands=[command("redeem", 1)])  # back to 25
    assert run(db, ledger, [award(10)]) == []  # 35 again: told once only
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ThresholdNotification)) == 1


def test_a_threshold_award_redelivered_in_its_own_batch_and_with_others_is_told_the_same_once(db):
    ledger = Ledger(SECRET)
    run(db, ledger, [award(20)])
    crossing, other = award(15), award(5, member="+8613900000002")
    twice = run(db, ledger, [crossing, other, crossing])  # a redelivery inside the batch
    assert [n["request_id"] for n in twice] == [f"threshold-{crossing['entry_id']}-30"] * 2
    assert twice[0]["event_id"] == twice[1]["event_id"]
    later = run(db, ledger, [other, crossing, award(1, member="+8613900000003")])  # and a later batch
    assert [(n["request_id"], n["text"]) for n in later] == [(twice[0]["request_id"], twice[0]["text"])]
    assert bal(db) == 35
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ThresholdNotification)) == 1


def test_explicit_thresholds_and_award_confirmations(db):
    with db.session() as s:
        set_program(s, "acme", thresholds=[10, 20], confirm_awards=True)
    texts = [o["text"] for o in run(db, Ledger(SECRET), [award(25, CN)])]
    assert texts[0] == "您获得25积分（genuine code），当前积分余额25。"
    assert len(texts) == 3 and all("可以兑换礼品" in t for t in texts[1:])


def test_gift_lists_gifts_and_balance_answers_the_sum(db):
    ledger = Ledger(SECRET)
    run(db, ledger, [award(12), award(30)])
    [b, g] = run(db, ledger, commands=[command("balance"), command("list_gifts")])
    assert b["text"] == "Your points balance is 42. Text GIFT for the gift list."
    assert g["text"] == ("Gifts (text GIFT <number> to redeem; you have 42 points):\n"
                         "1. 10 yuan phone card - 30 points\n2. Tea set - 500 points (sold out)")
    assert b["source"] == "ledger" and b["to"] == M and b["category"] == "transactional"


def test_redeeming_debits_and_sends_the_card_once_and_no_password_is_logged(db, caplog):
    caplog.set_level(logging.DEBUG)
    ledger = Ledger(SECRET)
    run(db, ledger, [award(70)])
    c = command("redeem", 1)
    [r] = run(db, ledger, commands=[c])
    assert r["text"] == ("You redeemed 10 yuan phone card for 30 points; 40 points left. Card number GC-1, "
                         "password secret-1. Dial *100#.")
    assert r["request_id"] == f"ledger-{c['command_id']}"
    [again] = run(db, Ledger(SECRET), commands=[c])
    assert again["text"] == r["text"] and again["event_id"] == r["event_id"]
    assert bal(db) == 40
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(GiftCard).where(GiftCard.command_id.is_not(None))) == 1
        assert b"secret-1" not in s.scalar(select(GiftCard.password_enc).where(GiftCard.card_number == "GC-1"))
    assert "secret-1" not in caplog.text


def test_not_enough_points_unknown_gift_and_empty_inventory_each_say_so_and_change_nothing(db):
    ledger = Ledger(SECRET)
    run(db, ledger, [award(100, CN)])
    replies = run(db, ledger, commands=[command("redeem", 2, CN), command("redeem", 9, CN)])
    assert [r["text"] for r in replies] == ["礼品2（Tea set）需要500积分，您现有100积分，未扣除积分。",
                                            "没有编号为9的礼品，回复GIFT查看礼品列表。未扣除积分。"]
    run(db, ledger, commands=[command("redeem", 1, CN), command("redeem", 1, CN)])
    [empty] = run(db, ledger, commands=[command("redeem", 1, CN)])
    assert empty["text"] == "抱歉，10元话费卡已兑完，未扣除积分。回复GIFT查看礼品列表。"
    assert bal(db, CN) == 40
    with db.session() as s:
        outcomes = sorted(s.scalars(select(Redemption.outcome)))
        assert outcomes == ["insufficient", "out_of_stock", "redeemed", "redeemed", "unknown_gift"]
        assert s.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.points < 0)) == 2


def test_a_member_without_points_cannot_redeem(db):
    [r] = run(db, Ledger(SECRET), commands=[command("redeem", 1, "+14155550999")])
    assert r["text"] == "Gift 1 (10 yuan phone card) needs 30 points; you have 0. Nothing was deducted."
    assert bal(db, "+14155550999") == 0


def test_concurrent_redemptions_of_one_member_never_spend_points_twice(database_url):
    """Six workers at once, each with its own connection, redeem for one member who can afford
    three gifts; every command is also delivered to two workers (a zombie and its successor)."""
    import threading

    upgrade(database_url)
    setup = Database(database_url)
    with setup.session() as s:
        create_tenant(s, "acme", "Acme")
        create_gift(s, "acme", 1, "card", 30)
        add_gift_cards(s, SecretBox(SECRET), "acme", 1, [(f"C{i}", f"p{i}", "") for i in range(10)])
    run(setup, Ledger(SECRET), [award(100)])
    setup.dispose()
    cmds = [command("redeem", 1) for _ in range(6)]
    start = threading.Barrier(6)
    errors: list[BaseException] = []
    replies: list[dict] = []

    def worker(n: int) -> None:
        db = Database(database_url)
        ledger = Ledger(SECRET)
        try:
            start.wait()
            for c in (cmds[n], cmds[(n + 1) % 6]):
                for attempt in range(20):
                    try:
                        with db.session() as s:
                            replies.extend(o.value for o in ledger.handle_commands(s, [c]))
                        break
                    except Exception as exc:  # noqa: BLE001 - a duplicate raced: retried as the processor would
                        if attempt == 19:
                            raise
                        del exc
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    db = Database(database_url)
    try:
        assert bal(db) == 10
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(GiftCard).where(GiftCard.command_id.is_not(None))) == 3
            assert sorted(s.scalars(select(Redemption.outcome))) == ["insufficient"] * 3 + ["redeemed"] * 3
        by_request: dict[str, set] = {}
        for r in replies:
            by_request.setdefault(r["request_id"], set()).add(r["text"])
        assert len(by_request) == 6 and all(len(t) == 1 for t in by_request.values())
    finally:
        db.dispose()
