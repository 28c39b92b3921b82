"""Models of the integrated schemes (design.md, Level 3 A-E): anti-counterfeit codes, lotteries,
loyalty points and gifts, members and clubs.

Rules these tables keep:
- Codes are stored only as keyed hashes (HMAC-SHA256 under a key derived from
  ``settings.secret_key``), so a database leak does not leak valid codes.
- Card and gift passwords are stored only encrypted (Fernet, key derived by HKDF from
  ``settings.secret_key``); see ``services.core.secrets.SecretBox``.
- Every effect carries the id of the event that caused it under a unique constraint, so a
  redelivered event changes nothing: one query row per submission, one draw per submission,
  one card per draw, one ledger entry per source event, one notification per threshold.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    any_,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from .models import Base, utcnow

# 64-bit ids where a table grows by millions (codes, queries); SQLite's rowid is already 64-bit
# and only autoincrements as INTEGER.
BigId = BigInteger().with_variant(Integer, "sqlite")

DEFAULT_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I look-alikes; 32 symbols


def begin_write(s: Session) -> None:
    """Start the session's transaction as the writer. On SQLite a transaction that reads first
    and writes later fails with SQLITE_BUSY_SNAPSHOT when another process wrote in between (the
    busy timeout does not cover that case), so processors take the write lock up front: one
    writer at a time, which is also what makes conditional claims atomic there. PostgreSQL needs
    nothing here; its claims use row locks."""
    conn = s.connection()
    if conn.dialect.name == "sqlite" and not conn.connection.dbapi_connection.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def insert_ignore(s: Session, table):
    """INSERT ... ON CONFLICT DO NOTHING for the session's dialect (PostgreSQL or SQLite)."""
    table = getattr(table, "__table__", table)
    dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def among(s: Session, column: Any, values: Iterable[Any]) -> Any:
    """``column IN (values)`` with the values bound as one parameter, for long lists on the hot
    paths: SQLite reads a JSON array (``json_each``), PostgreSQL an array (``= ANY``). The
    statement keeps one shape whatever the list's length, so it is compiled once and binds one
    value, where an expanding IN rendered and bound one placeholder per value on every run
    (docs/performance.md, part 8)."""
    values = list(values)
    if s.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type), unique=True))
    listed = func.json_each(bindparam(None, orjson.dumps(values).decode(), type_=String, unique=True))
    return column.in_(select(listed.table_valued("value").c.value))


# -- brands, products, codes -----------------------------------------------------------------------

class Brand(Base):
    """A brand of a tenant: its code format, reply language and templates, lockout policy."""

    __tablename__ = "brands"
    __table_args__ = (UniqueConstraint("tenant_id", "slug", name="uq_brand_slug"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    name_zh: Mapped[str | None] = mapped_column(String(200), nullable=True)
    code_alphabet: Mapped[str] = mapped_column(String(64), default=DEFAULT_ALPHABET)
    code_length: Mapped[int] = mapped_column(Integer, default=11)  # random symbols, check symbol extra
    language: Mapped[str] = mapped_column(String(8), default="auto")  # auto (+86 -> zh) | zh | en
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    templates: Mapped[dict] = mapped_column(JSON, default=dict)  # {"zh": {kind: text}, "en": {...}}
    lockout_max_invalid: Mapped[int] = mapped_column(Integer, default=5)
    lockout_window_s: Mapped[int] = mapped_column(Integer, default=3600)
    lockout_duration_s: Mapped[int] = mapped_column(Integer, default=3600)
    probe_threshold: Mapped[int] = mapped_column(Integer, default=3)  # distinct numbers on one code
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("tenant_id", "slug", name="uq_product_slug"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    name_zh: Mapped[str | None] = mapped_column(String(200), nullable=True)
    points: Mapped[int] = mapped_column(Integer, default=0)  # earned by a first valid query
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CodeBatch(Base):
    """One print run: N codes of one product, generated here or imported."""

    __tablename__ = "code_batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(16), default="generated")  # generated | imported
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Code(Base):
    """One issued code, by its keyed hash only; the columns after ``batch_id`` record its queries."""

    __tablename__ = "codes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("code_batches.id", ondelete="CASCADE"))
    query_count: Mapped[int] = mapped_column(Integer, default=0)
    first_submission_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    first_msisdn: Mapped[str | None] = mapped_column(String(16), nullable=True)
    first_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CodeQuery(Base):
    """Every submission, whatever came of it (genuine, repeat, counterfeit, mistyped, locked,
    ignored): nothing a buyer sends vanishes, and a redelivery finds its outcome here."""

    __tablename__ = "code_queries"
    __table_args__ = (
        Index("ix_code_queries_hash", "tenant_id", "code_hash"),
        Index("ix_code_queries_msisdn", "tenant_id", "msisdn"),
        Index("ix_code_queries_product", "product_id", "outcome"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    submission_id: Mapped[str] = mapped_column(String(36), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    brand_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    product_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    code_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    code_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    msisdn: Mapped[str] = mapped_column(String(16))
    reply_from: Mapped[str] = mapped_column(String(16))
    inbound_message_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    query_number: Mapped[int | None] = mapped_column(Integer, nullable=True)  # n-th query of the code
    first_msisdn: Mapped[str | None] = mapped_column(String(16), nullable=True)
    first_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    points: Mapped[int] = mapped_column(Integer, default=0)
    language: Mapped[str] = mapped_column(String(8), default="en")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Member(Base):
    """A buyer who verified a genuine product of the brand (design.md B, E)."""

    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("tenant_id", "brand_id", "msisdn", name="uq_member"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id", ondelete="CASCADE"))
    msisdn: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8), default="en")
    first_submission_id: Mapped[str] = mapped_column(String(36))
    first_product_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Lockout(Base):
    """Invalid submissions of one number for one brand within the current window, and the
    time its checks are paused until once it sent too many."""

    __tablename__ = "lockouts"
    __table_args__ = (UniqueConstraint("tenant_id", "brand_id", "msisdn", name="uq_lockout"),
                      Index("ix_lockouts_msisdn", "tenant_id", "msisdn"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id", ondelete="CASCADE"))
    msisdn: Mapped[str] = mapped_column(String(16))
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    invalid_count: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    locked_by_submission_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    lock_count: Mapped[int] = mapped_column(Integer, default=0)


class ProbeFlag(Base):
    """A code (issued or not) that many different numbers have tried: a sign of guessing or of
    a copied code on counterfeit packs."""

    __tablename__ = "probe_flags"
    __table_args__ = (UniqueConstraint("tenant_id", "code_hash", name="uq_probe_flag"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    brand_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    code_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    distinct_numbers: Mapped[int] = mapped_column(Integer)
    first_flagged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_submission_id: Mapped[str] = mapped_column(String(36))


# -- lottery ---------------------------------------------------------------------------------------

class Lottery(Base):
    __tablename__ = "lotteries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id", ondelete="CASCADE"))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"),
                                                   nullable=True)  # None: every product of the brand
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    budget_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # None: no budget
    spent_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PrizeTier(Base):
    __tablename__ = "prize_tiers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lottery_id: Mapped[int] = mapped_column(ForeignKey("lotteries.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    name_zh: Mapped[str | None] = mapped_column(String(200), nullable=True)
    odds: Mapped[float] = mapped_column(Float)  # probability of this tier per draw, 0..1
    cap: Mapped[int] = mapped_column(Integer)  # at most this many winners, ever
    awarded: Mapped[int] = mapped_column(Integer, default=0)
    daily_cap: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: no daily cap
    day: Mapped[str | None] = mapped_column(String(10), nullable=True)  # brand-local day of awarded_today
    awarded_today: Mapped[int] = mapped_column(Integer, default=0)
    value_cents: Mapped[int] = mapped_column(Integer, default=0)  # counted against the budget


class PrizeCard(Base):
    """A prepaid phone card of a tier's inventory; ``submission_id`` is set once, for one winner."""

    __tablename__ = "prize_cards"
    __table_args__ = (UniqueConstraint("tier_id", "card_number", name="uq_prize_card"),
                      Index("ix_prize_cards_free", "tier_id", "submission_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    tier_id: Mapped[int] = mapped_column(ForeignKey("prize_tiers.id", ondelete="CASCADE"))
    card_number: Mapped[str] = mapped_column(String(64))
    password_enc: Mapped[bytes] = mapped_column(LargeBinary)
    instructions: Mapped[str] = mapped_column(Text, default="")
    submission_id: Mapped[str | None] = mapped_column(String(36), nullable=True, unique=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Draw(Base):
    """One draw per first valid query, with what it was drawn from, so it can be re-checked."""

    __tablename__ = "draws"
    __table_args__ = (Index("ix_draws_lottery_outcome", "lottery_id", "outcome", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    lottery_id: Mapped[int] = mapped_column(ForeignKey("lotteries.id", ondelete="CASCADE"), index=True)
    submission_id: Mapped[str] = mapped_column(String(36), unique=True)
    msisdn: Mapped[str] = mapped_column(String(16))
    random_hex: Mapped[str] = mapped_column(String(64))  # HMAC(draw key, lottery:submission)
    random_value: Mapped[float] = mapped_column(Float)  # in [0, 1)
    inputs: Mapped[dict] = mapped_column(JSON)  # the tiers and odds it was drawn against
    tier_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # tier the value fell in
    # won | lost | cap_reached | day_cap_reached | over_budget | no_stock
    outcome: Mapped[str] = mapped_column(String(16))
    card_id: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    drawn_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# -- points and gifts ------------------------------------------------------------------------------

class LoyaltyProgram(Base):
    """A tenant's points programme: thresholds that trigger a gift-menu notification."""

    __tablename__ = "loyalty_programs"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    thresholds: Mapped[list] = mapped_column(JSON, default=list)  # empty: the gift costs
    confirm_awards: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str] = mapped_column(String(8), default="auto")
    templates: Mapped[dict] = mapped_column(JSON, default=dict)


class LedgerAccount(Base):
    """The running balance of a member, kept equal to the sum of the member's entries in the same
    transaction; it is the row a redemption locks and debits conditionally."""

    __tablename__ = "ledger_accounts"
    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    member: Mapped[str] = mapped_column(String(16), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LedgerEntry(Base):
    """Append-only: a credit (award) or a debit (redemption), keyed by the event that caused it."""

    __tablename__ = "ledger_entries"
    __table_args__ = (UniqueConstraint("tenant_id", "source_event_id", name="uq_ledger_source"),
                      Index("ix_ledger_member", "tenant_id", "member"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(String(36), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    member: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(Integer)  # > 0 credit, < 0 debit
    kind: Mapped[str] = mapped_column(String(16))  # award | redemption
    reason: Mapped[str] = mapped_column(String(128))
    product: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source_event_id: Mapped[str] = mapped_column(String(128))
    reply_from: Mapped[str | None] = mapped_column(String(16), nullable=True)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ThresholdNotification(Base):
    """A member was told once that the balance reached ``threshold``."""

    __tablename__ = "threshold_notifications"
    __table_args__ = (UniqueConstraint("tenant_id", "member", "threshold", name="uq_threshold_once"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    member: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[int] = mapped_column(Integer)
    entry_id: Mapped[str] = mapped_column(String(36), index=True)  # the award that crossed it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Gift(Base):
    __tablename__ = "gifts"
    __table_args__ = (UniqueConstraint("tenant_id", "number", name="uq_gift_number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # what a member texts: GIFT <number>
    name: Mapped[str] = mapped_column(String(200))
    name_zh: Mapped[str | None] = mapped_column(String(200), nullable=True)
    cost: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class GiftCard(Base):
    """A virtual gift card of the inventory; ``command_id`` is set once, for one redemption."""

    __tablename__ = "gift_cards"
    __table_args__ = (UniqueConstraint("gift_id", "card_number", name="uq_gift_card"),
                      Index("ix_gift_cards_free", "gift_id", "command_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    gift_id: Mapped[int] = mapped_column(ForeignKey("gifts.id", ondelete="CASCADE"))
    card_number: Mapped[str] = mapped_column(String(64))
    password_enc: Mapped[bytes] = mapped_column(LargeBinary)
    instructions: Mapped[str] = mapped_column(Text, default="")
    command_id: Mapped[str | None] = mapped_column(String(36), nullable=True, unique=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Redemption(Base):
    """Every GIFT n command and what came of it; a redelivered command finds its answer here."""

    __tablename__ = "redemptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    command_id: Mapped[str] = mapped_column(String(36), unique=True)
    member: Mapped[str] = mapped_column(String(16))
    gift_number: Mapped[int] = mapped_column(Integer)
    gift_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cost: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str] = mapped_column(String(16))  # redeemed | insufficient | unknown_gift | out_of_stock
    balance: Mapped[int] = mapped_column(BigInteger)  # after the command
    card_id: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    reply_from: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# -- follow-ups (E) --------------------------------------------------------------------------------

class ClubMembership(Base):
    """Whether a number is in a brand's club (or research panel); the last change wins."""

    __tablename__ = "club_memberships"
    __table_args__ = (UniqueConstraint("tenant_id", "brand_id", "club", "msisdn", name="uq_club_member"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id", ondelete="CASCADE"))
    club: Mapped[str] = mapped_column(String(64))
    msisdn: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(8))  # joined | left
    source: Mapped[str] = mapped_column(String(16), default="keyword")
    source_event_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
