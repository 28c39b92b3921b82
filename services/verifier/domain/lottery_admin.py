"""Running a lottery (design.md Level 3 C) from the console and the CLI: prize tiers with their
odds, total and daily caps; prize-card inventory uploads; stock levels; the draw log and the
winners; an owner's re-send of a winner's card message.

Every check names the field it refuses (``FieldError.field``) and nothing is stored on error.
Card passwords are sealed on upload and never read back here, except to build the winner's
message again (``Verifier.prize_message``)."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from services.core.card_files import CardRow, store_cards
from services.core.db.schemes import Brand, Draw, Lottery, PrizeCard, PrizeTier, Product
from services.core.processor import Out
from services.core.secrets import SecretBox

from .replies import mask
from .verify import Verifier

LOW_STOCK_SHARE = 0.1  # a tier is low on cards below 10% of what was uploaded (and at least 1)
OUTCOMES = ("won", "lost", "cap_reached", "day_cap_reached", "over_budget", "no_stock")
OUTCOME_LABELS = {"won": "won", "lost": "lost", "cap_reached": "total cap reached",
                  "day_cap_reached": "daily cap reached", "over_budget": "over budget",
                  "no_stock": "no card left"}
ODDS_SLACK = 1e-9


class FieldError(ValueError):
    """A value refused, with the form field it came from; ``template`` % ``values`` is the
    message (kept apart so that the console can translate it)."""

    def __init__(self, field_name: str, template: str, **values: object) -> None:
        self.field = field_name
        self.template = template
        self.values = values
        self.message = template % values if values else template
        super().__init__(self.message)


@dataclass(frozen=True)
class TierIn:
    name: str
    odds: float
    cap: int
    daily_cap: int | None = None
    value_cents: int = 0
    name_zh: str | None = None


def check_tier(t: TierIn, prefix: str = "") -> None:
    if not t.name.strip() or len(t.name) > 200:
        raise FieldError(f"{prefix}name", "A prize tier needs a name of 1 to 200 characters.")
    if not (0 < t.odds <= 1) or math.isnan(t.odds):
        raise FieldError(f"{prefix}odds", "Odds are a probability above 0 and at most 1 (0.01 is 1 in 100).")
    if t.cap < 0:
        raise FieldError(f"{prefix}cap", "The total cap cannot be negative.")
    if t.daily_cap is not None and not 0 <= t.daily_cap <= t.cap:
        raise FieldError(f"{prefix}daily_cap", "The daily cap is between 0 and the total cap.")
    if t.value_cents < 0:
        raise FieldError(f"{prefix}value_cents", "A prize's value cannot be negative.")


def check_odds_total(odds: list[float], field_name: str) -> None:
    total = sum(odds)
    if total > 1 + ODDS_SLACK:
        raise FieldError(field_name, "The tiers' odds add up to %(total)s, more than 1: a draw can fall "
                                     "in one tier at most, so lower some odds.", total=f"{total:g}")


def _lottery(s: Session, tenant_id: str, lottery_id: int) -> Lottery:
    lot = s.get(Lottery, lottery_id)
    if lot is None or lot.tenant_id != tenant_id:
        raise LookupError(f"tenant {tenant_id} has no lottery {lottery_id}")
    return lot


def _tier(s: Session, tenant_id: str, tier_id: int) -> tuple[PrizeTier, Lottery]:
    tier = s.get(PrizeTier, tier_id)
    lot = s.get(Lottery, tier.lottery_id) if tier is not None else None
    if tier is None or lot is None or lot.tenant_id != tenant_id:
        raise LookupError(f"tenant {tenant_id} has no prize tier {tier_id}")
    return tier, lot


def tier_view(t: PrizeTier) -> dict[str, Any]:
    return {"name": t.name, "odds": t.odds, "cap": t.cap, "daily_cap": t.daily_cap,
            "value_cents": t.value_cents}


def create_lottery(s: Session, tenant_id: str, brand_id: int, name: str, tiers: list[TierIn],
                   product_id: int | None = None, budget_cents: int | None = None,
                   starts_at: datetime | None = None, ends_at: datetime | None = None) -> Lottery:
    if not name.strip() or len(name) > 200:
        raise FieldError("name", "A lottery needs a name of 1 to 200 characters.")
    brand = s.get(Brand, brand_id)
    if brand is None or brand.tenant_id != tenant_id:
        raise FieldError("brand", "Choose one of your brands.")
    if product_id is not None:
        product = s.get(Product, product_id)
        if product is None or product.tenant_id != tenant_id or product.brand_id != brand_id:
            raise FieldError("product", "Choose a product of the lottery's brand, or every product.")
    if budget_cents is not None and budget_cents < 0:
        raise FieldError("budget_cents", "A budget cannot be negative.")
    if starts_at and ends_at and ends_at <= starts_at:
        raise FieldError("ends_at", "The lottery must end after it starts.")
    if not tiers:
        raise FieldError("tiers-0-name", "A lottery needs at least one prize tier.")
    for i, t in enumerate(tiers):
        check_tier(t, f"tiers-{i}-")
    check_odds_total([t.odds for t in tiers], f"tiers-{len(tiers) - 1}-odds")
    lot = Lottery(tenant_id=tenant_id, brand_id=brand_id, product_id=product_id, name=name.strip(),
                  active=True, budget_cents=budget_cents, spent_cents=0, starts_at=starts_at, ends_at=ends_at)
    s.add(lot)
    s.flush()
    for t in tiers:
        s.add(PrizeTier(lottery_id=lot.id, name=t.name.strip(), name_zh=t.name_zh, odds=t.odds, cap=t.cap,
                        daily_cap=t.daily_cap, awarded=0, awarded_today=0, value_cents=t.value_cents))
    s.flush()
    return lot


def add_tier(s: Session, tenant_id: str, lottery_id: int, t: TierIn) -> PrizeTier:
    lot = _lottery(s, tenant_id, lottery_id)
    check_tier(t)
    others = list(s.scalars(select(PrizeTier.odds).where(PrizeTier.lottery_id == lot.id)))
    check_odds_total(others + [t.odds], "odds")
    tier = PrizeTier(lottery_id=lot.id, name=t.name.strip(), name_zh=t.name_zh, odds=t.odds, cap=t.cap,
                     daily_cap=t.daily_cap, awarded=0, awarded_today=0, value_cents=t.value_cents)
    s.add(tier)
    s.flush()
    return tier


def update_tier(s: Session, tenant_id: str, tier_id: int, t: TierIn) -> tuple[dict, dict]:
    """Change a tier's name, odds and caps; returns (before, after) for the audit log. A cap
    below what was already awarded is refused."""
    tier, lot = _tier(s, tenant_id, tier_id)
    check_tier(t)
    if t.cap < tier.awarded:
        raise FieldError("cap", "%(awarded)d prizes of this tier are already awarded; the cap "
                                "cannot be lower.", awarded=tier.awarded)
    others = list(s.scalars(select(PrizeTier.odds).where(PrizeTier.lottery_id == lot.id,
                                                         PrizeTier.id != tier.id)))
    check_odds_total(others + [t.odds], "odds")
    before = tier_view(tier)
    tier.name, tier.name_zh, tier.odds, tier.cap = t.name.strip(), t.name_zh, t.odds, t.cap
    tier.daily_cap, tier.value_cents = t.daily_cap, t.value_cents
    s.flush()
    return before, tier_view(tier)


def set_active(s: Session, tenant_id: str, lottery_id: int, active: bool) -> bool:
    lot = _lottery(s, tenant_id, lottery_id)
    changed = lot.active != active
    lot.active = active
    return changed


def upload_cards(s: Session, box: SecretBox, tenant_id: str, tier_id: int, rows: list[CardRow]) -> int:
    """Add parsed cards (services.core.card_files.parse_cards) to a tier's inventory, all or
    none: a card already in the tier refuses the file naming its line."""
    tier, _lot = _tier(s, tenant_id, tier_id)
    return store_cards(s, box, PrizeCard, "tier_id", tier.id, tenant_id, rows)


@dataclass
class TierStock:
    tier: PrizeTier
    cards: int
    free: int

    @property
    def low(self) -> bool:
        return self.free < max(1, math.ceil(self.cards * LOW_STOCK_SHARE)) \
            and self.tier.awarded < self.tier.cap

    @property
    def claimed(self) -> int:
        return self.cards - self.free


@dataclass
class LotteryView:
    lottery: Lottery
    brand: str
    product: str | None
    tiers: list[TierStock] = field(default_factory=list)

    @property
    def odds_total(self) -> float:
        return sum(t.tier.odds for t in self.tiers)

    @property
    def low(self) -> bool:
        return any(t.low for t in self.tiers)


def lotteries(s: Session, tenant_id: str, lottery_id: int | None = None) -> list[LotteryView]:
    """The tenant's lotteries (newest first) with each tier's stock: three queries whatever the
    number of cards."""
    q = select(Lottery, Brand.name, Product.name).join(Brand, Brand.id == Lottery.brand_id) \
        .outerjoin(Product, Product.id == Lottery.product_id).where(Lottery.tenant_id == tenant_id) \
        .order_by(Lottery.id.desc())
    if lottery_id is not None:
        q = q.where(Lottery.id == lottery_id)
    views = {lot.id: LotteryView(lot, b, p) for lot, b, p in s.execute(q)}
    if not views:
        return []
    tiers = list(s.scalars(select(PrizeTier).where(PrizeTier.lottery_id.in_(views)).order_by(PrizeTier.id)))
    counts = {tid: (total, free or 0) for tid, total, free in s.execute(
        select(PrizeCard.tier_id, func.count(),
               func.sum(case((PrizeCard.submission_id.is_(None), 1), else_=0)))
        .where(PrizeCard.tier_id.in_([t.id for t in tiers])).group_by(PrizeCard.tier_id))}
    for t in tiers:
        total, free = counts.get(t.id, (0, 0))
        views[t.lottery_id].tiers.append(TierStock(t, int(total), int(free)))
    return list(views.values())


def lottery(s: Session, tenant_id: str, lottery_id: int) -> LotteryView:
    found = lotteries(s, tenant_id, lottery_id)
    if not found:
        raise LookupError(f"tenant {tenant_id} has no lottery {lottery_id}")
    return found[0]


@dataclass(frozen=True)
class DrawRow:
    id: int
    drawn_at: datetime
    number: str  # masked
    outcome: str
    tier: str | None
    random_value: float
    random_hex: str
    inputs: dict
    card: str | None  # masked card number


def mask_card(number: str | None) -> str | None:
    if not number:
        return None
    return "••••" + number[-4:] if len(number) > 4 else "••••"


def draws(s: Session, tenant_id: str, lottery_id: int, *, outcome: str | None = None,
          before_id: int | None = None, limit: int = 50) -> list[DrawRow]:
    """The draw log, newest first, keyset-paged by id; numbers and card numbers masked."""
    _lottery(s, tenant_id, lottery_id)
    q = (select(Draw, PrizeTier.name, PrizeCard.card_number)
         .outerjoin(PrizeTier, PrizeTier.id == Draw.tier_id)
         .outerjoin(PrizeCard, PrizeCard.id == Draw.card_id)
         .where(Draw.tenant_id == tenant_id, Draw.lottery_id == lottery_id)
         .order_by(Draw.id.desc()).limit(limit))
    if outcome in OUTCOMES:
        q = q.where(Draw.outcome == outcome)
    if before_id is not None:
        q = q.where(Draw.id < before_id)
    return [DrawRow(d.id, d.drawn_at, mask(d.msisdn), d.outcome, tier, d.random_value, d.random_hex, d.inputs,
                    mask_card(card)) for d, tier, card in s.execute(q)]


def outcome_counts(s: Session, tenant_id: str, lottery_id: int) -> dict[str, int]:
    return {o: int(n) for o, n in s.execute(
        select(Draw.outcome, func.count()).where(Draw.tenant_id == tenant_id, Draw.lottery_id == lottery_id)
        .group_by(Draw.outcome))}


def resend_prize(s: Session, verifier: Verifier, tenant_id: str, draw_id: int) -> tuple[Out, Draw]:
    """A won draw's card message again, as a new message (its own request id): the console
    publishes it. LookupError if the draw is not the tenant's or won nothing."""
    d = s.get(Draw, draw_id)
    if d is None or d.tenant_id != tenant_id or d.outcome != "won":
        raise LookupError(f"tenant {tenant_id} has no won draw {draw_id}")
    out = verifier.prize_message(s, d.submission_id, f"prize-resend-{uuid.uuid4()}")
    if out is None:
        raise LookupError(f"draw {draw_id} has no card")
    return out, d


def brands_and_products(s: Session, tenant_id: str) -> list[tuple[Brand, list[Product]]]:
    """The tenant's brands, each with its products, for the lottery form's choices."""
    brands = list(s.scalars(select(Brand).where(Brand.tenant_id == tenant_id).order_by(Brand.name)))
    products = list(s.scalars(select(Product).where(Product.tenant_id == tenant_id).order_by(Product.name)))
    return [(b, [p for p in products if p.brand_id == b.id]) for b in brands]
