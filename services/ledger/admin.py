"""Running the points programme (design.md Level 3 D) from the console and the CLI: thresholds
in order with their own messages, the gift catalogue and its virtual-card inventory, and what a
member has (balance, ledger entries, redemptions).

Every refusal names its form field (``FieldError.field``); nothing is stored on error. Gift-card
passwords are sealed on upload and never read back here."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from services.core.card_files import CardRow, store_cards
from services.core.db.schemes import Gift, GiftCard, LedgerAccount, LedgerEntry, LoyaltyProgram, Redemption
from services.core.secrets import SecretBox

LOW_STOCK_SHARE = 0.1
MESSAGE_MAX = 480
LANGS = ("en", "zh")
OUTCOME_LABELS = {"redeemed": "redeemed", "insufficient": "not enough points", "unknown_gift": "no such gift",
                  "out_of_stock": "out of stock", "award": "earned", "redemption": "redeemed"}


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
class ThresholdIn:
    points: int
    message_en: str = ""
    message_zh: str = ""


def _check_message(text: str, field_name: str) -> None:
    if len(text) > MESSAGE_MAX:
        raise FieldError(field_name, "A message is at most %(max)d characters.", max=MESSAGE_MAX)
    try:
        text.format(balance=0, menu="", threshold=0)
    except (KeyError, IndexError, ValueError):
        raise FieldError(field_name, "A message may use only {balance}, {threshold} and {menu} "
                                     "in braces.") from None


def thresholds(s: Session, tenant_id: str) -> list[ThresholdIn]:
    row = s.get(LoyaltyProgram, tenant_id)
    if row is None:
        return []
    t = row.templates or {}
    return [ThresholdIn(int(p), (t.get("en") or {}).get(f"threshold_{p}", ""),
                        (t.get("zh") or {}).get(f"threshold_{p}", "")) for p in row.thresholds or []]


def set_thresholds(s: Session, tenant_id: str, items: list[ThresholdIn]) -> tuple[dict, dict]:
    """Replace the programme's thresholds: each above 0 and above the one before; each may have
    its own message per language (else the common one). Returns (before, after) for the audit."""
    last = 0
    for i, t in enumerate(items):
        if t.points <= 0:
            raise FieldError(f"thresholds-{i}-points", "A threshold is a number of points above 0.")
        if t.points <= last:
            raise FieldError(f"thresholds-{i}-points", "Thresholds go up in order: %(points)d comes after "
                                                       "%(last)d.", points=t.points, last=last)
        last = t.points
        _check_message(t.message_en, f"thresholds-{i}-message_en")
        _check_message(t.message_zh, f"thresholds-{i}-message_zh")
    row = s.get(LoyaltyProgram, tenant_id)
    if row is None:
        row = LoyaltyProgram(tenant_id=tenant_id, name="", thresholds=[], confirm_awards=False,
                             language="auto", templates={})
        s.add(row)
    before = {"thresholds": list(row.thresholds or [])}
    templates = {lang: {k: v for k, v in ((row.templates or {}).get(lang) or {}).items()
                        if not k.startswith("threshold_")} for lang in LANGS}
    for t in items:
        for lang, text in (("en", t.message_en), ("zh", t.message_zh)):
            if text.strip():
                templates[lang][f"threshold_{t.points}"] = text.strip()
    row.thresholds = [t.points for t in items]
    row.templates = {**(row.templates or {}), **templates}
    s.flush()
    return before, {"thresholds": list(row.thresholds)}


def add_gift(s: Session, tenant_id: str, number: int, name: str, cost: int,
             name_zh: str | None = None) -> Gift:
    if not 1 <= number <= 999:
        raise FieldError("number", "A gift's number (what members text: GIFT <number>) is 1 to 999.")
    if not name.strip() or len(name) > 200:
        raise FieldError("name", "A gift needs a name of 1 to 200 characters.")
    if cost < 1:
        raise FieldError("cost", "A gift costs at least 1 point.")
    if s.scalar(select(Gift.id).where(Gift.tenant_id == tenant_id, Gift.number == number)) is not None:
        raise FieldError("number", "Gift %(number)d exists already; choose another number.", number=number)
    gift = Gift(tenant_id=tenant_id, number=number, name=name.strip(),
                name_zh=(name_zh or "").strip() or None, cost=cost, active=True)
    s.add(gift)
    s.flush()
    return gift


def get_gift(s: Session, tenant_id: str, gift_id: int) -> Gift:
    gift = s.get(Gift, gift_id)
    if gift is None or gift.tenant_id != tenant_id:
        raise LookupError(f"tenant {tenant_id} has no gift {gift_id}")
    return gift


def set_gift_active(s: Session, tenant_id: str, gift_id: int, active: bool) -> Gift:
    gift = get_gift(s, tenant_id, gift_id)
    gift.active = active
    return gift


def upload_gift_cards(s: Session, box: SecretBox, tenant_id: str, gift_id: int, rows: list[CardRow]) -> int:
    """Add parsed cards (services.core.card_files.parse_cards) to a gift's inventory, all or none."""
    gift = get_gift(s, tenant_id, gift_id)
    return store_cards(s, box, GiftCard, "gift_id", gift.id, tenant_id, rows)


@dataclass
class GiftStock:
    gift: Gift
    cards: int
    free: int
    redeemed: int

    @property
    def low(self) -> bool:
        return self.gift.active and self.free < max(1, math.ceil(self.cards * LOW_STOCK_SHARE))


def gifts(s: Session, tenant_id: str) -> list[GiftStock]:
    rows = list(s.scalars(select(Gift).where(Gift.tenant_id == tenant_id).order_by(Gift.number)))
    if not rows:
        return []
    counts = {gid: (n, free or 0) for gid, n, free in s.execute(
        select(GiftCard.gift_id, func.count(), func.sum(case((GiftCard.command_id.is_(None), 1), else_=0)))
        .where(GiftCard.gift_id.in_([g.id for g in rows])).group_by(GiftCard.gift_id))}
    redeemed = dict(s.execute(select(Redemption.gift_id, func.count())
                              .where(Redemption.tenant_id == tenant_id, Redemption.outcome == "redeemed")
                              .group_by(Redemption.gift_id)).all())
    return [GiftStock(g, int(counts.get(g.id, (0, 0))[0]), int(counts.get(g.id, (0, 0))[1]),
                      int(redeemed.get(g.id, 0))) for g in rows]


def redemptions(s: Session, tenant_id: str, *, member: str | None = None, before_id: int | None = None,
                limit: int = 50) -> list[tuple[Redemption, str | None]]:
    """Newest first, keyset-paged by id, with the gift's name."""
    q = (select(Redemption, Gift.name).outerjoin(Gift, Gift.id == Redemption.gift_id)
         .where(Redemption.tenant_id == tenant_id).order_by(Redemption.id.desc()).limit(limit))
    if member:
        q = q.where(Redemption.member == member)
    if before_id is not None:
        q = q.where(Redemption.id < before_id)
    return [(r, name) for r, name in s.execute(q)]


def accounts(s: Session, tenant_id: str, *, after: str | None = None, limit: int = 50) -> list[LedgerAccount]:
    """Members with a balance, by number, keyset-paged."""
    q = (select(LedgerAccount).where(LedgerAccount.tenant_id == tenant_id)
         .order_by(LedgerAccount.member).limit(limit))
    if after:
        q = q.where(LedgerAccount.member > after)
    return list(s.scalars(q))


@dataclass
class MemberView:
    member: str
    balance: int
    earned: int
    spent: int
    entries: list[LedgerEntry]


def member(s: Session, tenant_id: str, msisdn: str, *, before_id: int | None = None,
           limit: int = 50) -> MemberView | None:
    """A member's balance and entries (newest first, keyset-paged); None if the member has none."""
    totals = s.execute(select(func.count(), func.coalesce(func.sum(case((LedgerEntry.points > 0,
                                                                         LedgerEntry.points), else_=0)), 0),
                              func.coalesce(func.sum(case((LedgerEntry.points < 0, LedgerEntry.points),
                                                          else_=0)), 0))
                       .where(LedgerEntry.tenant_id == tenant_id, LedgerEntry.member == msisdn)).one()
    if not totals[0]:
        return None
    q = (select(LedgerEntry).where(LedgerEntry.tenant_id == tenant_id, LedgerEntry.member == msisdn)
         .order_by(LedgerEntry.id.desc()).limit(limit))
    if before_id is not None:
        q = q.where(LedgerEntry.id < before_id)
    earned, spent = int(totals[1]), -int(totals[2])
    return MemberView(msisdn, earned - spent, earned, spent, list(s.scalars(q)))


def program_summary(s: Session, tenant_id: str) -> dict[str, Any]:
    members, total = s.execute(select(func.count(), func.coalesce(func.sum(LedgerAccount.balance), 0))
                               .where(LedgerAccount.tenant_id == tenant_id)).one()
    redeemed = s.scalar(select(func.count()).select_from(Redemption)
                        .where(Redemption.tenant_id == tenant_id, Redemption.outcome == "redeemed"))
    return {"members": int(members), "outstanding": int(total), "redeemed": int(redeemed or 0)}
