"""Brands, products and their reply texts, as the console and the ``herald`` CLI change them.

The rows and the replies are the verifier's (services/verifier/domain/admin.py creates them,
replies.py renders them); this module adds what a form needs on top: each bad value refused
with the field it concerns, and a reply text checked for the placeholders its kind can fill
before it is stored (the verifier would otherwise fall back to its default text silently).
The verifier caches brands for 30 s, so an edit reaches the replies within that time."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.core.db.schemes import Brand, CodeBatch, Product
from services.verifier.domain import admin, replies

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
LANGUAGES = ("auto", "zh", "en")
REPLY_LANGS = ("en", "zh")
MAX_TEXT = 500
MAX_POINTS = 100_000

# The reply kinds a brand manager edits, and the placeholders each can use.
REPLY_KINDS: dict[str, tuple[str, ...]] = {
    "genuine": ("brand", "product", "points_note"),
    "repeat": ("brand", "count", "first_at", "first_number"),
    "counterfeit": ("brand",),
    "mistyped": ("brand",),
    "locked": ("brand", "minutes"),
}


class BrandError(ValueError):
    """A refused change; ``field`` names the form field it concerns."""

    def __init__(self, field: str, msgid: str, **values: Any) -> None:
        self.field, self.msgid, self.values = field, msgid, values
        self.message = msgid % values if values else msgid  # English; views translate msgid
        super().__init__(self.message)

    def translated(self, gettext) -> str:
        return gettext(self.msgid, **self.values)


def brands(s: Session, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's brands with their product and batch counts, by name."""
    products = dict(s.execute(select(Product.brand_id, func.count()).where(Product.tenant_id == tenant_id)
                              .group_by(Product.brand_id)).all())
    batches = dict(s.execute(select(CodeBatch.brand_id, func.count()).where(CodeBatch.tenant_id == tenant_id)
                             .group_by(CodeBatch.brand_id)).all())
    rows = s.scalars(select(Brand).where(Brand.tenant_id == tenant_id).order_by(Brand.name, Brand.id))
    return [{"brand": b, "products": products.get(b.id, 0), "batches": batches.get(b.id, 0)} for b in rows]


def get_brand(s: Session, tenant_id: str, slug: str) -> Brand | None:
    return s.scalar(select(Brand).where(Brand.tenant_id == tenant_id, Brand.slug == slug))


def products(s: Session, tenant_id: str, brand_id: int | None = None) -> list[Product]:
    q = select(Product).where(Product.tenant_id == tenant_id).order_by(Product.name, Product.id)
    if brand_id is not None:
        q = q.where(Product.brand_id == brand_id)
    return list(s.scalars(q))


def _text(field: str, value: str | None, label: tuple[str], required: bool = True,
          limit: int = 200) -> str | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise BrandError(field, label[0])
        return None
    if len(value) > limit:
        raise BrandError(field, "At most %(limit)s characters.", limit=limit)
    return value


def _slug(s: Session, model, tenant_id: str, slug: str | None, what: str) -> str:
    slug = (slug or "").strip().lower()
    if not SLUG.match(slug):
        raise BrandError("slug", "A short name is 1 to 64 lower-case letters, digits or '-', "
                                 "starting with a letter or digit (for example gold-leaf).")
    if s.scalar(select(model.id).where(model.tenant_id == tenant_id, model.slug == slug)) is not None:
        raise BrandError("slug", what, slug=slug)
    return slug


def create_brand(s: Session, tenant_id: str, *, slug: str, name: str, name_zh: str | None = None,
                 language: str = "auto", timezone: str = "UTC") -> Brand:
    slug = _slug(s, Brand, tenant_id, slug, "There is already a brand with the short name %(slug)s.")
    name = _text("name", name, ("Enter the brand name.",))
    name_zh = _text("name_zh", name_zh, ("",), required=False)
    if language not in LANGUAGES:
        raise BrandError("language", "Choose the reply language: automatic, Chinese or English.")
    timezone = (timezone or "UTC").strip()
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BrandError("timezone", "%(zone)s is not a time zone; use a name such as "
                                     "Asia/Shanghai or UTC.", zone=timezone) from None
    return admin.create_brand(s, tenant_id, slug, name, name_zh=name_zh, language=language,
                              timezone=timezone)


def create_product(s: Session, tenant_id: str, brand_slug: str, *, slug: str, name: str,
                   name_zh: str | None = None, points: str | int = 0) -> Product:
    if get_brand(s, tenant_id, brand_slug) is None:
        raise BrandError("brand", "There is no brand %(slug)s.", slug=brand_slug)
    slug = _slug(s, Product, tenant_id, slug, "There is already a product with the short name %(slug)s.")
    name = _text("name", name, ("Enter the product name.",))
    name_zh = _text("name_zh", name_zh, ("",), required=False)
    try:
        pts = int(str(points).strip() or 0)
    except ValueError:
        raise BrandError("points", "Points are a whole number, such as 10.") from None
    if not 0 <= pts <= MAX_POINTS:
        raise BrandError("points", "Points are between 0 and %(max)s.", max=MAX_POINTS)
    return admin.create_product(s, tenant_id, brand_slug, slug, name, pts, name_zh)


def brand_view(b: Brand) -> dict[str, Any]:
    """What the audit log keeps of a brand."""
    return {"slug": b.slug, "name": b.name, "name_zh": b.name_zh, "language": b.language,
            "timezone": b.timezone}


def product_view(p: Product) -> dict[str, Any]:
    return {"slug": p.slug, "name": p.name, "name_zh": p.name_zh, "points": p.points}


# -- reply texts -------------------------------------------------------------------------------


def check_reply(kind: str, text: str) -> None:
    """Refuse a reply text its kind cannot fill: an unknown placeholder, a stray brace."""
    field = f"{kind}"
    if len(text) > MAX_TEXT:
        raise BrandError(field, "A reply text has at most %(limit)s characters.", limit=MAX_TEXT)
    allowed = REPLY_KINDS[kind]
    try:
        names = [name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None]
    except ValueError:
        raise BrandError(field, "A brace { or } is not closed; write a placeholder as {brand}.") from None
    for name in names:
        if name not in allowed:
            raise BrandError(field, "{%(name)s} cannot be used here; this reply can use %(allowed)s.",
                             name=name, allowed=", ".join(f"{{{a}}}" for a in allowed))


def reply_texts(b: Brand) -> dict[str, dict[str, str]]:
    """{lang: {kind: the brand's own text or ""}} for the editor."""
    own = b.templates or {}
    return {lang: {kind: (own.get(lang) or {}).get(kind, "") for kind in REPLY_KINDS} for lang in REPLY_LANGS}


def set_reply_texts(s: Session, b: Brand, texts: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Store the brand's reply texts ({lang: {kind: text}}; an empty text means the default).
    Every text is checked before anything is stored; field names are ``<lang>-<kind>``.
    Returns the templates before the change."""
    clean: dict[str, dict[str, str]] = {}
    for lang in REPLY_LANGS:
        for kind in REPLY_KINDS:
            text = (texts.get(lang, {}).get(kind) or "").strip()
            if not text:
                continue
            try:
                check_reply(kind, text)
            except BrandError as exc:
                raise BrandError(f"{lang}-{kind}", exc.msgid, **exc.values) from None
            clean.setdefault(lang, {})[kind] = text
    before = dict(b.templates or {})
    # Kinds the console does not edit (points_note, prize, repeat_self) are kept as they were.
    merged = {lang: {k: v for k, v in (before.get(lang) or {}).items() if k not in REPLY_KINDS}
              for lang in REPLY_LANGS}
    for lang, kinds in clean.items():
        merged[lang].update(kinds)
    b.templates = {lang: kinds for lang, kinds in merged.items() if kinds}
    s.flush()
    return before


@dataclass(frozen=True)
class Preview:
    kind: str
    lang: str
    text: str
    custom: bool
    problem: BrandError | None  # why the text cannot be used (views translate it)


def preview(s: Session, b: Brand, lang: str, kind: str, text: str) -> Preview:
    """The reply as a buyer would read it, with sample values (a masked first checker for a
    repeat). A text that does not fill shows what is wrong and the default it would fall to."""
    if lang not in REPLY_LANGS or kind not in REPLY_KINDS:
        raise BrandError("kind", "Unknown reply.")
    text = (text or "").strip()
    problem = None
    if text:
        try:
            check_reply(kind, text)
        except BrandError as exc:
            problem = exc
    product = s.scalar(select(Product).where(Product.brand_id == b.id).order_by(Product.id))
    zh = lang == "zh"
    brand_name = (b.name_zh if zh and b.name_zh else b.name)
    product_name = ((product.name_zh if zh and product.name_zh else product.name) if product
                    else ("产品" if zh else "product"))
    values = {"brand": brand_name, "product": product_name,
              "points_note": replies.render("points_note", lang, b.templates, points=10),
              "count": 3, "first_number": replies.mask("+8613812345678"),
              "first_at": replies.local_time(datetime.now(UTC) - timedelta(days=2, hours=3),
                                             b.timezone, lang),
              "minutes": max(1, b.lockout_duration_s // 60)}
    overrides = {lang: {kind: text}} if text and problem is None else None
    return Preview(kind, lang, replies.render(kind, lang, overrides, **values), bool(overrides), problem)
