"""Lottery draws: one per first valid query, reproducible, never over a tier's cap or the
lottery's budget, each prize card to exactly one winner.

The random value is HMAC-SHA256(draw key, "<lottery id>:<submission id>"): unpredictable to
buyers (the key derives from the secret key), the same on every redelivery of the submission,
and re-computable by an auditor who holds the key. It is stored with the tiers it was drawn
against, so a draw can be checked from the database alone.

Caps hold with any number of workers because every award is a conditional UPDATE
(``awarded < cap``) on the tier row, the budget likewise on the lottery row, and a card is
claimed by a conditional UPDATE of one free card (``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
SQLite has one writer at a time). Unique keys back them: one draw per submission, one card per
submission.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import case, or_, select, update
from sqlalchemy.orm import Session

from services.core.db.schemes import (
    Lottery,
    PrizeCard,
    PrizeTier,
)
from services.core.secrets import derive_key

from .catalogue import LotteryInfo, TierInfo

METHOD = "hmac-sha256(draw_key, '<lottery_id>:<submission_id>'), first 8 bytes >> 11, / 2**53"


@dataclass(frozen=True)
class Drawn:
    lottery_id: int
    random_hex: str
    random_value: float
    tier: TierInfo | None
    inputs: dict[str, Any]


@dataclass
class WonCard:
    card_id: int
    card_number: str
    password_enc: bytes
    instructions: str

    def __repr__(self) -> str:  # never the password, not even encrypted
        return f"WonCard(card_id={self.card_id})"


class DrawKey:
    def __init__(self, secret_key: str) -> None:
        self._key = derive_key(secret_key, "herald/lottery/draw")

    def value(self, lottery_id: int, submission_id: str) -> tuple[str, float]:
        digest = hmac.digest(self._key, f"{lottery_id}:{submission_id}".encode("ascii"), "sha256")
        return digest.hex(), (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)

    def __repr__(self) -> str:
        return "DrawKey(***)"


def pick_tier(tiers: tuple[TierInfo, ...], r: float) -> TierInfo | None:
    """Tiers in id order take consecutive slices of [0, 1) as wide as their odds."""
    edge = 0.0
    for t in tiers:
        edge += t.odds
        if r < edge:
            return t
    return None


def draw(key: DrawKey, lottery: LotteryInfo, submission_id: str) -> Drawn:
    random_hex, r = key.value(lottery.id, submission_id)
    inputs = {"lottery_id": lottery.id, "submission_id": submission_id, "method": METHOD,
              "tiers": [{"id": t.id, "odds": t.odds, "cap": t.cap, "value_cents": t.value_cents,
                         **({"daily_cap": t.daily_cap} if t.daily_cap is not None else {})}
                        for t in lottery.tiers]}
    return Drawn(lottery.id, random_hex, r, pick_tier(lottery.tiers, r), inputs)


def claim_prize(s: Session, lottery: LotteryInfo, tier: TierInfo, submission_id: str,
                at: datetime) -> tuple[str, WonCard | None]:
    """Take one award of ``tier`` and one of its cards for ``submission_id``, or nothing.
    Returns (outcome, card): won | cap_reached | day_cap_reached | over_budget | no_stock. Every
    step is a conditional UPDATE; a later step that fails gives back what the earlier ones took,
    inside the same transaction. The daily cap counts the brand's local day: the tier row holds
    the day and its count, reset by the first award of a new day."""
    tiers = PrizeTier.__table__
    day = at.astimezone(_zone(lottery.timezone)).date().isoformat()
    today = case((tiers.c.day == day, tiers.c.awarded_today), else_=0)
    got = s.execute(update(tiers).where(tiers.c.id == tier.id, tiers.c.awarded < tiers.c.cap,
                                        or_(tiers.c.daily_cap.is_(None), today < tiers.c.daily_cap))
                    .values(awarded=tiers.c.awarded + 1, awarded_today=today + 1, day=day)
                    .returning(tiers.c.awarded)).first()
    if got is None:
        left = s.execute(select(tiers.c.awarded < tiers.c.cap).where(tiers.c.id == tier.id)).scalar()
        return ("day_cap_reached" if left else "cap_reached"), None
    lots = Lottery.__table__
    charged = False
    if lottery.budget_cents is not None and tier.value_cents:
        ok = s.execute(update(lots).where(lots.c.id == lottery.id,
                                          lots.c.spent_cents + tier.value_cents <= lots.c.budget_cents)
                       .values(spent_cents=lots.c.spent_cents + tier.value_cents)
                       .returning(lots.c.id)).first()
        if ok is None:
            _give_back(s, tier.id)
            return "over_budget", None
        charged = True
    cards = PrizeCard.__table__
    free = (select(cards.c.id).where(cards.c.tier_id == tier.id, cards.c.submission_id.is_(None))
            .order_by(cards.c.id).limit(1).with_for_update(skip_locked=True).scalar_subquery())
    row = s.execute(update(cards).where(cards.c.id == free, cards.c.submission_id.is_(None))
                    .values(submission_id=submission_id, claimed_at=at)
                    .returning(cards.c.id, cards.c.card_number, cards.c.password_enc,
                               cards.c.instructions)).first()
    if row is None:
        _give_back(s, tier.id)
        if charged:
            s.execute(update(lots).where(lots.c.id == lottery.id)
                      .values(spent_cents=lots.c.spent_cents - tier.value_cents))
        return "no_stock", None
    return "won", WonCard(row.id, row.card_number, bytes(row.password_enc), row.instructions)


def _give_back(s: Session, tier_id: int) -> None:
    tiers = PrizeTier.__table__
    s.execute(update(tiers).where(tiers.c.id == tier_id)
              .values(awarded=tiers.c.awarded - 1, awarded_today=tiers.c.awarded_today - 1))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def card_of(s: Session, submission_id: str) -> WonCard | None:
    cards = PrizeCard.__table__
    row = s.execute(select(cards.c.id, cards.c.card_number, cards.c.password_enc, cards.c.instructions)
                    .where(cards.c.submission_id == submission_id)).first()
    if row is None:
        return None
    return WonCard(row.id, row.card_number, bytes(row.password_enc), row.instructions)
