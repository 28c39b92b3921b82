"""Replies on a tenant with several brands name the brand the buyer's code belongs to: the
product's brand for a known code; for an unknown or mistyped one, the one brand whose codes it
looks like; and the tenant's own name when it cannot be told whose code it is."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.core.db.schemes import CodeQuery, Lockout
from services.core.schemas import new_event, validate
from services.core.tenancy import create_tenant
from services.verifier.domain import CodeFormat, Verifier, admin
from services.verifier.domain.codes import CodeHasher, create_batch

SECRET = "test-secret"
T0 = datetime(2025, 3, 14, 9, 27, tzinfo=UTC)
BUYER = "+14155550123"
JADE = CodeFormat("0123456789", 11)  # same length as the default format, digits only


@pytest.fixture
def db(sqlite_db):
    """Acme Group sells Gold (default code format) and Jade (digit codes of the same length)."""
    with sqlite_db.session() as s:
        create_tenant(s, "acme", "Acme Group")
        admin.create_brand(s, "acme", "gold", "Gold", language="en", lockout_max_invalid=5,
                           lockout_duration_s=3600)
        admin.create_brand(s, "acme", "jade", "Jade", language="en", code_alphabet=JADE.alphabet,
                           code_length=JADE.length, lockout_max_invalid=2, lockout_duration_s=600)
        admin.create_product(s, "acme", "jade", "jade-tea", "Jade tea")
        create_batch(s, CodeHasher(SECRET), "acme", "jade-tea", 1)
    return sqlite_db


def add_ruby(db) -> None:
    """A third brand whose codes look exactly like Gold's."""
    with db.session() as s:
        admin.create_brand(s, "acme", "ruby", "Ruby", language="en")


def submit(db, verifier: Verifier, code: str, at: datetime = T0, sid: str | None = None) -> list[str]:
    ev = new_event("codes.submitted", "acme", submission_id=sid or str(uuid.uuid4()), code=code,
                   to="10690001", inbound_message_id=str(uuid.uuid4()),
                   received_at=at.isoformat().replace("+00:00", "Z"), **{"from": BUYER})
    with db.session() as s:
        outs = verifier.handle(s, [ev])
    for o in outs:
        validate(o.topic, o.value)
    return [o.value["text"] for o in outs if o.topic == "sms.outbound"]


def jade_mistyped(n: int = 0) -> str:
    code = JADE.make(f"1010101010{n}")
    return code[:-1] + str((int(code[-1]) + 1) % 10)  # a wrong check digit


def test_a_mistyped_code_of_the_second_brand_names_that_brand(db):
    [text] = submit(db, Verifier(SECRET), jade_mistyped())
    assert text == "Jade: we could not read that code. Please check the code and send it again."


def test_the_lockout_reply_names_the_brand_of_the_codes_and_its_lockout_time(db):
    v = Verifier(SECRET)
    submit(db, v, jade_mistyped(1))
    [text] = submit(db, v, jade_mistyped(2), T0 + timedelta(seconds=10))
    assert text == "Jade: too many invalid codes from your number. Checks are paused for 10 minutes."
    with db.session() as s:
        assert s.scalar(select(Lockout.brand_id)) == admin.brand_by_slug(s, "acme", "jade").id


def test_an_unknown_code_in_one_brands_format_names_that_brand(db):
    [text] = submit(db, Verifier(SECRET), JADE.make("20202020202"))
    assert text.startswith("Jade: this code is not one of ours.")


def test_a_code_no_brand_could_have_made_names_the_tenant(db):
    [text] = submit(db, Verifier(SECRET), "HELLO7")
    assert text == "Acme Group: we could not read that code. Please check the code and send it again."
    with db.session() as s:
        assert s.scalar(select(CodeQuery.brand_id)) is None


def test_a_code_two_brands_could_have_made_names_the_tenant_also_when_it_locks_out(db):
    add_ruby(db)
    v = Verifier(SECRET)
    gold_like = CodeFormat().generate(1)[0]
    assert submit(db, v, gold_like)[0].startswith("Acme Group: this code is not one of ours.")
    texts = [submit(db, v, CodeFormat().generate(1)[0], T0 + timedelta(seconds=i))[0] for i in range(1, 5)]
    assert texts[-1] == ("Acme Group: too many invalid codes from your number. Checks are paused for "
                         "60 minutes.")


def test_a_redelivered_submission_naming_the_tenant_is_answered_the_same(db):
    sid = str(uuid.uuid4())
    first = submit(db, Verifier(SECRET), "HELLO7", sid=sid)
    assert submit(db, Verifier(SECRET), "HELLO7", sid=sid) == first


def test_a_single_brand_tenant_names_its_brand_even_for_an_unreadable_code(sqlite_db):
    with sqlite_db.session() as s:
        create_tenant(s, "acme", "Acme Group")
        admin.create_brand(s, "acme", "gold", "Gold", language="en")
    [text] = submit(sqlite_db, Verifier(SECRET), "HELLO7")
    assert text.startswith("Gold: we could not read that code.")
