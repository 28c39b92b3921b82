"""The compliance vocabulary: opt-out, opt-in and help phrasings of mainland China and the
English-speaking markets are recognised as people type them; lookalikes stay ordinary texts."""

from __future__ import annotations

import pytest

from services.core import compliance_words
from services.core.compliance_words import HELP, NOT_COMPLIANCE, OPT_IN, OPT_OUT, PHRASES
from services.router.domain import normalise


def kind_of(text: str, tenants: frozenset[str] = frozenset()) -> tuple[str, str] | None:
    t = normalise(text)
    found = compliance_words.match(t.words, t.compact, tenants.__contains__)
    return (found[0].kind, found[0].text) if found else None


@pytest.mark.parametrize("text, phrase", [
    # mainland China
    ("退订", "退订"), ("退订。", "退订"), ("TD", "TD"), ("td", "TD"), ("ＴＤ", "TD"), ("T", "T"),
    ("R", "R"), ("取消订阅", "取消订阅"), ("取消 订阅！", "取消订阅"), ("退订短信", "退订短信"),
    ("取消短信", "取消短信"), ("拒收", "拒收"), ("拒收短信", "拒收短信"), ("取消", "取消"),
    ("退出", "退出"), ("我要退订", "我要退订"), ("请退订", "请退订"), ("退订，谢谢", "退订谢谢"),
    ("不要再发", "不要再发"), ("别再发了！", "别再发了"), ("停止发送", "停止发送"),
    # English-speaking markets
    ("STOP", "STOP"), ("stop please", "STOP"), ("Stop sending me these", "STOP"),
    ("STOPALL", "STOPALL"), ("stop all", "STOP ALL"), ("unsubscribe", "UNSUBSCRIBE"),
    ("Cancel", "CANCEL"), ("END", "END"), ("quit!", "QUIT"), ("revoke", "REVOKE"),
    ("opt out", "OPT OUT"), ("Opt-out", "OPT-OUT"), ("optout", "OPTOUT"), ("cancel please", "CANCEL"),
])
def test_an_opt_out_phrasing_is_recognised(text, phrase):
    assert kind_of(text) == (OPT_OUT, phrase)


@pytest.mark.parametrize("text", ["START", "unstop", "opt in", "订阅", "恢复订阅", "重新订阅"])
def test_an_opt_in_phrasing_is_recognised(text):
    assert kind_of(text)[0] == OPT_IN


@pytest.mark.parametrize("text", ["HELP", "help me", "帮助", "?", "？"])
def test_a_help_phrasing_is_recognised(text):
    assert kind_of(text)[0] == HELP


@pytest.mark.parametrize("text", [
    *NOT_COMPLIANCE,
    "取消订单", "退订单号123", "我要退款", "cancel my order", "End of season sale?", "T shirt size",
    "R u open today", "quit smoking tips", "UNSUB NEWS", "stopwatch", "订阅号在哪", "start time?",
])
def test_a_lookalike_is_an_ordinary_text(text):
    assert kind_of(text) is None


def test_a_phrase_said_alone_may_name_a_tenant_on_a_shared_number():
    assert kind_of("cancel ACME", frozenset({"ACME"})) == (OPT_OUT, "CANCEL")
    assert kind_of("cancel ACME") is None


def test_the_table_has_no_lookalike_and_no_phrase_twice():
    texts = [p.text for p in PHRASES]
    assert len(texts) == len(set(texts))
    assert not set(texts) & set(NOT_COMPLIANCE)
    assert {p.market for p in PHRASES} == {"CN", "EN"}
    assert all(p.text == normalise(p.text).normalised for p in PHRASES if p.text != "?")
