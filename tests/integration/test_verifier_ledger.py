"""The verifier and the ledger as processes (two workers each) on the real broker and a
migrated database: every kind of submission gets its reply, points reach the ledger once, GIFT
commands are answered."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer
from sqlalchemy import func, select

from services.core.db import Database
from services.core.db.schemes import (
    CodeQuery,
    LedgerEntry,
    Member,
)
from services.core.schemas import encode, new_event, now_iso
from services.core.secrets import SecretBox
from services.ledger.domain import add_gift_cards, create_gift
from services.verifier.demo import seed_scheme
from services.verifier.domain import CodeFormat
from tests.support.infra import read_topic, wait_until
from tests.support.seed import seed_tenant

pytestmark = pytest.mark.integration

A, B, C, D, E = "+8613800000001", "+8613800000002", "+14155550003", "+14155550004", "+14155550005"


class Sender:
    def __init__(self, stack) -> None:
        self.stack = stack
        self.producer = Producer({"bootstrap.servers": stack.bootstrap, "enable.idempotence": True})

    def code(self, code: str, sender: str) -> str:
        sid = str(uuid.uuid4())
        ev = new_event("codes.submitted", "acme", submission_id=sid, code=code, to="10690001",
                       inbound_message_id=str(uuid.uuid4()), received_at=now_iso(), **{"from": sender})
        self.producer.produce(self.stack.topic("codes.submitted"), encode("codes.submitted", ev), key=code)
        self.producer.flush(10)
        return sid

    def command(self, member: str, command: str, gift: int | None = None) -> str:
        cid = str(uuid.uuid4())
        ev = new_event("points.commands", "acme", command_id=cid, member=member, command=command, gift=gift,
                       reply_from="10690001", inbound_message_id=str(uuid.uuid4()))
        self.producer.produce(self.stack.topic("points.commands"), encode("points.commands", ev), key=member)
        self.producer.flush(10)
        return cid


def replies(stack, request_ids: set[str], timeout: float = 90.0) -> dict[str, str]:
    out = read_topic(stack.bootstrap, stack.topic("sms.outbound"),
                     until=lambda r: request_ids <= {e["request_id"] for e in r}, timeout=timeout)
    return {e["request_id"]: e["text"] for e in out}


@pytest.fixture
def scheme(stack):
    seed_tenant(stack, "acme")
    db = Database(stack.database_url)
    try:
        with db.session() as s:
            sc = seed_scheme(s, "dev-only-change-me", codes=20, points=20, lockout_max_invalid=3,
                             lockout_window_s=3600, lockout_duration_s=3600)
            create_gift(s, "acme", 1, "phone card", 30)
            add_gift_cards(s, SecretBox("dev-only-change-me"), "acme", 1, [("GC-1", "pw-1", "Dial *100#.")])
    finally:
        db.dispose()
    return sc


def test_each_kind_of_submission_gets_its_reply_and_points_reach_the_ledger(stack, scheme):
    for _ in range(2):
        stack.start("services.verifier")
        stack.start("services.ledger")
    send = Sender(stack)
    first = send.code(scheme.codes[0], A)
    replies(stack, {f"verify-{first}"})
    repeat = send.code(scheme.codes[0], B)
    unknown = send.code(CodeFormat().generate(1)[0], C)
    typo = send.code(scheme.codes[1][:-1] + ("A" if scheme.codes[1][-1] != "A" else "B"), D)
    got = replies(stack, {f"verify-{sid}" for sid in (repeat, unknown, typo)})
    assert got[f"verify-{first}"] == "金叶：您购买的金叶gold-20是正品，感谢您的查询。您获得20积分。"
    assert got[f"verify-{repeat}"].startswith("金叶：该防伪码已被查询2次") and "138****0001" in got[f"verify-{repeat}"]
    assert "not one of ours" in got[f"verify-{unknown}"]
    assert "check the code" in got[f"verify-{typo}"]

    # a number guessing codes: two warnings, then "blocked" once, then silence (but recorded)
    bad = [send.code(CodeFormat().generate(1)[0], E) for _ in range(2)]
    replies(stack, {f"verify-{sid}" for sid in bad})
    locked = send.code(CodeFormat().generate(1)[0], E)
    got = replies(stack, {f"verify-{locked}"})
    assert "too many invalid codes" in got[f"verify-{locked}"]
    ignored = send.code(scheme.codes[2], E)
    db = Database(stack.database_url)
    try:
        wait_until(lambda: _outcome(db, ignored) == "ignored", 60, what="the locked-out attempt recorded")
        assert f"verify-{ignored}" not in replies(stack, set())

        # points: the genuine query's award reaches the ledger; the member asks for the balance, redeems
        wait_until(lambda: _sum(db, A) == 20, 60, what="A's 20 points in the ledger")
        second = send.code(scheme.codes[3], A)
        wait_until(lambda: _sum(db, A) == 40, 60, what="A's 40 points")
        assert replies(stack, {f"verify-{second}"})
        bal = send.command(A, "balance")
        redeem = send.command(A, "redeem", 1)
        got = replies(stack, {f"ledger-{bal}", f"ledger-{redeem}"})
        assert got[f"ledger-{bal}"] == "您的积分余额为40。回复GIFT查看礼品列表。"
        assert got[f"ledger-{redeem}"] == "您已用30积分兑换phone card，剩余10积分。卡号GC-1，密码pw-1。Dial *100#."
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(Member)) == 1
        # the threshold notification (30 points: the gift's price) went out once
        notes = [e for e in read_topic(stack.bootstrap, stack.topic("sms.outbound"))
                 if e["request_id"].startswith("threshold-")]
        assert {e["request_id"] for e in notes} and len({e["request_id"] for e in notes}) == 1
        assert all(p.alive() for p in stack.procs)
    finally:
        db.dispose()


def _outcome(db: Database, sid: str) -> str | None:
    with db.session() as s:
        return s.scalar(select(CodeQuery.outcome).where(CodeQuery.submission_id == sid))


def _sum(db: Database, member: str) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.coalesce(func.sum(LedgerEntry.points), 0))
                            .where(LedgerEntry.member == member)))
