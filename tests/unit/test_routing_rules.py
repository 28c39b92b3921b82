"""Routing rules are distinct by what they match, and a rule that another one shadows is refused
with the other named: pattern rules, compliance words, campaign keywords, shared numbers, and a
configured keyword wins over an open survey's answer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.campaigns.domain import campaigns, conversations
from services.campaigns.domain.campaigns import CampaignError
from services.core.db import Database
from services.core.tenancy import (
    RuleRefused,
    add_keyword,
    add_number,
    campaign_keyword_conflict,
    create_tenant,
)
from services.router.domain import Router, normalise

NUMBER = "10690001"
NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)


@pytest.fixture
def db(sqlite_db: Database) -> Database:
    with sqlite_db.session() as s:
        create_tenant(s, "acme", "Acme", default_sender=NUMBER)
        add_number(s, "acme", NUMBER)
    return sqlite_db


def rule(db: Database, keyword: str, action: str, **kw):
    with db.session() as s:
        return add_keyword(s, "acme", keyword, action, **kw).id


def refused(db: Database, keyword: str, action: str, **kw) -> str:
    with pytest.raises(RuleRefused) as exc, db.session() as s:
        add_keyword(s, "acme", keyword, action, **kw)
    return str(exc.value)


def test_two_pattern_rules_on_one_number_can_both_exist_and_both_match(db):
    rule(db, "", "codes", pattern=r"[A-Z0-9]{12}")
    rule(db, "", "reply", pattern=r"\d{6}", reply_text="Order numbers go to the web shop.")
    with db.session() as s:
        r = Router()
        assert r._match(s, "acme", NUMBER, normalise("123456")).action == "reply"
        assert r._match(s, "acme", NUMBER, normalise("a1b2c3d4e5f6")).action == "codes"


def test_the_same_pattern_twice_is_refused_naming_the_first_rule(db):
    first = rule(db, "", "codes", pattern=r"[A-Z0-9]{12}")
    message = refused(db, "", "reply", pattern=r"[A-Z0-9]{12}", reply_text="x")
    assert f"rule {first} (pattern /[A-Z0-9]{{12}}/ -> codes" in message


def test_the_same_keyword_twice_is_refused_naming_the_first_rule(db):
    first = rule(db, "INFO", "reply", reply_text="news")
    assert f"rule {first} (keyword INFO -> reply" in refused(db, "info", "reply", reply_text="y")


def test_a_pattern_behind_a_catch_all_that_is_tried_first_is_refused_naming_it(db):
    catch_all = rule(db, "", "campaigns", pattern=r".*", priority=100)
    message = refused(db, "", "codes", pattern=r"[A-Z0-9]{12}", priority=200)
    assert f"rule {catch_all} (pattern /.*/ -> campaigns" in message and "tried first" in message
    rule(db, "", "codes", pattern=r"[A-Z0-9]{12}", priority=50)  # before the catch-all: fine


def test_a_catch_all_that_would_hide_an_earlier_pattern_is_refused_naming_it(db):
    codes = rule(db, "", "codes", pattern=r"^[A-Za-z0-9]{12}$", priority=200)
    message = refused(db, "", "campaigns", pattern=r".*", priority=100)
    assert f"rule {codes} " in message
    rule(db, "", "campaigns", pattern=r".*", priority=300)  # after it: fine


def test_a_lower_case_pattern_that_can_never_match_an_upper_cased_text_is_refused(db):
    assert "upper-cased" in refused(db, "", "reply", pattern=r"[a-z]+", reply_text="x")


@pytest.mark.parametrize("word", ["STOP", "td", "退订", "取消订阅", "HELP", "START"])
def test_a_rule_on_a_compliance_word_is_refused(db, word):
    assert "router answers itself" in refused(db, word, "reply", reply_text="never")


def test_a_rule_with_both_a_keyword_and_a_pattern_is_refused(db):
    with pytest.raises(ValueError, match="not both"), db.session() as s:
        add_keyword(s, "acme", "CODE", "codes", pattern=r"\d+")


def test_a_keyword_another_tenant_has_on_a_shared_number_is_refused_naming_it(sqlite_db):
    with sqlite_db.session() as s:
        for t in ("tea", "wine"):
            create_tenant(s, t, t.title())
            add_number(s, t, "10690099", shared=True)
        first = add_keyword(s, "tea", "CLUB", "reply", reply_text="tea club").id
    with pytest.raises(RuleRefused) as exc, sqlite_db.session() as s:
        add_keyword(s, "wine", "CLUB", "inbox")
    assert f"tenant tea's rule {first} " in str(exc.value)


def test_a_number_specific_keyword_wins_over_the_same_keyword_for_every_number(db):
    rule(db, "VIP", "reply", reply_text="everyone", priority=10)
    rule(db, "VIP", "reply", reply_text="this number", number=NUMBER, priority=100)
    with db.session() as s:
        assert Router()._match(s, "acme", NUMBER, normalise("vip")).reply_text == "this number"


def on_demand(db: Database, keyword: str) -> str:
    with db.session() as s:
        return campaigns.create(s, "acme", {"name": keyword.lower(), "kind": "on_demand",
                                            "config": {"keyword": keyword, "content": "x"}},
                                now=NOW).id


def test_a_campaign_keyword_a_router_rule_would_answer_first_is_refused_naming_the_rule(db):
    bal = rule(db, "BAL", "points")
    with pytest.raises(CampaignError) as exc:
        on_demand(db, "BAL")
    assert exc.value.status == 409 and f"rule {bal} (keyword BAL -> points" in str(exc.value)


def test_a_campaign_keyword_that_is_a_compliance_word_is_refused(db):
    with db.session() as s:
        assert "router answers itself" in campaign_keyword_conflict(s, "acme", "cancel")


def test_a_router_rule_on_a_campaign_keyword_is_refused_naming_the_campaign(db):
    cid = on_demand(db, "NEWS")
    assert f"campaign {cid}" in refused(db, "NEWS", "reply", reply_text="x")
    rule(db, "NEWS", "campaigns")  # sending it to campaigns is what makes it reachable


SURVEY = {"questions": [{"key": "q1", "text": "How many cups a week?", "type": "number",
                         "min": 0, "max": 50}]}


def inbound(text: str, mid: str) -> dict:
    return {"event_id": mid, "event_type": "sms.inbound", "tenant_id": "acme", "message_id": mid,
            "carrier": "sim", "carrier_message_id": mid, "from": "+8613800000001", "to": NUMBER,
            "text": text, "received_at": "2026-06-15T10:00:00Z"}


def talk(db: Database, text: str, n: int) -> str:
    with db.session() as s:
        [out] = conversations.handle(s, inbound(text, f"00000000-0000-4000-8000-{n:012d}"), NOW)
    return out.value["text"]


@pytest.mark.parametrize("answers_first", [False, True])
def test_a_configured_keyword_wins_over_an_open_survey_unless_the_survey_takes_answers_first(
        db, answers_first):
    with db.session() as s:
        campaigns.create(s, "acme", {"name": "cups", "kind": "survey", "config": {
            **SURVEY, "keyword": "CUPS", "answers_first": answers_first}}, now=NOW)
        campaigns.create(s, "acme", {"name": "prices", "kind": "on_demand", "config": {
            "keyword": "PRICE", "content": "prices", "empty": "Latte 30"}}, now=NOW)
    assert talk(db, "CUPS", 1) == "How many cups a week?"
    got = talk(db, "price", 2)
    if answers_first:
        assert got.startswith("Please answer with a number")
    else:
        assert got == "Latte 30"
        assert talk(db, "3", 3) == "Thank you for taking part!"  # the survey is still open
