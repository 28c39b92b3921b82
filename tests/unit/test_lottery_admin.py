"""Lottery administration (services/verifier/domain/lottery_admin.py): a tier's daily cap holds
per brand-local day as the total cap does, odds that add up to more than 1 are refused naming
the field, and the draw log pages by id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.core.db import Database
from services.core.db.migrate import upgrade
from services.core.db.schemes import PrizeTier
from services.core.schemas import new_event
from services.core.secrets import SecretBox
from services.verifier.domain import Verifier, admin
from services.verifier.domain import lottery_admin as la
from services.verifier.domain.codes import CodeHasher, create_batch

SECRET = "test-secret"
DAY = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'herald.db'}"
    upgrade(url)
    d = Database(url)
    with d.session() as s:
        from services.core.tenancy import create_tenant
        create_tenant(s, "acme", "Acme")
        admin.create_brand(s, "acme", "gold", "Gold", timezone="Asia/Shanghai")
        admin.create_product(s, "acme", "gold", "gold-20", "Gold 20s")
    yield d
    d.dispose()


def sub(code: str, at: datetime) -> dict:
    return new_event("codes.submitted", "acme", submission_id=str(uuid.uuid4()), code=code, to="10690001",
                     inbound_message_id=str(uuid.uuid4()), received_at=at.isoformat(),
                     **{"from": "+8613900000001"})


def test_a_daily_cap_stops_awards_for_the_rest_of_the_brands_day_and_resets_the_next(db):
    with db.session() as s:
        brand = admin.brand_by_slug(s, "acme", "gold")
        lot = la.create_lottery(s, "acme", brand.id, "Daily", [la.TierIn("card", 1.0, 10, daily_cap=3)])
        tier = la.lottery(s, "acme", lot.id).tiers[0].tier.id
        admin.add_prize_cards(s, SecretBox(SECRET), tier, [(f"C{i}", f"p{i}", "") for i in range(10)])
        _, codes = create_batch(s, CodeHasher(SECRET), "acme", "gold-20", 8)
    v = Verifier(SECRET)
    with db.session() as s:  # five on one day (two batches), in Shanghai's 14 March
        v.handle(s, [sub(c, DAY) for c in codes[:3]])
    with db.session() as s:
        v.handle(s, [sub(c, DAY + timedelta(hours=5)) for c in codes[3:5]])
    with db.session() as s:  # 16:30 UTC is already 15 March in Shanghai: a new day
        v.handle(s, [sub(c, DAY + timedelta(hours=7, minutes=30)) for c in codes[5:8]])
    with db.session() as s:
        counts = la.outcome_counts(s, "acme", lot.id)
        t = s.scalar(select(PrizeTier).where(PrizeTier.id == tier))
        assert counts == {"won": 6, "day_cap_reached": 2}
        assert (t.awarded, t.awarded_today, t.day) == (6, 3, "2026-03-15")
        assert la.lottery(s, "acme", lot.id).tiers[0].free == 4


def test_odds_over_one_and_a_cap_below_the_awards_are_refused_naming_the_field(db):
    with db.session() as s:
        brand = admin.brand_by_slug(s, "acme", "gold")
        with pytest.raises(la.FieldError) as e:
            la.create_lottery(s, "acme", brand.id, "X", [la.TierIn("a", 0.5, 1), la.TierIn("b", 0.6, 1)])
        assert e.value.field == "tiers-1-odds" and "1.1" in e.value.message
        lot = la.create_lottery(s, "acme", brand.id, "Y", [la.TierIn("a", 0.5, 5), la.TierIn("b", 0.4, 5)])
        a, b = [t.tier for t in la.lottery(s, "acme", lot.id).tiers]
        with pytest.raises(la.FieldError) as e:
            la.add_tier(s, "acme", lot.id, la.TierIn("c", 0.2, 1))
        assert e.value.field == "odds"
        a.awarded = 3
        with pytest.raises(la.FieldError) as e:
            la.update_tier(s, "acme", a.id, la.TierIn("a", 0.5, 2))
        assert e.value.field == "cap"
        with pytest.raises(la.FieldError) as e:
            la.update_tier(s, "acme", b.id, la.TierIn("b", 0.4, 5, daily_cap=6))
        assert e.value.field == "daily_cap"
        with pytest.raises(LookupError):
            la.update_tier(s, "other", a.id, la.TierIn("a", 0.5, 5))
