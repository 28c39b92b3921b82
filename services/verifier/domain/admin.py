"""What a brand sets up and asks for: brands, products, lotteries and their prize cards, the
audience of a product (everyone who verified it) and member clubs (design.md Level 3 E)."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from services.core import topics
from services.core.db.schemes import (
    Brand,
    ClubMembership,
    CodeQuery,
    Lottery,
    PrizeCard,
    PrizeTier,
    Product,
)
from services.core.messages import message_id_for
from services.core.processor import Out
from services.core.schemas import new_event, now_iso
from services.core.secrets import SecretBox
from services.core.utc import aware

from .codes import CodeFormat
from .verify import derived_id

CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CLUB_WORDS = {"JOIN": "joined", "加入": "joined", "LEAVE": "left", "QUIT": "left", "退出": "left"}


def create_brand(s: Session, tenant_id: str, slug: str, name: str, **fields: Any) -> Brand:
    CodeFormat(fields.get("code_alphabet") or CodeFormat().alphabet, fields.get("code_length") or 11)
    brand = Brand(tenant_id=tenant_id, slug=slug, name=name, **fields)
    s.add(brand)
    s.flush()
    return brand


def brand_by_slug(s: Session, tenant_id: str, slug: str) -> Brand:
    brand = s.scalar(select(Brand).where(Brand.tenant_id == tenant_id, Brand.slug == slug))
    if brand is None:
        raise LookupError(f"tenant {tenant_id} has no brand {slug!r}")
    return brand


def create_product(s: Session, tenant_id: str, brand_slug: str, slug: str, name: str, points: int = 0,
                   name_zh: str | None = None) -> Product:
    brand = brand_by_slug(s, tenant_id, brand_slug)
    product = Product(tenant_id=tenant_id, brand_id=brand.id, slug=slug, name=name, name_zh=name_zh,
                      points=points)
    s.add(product)
    s.flush()
    return product


@dataclass(frozen=True)
class TierSpec:
    name: str
    odds: float
    cap: int
    value_cents: int = 0
    name_zh: str | None = None


def create_lottery(s: Session, tenant_id: str, brand_slug: str, name: str, tiers: Iterable[TierSpec],
                   budget_cents: int | None = None, product_slug: str | None = None,
                   starts_at: datetime | None = None, ends_at: datetime | None = None) -> Lottery:
    tiers = list(tiers)
    if sum(t.odds for t in tiers) > 1.0 + 1e-9 or any(t.odds < 0 or t.cap < 0 for t in tiers):
        raise ValueError("tier odds must be between 0 and 1 and add up to at most 1; caps at least 0")
    brand = brand_by_slug(s, tenant_id, brand_slug)
    product_id = None
    if product_slug is not None:
        product_id = s.scalar(select(Product.id).where(Product.tenant_id == tenant_id,
                                                       Product.slug == product_slug))
        if product_id is None:
            raise LookupError(f"tenant {tenant_id} has no product {product_slug!r}")
    lot = Lottery(tenant_id=tenant_id, brand_id=brand.id, product_id=product_id, name=name,
                  budget_cents=budget_cents, spent_cents=0, starts_at=starts_at, ends_at=ends_at)
    s.add(lot)
    s.flush()
    for t in tiers:
        s.add(PrizeTier(lottery_id=lot.id, name=t.name, name_zh=t.name_zh, odds=t.odds, cap=t.cap,
                        awarded=0, value_cents=t.value_cents))
    s.flush()
    return lot


def add_prize_cards(s: Session, box: SecretBox, tier_id: int, cards: Iterable[tuple[str, str, str]]) -> int:
    """Upload prepaid cards (number, password, instructions) to a tier; passwords are sealed."""
    tier = s.get(PrizeTier, tier_id)
    if tier is None:
        raise LookupError(f"no prize tier {tier_id}")
    tenant_id = s.scalar(select(Lottery.tenant_id).where(Lottery.id == tier.lottery_id))
    rows = [{"tenant_id": tenant_id, "tier_id": tier_id, "card_number": number,
             "password_enc": box.seal(password), "instructions": instructions}
            for number, password, instructions in cards]
    if rows:
        s.execute(PrizeCard.__table__.insert(), rows)
    return len(rows)


def read_cards(lines: Iterable[str]) -> Iterator[tuple[str, str, str]]:
    """Cards from a CSV with columns card_number, password, instructions (header optional)."""
    for row in csv.reader(lines):
        if not row or row[0].strip().lower() in ("", "card_number", "number"):
            continue
        if len(row) < 2:
            raise ValueError("each card line needs card_number,password[,instructions]")
        yield row[0].strip(), row[1].strip(), (row[2].strip() if len(row) > 2 else "")


# -- audience (E) ----------------------------------------------------------------------------------

def audience(tenant_id: str, product_id: int) -> Select:
    """Everyone whose first valid query was of the product: a query, so a large audience is
    streamed (``session.execute(...).scalars()`` with ``yield_per``), not loaded."""
    return (select(CodeQuery.msisdn).where(CodeQuery.tenant_id == tenant_id,
                                           CodeQuery.product_id == product_id,
                                           CodeQuery.outcome == "genuine")
            .distinct().order_by(CodeQuery.msisdn))


def club_audience(tenant_id: str, brand_id: int, club: str) -> Select:
    return (select(ClubMembership.msisdn).where(ClubMembership.tenant_id == tenant_id,
                                                ClubMembership.brand_id == brand_id,
                                                ClubMembership.club == club,
                                                ClubMembership.status == "joined")
            .order_by(ClubMembership.msisdn))


def invitations(tenant_id: str, numbers: Iterable[str], text: str, campaign_id: str,
                sender: str | None = None) -> Iterator[Out]:
    """One marketing ``sms.outbound`` per number (egress applies opt-outs and quiet hours). The
    request id is the campaign and the number, so sending the same campaign twice sends once."""
    if not CAMPAIGN_ID.match(campaign_id):
        raise ValueError("a campaign id is 1 to 64 letters, digits, '.', '_' or '-'")
    for msisdn in numbers:
        request_id = f"invite:{campaign_id}:{msisdn.lstrip('+')}"[:128]
        value = new_event(topics.SMS_OUTBOUND, tenant_id, message_id=message_id_for(tenant_id, request_id),
                          request_id=request_id, to=msisdn, text=text, category="marketing",
                          source="verifier", campaign_id=campaign_id, accepted_at=now_iso(),
                          attributes={"kind": "invitation"}, **({"from": sender} if sender else {}))
        value["event_id"] = derived_id("sms.outbound", tenant_id, request_id)
        yield Out(topics.SMS_OUTBOUND, msisdn, value)


def product_id(s: Session, tenant_id: str, product_slug: str) -> int:
    pid = s.scalar(select(Product.id).where(Product.tenant_id == tenant_id, Product.slug == product_slug))
    if pid is None:
        raise LookupError(f"tenant {tenant_id} has no product {product_slug!r}")
    return pid


def invite_product_audience(s: Session, tenant_id: str, product_slug: str, text: str, campaign_id: str,
                            sender: str | None = None) -> Iterator[Out]:
    """The invitations of everyone who verified the product, streamed from the database."""
    pid = product_id(s, tenant_id, product_slug)
    numbers = s.execute(audience(tenant_id, pid).execution_options(yield_per=1000)).scalars()
    return invitations(tenant_id, numbers, text, campaign_id, sender)


# -- clubs (E) -------------------------------------------------------------------------------------

def club_keyword(word: str) -> str | None:
    """JOIN / LEAVE (and their Chinese forms) -> the status they ask for, else None."""
    return CLUB_WORDS.get(word.strip().upper())


def set_club_membership(s: Session, tenant_id: str, brand_slug: str, club: str, msisdn: str, status: str,
                        source: str = "keyword", source_event_id: str | None = None,
                        at: datetime | None = None) -> bool:
    """Join (``joined``) or leave (``left``) a club. Idempotent: the same request twice changes
    nothing, and an older request never overrides a newer one. Returns whether it changed."""
    if status not in ("joined", "left"):
        raise ValueError("status is joined or left")
    at = (at or datetime.now(UTC)).astimezone(UTC)
    brand = brand_by_slug(s, tenant_id, brand_slug)
    row = s.scalar(select(ClubMembership).where(ClubMembership.tenant_id == tenant_id,
                                                ClubMembership.brand_id == brand.id,
                                                ClubMembership.club == club,
                                                ClubMembership.msisdn == msisdn).with_for_update())
    if row is None:
        s.add(ClubMembership(tenant_id=tenant_id, brand_id=brand.id, club=club, msisdn=msisdn, status=status,
                             source=source, source_event_id=source_event_id, changed_at=at))
        s.flush()
        return True
    if source_event_id is not None and row.source_event_id == source_event_id:
        return False
    if aware(row.changed_at) > at:
        return False
    changed = row.status != status
    row.status, row.source, row.source_event_id, row.changed_at = status, source, source_event_id, at
    return changed


def set_product_points(s: Session, tenant_id: str, product_id: int, points: int) -> tuple[int, int]:
    """The points a first valid query of the product earns (0: none); returns (before, after).
    ValueError for negative points, LookupError for another tenant's product."""
    product = s.get(Product, product_id)
    if product is None or product.tenant_id != tenant_id:
        raise LookupError(f"tenant {tenant_id} has no product {product_id}")
    if points < 0 or points > 1_000_000:
        raise ValueError("points per valid code are 0 to 1,000,000")
    before, product.points = product.points, points
    s.flush()
    return before, points
