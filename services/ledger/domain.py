"""The points ledger (design.md Level 3 D): awards, balances, thresholds, the gift catalogue and
redemption. Nothing here knows about Kafka: the handlers take events and one open
transaction and return the events to produce; the caller commits before producing.

Exactly-once effect:
- an award is an append-only entry under a unique (tenant, source_event_id): its cause pays once;
- a redemption is a debit entry keyed by the command id plus a ``redemptions`` row, and the
  gift card is claimed by a conditional UPDATE that sets the command id on one free card;
- a threshold notification is a unique (tenant, member, threshold) row, so it is sent once;
- a redelivered event finds its row and gets the same replies again (same request ids).

Balance = the sum of the member's entries. ``ledger_accounts`` keeps the same number in one row,
updated in the same transaction, because a redemption needs a row to lock and debit
conditionally; the property tests check that both agree.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.core import topics
from services.core.db.schemes import (
    Gift,
    GiftCard,
    LedgerAccount,
    LedgerEntry,
    LoyaltyProgram,
    Redemption,
    ThresholdNotification,
    begin_write,
    insert_ignore,
)
from services.core.ids import stable_uuid
from services.core.messages import message_id_for
from services.core.processor import Out
from services.core.rows import insert_values, new_row
from services.core.schemas import new_event, now_iso
from services.core.secrets import SecretBox

_NS = uuid.UUID("9d3a7c1e-5b2f-4e8a-b6d4-2c1f0e9a8b7d")

TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "balance": "Your points balance is {balance}. Text GIFT for the gift list.",
        "gift_header": "Gifts (text GIFT <number> to redeem; you have {balance} points):",
        "gift_line": "{number}. {name} - {cost} points{stock}",
        "sold_out": " (sold out)",
        "no_gifts": "There are no gifts to choose from right now. Your balance is {balance} points.",
        "redeemed": ("You redeemed {gift} for {cost} points; {balance} points left. Card number {card}, "
                     "password {password}. {instructions}"),
        "insufficient": ("Gift {number} ({gift}) needs {cost} points; you have {balance}. "
                         "Nothing was deducted."),
        "unknown_gift": "There is no gift {number}. Text GIFT for the gift list. Nothing was deducted.",
        "out_of_stock": "Sorry, {gift} is out of stock. Nothing was deducted. Text GIFT for the gift list.",
        "award": "You earned {points} points ({reason}). Your balance is {balance}.",
        "threshold": "You have {balance} points: you can pick a gift! {menu}",
    },
    "zh": {
        "balance": "您的积分余额为{balance}。回复GIFT查看礼品列表。",
        "gift_header": "礼品列表（回复GIFT加编号兑换，您现有{balance}积分）：",
        "gift_line": "{number}. {name} - {cost}积分{stock}",
        "sold_out": "（已兑完）",
        "no_gifts": "目前没有可兑换的礼品。您的积分余额为{balance}。",
        "redeemed": ("您已用{cost}积分兑换{gift}，剩余{balance}积分。"
                     "卡号{card}，密码{password}。{instructions}"),
        "insufficient": "礼品{number}（{gift}）需要{cost}积分，您现有{balance}积分，未扣除积分。",
        "unknown_gift": "没有编号为{number}的礼品，回复GIFT查看礼品列表。未扣除积分。",
        "out_of_stock": "抱歉，{gift}已兑完，未扣除积分。回复GIFT查看礼品列表。",
        "award": "您获得{points}积分（{reason}），当前积分余额{balance}。",
        "threshold": "您的积分已达{balance}，可以兑换礼品了！{menu}",
    },
}


def derived_id(*parts: str) -> str:
    return stable_uuid(_NS, "\x1f".join(parts))


def language_for(setting: str, member: str) -> str:
    if setting in ("zh", "en"):
        return setting
    return "zh" if member.startswith("+86") else "en"


def render(kind: str, lang: str, overrides: dict | None, **values: Any) -> str:
    custom = ((overrides or {}).get(lang) or {}).get(kind)
    if custom:
        try:
            return custom.format(**values)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError):
            pass  # the default below; the values are not logged (they can hold a password)
    return TEMPLATES[lang][kind.split("_")[0] if kind.startswith("threshold_") else kind].format(**values)


@dataclass(frozen=True)
class Program:
    thresholds: tuple[int, ...]
    confirm_awards: bool
    language: str
    templates: dict


@dataclass(frozen=True)
class ClaimedCard:
    card_id: int
    card_number: str
    password_enc: bytes
    instructions: str

    def __repr__(self) -> str:
        return f"ClaimedCard(card_id={self.card_id})"


def by_member(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events in (tenant, member) order, each member's in the order they came (a stable sort).
    Only one member's order matters; taking account locks in one global order means an award
    batch and a command batch running at once (PostgreSQL) cannot deadlock on two accounts."""
    return sorted(events, key=lambda e: (e["tenant_id"], e["member"]))


def balance(s: Session, tenant_id: str, member: str) -> int:
    """The sum of the member's ledger entries."""
    return int(s.scalar(select(func.coalesce(func.sum(LedgerEntry.points), 0))
                        .where(LedgerEntry.tenant_id == tenant_id, LedgerEntry.member == member)) or 0)


class Ledger:
    def __init__(self, secret_key: str, cache_ttl: float = 30.0,
                 on_redelivery: Callable[[str], None] | None = None) -> None:
        """``on_redelivery(kind)`` is told of each award or redemption seen before (metrics)."""
        self.box = SecretBox(secret_key)
        self.on_redelivery = on_redelivery
        self.cache_ttl = cache_ttl
        self._programs: dict[str, tuple[float, Program]] = {}
        self._lock = threading.Lock()

    # -- configuration -----------------------------------------------------------------------------
    def program(self, s: Session, tenant_id: str) -> Program:
        hit = self._programs.get(tenant_id)
        if hit is not None and time.monotonic() - hit[0] < self.cache_ttl:
            return hit[1]
        row = s.get(LoyaltyProgram, tenant_id)
        thresholds = [int(t) for t in (row.thresholds if row is not None else []) or []]
        if not thresholds:  # no explicit thresholds: the price of each gift is one
            thresholds = list(s.scalars(select(Gift.cost).where(Gift.tenant_id == tenant_id,
                                                                Gift.active.is_(True)).distinct()))
        program = Program(tuple(sorted(set(t for t in thresholds if t > 0))),
                          bool(row.confirm_awards) if row is not None else False,
                          row.language if row is not None else "auto",
                          (row.templates or {}) if row is not None else {})
        with self._lock:
            self._programs[tenant_id] = (time.monotonic(), program)
        return program

    # -- points.awarded ----------------------------------------------------------------------------
    def handle_awards(self, s: Session, events: list[dict[str, Any]]) -> list[Out]:
        begin_write(s)
        tenants, sources = {e["tenant_id"] for e in events}, {e["source_event_id"] for e in events}
        known = {(x.tenant_id, x.source_event_id): x for x in s.scalars(
            select(LedgerEntry).where(LedgerEntry.tenant_id.in_(tenants),
                                      LedgerEntry.source_event_id.in_(sources)))}
        ordered = by_member(events)
        # What the batch's redeliveries told before, in one statement for the batch.
        told_before: dict[str, list[int]] = {}
        if known:
            notes = ThresholdNotification.__table__.c
            for entry_id, threshold in s.execute(
                    select(notes.entry_id, notes.threshold)
                    .where(notes.entry_id.in_([x.entry_id for x in known.values()]))
                    .order_by(notes.threshold)):
                told_before.setdefault(entry_id, []).append(threshold)
        fresh: dict[tuple[str, str], dict[str, Any]] = {}  # first sight of each cause in the batch
        for ev in ordered:
            key = (ev["tenant_id"], ev["source_event_id"])
            if key not in known and key not in fresh:
                fresh[key] = ev
        crossed = self._credit_many(s, list(fresh.values()), known)
        outs: list[Out] = []
        for ev in ordered:
            key = (ev["tenant_id"], ev["source_event_id"])
            if fresh.get(key) is ev:
                outs.extend(self._award_replies(s, known[key], crossed.get(key, [])))
            else:  # seen before, in an earlier batch or earlier in this one
                if self.on_redelivery is not None:
                    self.on_redelivery("award")
                entry = known[key]
                outs.extend(self._award_replies(s, entry, crossed.get(key, []) if key in fresh
                                                else told_before.get(entry.entry_id, [])))
        return outs

    def _credit_many(self, s: Session, events: list[dict[str, Any]],
                     known: dict[tuple[str, str], LedgerEntry]) -> dict[tuple[str, str], list[int]]:
        """Credit new awards (in member order) in three statements whatever their number: one
        upsert of the accounts' running balances (an executemany with RETURNING, which
        SQLAlchemy sends as multi-row statements from one cached compiled form: a multi-row
        ``values()`` was compiled afresh for every batch, a third of the ledger's CPU), one
        insert of the entries, and the threshold notifications they cross (rare). Adds the
        entries to ``known`` (plain rows, not ORM objects); returns the thresholds each crossed."""
        if not events:
            return {}
        totals: dict[tuple[str, str], int] = {}
        for ev in events:
            acct = (ev["tenant_id"], ev["member"])
            totals[acct] = totals.get(acct, 0) + int(ev["points"])
        now = datetime.now(UTC)
        values = [{"tenant_id": t, "member": m, "balance": pts, "updated_at": now}
                  for (t, m), pts in totals.items()]
        stmt = _ADD_TO_BALANCE[s.get_bind().dialect.name == "postgresql"]
        # Each account's balance before this batch; the entries then add up from there in order.
        running = {(t, m): int(b) - totals[(t, m)] for t, m, b in s.execute(stmt, values)}
        entries, crossed = [], {}
        for ev in events:
            tenant, member, points = ev["tenant_id"], ev["member"], int(ev["points"])
            old = running[(tenant, member)]
            new = running[(tenant, member)] = old + points
            entry = new_row(LedgerEntry, entry_id=ev["entry_id"], tenant_id=tenant, member=member,
                            points=points, kind="award", reason=ev["reason"], product=ev.get("product"),
                            source_event_id=ev["source_event_id"], reply_from=ev.get("reply_from"),
                            balance_after=new, created_at=now)
            known[(tenant, ev["source_event_id"])] = entry
            entries.append(entry)
            passed = [t for t in self.program(s, tenant).thresholds if old < t <= new]
            if passed:
                crossed[(tenant, ev["source_event_id"])] = passed
        # A Core insert: the entries stay outside the session (their ids are not needed).
        s.execute(insert(LedgerEntry.__table__), insert_values(LedgerEntry, entries))
        told: dict[tuple[str, str], list[int]] = {}
        for key, passed in crossed.items():
            entry = known[key]
            for threshold in passed:
                done = s.execute(insert_ignore(s, ThresholdNotification).values(
                    tenant_id=entry.tenant_id, member=entry.member, threshold=threshold,
                    entry_id=entry.entry_id, created_at=now).returning(ThresholdNotification.__table__.c.id))
                if done.first() is not None:  # not told before
                    told.setdefault(key, []).append(threshold)
        return told

    def _award_replies(self, s: Session, entry: LedgerEntry, crossed: list[int] | None = None) -> list[Out]:
        """The confirmation (if the programme sends them) and the threshold notifications the
        entry caused: ``crossed`` when just made, else looked up (a redelivery)."""
        program = self.program(s, entry.tenant_id)
        lang = language_for(program.language, entry.member)
        outs: list[Out] = []
        if program.confirm_awards and entry.reply_from:
            text = render("award", lang, program.templates, points=entry.points, reason=entry.reason,
                          balance=entry.balance_after)
            outs.append(self._sms(entry.tenant_id, entry.member, entry.reply_from, f"award-{entry.entry_id}",
                                  text, "points_awarded"))
        if crossed is None:
            crossed = list(s.scalars(select(ThresholdNotification.threshold)
                                     .where(ThresholdNotification.entry_id == entry.entry_id)
                                     .order_by(ThresholdNotification.threshold)))
        for threshold in crossed:
            menu = self._menu(s, entry.tenant_id, lang, program, entry.balance_after, header=False)
            # A threshold's own message (set on the console's points page), else the common one.
            kind = f"threshold_{threshold}"
            own = ((program.templates or {}).get(lang) or {}).get(kind)
            text = render(kind if own else "threshold", lang, program.templates, balance=entry.balance_after,
                          menu=menu, threshold=threshold)
            outs.append(self._sms(entry.tenant_id, entry.member, entry.reply_from,
                                  f"threshold-{entry.entry_id}-{threshold}", text, "points_threshold"))
        return outs

    # -- points.commands ---------------------------------------------------------------------------
    def handle_commands(self, s: Session, events: list[dict[str, Any]]) -> list[Out]:
        begin_write(s)
        outs: list[Out] = []
        for ev in by_member(events):
            outs.extend(self.command(s, ev))
        return outs

    def command(self, s: Session, ev: dict[str, Any]) -> list[Out]:
        tenant, member, cid = ev["tenant_id"], ev["member"], ev["command_id"]
        program = self.program(s, tenant)
        lang = language_for(program.language, member)
        request_id = f"ledger-{cid}"
        if ev["command"] == "balance":
            text = render("balance", lang, program.templates, balance=balance(s, tenant, member))
            return [self._sms(tenant, member, ev["reply_from"], request_id, text, "points_balance")]
        if ev["command"] == "list_gifts":
            text = self._menu(s, tenant, lang, program, balance(s, tenant, member), header=True)
            return [self._sms(tenant, member, ev["reply_from"], request_id, text, "gift_list")]
        return [self.redeem(s, ev)]

    def redeem(self, s: Session, ev: dict[str, Any]) -> Out:
        tenant, member, cid, number = ev["tenant_id"], ev["member"], ev["command_id"], int(ev["gift"])
        done = s.scalar(select(Redemption).where(Redemption.command_id == cid))
        if done is not None:
            if self.on_redelivery is not None:
                self.on_redelivery("redemption")
            return self._redemption_reply(s, done)
        r = Redemption(tenant_id=tenant, command_id=cid, member=member, gift_number=number,
                       reply_from=ev["reply_from"], created_at=datetime.now(UTC))
        gift = s.scalar(select(Gift).where(Gift.tenant_id == tenant, Gift.number == number,
                                           Gift.active.is_(True)))
        accounts = LedgerAccount.__table__
        # The account row is locked for the rest of the transaction: two redemptions of one
        # member (say a redelivery racing a zombie worker) cannot both spend the same points.
        current = s.execute(select(accounts.c.balance).where(accounts.c.tenant_id == tenant,
                                                             accounts.c.member == member)
                            .with_for_update()).scalar()
        current = int(current or 0)
        if gift is None:
            r.outcome, r.cost, r.balance = "unknown_gift", 0, current
        else:
            r.gift_id, r.cost = gift.id, gift.cost
            if current < gift.cost:
                r.outcome, r.balance = "insufficient", current
            else:
                card = self._claim_card(s, gift.id, cid)
                if card is None:
                    r.outcome, r.balance = "out_of_stock", current
                else:
                    new = s.execute(update(accounts)
                                    .where(accounts.c.tenant_id == tenant, accounts.c.member == member,
                                           accounts.c.balance >= gift.cost)
                                    .values(balance=accounts.c.balance - gift.cost,
                                            updated_at=datetime.now(UTC))
                                    .returning(accounts.c.balance)).scalar()
                    if new is None:  # cannot happen under the row lock; never debit below zero
                        raise RuntimeError("balance changed under the account lock")
                    s.add(LedgerEntry(entry_id=derived_id("redeem", cid), tenant_id=tenant, member=member,
                                      points=-gift.cost, kind="redemption", reason=f"gift {number}",
                                      product=None, source_event_id=f"redeem:{cid}",
                                      reply_from=ev["reply_from"],
                                      balance_after=int(new)))
                    r.outcome, r.balance, r.card_id = "redeemed", int(new), card.card_id
        s.add(r)
        s.flush()
        return self._redemption_reply(s, r)

    def _claim_card(self, s: Session, gift_id: int, command_id: str) -> ClaimedCard | None:
        cards = GiftCard.__table__
        free = (select(cards.c.id).where(cards.c.gift_id == gift_id, cards.c.command_id.is_(None))
                .order_by(cards.c.id).limit(1).with_for_update(skip_locked=True).scalar_subquery())
        row = s.execute(update(cards).where(cards.c.id == free, cards.c.command_id.is_(None))
                        .values(command_id=command_id, claimed_at=datetime.now(UTC))
                        .returning(cards.c.id, cards.c.card_number, cards.c.password_enc,
                                   cards.c.instructions)).first()
        if row is None:
            return None
        return ClaimedCard(row.id, row.card_number, bytes(row.password_enc), row.instructions)

    def _redemption_reply(self, s: Session, r: Redemption) -> Out:
        program = self.program(s, r.tenant_id)
        lang = language_for(program.language, r.member)
        gift = s.get(Gift, r.gift_id) if r.gift_id is not None else None
        name = _gift_name(gift, lang) if gift is not None else str(r.gift_number)
        values: dict[str, Any] = {"number": r.gift_number, "gift": name, "cost": r.cost, "balance": r.balance}
        if r.outcome == "redeemed":
            card = s.get(GiftCard, r.card_id)
            values.update(card=card.card_number, password=self.box.open(card.password_enc),
                          instructions=card.instructions)
        text = render(r.outcome, lang, program.templates, **values)
        return self._sms(r.tenant_id, r.member, r.reply_from, f"ledger-{r.command_id}", text,
                         f"gift_{r.outcome}")

    # -- helpers -----------------------------------------------------------------------------------
    def _menu(self, s: Session, tenant: str, lang: str, program: Program, bal: int, header: bool) -> str:
        gifts = s.scalars(select(Gift).where(Gift.tenant_id == tenant, Gift.active.is_(True))
                          .order_by(Gift.number)).all()
        if not gifts:
            return render("no_gifts", lang, program.templates, balance=bal)
        free = dict(s.execute(select(GiftCard.gift_id, func.count())
                              .where(GiftCard.gift_id.in_([g.id for g in gifts]),
                                     GiftCard.command_id.is_(None))
                              .group_by(GiftCard.gift_id)).all())
        lines = [render("gift_header", lang, program.templates, balance=bal)] if header else []
        for g in gifts:
            stock = "" if free.get(g.id) else render("sold_out", lang, program.templates)
            lines.append(render("gift_line", lang, program.templates, number=g.number,
                                name=_gift_name(g, lang), cost=g.cost, stock=stock))
        return "\n".join(lines)[:1400]

    def _sms(self, tenant: str, member: str, sender: str | None, request_id: str, text: str,
             kind: str) -> Out:
        fields: dict[str, Any] = {"from": sender} if sender else {}
        value = new_event(topics.SMS_OUTBOUND, tenant,
                          event_id=derived_id("sms.outbound", tenant, request_id),
                          message_id=message_id_for(tenant, request_id),
                          request_id=request_id, to=member, text=text[:1600], category="transactional",
                          source="ledger", accepted_at=now_iso(), attributes={"kind": kind}, **fields)
        return Out(topics.SMS_OUTBOUND, member, value)


def _gift_name(gift: Gift, lang: str) -> str:
    return gift.name_zh if lang == "zh" and gift.name_zh else gift.name


# -- administration --------------------------------------------------------------------------------

def create_gift(s: Session, tenant_id: str, number: int, name: str, cost: int,
                name_zh: str | None = None) -> Gift:
    if cost < 1 or not 1 <= number <= 999:
        raise ValueError("a gift costs at least 1 point and has a number from 1 to 999")
    gift = Gift(tenant_id=tenant_id, number=number, name=name, name_zh=name_zh, cost=cost, active=True)
    s.add(gift)
    s.flush()
    return gift


def add_gift_cards(s: Session, box: SecretBox, tenant_id: str, gift_number: int,
                   cards: list[tuple[str, str, str]]) -> int:
    """Upload virtual gift cards (number, password, instructions); passwords are sealed."""
    gift = s.scalar(select(Gift).where(Gift.tenant_id == tenant_id, Gift.number == gift_number))
    if gift is None:
        raise LookupError(f"tenant {tenant_id} has no gift {gift_number}")
    rows = [{"tenant_id": tenant_id, "gift_id": gift.id, "card_number": n, "password_enc": box.seal(p),
             "instructions": i} for n, p, i in cards]
    if rows:
        s.execute(GiftCard.__table__.insert(), rows)
    return len(rows)


def set_program(s: Session, tenant_id: str, thresholds: list[int] | None = None, confirm_awards: bool = False,
                language: str = "auto", name: str = "") -> LoyaltyProgram:
    row = s.get(LoyaltyProgram, tenant_id)
    if row is None:
        row = LoyaltyProgram(tenant_id=tenant_id, templates={})
        s.add(row)
    row.thresholds, row.confirm_awards = list(thresholds or []), confirm_awards
    row.language, row.name = language, name
    s.flush()
    return row


def _add_to_balance(dialect):
    """INSERT the account with the batch's points, or add them to its balance; its new balance
    comes back. Duplicate accounts in one call are summed by the caller (PostgreSQL refuses to
    update a row twice in one statement)."""
    accounts = LedgerAccount.__table__
    stmt = dialect.insert(accounts)
    return stmt.on_conflict_do_update(
        index_elements=[accounts.c.tenant_id, accounts.c.member],
        set_={"balance": accounts.c.balance + stmt.excluded.balance, "updated_at": stmt.excluded.updated_at},
    ).returning(accounts.c.tenant_id, accounts.c.member, accounts.c.balance)


# Built once per dialect (False: SQLite, True: PostgreSQL) so SQLAlchemy compiles each once.
_ADD_TO_BALANCE = {False: _add_to_balance(sqlite), True: _add_to_balance(postgresql)}
