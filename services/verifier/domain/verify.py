"""Verification of submitted codes (design.md Level 3 B and C).

``Verifier.handle`` takes a batch of ``codes.submitted`` events and one open transaction, makes
every effect of the batch in it, and returns the events to produce. The caller commits before
producing, so a worker killed anywhere leaves either nothing (rolled back) or everything plus a
row per submission in ``code_queries``; a redelivered submission finds that row and gets the
same replies again (same request ids, so egress sends each once) and changes nothing.

Database round trips for a batch of B submissions of valid codes, first or repeat: a fixed
handful whatever B (write lock, look-up of known submissions and lockouts, one SELECT of the
batch's code rows locked for update, one executemany of their new counts, the inserts of query,
member and draw rows, commit). The code rows' counts and first queries are worked out in Python
under the lock, in event order, so a code submitted twice in one batch is first once and a
repeat once. A lottery win adds the tier and card claims. Repeats and unknown codes add the
probe count; invalid codes add the lockout row.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from services.core import topics
from services.core.db.schemes import (
    Code,
    CodeQuery,
    Draw,
    Lockout,
    Member,
    ProbeFlag,
    begin_write,
    insert_ignore,
)
from services.core.ids import stable_uuid
from services.core.messages import message_id_for, parse_ts
from services.core.processor import Out, Rejected
from services.core.rows import insert_values, new_row
from services.core.schemas import new_event, now_iso
from services.core.secrets import SecretBox
from services.core.utc import aware

from .catalogue import BrandInfo, Catalogue
from .codes import CodeHasher, normalise
from .lottery import DrawKey, WonCard, card_of, claim_prize, draw
from .replies import language_for, local_time, mask, render

log = logging.getLogger(__name__)

_NS = uuid.UUID("0b6f4f55-31c9-4c8e-9a55-3f1f2b7f6c11")
PROBE_SCAN = 1000  # queries of one code looked at when counting the numbers that tried it


def derived_id(*parts: str) -> str:
    """A stable uuid for an effect of an event: the same inputs always give the same id."""
    return stable_uuid(_NS, "\x1f".join(parts))


def points_entry_id(submission_id: str) -> str:
    return derived_id("points", submission_id)


def attribute(brands: tuple[BrandInfo, ...], code: str) -> tuple[BrandInfo, BrandInfo | None]:
    """For a code that is no product's (yet): (the brand it counts against for lockouts, the
    brand a reply may name, or None when it cannot be told whose code it is).

    The candidates are the brands whose format the code fits (check symbol included), else
    whose shape it has (length and symbols: a mistyped code), else whose length. One candidate,
    or a tenant with one brand, names that brand; several or none name no brand."""
    candidates = ([x for x in brands if x.format.fits(code)]
                  or [x for x in brands if x.format.has_shape(code)]
                  or [x for x in brands if x.format.size == len(code)])
    counted = candidates[0] if candidates else brands[0]
    named = counted if len(brands) == 1 or len(candidates) == 1 else None
    return counted, named


@dataclass
class _Batch:
    """What one batch has done so far, before its rows are flushed in one go."""

    queries: dict[str, CodeQuery] = field(default_factory=dict)
    draws: dict[str, Draw] = field(default_factory=dict)
    cards: dict[str, WonCard | None] = field(default_factory=dict)
    members: dict[tuple, dict] = field(default_factory=dict)
    locks: dict[tuple, datetime] = field(default_factory=dict)
    lockout_rows: dict[tuple, Lockout] = field(default_factory=dict)
    flags: dict[tuple, ProbeFlag] = field(default_factory=dict)
    numbers_by_hash: dict[tuple, set] = field(default_factory=lambda: defaultdict(set))
    hashes: dict[str, bytes] = field(default_factory=dict)  # submission id -> its code's hash
    codes: dict[bytes, dict] = field(default_factory=dict)  # code hash -> the code row, as counted
    counted: dict[int, dict] = field(default_factory=dict)  # code rows whose counts changed


class Verifier:
    def __init__(self, secret_key: str, catalogue: Catalogue | None = None,
                 on_outcome: Callable[[str, str], None] | None = None) -> None:
        """``on_outcome(tenant, outcome)`` is told the outcome of each new submission, and
        ``redelivered`` for each one seen before (metrics)."""
        self.hasher = CodeHasher(secret_key)
        self.draw_key = DrawKey(secret_key)
        self.box = SecretBox(secret_key)
        self.catalogue = catalogue or Catalogue()
        self.on_outcome = on_outcome

    # -- the batch -------------------------------------------------------------------------------
    def handle(self, s: Session, events: list[dict[str, Any]]) -> list[Out]:
        begin_write(s)
        sids = [e["submission_id"] for e in events]
        known = {q.submission_id: q
                 for q in s.scalars(select(CodeQuery).where(CodeQuery.submission_id.in_(sids)))}
        b = _Batch()
        msisdns, tenants = {e["from"] for e in events}, {e["tenant_id"] for e in events}
        for tenant_id, brand_id, msisdn, until in s.execute(
                select(Lockout.tenant_id, Lockout.brand_id, Lockout.msisdn, Lockout.locked_until)
                .where(Lockout.tenant_id.in_(tenants), Lockout.msisdn.in_(msisdns),
                       Lockout.locked_until.is_not(None))):
            b.locks[(tenant_id, brand_id, msisdn)] = aware(until)

        self._load_codes(s, events, known, b)

        fresh: list[CodeQuery] = []
        order: list[CodeQuery] = []
        with s.no_autoflush:
            for ev in events:
                sid = ev["submission_id"]
                q = known.get(sid) or b.queries.get(sid)
                if q is None:
                    q = self._new(s, ev, b)
                    b.queries[sid] = q
                    fresh.append(q)
                elif self.on_outcome is not None:
                    self.on_outcome(q.tenant_id, "redelivered")
                order.append(q)
        # One executemany per table for the whole batch. The row objects stay outside the session:
        # the replies below read them, nothing needs their generated ids.
        s.flush()  # lockout and probe rows
        if b.counted:
            s.execute(_SET_COUNT, [{"b_id": r["id"], "b_count": r["query_count"],
                                    "b_sid": r["first_submission_id"], "b_msisdn": r["first_msisdn"],
                                    "b_at": r["first_at"]} for r in b.counted.values()])
        if fresh:
            s.execute(insert(CodeQuery.__table__), insert_values(CodeQuery, fresh))
        if b.draws:
            s.execute(insert(Draw.__table__), insert_values(Draw, b.draws.values()))
        if b.members:
            s.execute(insert_ignore(s, Member), list(b.members.values()))
        if self.on_outcome is not None:
            for q in fresh:
                self.on_outcome(q.tenant_id, q.outcome)

        codes = {ev["submission_id"]: ev["code"] for ev in events}
        outs: list[Out] = []
        for q in order:
            outs.extend(self.replies(s, q, b, codes.get(q.submission_id)))
        return outs

    def _load_codes(self, s: Session, events: list[dict[str, Any]], known: dict, b: _Batch) -> None:
        """The code rows of the batch's new submissions of well-formed codes, in one SELECT
        that locks them (PostgreSQL; SQLite holds the write lock already), in id order so two
        workers lock rows in the same order."""
        for ev in events:
            sid, tenant = ev["submission_id"], ev["tenant_id"]
            if sid in known or sid in b.hashes:
                continue
            brands = self.catalogue.brands(s, tenant)
            code = normalise(ev["code"])
            if any(x.format.fits(code) for x in brands):
                b.hashes[sid] = self.hasher(tenant, code)
        if not b.hashes:
            return
        for row in s.execute(_LOAD_CODES, {"hashes": list(set(b.hashes.values()))}):
            b.codes[row.code_hash] = dict(row._mapping)

    def _count(self, b: _Batch, h: bytes, sid: str, msisdn: str, at: datetime) -> dict | None:
        """Count a query of the code with hash ``h``: its row after the count (None: not one of
        ours). The first query's submission, number and time are set only while still empty."""
        row = b.codes.get(h)
        if row is None:
            return None
        row["query_count"] += 1
        if row["first_submission_id"] is None:
            row["first_submission_id"], row["first_msisdn"], row["first_at"] = sid, msisdn, at
        b.counted[row["id"]] = row
        return row

    # -- one new submission ----------------------------------------------------------------------
    def _new(self, s: Session, ev: dict[str, Any], b: _Batch) -> CodeQuery:
        tenant, sid, msisdn = ev["tenant_id"], ev["submission_id"], ev["from"]
        at = parse_ts(ev["received_at"]).astimezone(UTC)
        brands = self.catalogue.brands(s, tenant)
        if not brands:
            raise Rejected(f"tenant {tenant} has no brand, so its codes cannot be checked", "no_brand")
        code = normalise(ev["code"])
        fits = sid in b.hashes  # _load_codes hashed exactly the codes that fit a brand's format
        brand, named = attribute(brands, code)
        # brand_id is the brand the reply names: the product's for a known code, else the one
        # brand the code can be told to belong to, else none (the reply names the tenant).
        q = new_row(CodeQuery, submission_id=sid, tenant_id=tenant, brand_id=named.id if named else None,
                      msisdn=msisdn,
                      reply_from=ev["to"], inbound_message_id=ev.get("inbound_message_id"), received_at=at,
                      language=language_for(brand.language, msisdn), points=0,
                      processed_at=datetime.now(UTC))
        until = b.locks.get((tenant, brand.id, msisdn))
        if until is not None and at < until:
            q.outcome = "ignored"  # recorded, not checked, not answered: the number is locked out
            return q
        if not fits:
            q.outcome = self._invalid(s, b, brand, msisdn, at, sid, "mistyped")
            return q

        h = b.hashes[sid]
        q.code_hash = h
        row = self._count(b, h, sid, msisdn, at)
        if row is None:
            q.outcome = self._invalid(s, b, brand, msisdn, at, sid, "counterfeit")
            self._probe(s, b, brand, h, None, msisdn, at, sid)
            return q

        product = self.catalogue.product_of_batch(s, row["batch_id"])
        brand = self.catalogue.brand(s, product.brand_id)
        q.brand_id, q.product_id, q.code_id = brand.id, product.id, row["id"]
        q.language = language_for(brand.language, msisdn)
        q.query_number, q.first_msisdn = row["query_count"], row["first_msisdn"]
        q.first_at = aware(row["first_at"])
        if row["first_submission_id"] != sid:
            q.outcome = "repeat"
            self._probe(s, b, brand, h, row["id"], msisdn, at, sid)
            return q

        q.outcome = "genuine"
        q.points = product.points
        b.members.setdefault((tenant, brand.id, msisdn), {
            "tenant_id": tenant, "brand_id": brand.id, "msisdn": msisdn, "language": q.language,
            "first_submission_id": sid, "first_product_id": product.id, "joined_at": at})
        lottery = self.catalogue.lottery_for(s, brand.id, product.id, at)
        if lottery is not None:
            drawn = draw(self.draw_key, lottery, sid)
            outcome, card = ("lost", None)
            if drawn.tier is not None:
                outcome, card = claim_prize(s, lottery, drawn.tier, sid, at)
            b.draws[sid] = new_row(Draw, tenant_id=tenant, lottery_id=lottery.id, submission_id=sid,
                                   msisdn=msisdn, random_hex=drawn.random_hex,
                                   random_value=drawn.random_value, inputs=drawn.inputs,
                                   tier_id=drawn.tier.id if drawn.tier else None, outcome=outcome,
                                   card_id=card.card_id if card else None, drawn_at=at)
            b.cards[sid] = card
        return q

    def _invalid(self, s: Session, b: _Batch, brand: BrandInfo, msisdn: str, at: datetime, sid: str,
                 kind: str) -> str:
        """Count an invalid code against the number; the one that reaches the brand's limit
        within its window locks the number out and gets the "blocked" reply instead."""
        key = (brand.tenant_id, brand.id, msisdn)
        lk = b.lockout_rows.get(key)
        if lk is None:
            lk = s.scalar(select(Lockout).where(Lockout.tenant_id == brand.tenant_id,
                                                Lockout.brand_id == brand.id, Lockout.msisdn == msisdn)
                          .with_for_update())
            if lk is None:
                lk = Lockout(tenant_id=brand.tenant_id, brand_id=brand.id, msisdn=msisdn, invalid_count=0,
                             lock_count=0)
                s.add(lk)
            b.lockout_rows[key] = lk
        start = aware(lk.window_start)
        if start is None or at - start > timedelta(seconds=brand.lockout_window_s):
            lk.window_start, lk.invalid_count = at, 1
        else:
            lk.invalid_count += 1
        if brand.lockout_max_invalid > 0 and lk.invalid_count >= brand.lockout_max_invalid:
            lk.locked_until = at + timedelta(seconds=brand.lockout_duration_s)
            lk.locked_by_submission_id = sid
            lk.lock_count += 1
            lk.invalid_count, lk.window_start = 0, None
            b.locks[key] = lk.locked_until
            return "locked"
        return kind

    def _probe(self, s: Session, b: _Batch, brand: BrandInfo, h: bytes, code_id: int | None, msisdn: str,
               at: datetime, sid: str) -> None:
        """Flag a code once many different numbers have tried it (guessing, or a copied code)."""
        if brand.probe_threshold <= 0:
            return
        key = (brand.tenant_id, h)
        seen = b.numbers_by_hash[key]
        # No DISTINCT in SQL: with it SQLite prefers the (tenant, msisdn) index and scans the tenant.
        numbers = set(s.scalars(select(CodeQuery.msisdn).where(CodeQuery.tenant_id == brand.tenant_id,
                                                              CodeQuery.code_hash == h).limit(PROBE_SCAN)))
        seen.add(msisdn)
        numbers |= seen
        if len(numbers) < brand.probe_threshold:
            return
        flag = b.flags.get(key)
        if flag is None:
            flag = s.scalar(select(ProbeFlag).where(ProbeFlag.tenant_id == brand.tenant_id,
                                                    ProbeFlag.code_hash == h).with_for_update())
            if flag is None:
                flag = ProbeFlag(tenant_id=brand.tenant_id, brand_id=brand.id, code_hash=h, code_id=code_id,
                                 distinct_numbers=0, first_flagged_at=at)
                s.add(flag)
                log.warning("tenant %s brand %s: a code was tried from %d numbers (probe flag)",
                            brand.tenant_id, brand.slug, len(numbers))
            b.flags[key] = flag
        flag.distinct_numbers = max(flag.distinct_numbers or 0, len(numbers))
        flag.last_seen_at, flag.last_submission_id = at, sid

    # -- what a submission is answered with (first delivery and redeliveries alike) --------------
    def replies(self, s: Session, q: CodeQuery, b: _Batch | None = None,
                code: str | None = None) -> list[Out]:
        """``code`` (as submitted) is needed for a query that names no brand: its lockout is the
        policy of the brand it was counted against."""
        if q.outcome == "ignored":
            return []
        lang = q.language
        if q.brand_id is not None:
            brand = self.catalogue.brand(s, q.brand_id)
            name, templates = brand.display(lang), brand.templates
        else:
            # A code that cannot be told to be one brand's: the tenant's name, default texts (a
            # brand's own texts may name that brand).
            brands = self.catalogue.brands(s, q.tenant_id)
            brand = attribute(brands, normalise(code or ""))[0]
            name, templates = self.catalogue.tenant_name(s, q.tenant_id), {}
        common = {"brand": name}
        outs: list[Out] = []
        kind = q.outcome
        values: dict[str, Any] = dict(common)
        if q.outcome == "genuine":
            product = self.catalogue.product(s, q.product_id)
            values["product"] = product.display(lang)
            values["points_note"] = (render("points_note", lang, brand.templates, points=q.points)
                                     if q.points > 0 else "")
        elif q.outcome == "repeat":
            kind = "repeat_self" if q.first_msisdn == q.msisdn else "repeat"
            values.update(count=q.query_number, first_at=local_time(aware(q.first_at), brand.timezone, lang),
                          first_number=mask(q.first_msisdn))
        elif q.outcome == "locked":
            values["minutes"] = math.ceil(brand.lockout_duration_s / 60)
        outs.append(self._sms(q, f"verify-{q.submission_id}", render(kind, lang, templates, **values),
                              q.outcome))

        if q.outcome == "genuine":
            product = self.catalogue.product(s, q.product_id)
            if q.points > 0:
                outs.append(self._points(q, product.slug))
            if b is not None and q.submission_id in b.queries:
                # Made in this batch: its draw (if any) and card (if won) are in the batch.
                card = b.cards.get(q.submission_id)
                tier_id = b.draws[q.submission_id].tier_id if card is not None else None
            else:  # a redelivery: look up what its first handling won
                card = card_of(s, q.submission_id)
                tier_id = s.scalar(select(Draw.tier_id).where(Draw.submission_id == q.submission_id)) \
                    if card is not None else None
            if card is not None:
                outs.append(self._prize(s, q, brand, card, tier_id))
        return outs

    def prize_message(self, s: Session, submission_id: str, request_id: str) -> Out | None:
        """The card message of a won draw again, as a new message (``request_id``), for an
        owner's re-send; None if the submission won nothing."""
        q = s.scalar(select(CodeQuery).where(CodeQuery.submission_id == submission_id))
        card = card_of(s, submission_id)
        if q is None or card is None or q.brand_id is None:
            return None
        tier_id = s.scalar(select(Draw.tier_id).where(Draw.submission_id == submission_id))
        return self._prize(s, q, self.catalogue.brand(s, q.brand_id), card, tier_id, request_id)

    def _prize(self, s: Session, q: CodeQuery, brand: BrandInfo, card: WonCard, tier_id: int | None,
               request_id: str | None = None) -> Out:
        lang = q.language
        tier = self.catalogue.tier(s, tier_id) if tier_id is not None else None
        prize = tier.display(lang) if tier is not None else ("奖品" if lang == "zh" else "a prize")
        text = render("prize", lang, brand.templates, brand=brand.display(lang), prize=prize,
                      card=card.card_number, password=self.box.open(card.password_enc),
                      instructions=card.instructions)
        return self._sms(q, request_id or f"prize-{q.submission_id}", text, "prize")

    def _sms(self, q: CodeQuery, request_id: str, text: str, kind: str,
             category: str = "transactional") -> Out:
        value = new_event(topics.SMS_OUTBOUND, q.tenant_id,
                          event_id=derived_id("sms.outbound", q.tenant_id, request_id),
                          message_id=message_id_for(q.tenant_id, request_id), request_id=request_id,
                          to=q.msisdn, text=text[:1600], category=category,
                          source="verifier", in_reply_to=q.inbound_message_id, accepted_at=now_iso(),
                          attributes={"kind": kind}, **{"from": q.reply_from})
        return Out(topics.SMS_OUTBOUND, q.msisdn, value)

    def _points(self, q: CodeQuery, product_slug: str) -> Out:
        value = new_event(topics.POINTS_AWARDED, q.tenant_id,
                          event_id=derived_id("points.awarded", q.submission_id),
                          entry_id=points_entry_id(q.submission_id),
                          member=q.msisdn, points=q.points, reason="genuine code",
                          source_event_id=q.submission_id, product=product_slug[:64], reply_from=q.reply_from)
        return Out(topics.POINTS_AWARDED, q.msisdn, value)


_codes = Code.__table__
# The batch's code rows, locked (FOR UPDATE on PostgreSQL; nothing on SQLite, which holds the
# write lock). Built once; the expanding IN keeps one compiled form whatever the batch size.
_LOAD_CODES = (
    select(_codes.c.id, _codes.c.code_hash, _codes.c.batch_id, _codes.c.query_count,
           _codes.c.first_submission_id, _codes.c.first_msisdn, _codes.c.first_at)
    .where(_codes.c.code_hash.in_(bindparam("hashes", expanding=True)))
    .order_by(_codes.c.id).with_for_update())


def _param(name: str, column):
    return bindparam(name, type_=column.type)


# Their counts and first queries as worked out by the batch: one executemany.
_SET_COUNT = (
    update(_codes).where(_codes.c.id == _param("b_id", _codes.c.id))
    .values(query_count=_param("b_count", _codes.c.query_count),
            first_submission_id=_param("b_sid", _codes.c.first_submission_id),
            first_msisdn=_param("b_msisdn", _codes.c.first_msisdn),
            first_at=_param("b_at", _codes.c.first_at)))
