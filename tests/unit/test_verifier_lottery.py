"""Lottery draws: reproducible from what is stored, never over a tier's cap or the budget, each
card to one winner, also with many workers drawing at once (threads with their own database
connections; on PostgreSQL too when HERALD_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from services.core.db import Database
from services.core.db.migrate import upgrade
from services.core.db.schemes import Draw, Lottery, PrizeCard, PrizeTier
from services.core.schemas import new_event
from services.verifier.demo import seed_scheme
from services.verifier.domain import Verifier
from services.verifier.domain.admin import TierSpec
from services.verifier.domain.catalogue import TierInfo
from services.verifier.domain.codes import CodeHasher, create_batch
from services.verifier.domain.lottery import DrawKey, pick_tier

SECRET = "test-secret"
T0 = datetime(2025, 3, 14, 9, 27, tzinfo=UTC)


def submission(code: str, sender: str = "+14155550123") -> dict:
    return new_event("codes.submitted", "acme", submission_id=str(uuid.uuid4()), code=code, to="10690001",
                     inbound_message_id=str(uuid.uuid4()), received_at="2025-03-14T09:27:00Z",
                     **{"from": sender})


def prizes(outs) -> list[dict]:
    return [o.value for o in outs if o.value.get("attributes", {}).get("kind") == "prize"]


@pytest.fixture
def sqlite_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'herald.db'}"
    upgrade(url)
    d = Database(url)
    yield d
    d.dispose()


def test_a_draw_is_reproducible_from_its_stored_inputs_and_the_key(sqlite_db):
    with sqlite_db.session() as s:
        scheme = seed_scheme(s, SECRET, codes=200, tiers=[TierSpec("big", 0.05, 100), TierSpec("small", 0.3, 100)])
    v = Verifier(SECRET)
    with sqlite_db.session() as s:
        v.handle(s, [submission(c) for c in scheme.codes])
    key = DrawKey(SECRET)
    with sqlite_db.session() as s:
        draws = s.scalars(select(Draw)).all()
    assert len(draws) == 200
    for d in draws:
        random_hex, r = key.value(d.inputs["lottery_id"], d.inputs["submission_id"])
        assert (random_hex, r) == (d.random_hex, d.random_value)
        tiers = tuple(TierInfo(t["id"], "", None, t["odds"], t["cap"], t["value_cents"]) for t in d.inputs["tiers"])
        tier = pick_tier(tiers, r)
        assert (tier.id if tier else None) == d.tier_id
    outcomes = [d.outcome for d in draws]
    # 200 draws at 5% and 30%: the counts are fixed by the key, and plausible
    assert 2 <= outcomes.count("won") and 30 <= sum(d.tier_id is not None for d in draws) <= 110


def test_the_random_value_depends_on_the_key_and_submission_only():
    a, b = DrawKey("k1"), DrawKey("k2")
    assert a.value(1, "s") == a.value(1, "s") != b.value(1, "s")
    assert a.value(1, "s") != a.value(2, "s") and 0 <= a.value(1, "s")[1] < 1


def test_tiers_take_consecutive_slices_of_the_unit_interval():
    tiers = (TierInfo(1, "a", None, 0.1, 1, 0), TierInfo(2, "b", None, 0.2, 1, 0))
    assert pick_tier(tiers, 0.05).id == 1 and pick_tier(tiers, 0.1).id == 2 and pick_tier(tiers, 0.29).id == 2
    assert pick_tier(tiers, 0.31) is None and pick_tier((), 0.0) is None


def test_an_empty_inventory_or_budget_gives_no_prize_and_gives_back_the_award(sqlite_db):
    with sqlite_db.session() as s:
        scheme = seed_scheme(s, SECRET, codes=6, tiers=[TierSpec("card", 1.0, 10, 500)], cards_per_tier=2,
                             budget_cents=1500)
    v = Verifier(SECRET)
    with sqlite_db.session() as s:
        outs = v.handle(s, [submission(c) for c in scheme.codes])
    assert len(prizes(outs)) == 2
    with sqlite_db.session() as s:
        assert sorted(s.scalars(select(Draw.outcome))) == ["no_stock"] * 4 + ["won"] * 2
        assert s.scalar(select(PrizeTier.awarded)) == 2 and s.scalar(select(Lottery.spent_cents)) == 1000
    with sqlite_db.session() as s:
        lot = s.scalar(select(Lottery))
        lot.budget_cents = 1000
        tier = s.scalar(select(PrizeTier))
        s.add_all(PrizeCard(tenant_id="acme", tier_id=tier.id, card_number=f"X{i}", password_enc=b"x")
                  for i in range(3))
    with sqlite_db.session() as s:
        _, codes = create_batch(s, CodeHasher(SECRET), "acme", "gold-20", 2)
    with sqlite_db.session() as s:
        outs = Verifier(SECRET).handle(s, [submission(c) for c in codes])
    assert prizes(outs) == []
    with sqlite_db.session() as s:
        assert sorted(s.scalars(select(Draw.outcome)))[-2:] == ["won", "won"]
        assert s.scalar(select(func.count()).select_from(Draw).where(Draw.outcome == "over_budget")) == 2
        assert s.scalar(select(PrizeTier.awarded)) == 2 and s.scalar(select(Lottery.spent_cents)) == 1000
        assert s.scalar(select(func.count()).select_from(PrizeCard).where(PrizeCard.submission_id.is_(None))) == 3


def test_a_cap_of_k_with_many_concurrent_winners_hands_out_exactly_k(database_url):
    """8 workers, each with its own connection, draw 160 first valid queries at once; every draw
    wins (odds 1) but the tier's cap is 5 while 20 cards are in stock."""
    upgrade(database_url)
    K, workers, per_worker, batch = 5, 8, 20, 4
    setup = Database(database_url)
    with setup.session() as s:
        scheme = seed_scheme(s, SECRET, codes=workers * per_worker, tiers=[TierSpec("card", 1.0, K)],
                             cards_per_tier=20)
    setup.dispose()
    start = threading.Barrier(workers)
    results: list[list] = [[] for _ in range(workers)]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        db = Database(database_url)
        v = Verifier(SECRET)
        mine = scheme.codes[n * per_worker:(n + 1) * per_worker]
        try:
            start.wait()
            for i in range(0, per_worker, batch):
                with db.session() as s:
                    results[n].extend(v.handle(s, [submission(c, f"+1415555{n:02d}{i:02d}") for c in mine[i:i + batch]]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    outs = [o for r in results for o in r]
    won = prizes(outs)
    assert len(won) == K
    assert len({w["request_id"] for w in won}) == K
    genuine = [o for o in outs if o.value.get("attributes", {}).get("kind") == "genuine"]
    assert len(genuine) == workers * per_worker
    db = Database(database_url)
    try:
        with db.session() as s:
            assert s.scalar(select(PrizeTier.awarded)) == K
            claimed = s.scalars(select(PrizeCard.submission_id).where(PrizeCard.submission_id.is_not(None))).all()
            assert len(claimed) == len(set(claimed)) == K
            assert s.scalar(select(func.count()).select_from(Draw).where(Draw.outcome == "won")) == K
            assert s.scalar(select(func.count()).select_from(Draw).where(Draw.outcome == "cap_reached")) \
                == workers * per_worker - K
    finally:
        db.dispose()
