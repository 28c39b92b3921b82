"""A brand, a product and a lottery of tenant acme (and a brand of tenant other), for the
lottery, points and club pages' tests."""

from __future__ import annotations

from services.verifier.domain import admin
from services.verifier.domain import lottery_admin as la


def make_scheme(db) -> dict:
    with db.session() as s:
        admin.create_brand(s, "acme", "gold", "Gold Leaf", name_zh="金叶")
        product = admin.create_product(s, "acme", "gold", "gold-20", "Gold 20s", points=10)
        lot = la.create_lottery(s, "acme", product.brand_id, "Spring", [
            la.TierIn("50 yuan card", 0.25, 10, daily_cap=5, value_cents=5000),
            la.TierIn("10 yuan card", 0.5, 100)])
        tiers = [t.tier.id for t in la.lottery(s, "acme", lot.id).tiers]
        admin.create_brand(s, "other", "silver", "Silver")
        return {"lottery": lot.id, "tiers": tiers, "product": product.id, "brand": product.brand_id}
