"""A ready-made anti-counterfeit scheme (brand, product, codes, lottery with cards) for a first
run, tests and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.db.models import Tenant
from services.core.db.schemes import (
    PrizeTier,
)
from services.core.secrets import SecretBox
from services.core.tenancy import create_tenant

from .domain import admin
from .domain.codes import CodeHasher, create_batch


@dataclass
class Scheme:
    tenant_id: str
    brand_slug: str
    product_slug: str
    brand_id: int
    product_id: int
    batch_id: int
    codes: list[str]
    lottery_id: int | None = None
    tier_ids: list[int] = field(default_factory=list)


def seed_scheme(s: Session, secret_key: str, tenant_id: str = "acme", brand: str = "gold",
                product: str = "gold-20", codes: int = 100, points: int = 10,
                tiers: Sequence[admin.TierSpec] = (), cards_per_tier: int | None = None,
                budget_cents: int | None = None,
                **brand_fields) -> Scheme:
    """Tenant (if missing), brand, product, a batch of ``codes`` and, with ``tiers``, a lottery
    whose tiers hold ``cards_per_tier`` cards each (default: the tier's cap)."""
    if s.get(Tenant, tenant_id) is None:
        create_tenant(s, tenant_id, tenant_id.title())
    brand_fields.setdefault("name_zh", "金叶")
    b = admin.create_brand(s, tenant_id, brand, brand.title(), **brand_fields)
    p = admin.create_product(s, tenant_id, brand, product, f"{brand.title()} {product}", points=points,
                             name_zh=f"{brand_fields['name_zh']}{product}")
    batch_id, clear = create_batch(s, CodeHasher(secret_key), tenant_id, product, codes) if codes else (0, [])
    scheme = Scheme(tenant_id, brand, product, b.id, p.id, batch_id, clear)
    if tiers:
        lot = admin.create_lottery(s, tenant_id, brand, "Demo lottery", tiers, budget_cents=budget_cents)
        scheme.lottery_id = lot.id
        box = SecretBox(secret_key)
        for tier in s.scalars(select(PrizeTier).where(PrizeTier.lottery_id == lot.id).order_by(PrizeTier.id)):
            scheme.tier_ids.append(tier.id)
            n = tier.cap if cards_per_tier is None else cards_per_tier
            admin.add_prize_cards(s, box, tier.id, [(f"T{tier.id}C{i:05d}", f"PW-{tier.id}-{i:05d}",
                                                     "Dial *100# and enter the password.") for i in range(n)])
    return scheme
