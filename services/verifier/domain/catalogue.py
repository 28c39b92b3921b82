"""What the verifier reads on every query but that rarely changes (brands, products, batches,
lotteries), cached in memory for a short time so a verification costs few database round
trips. Counters that must be exact (tier awards, budgets, cards) are never cached."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.db.models import Tenant
from services.core.db.schemes import Brand, CodeBatch, Lottery, PrizeTier, Product
from services.core.utc import aware

from .codes import CodeFormat


@dataclass(frozen=True)
class BrandInfo:
    id: int
    tenant_id: str
    slug: str
    name: str
    name_zh: str | None
    format: CodeFormat
    language: str
    timezone: str
    templates: dict
    lockout_max_invalid: int
    lockout_window_s: int
    lockout_duration_s: int
    probe_threshold: int

    def display(self, lang: str) -> str:
        return (self.name_zh if lang == "zh" and self.name_zh else self.name)


@dataclass(frozen=True)
class ProductInfo:
    id: int
    brand_id: int
    slug: str
    name: str
    name_zh: str | None
    points: int

    def display(self, lang: str) -> str:
        return (self.name_zh if lang == "zh" and self.name_zh else self.name)


@dataclass(frozen=True)
class TierInfo:
    id: int
    name: str
    name_zh: str | None
    odds: float
    cap: int
    value_cents: int
    daily_cap: int | None = None

    def display(self, lang: str) -> str:
        return (self.name_zh if lang == "zh" and self.name_zh else self.name)


@dataclass(frozen=True)
class LotteryInfo:
    id: int
    brand_id: int
    product_id: int | None
    starts_at: datetime | None
    ends_at: datetime | None
    budget_cents: int | None
    tiers: tuple[TierInfo, ...]
    timezone: str = "UTC"  # the brand's: a tier's daily cap counts the brand's days

    def open_at(self, at: datetime) -> bool:
        started = self.starts_at is None or self.starts_at <= at
        return started and (self.ends_at is None or at < self.ends_at)


class Catalogue:
    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._tenants: dict[str, tuple[float, tuple[BrandInfo, ...]]] = {}
        self._brands: dict[int, BrandInfo] = {}
        self._products: dict[int, ProductInfo] = {}
        self._batches: dict[int, int] = {}  # batch -> product; a batch never changes product
        self._lotteries: dict[int, tuple[float, tuple[LotteryInfo, ...]]] = {}
        self._tenant_names: dict[str, tuple[float, str]] = {}

    def clear(self) -> None:
        with self._lock:
            self._tenants.clear()
            self._brands.clear()
            self._products.clear()
            self._lotteries.clear()
            self._tenant_names.clear()

    def brands(self, s: Session, tenant_id: str) -> tuple[BrandInfo, ...]:
        hit = self._tenants.get(tenant_id)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        rows = s.scalars(select(Brand).where(Brand.tenant_id == tenant_id).order_by(Brand.id)).all()
        infos = tuple(_brand_info(b) for b in rows)
        products = s.scalars(select(Product).where(Product.tenant_id == tenant_id)).all()
        with self._lock:
            self._tenants[tenant_id] = (time.monotonic(), infos)
            for b in infos:
                self._brands[b.id] = b
            for p in products:
                self._products[p.id] = _product_info(p)
        return infos

    def tenant_name(self, s: Session, tenant_id: str) -> str:
        """The tenant's name, for replies that cannot name one of its brands."""
        hit = self._tenant_names.get(tenant_id)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        name = s.scalar(select(Tenant.name).where(Tenant.id == tenant_id)) or tenant_id
        self._tenant_names[tenant_id] = (time.monotonic(), name)
        return name

    def brand(self, s: Session, brand_id: int) -> BrandInfo:
        b = self._brands.get(brand_id)
        if b is None:
            row = s.get(Brand, brand_id)
            b = _brand_info(row)
            self._brands[brand_id] = b
        return b

    def product(self, s: Session, product_id: int) -> ProductInfo:
        p = self._products.get(product_id)
        if p is None:
            p = _product_info(s.get(Product, product_id))
            self._products[product_id] = p
        return p

    def product_of_batch(self, s: Session, batch_id: int) -> ProductInfo:
        pid = self._batches.get(batch_id)
        if pid is None:
            pid = s.scalar(select(CodeBatch.product_id).where(CodeBatch.id == batch_id))
            self._batches[batch_id] = pid
        return self.product(s, pid)

    def tier(self, s: Session, tier_id: int) -> TierInfo | None:
        for _at, lots in list(self._lotteries.values()):
            for lot in lots:
                for t in lot.tiers:
                    if t.id == tier_id:
                        return t
        t = s.get(PrizeTier, tier_id)
        return None if t is None else TierInfo(t.id, t.name, t.name_zh, t.odds, t.cap, t.value_cents,
                                               t.daily_cap)

    def lottery_for(self, s: Session, brand_id: int, product_id: int, at: datetime) -> LotteryInfo | None:
        """The brand's open lottery for the product: one for that product first, else one for
        every product of the brand; the oldest when several qualify."""
        hit = self._lotteries.get(brand_id)
        if hit is None or time.monotonic() - hit[0] >= self.ttl:
            lots = s.scalars(select(Lottery).where(Lottery.brand_id == brand_id, Lottery.active.is_(True))
                             .order_by(Lottery.id)).all()
            tiers = s.scalars(select(PrizeTier).where(PrizeTier.lottery_id.in_([lot.id for lot in lots]))
                              .order_by(PrizeTier.id)).all() if lots else []
            infos = tuple(
                LotteryInfo(lot.id, lot.brand_id, lot.product_id, aware(lot.starts_at), aware(lot.ends_at),
                            lot.budget_cents,
                            tuple(TierInfo(t.id, t.name, t.name_zh, t.odds, t.cap, t.value_cents,
                                           t.daily_cap)
                                  for t in tiers if t.lottery_id == lot.id),
                            self.brand(s, lot.brand_id).timezone)
                for lot in lots)
            hit = (time.monotonic(), infos)
            self._lotteries[brand_id] = hit
        open_ = [lot for lot in hit[1] if lot.open_at(at) and lot.product_id in (product_id, None)]
        open_.sort(key=lambda lot: (lot.product_id is None, lot.id))
        return open_[0] if open_ else None


def _brand_info(b: Brand) -> BrandInfo:
    return BrandInfo(b.id, b.tenant_id, b.slug, b.name, b.name_zh, CodeFormat(b.code_alphabet, b.code_length),
                     b.language, b.timezone, b.templates or {}, b.lockout_max_invalid, b.lockout_window_s,
                     b.lockout_duration_s, b.probe_threshold)


def _product_info(p: Product) -> ProductInfo:
    return ProductInfo(p.id, p.brand_id, p.slug, p.name, p.name_zh, p.points)
