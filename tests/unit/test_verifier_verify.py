"""The verifier's domain against a migrated SQLite file: first, repeat, unknown and mistyped
codes, lockout, probe flags, redelivery, languages and templates, audience and clubs."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.core.db import Database
from services.core.db.migrate import upgrade
from services.core.db.schemes import (
    Brand,
    ClubMembership,
    Code,
    CodeQuery,
    Draw,
    Lockout,
    Member,
    PrizeCard,
    ProbeFlag,
)
from services.core.processor import Rejected
from services.core.schemas import new_event, validate
from services.core.tenancy import create_tenant
from services.verifier.demo import seed_scheme
from services.verifier.domain import CodeFormat, Verifier, admin, points_entry_id
from services.verifier.domain.replies import mask

SECRET = "test-secret"
T0 = datetime(2025, 3, 14, 9, 27, tzinfo=UTC)
CN, CN2, US = "+8613812345678", "+8613900001111", "+14155550123"


@pytest.fixture
def db(database_url):
    """A migrated database of each kind under test (SQLite; PostgreSQL when configured)."""
    upgrade(database_url)
    d = Database(database_url)
    yield d
    d.dispose()


@pytest.fixture
def scheme(db):
    with db.session() as s:
        return seed_scheme(s, SECRET, codes=50, points=10, timezone="Asia/Shanghai",
                           lockout_max_invalid=3, lockout_window_s=600, lockout_duration_s=1800)


def submission(code: str, sender: str = CN, at: datetime = T0, tenant: str = "acme") -> dict:
    return new_event("codes.submitted", tenant, submission_id=str(uuid.uuid4()), code=code, to="10690001",
                     inbound_message_id=str(uuid.uuid4()),
                     received_at=at.isoformat().replace("+00:00", "Z"), **{"from": sender})


def run(db, verifier, *events):
    with db.session() as s:
        outs = verifier.handle(s, list(events))
    for o in outs:
        validate(o.topic, o.value)
    return outs


def texts(outs, to=None):
    return [o.value["text"] for o in outs if o.topic == "sms.outbound" and (to is None or o.value["to"] == to)]


def unknown_code() -> str:
    return CodeFormat().generate(1)[0]


def mistyped(code: str) -> str:
    return code[:-1] + ("A" if code[-1] != "A" else "B")


def test_first_query_is_genuine_records_time_and_number_adds_a_member_and_awards_points(db, scheme):
    v = Verifier(SECRET)
    ev = submission(scheme.codes[0])
    outs = run(db, v, ev)
    assert texts(outs) == ["金叶：您购买的金叶gold-20是正品，感谢您的查询。您获得10积分。"]
    reply = outs[0].value
    assert reply["request_id"] == f"verify-{ev['submission_id']}" and reply["from"] == "10690001"
    assert reply["source"] == "verifier" and reply["in_reply_to"] == ev["inbound_message_id"]
    assert outs[0].key == CN
    points = [o for o in outs if o.topic == "points.awarded"]
    assert len(points) == 1 and points[0].key == CN
    assert points[0].value["entry_id"] == points_entry_id(ev["submission_id"])
    assert points[0].value["source_event_id"] == ev["submission_id"] and points[0].value["points"] == 10
    with db.session() as s:
        code = s.scalar(select(Code).where(Code.first_submission_id == ev["submission_id"]))
        assert code.first_msisdn == CN and code.first_at.replace(tzinfo=UTC) == T0 and code.query_count == 1
        assert s.scalar(select(Member.msisdn)) == CN
        assert s.scalar(select(CodeQuery.outcome)) == "genuine"


def test_second_query_of_a_code_warns_with_count_first_time_and_masked_first_number(db, scheme):
    v = Verifier(SECRET)
    run(db, v, submission(scheme.codes[0]))
    outs = run(db, v, submission(scheme.codes[0], CN2, T0 + timedelta(days=1)))
    assert texts(outs) == ["金叶：该防伪码已被查询2次，首次查询时间2025-03-14 17:27，首次查询号码138****5678。"
                           "如非本人查询，谨防假冒。"]
    assert not [o for o in outs if o.topic == "points.awarded"]
    outs = run(db, v, submission(scheme.codes[0], US, T0 + timedelta(days=2)))
    assert texts(outs) == ["Gold: this code has been checked 3 times, first on 2025-03-14 17:27 UTC+08:00 by "
                           "138****5678. If that was not you, the product may be counterfeit."]


def test_a_buyer_checking_his_own_pack_again_is_not_told_it_is_fake(db, scheme):
    v = Verifier(SECRET)
    run(db, v, submission(scheme.codes[1], US))
    [text] = texts(run(db, v, submission(scheme.codes[1], US, T0 + timedelta(hours=1))))
    assert "you checked this code before" in text and "counterfeit" not in text


def test_unknown_code_gets_a_counterfeit_warning_and_a_mistyped_one_a_please_check(db, scheme):
    v = Verifier(SECRET)
    assert texts(run(db, v, submission(unknown_code(), US))) == [
        "Gold: this code is not one of ours. The product may be counterfeit; please keep the pack and your receipt."]
    assert texts(run(db, v, submission(mistyped(scheme.codes[2]), US))) == [
        "Gold: we could not read that code. Please check the code and send it again."]
    assert texts(run(db, v, submission("ABC123", "+14155550999"))) == [
        "Gold: we could not read that code. Please check the code and send it again."]
    with db.session() as s:  # the mistyped code did not touch the real one
        assert s.scalar(select(func.sum(Code.query_count))) == 0
        assert sorted(s.scalars(select(CodeQuery.outcome))) == ["counterfeit", "mistyped", "mistyped"]


def test_a_number_sending_too_many_invalid_codes_is_locked_out_told_once_and_then_ignored(db, scheme):
    v = Verifier(SECRET)
    at = [T0 + timedelta(minutes=i) for i in range(10)]
    assert len(texts(run(db, v, submission(unknown_code(), US, at[0]), submission(mistyped(scheme.codes[0]), US,
                                                                                     at[1])))) == 2
    outs = run(db, v, submission(unknown_code(), US, at[2]))
    assert texts(outs) == ["Gold: too many invalid codes from your number. Checks are paused for 30 minutes."]
    # locked: even a genuine code is not checked, not answered, but recorded
    ignored = submission(scheme.codes[3], US, at[3])
    assert run(db, v, ignored, submission(unknown_code(), US, at[4])) == []
    with db.session() as s:
        assert s.scalar(select(CodeQuery.outcome).where(CodeQuery.submission_id == ignored["submission_id"])) \
            == "ignored"
        assert s.scalar(select(func.sum(Code.query_count))) == 0
        lk = s.scalar(select(Lockout))
        assert lk.lock_count == 1 and lk.locked_until.replace(tzinfo=UTC) == at[2] + timedelta(minutes=30)
    # others are not affected, and after the pause the number is checked again
    assert "正品" in texts(run(db, v, submission(scheme.codes[5], CN, at[5])))[0]
    later = T0 + timedelta(minutes=33)
    assert "genuine" in texts(run(db, v, submission(scheme.codes[3], US, later)))[0]


def test_invalid_codes_spread_beyond_the_window_do_not_lock(db, scheme):
    v = Verifier(SECRET)
    for i in range(6):
        outs = run(db, v, submission(unknown_code(), US, T0 + timedelta(minutes=11 * i)))
        assert "not one of ours" in texts(outs)[0]


def test_a_code_many_numbers_try_is_flagged_for_the_brand(db, scheme):
    v = Verifier(SECRET)
    copied = scheme.codes[6]
    guessed = unknown_code()
    for i, sender in enumerate([CN, CN2, US, "+14155550999"]):
        run(db, v, submission(copied, sender, T0 + timedelta(hours=i)), submission(guessed, sender, T0))
    with db.session() as s:
        flags = {f.code_id: f for f in s.scalars(select(ProbeFlag))}
        assert len(flags) == 2
        known = next(f for f in flags.values() if f.code_id is not None)
        assert known.distinct_numbers == 4 and flags[None].distinct_numbers == 4


def test_a_redelivered_batch_gets_the_same_replies_and_changes_nothing(db, scheme):
    v = Verifier(SECRET)
    events = [submission(scheme.codes[i], CN if i % 2 else US) for i in range(8)]
    events += [submission(scheme.codes[0], CN2), submission(unknown_code()), submission("ABCD1234")]
    first = run(db, v, *events)

    def state():
        with db.session() as s:
            return (s.scalar(select(func.sum(Code.query_count))), s.scalar(select(func.count()).select_from(CodeQuery)),
                    s.scalar(select(func.count()).select_from(Member)), s.scalar(select(func.count()).select_from(Lockout)))

    before = state()
    again = run(db, Verifier(SECRET), *events)  # a fresh worker, as after a crash
    assert state() == before
    key = [(o.topic, o.value["event_id"], o.value.get("text"), o.value.get("points")) for o in first]
    assert key == [(o.topic, o.value["event_id"], o.value.get("text"), o.value.get("points")) for o in again]
    # duplicates inside one batch, too
    dup = submission(scheme.codes[20])
    outs = run(db, v, dup, dup)
    assert len(texts(outs)) == 2 and len(set(texts(outs))) == 1 and "正品" in texts(outs)[0]


def test_language_follows_the_number_unless_the_brand_fixes_it_and_templates_override(db):
    with db.session() as s:
        scheme = seed_scheme(s, SECRET, codes=3, language="en",
                             templates={"en": {"genuine": "{brand} OK {product}! {points_note}",
                                               "counterfeit": "{brand} {nope}"}})
    v = Verifier(SECRET)
    assert texts(run(db, v, submission(scheme.codes[0], CN))) == ["Gold OK Gold gold-20! You earned 10 points."]
    # an override that does not render falls back to the default
    assert "not one of ours" in texts(run(db, v, submission(unknown_code(), CN)))[0]


def test_a_tenant_without_brand_is_rejected_with_a_reason(db):
    with db.session() as s:
        create_tenant(s, "nobrand", "No Brand")
    with pytest.raises(Rejected, match="no brand"), db.session() as s:
        Verifier(SECRET).handle(s, [submission(unknown_code(), tenant="nobrand")])


def test_codes_of_two_tenants_stay_apart(db, scheme):
    with db.session() as s:
        other = seed_scheme(s, SECRET, tenant_id="globex", codes=3)
    v = Verifier(SECRET)
    assert "not one of ours" in texts(run(db, v, submission(other.codes[0], US, tenant="acme")))[0]
    assert "genuine" in texts(run(db, v, submission(other.codes[0], US, tenant="globex")))[0]


def test_numbers_are_masked_like_138_stars_5678():
    assert mask("+8613812345678") == "138****5678"
    assert mask("+14155550123") == "+141****0123"
    assert mask(None) == "****"


def test_a_lottery_winner_gets_card_number_password_and_instructions_and_no_password_is_logged(db, caplog):
    with db.session() as s:
        scheme = seed_scheme(s, SECRET, codes=5, tiers=[admin.TierSpec("a phone card", 1.0, 10, 0, "话费卡")])
    caplog.set_level(logging.DEBUG)
    ev = submission(scheme.codes[0], US)
    outs = run(db, Verifier(SECRET), ev)
    prize = [o.value for o in outs if o.value.get("attributes", {}).get("kind") == "prize"]
    assert len(prize) == 1
    with db.session() as s:
        card = s.scalar(select(PrizeCard).where(PrizeCard.submission_id.is_not(None)))
        draw = s.scalar(select(Draw))
        password = f"PW-{card.tier_id}-{card.card_number[-5:]}"
        assert card.password_enc != password.encode() and password.encode() not in card.password_enc
        assert draw.card_id == card.id and draw.outcome == "won"
    assert prize[0]["text"] == (f"Gold: congratulations, you won a phone card! Card number {card.card_number}, "
                                f"password {password}. Dial *100# and enter the password.")
    assert prize[0]["request_id"] == f"prize-{ev['submission_id']}" and prize[0]["to"] == US
    assert password not in caplog.text


def test_everyone_who_verified_a_product_can_be_invited_and_members_join_and_leave_a_club(db, scheme):
    v = Verifier(SECRET)
    run(db, v, submission(scheme.codes[0], CN), submission(scheme.codes[1], US), submission(scheme.codes[2], US),
        submission(scheme.codes[0], CN2))  # CN2 only repeated someone else's code: not a participant
    with db.session() as s:
        assert list(s.scalars(admin.audience("acme", scheme.product_id))) == [US, CN]
        outs = list(admin.invite_product_audience(s, "acme", "gold-20", "Join our club: reply JOIN", "club-1"))
    assert [o.value["to"] for o in outs] == [US, CN]
    assert {o.value["category"] for o in outs} == {"marketing"} and outs[0].value["campaign_id"] == "club-1"
    assert outs[0].value["request_id"] == "invite:club-1:14155550123"
    with pytest.raises(ValueError, match="campaign id"):
        list(admin.invitations("acme", [US], "hi", "no spaces please"))
    for o in outs:
        validate("sms.outbound", o.value)
    assert admin.club_keyword("join") == "joined" and admin.club_keyword("退出") == "left"
    with db.session() as s:
        assert admin.set_club_membership(s, "acme", "gold", "vip", US, "joined", source_event_id="e1", at=T0)
        assert not admin.set_club_membership(s, "acme", "gold", "vip", US, "joined", source_event_id="e1", at=T0)
        assert admin.set_club_membership(s, "acme", "gold", "vip", CN, "joined", source_event_id="e2", at=T0)
        assert admin.set_club_membership(s, "acme", "gold", "vip", CN, "left", source_event_id="e3",
                                         at=T0 + timedelta(minutes=1))
        # an older request arriving late does not undo a newer one
        assert not admin.set_club_membership(s, "acme", "gold", "vip", CN, "joined", source_event_id="e2b", at=T0)
        brand_id = s.scalar(select(Brand.id))
        assert list(s.scalars(admin.club_audience("acme", brand_id, "vip"))) == [US]
        assert s.scalar(select(func.count()).select_from(ClubMembership)) == 2
