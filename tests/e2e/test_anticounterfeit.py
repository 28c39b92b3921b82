"""The anti-counterfeit scheme end to end: verifier and ledger worker processes on the real
broker and a migrated database. Of two verifiers, one dies right after committing a batch
(before producing its replies or committing its offsets, so that batch must be redelivered); of
three ledger workers, one is killed with SIGKILL mid-stream and one dies after a commit as the
verifier does.

What must hold: every valid query is answered, no points are counted twice, no prize card or
gift card is handed out twice, and a redelivered event's replies are the same messages again
(same request id, same text), which egress sends once."""

from __future__ import annotations

import collections
import random
import uuid

import httpx
import pytest
from confluent_kafka import Producer
from sqlalchemy import func, select

from services.core.db import Database
from services.core.db.schemes import (
    Code,
    CodeQuery,
    Draw,
    GiftCard,
    LedgerAccount,
    LedgerEntry,
    PrizeCard,
    PrizeTier,
    Redemption,
)
from services.core.schemas import encode, new_event, now_iso
from services.core.secrets import SecretBox
from services.ledger.domain import add_gift_cards, create_gift
from services.verifier.app import CRASH_AFTER_BATCHES
from services.verifier.demo import seed_scheme
from services.verifier.domain import CodeFormat
from services.verifier.domain.admin import TierSpec
from tests.support.infra import read_topic, wait_until

pytestmark = pytest.mark.e2e

SECRET = "dev-only-change-me"
MEMBERS = [f"+86139000000{i:02d}" for i in range(24)]
POINTS, CAP, GIFT_COST = 10, 4, 20


@pytest.fixture
def scheme(stack):
    from tests.support.seed import seed_tenant

    seed_tenant(stack, "acme")
    db = Database(stack.database_url)
    try:
        with db.session() as s:
            sc = seed_scheme(s, SECRET, codes=160, points=POINTS, tiers=[TierSpec("a phone card", 0.25, CAP)],
                             cards_per_tier=10)
            create_gift(s, "acme", 1, "gift card", GIFT_COST)
            add_gift_cards(s, SecretBox(SECRET), "acme", 1, [(f"G{i:03d}", f"gpw-{i}", "") for i in range(40)])
    finally:
        db.dispose()
    return sc


class Traffic:
    def __init__(self, stack) -> None:
        self.stack = stack
        self.p = Producer({"bootstrap.servers": stack.bootstrap, "enable.idempotence": True, "linger.ms": 5})
        self.first: dict[str, tuple[str, str]] = {}  # submission id -> (code, member) of first queries
        self.others: list[str] = []
        self.commands: list[str] = []

    def code(self, code: str, member: str, first: bool) -> str:
        sid = str(uuid.uuid4())
        ev = new_event("codes.submitted", "acme", submission_id=sid, code=code, to="10690001",
                       inbound_message_id=str(uuid.uuid4()), received_at=now_iso(), **{"from": member})
        self.p.produce(self.stack.topic("codes.submitted"), encode("codes.submitted", ev), key=code)
        (self.first.__setitem__(sid, (code, member)) if first else self.others.append(sid))
        return sid

    def redeem(self, member: str, twice: bool) -> None:
        cid = str(uuid.uuid4())
        ev = new_event("points.commands", "acme", command_id=cid, member=member, command="redeem", gift=1,
                       reply_from="10690001", inbound_message_id=str(uuid.uuid4()))
        for _ in range(2 if twice else 1):  # a duplicate delivery of the same command
            self.p.produce(self.stack.topic("points.commands"), encode("points.commands", ev), key=member)
        self.commands.append(cid)

    def flush(self) -> None:
        assert self.p.flush(15) == 0


def queries(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(CodeQuery))


def test_workers_killed_mid_stream_count_nothing_twice_and_leave_no_valid_query_unanswered(stack, scheme):
    rng = random.Random(7)
    crashing = stack.start("services.verifier", **{CRASH_AFTER_BATCHES: "3"})
    survivor = stack.start("services.verifier")
    doomed_ledger = stack.start("services.ledger")
    stack.start("services.ledger")
    crashing_ledger = stack.start("services.ledger", **{CRASH_AFTER_BATCHES: "6"})
    t = Traffic(stack)
    db = Database(stack.database_url)
    codes = list(scheme.codes)
    try:
        # Phase 1: small rounds (each its own batches) until the crashing verifier has died after
        # committing its third batch, its replies and offsets never sent.
        for _ in range(30):
            if not crashing.alive():
                break
            before = queries(db)
            for _ in range(4):
                t.code(codes.pop(), rng.choice(MEMBERS), first=True)
            t.flush()
            wait_until(lambda b=before: queries(db) >= b + 4 or not crashing.alive(), 60,
                       what="a round of queries recorded")
        wait_until(lambda: not crashing.alive(), 60, what="the verifier to die after its third commit")
        assert crashing.popen.returncode == 70

        # Phase 2: the rest of the stream, with a ledger worker killed with SIGKILL half-way.
        kinds = []
        for i, code in enumerate(list(codes)):
            t.code(code, rng.choice(MEMBERS), first=True)
            if i % 5 == 0:
                t.code(code, rng.choice(MEMBERS), first=False)  # a repeat of the same code
                kinds.append("repeat")
            if i % 17 == 0:
                t.code(CodeFormat().generate(1)[0], rng.choice(MEMBERS), first=False)  # unknown
                t.code("ABCD2345", rng.choice(MEMBERS), first=False)  # mistyped
            if i % 6 == 0:
                t.redeem(rng.choice(MEMBERS), twice=i % 12 == 0)
            if i == len(codes) // 2:
                t.flush()
                wait_until(lambda: _count(db, LedgerEntry) >= 40, 90, what="the ledger under way")
                doomed_ledger.kill()
        t.flush()
        # Rounds of GIFT commands from every member (so every partition gets some) until the
        # third ledger worker has died after its sixth committed batch: how many batches the
        # stream above made on its partitions depends on timing, so keep feeding it.
        for r in range(40):
            if not crashing_ledger.alive():
                break
            done = _count(db, Redemption)
            for m in MEMBERS:
                t.redeem(m, twice=r % 2 == 0)
            t.flush()
            want = done + len(MEMBERS)
            wait_until(lambda w=want: _count(db, Redemption) >= w or not crashing_ledger.alive(), 90,
                       what="a round of GIFT commands recorded")
        wait_until(lambda: not crashing_ledger.alive(), 30, what="the third ledger worker to die after a commit")
        assert crashing_ledger.popen.returncode == 70

        # Every valid query is answered (replies deduplicated by request id) ...
        expected = {f"verify-{sid}" for sid in t.first} | {f"verify-{sid}" for sid in t.others}
        expected |= {f"ledger-{cid}" for cid in t.commands}
        out = read_topic(stack.bootstrap, stack.topic("sms.outbound"),
                         until=lambda r: expected <= {e["request_id"] for e in r}, timeout=240)
        texts: dict[str, set] = collections.defaultdict(set)
        for e in out:
            texts[e["request_id"]].add(e["text"])
        # ... and a message sent again after a redelivery is the same message
        assert all(len(v) == 1 for v in texts.values()), [k for k, v in texts.items() if len(v) > 1]
        genuine = [sid for sid in t.first if "正品" in next(iter(texts[f"verify-{sid}"]))]
        assert len(genuine) == len(t.first) == 160

        # No points counted twice: one award entry per first valid query, the right sums.
        wait_until(lambda: _awards(db) == len(t.first), 120, what="one ledger entry per genuine query")
        with db.session() as s:
            assert s.scalar(select(func.sum(Code.query_count))) == 160 + kinds.count("repeat")
            assert s.scalar(select(func.count()).select_from(Code).where(Code.first_submission_id.is_not(None))) == 160
            per_member = collections.Counter(m for _c, m in t.first.values())
            for m in MEMBERS:
                awarded = s.scalar(select(func.coalesce(func.sum(LedgerEntry.points), 0)).where(
                    LedgerEntry.member == m, LedgerEntry.kind == "award"))
                assert awarded == POINTS * per_member[m]
                total = s.scalar(select(func.coalesce(func.sum(LedgerEntry.points), 0)).where(LedgerEntry.member == m))
                cached = s.scalar(select(LedgerAccount.balance).where(LedgerAccount.member == m)) or 0
                assert total == cached >= 0
            # No prize card handed out twice, never over the cap; each winner told once.
            won = s.scalars(select(Draw.submission_id).where(Draw.outcome == "won")).all()
            claimed = s.scalars(select(PrizeCard.submission_id).where(PrizeCard.submission_id.is_not(None))).all()
            assert sorted(won) == sorted(claimed) and len(set(claimed)) == len(claimed) <= CAP
            assert s.scalar(select(PrizeTier.awarded)) == len(won)
            assert s.scalar(select(func.count()).select_from(Draw)) == 160
            # No gift card handed out twice; a command delivered twice redeemed once.
            wait_until(lambda: _count(db, Redemption) == len(t.commands), 120, what="every GIFT command recorded")
            redeemed = s.scalars(select(Redemption.command_id).where(Redemption.outcome == "redeemed")).all()
            cards = s.scalars(select(GiftCard.command_id).where(GiftCard.command_id.is_not(None))).all()
            assert sorted(redeemed) == sorted(cards) and len(set(cards)) == len(cards)
            debits = s.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "redemption"))
            assert debits == len(redeemed) and len(redeemed) >= 1
        prize_ids = {e["request_id"] for e in out if e["request_id"].startswith("prize-")}
        assert prize_ids == {f"prize-{sid}" for sid in won}
        # the batch the crashed verifier had committed was redelivered to the survivor, which
        # found its effects already made and only sent its replies
        metrics = httpx.get(f"{survivor.url}/metrics", timeout=5).text
        redelivered = [line for line in metrics.splitlines()
                       if line.startswith('herald_verifier_outcomes_total{outcome="redelivered"}')]
        assert redelivered and float(redelivered[0].split()[-1]) >= 1, redelivered
    finally:
        db.dispose()


def _count(db: Database, model) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def _awards(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "award"))
