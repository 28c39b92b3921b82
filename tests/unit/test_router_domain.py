"""The router's domain against a real, migrated SQLite file (no broker): tenant resolution,
compliance keywords in English and Chinese, tenant keyword actions, and idempotent redelivery."""

from __future__ import annotations

import shutil
import uuid

import pytest
from sqlalchemy import select

from services.core.db import Database
from services.core.db.migrate import upgrade
from services.core.db.models import Keyword, OptOut
from services.core.messages import message_id_for
from services.core.processor import Out, Rejected
from services.core.schemas import encode, new_event, schema_for_topic
from services.core.tenancy import add_keyword, add_number, create_tenant, set_unmatched
from services.router.domain import Directory, Router, normalise

ACME_NUMBER = "10690001"
ACME_VIP_NUMBER = "10690002"
SHARED = "10690099"
BUYER = "+8613800138000"


def seed(db: Database) -> None:
    with db.session() as s:
        create_tenant(s, "acme", "Acme Tobacco", help_text="Acme: text CODE <code>. STOP to quit.",
                      stop_reply="Acme: you are unsubscribed.", start_reply="Acme: welcome back.")
        add_number(s, "acme", ACME_NUMBER)
        add_number(s, "acme", ACME_VIP_NUMBER)
        add_keyword(s, "acme", "INFO", "reply", reply_text="Acme news: all systems go.")
        add_keyword(s, "acme", "VIP", "reply", number=ACME_VIP_NUMBER, reply_text="VIP desk.")
        add_keyword(s, "acme", "CODE", "codes")
        add_keyword(s, "acme", "", "codes", pattern=r"[A-Z0-9]{12}", priority=200)
        add_keyword(s, "acme", "", "reply", pattern=r"\d{6}", priority=50,
                    reply_text="Order numbers go to the web shop.")
        add_keyword(s, "acme", "GIFT", "points")
        add_keyword(s, "acme", "BAL", "points")
        add_keyword(s, "acme", "积分", "points")
        add_keyword(s, "acme", "JOIN", "campaigns")
        add_keyword(s, "acme", "ERP", "inbox")
        # Two tenants share one short code and are told apart by keyword.
        create_tenant(s, "tea", "Lucky Tea")
        create_tenant(s, "wine", "Red Wine Co")
        add_number(s, "tea", SHARED, shared=True)
        add_number(s, "wine", SHARED, shared=True)
        add_keyword(s, "tea", "TEA", "reply", reply_text="Lucky Tea: hello.")
        add_keyword(s, "wine", "WINE", "inbox", number=SHARED)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("router-db") / "template.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    db = Database(url)
    seed(db)
    db.dispose()
    return path


@pytest.fixture
def db(template, tmp_path):
    path = tmp_path / "herald.db"
    shutil.copy(template, path)
    d = Database(f"sqlite:///{path}")
    yield d
    d.dispose()


@pytest.fixture
def router() -> Router:
    return Router()


def inbound(text: str, to: str = ACME_NUMBER, sender: str = BUYER) -> dict:
    return new_event("sms.inbound", message_id=str(uuid.uuid4()), carrier="simulator",
                     carrier_message_id="SM-1", to=to, text=text,
                     received_at="2026-11-28T10:00:00.000Z", **{"from": sender})


def route(db: Database, router: Router, event: dict) -> list[Out]:
    with db.session() as s:
        outs = router.route(s, event)
    for o in outs:  # every output is what its topic's schema allows
        encode(schema_for_topic(o.topic), o.value)
    return outs


def only(outs: list[Out], topic: str) -> Out:
    found = [o for o in outs if o.topic == topic]
    assert len(found) == 1, outs
    return found[0]


def assert_reply(out: Out, event: dict, tenant: str, text: str, kind: str) -> None:
    v = out.value
    assert out.topic == "sms.outbound" and out.key == event["from"]
    assert v["text"] == text and v["tenant_id"] == tenant
    assert v["to"] == event["from"] and v["from"] == event["to"]
    assert v["source"] == "router" and v["category"] == "transactional"
    assert v["in_reply_to"] == event["message_id"]
    assert v["request_id"] == f"reply-{event['message_id']}"
    assert v["message_id"] == message_id_for(tenant, v["request_id"])
    assert v["attributes"] == {"kind": kind}


def optout_row(db: Database, tenant: str, msisdn: str = BUYER) -> OptOut | None:
    with db.session() as s:
        return s.get(OptOut, (tenant, msisdn))


# -- normalisation -----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, keyword, argument", [
    ("stop!", "STOP", ""),
    ("  Stop  ", "STOP", ""),
    ("ＳＴＯＰ", "STOP", ""),
    ("退订。", "退订", ""),
    ("！退订！", "退订", ""),
    ("code   7f3k-q9xz", "CODE", "7F3K-Q9XZ"),
    ("CODE: abc123", "CODE", "ABC123"),
    ("?", "?", ""),
    ("？", "?", ""),
    ("\u200bhelp\u3000", "HELP", ""),
])
def test_text_is_normalised_for_matching(raw, keyword, argument):
    t = normalise(raw)
    assert (t.keyword, t.argument) == (keyword, argument)


# -- compliance keywords -----------------------------------------------------------------------

@pytest.mark.parametrize("text, keyword", [
    ("STOP", "STOP"), ("stop!", "STOP"), (" Stop ", "STOP"), ("ＳＴＯＰ", "STOP"),
    ("unsubscribe", "UNSUBSCRIBE"), ("td", "TD"), ("T", "T"), ("退订。", "退订"), ("取消", "取消"),
    ("STOP please", "STOP"), ("取消订阅", "取消订阅"), ("取消 订阅。", "取消订阅"),
    ("opt out", "OPT OUT"),
])
def test_stop_variants_opt_out_and_confirm_once(db, router, text, keyword):
    ev = inbound(text)
    outs = route(db, router, ev)
    assert len(outs) == 2
    opt = only(outs, "optouts")
    assert opt.key == f"acme:{BUYER}"
    assert opt.value["opted_out"] is True and opt.value["keyword"] == keyword
    assert opt.value["msisdn"] == BUYER and opt.value["source_message_id"] == ev["message_id"]
    assert_reply(only(outs, "sms.outbound"), ev, "acme", "Acme: you are unsubscribed.",
                 "optout_confirmation")
    row = optout_row(db, "acme")
    assert row.opted_out is True and row.source_event_id == ev["message_id"]


@pytest.mark.parametrize("text", ["取消订单", "cancel my order", "T shirt size?"])
def test_a_lookalike_of_an_opt_out_is_routed_as_an_ordinary_text(db, router, text):
    [out] = route(db, router, inbound(text))
    assert out.topic == "sms.outbound" and out.value["attributes"] == {"kind": "unmatched"}
    assert optout_row(db, "acme") is None


@pytest.mark.parametrize("text", ["START", "unstop", "订阅", "ｓｔａｒｔ。"])
def test_start_after_stop_opts_back_in(db, router, text):
    route(db, router, inbound("STOP"))
    ev = inbound(text)
    outs = route(db, router, ev)
    assert only(outs, "optouts").value["opted_out"] is False
    assert_reply(only(outs, "sms.outbound"), ev, "acme", "Acme: welcome back.",
                 "optin_confirmation")
    row = optout_row(db, "acme")
    assert row.opted_out is False and row.source_event_id == ev["message_id"]


@pytest.mark.parametrize("text", ["HELP", "help!", "？", "帮助", "ＨＥＬＰ"])
def test_help_variants_reply_with_the_tenant_help_text(db, router, text):
    ev = inbound(text)
    outs = route(db, router, ev)
    assert len(outs) == 1
    assert_reply(outs[0], ev, "acme", "Acme: text CODE <code>. STOP to quit.", "help")


def test_help_without_tenant_help_text_names_the_tenant(db, router):
    ev = inbound("HELP TEA", to=SHARED)
    [out] = route(db, router, ev)
    assert out.value["tenant_id"] == "tea" and "Lucky Tea" in out.value["text"]


def test_compliance_keywords_win_over_a_tenant_rule_stored_before_rules_were_checked(db, router):
    with db.session() as s:  # add_keyword refuses it now (tests/unit/test_routing_rules.py)
        s.add(Keyword(tenant_id="acme", keyword="STOP", action="reply", number="*",
                      reply_text="never used", pattern="", priority=100))
    outs = route(db, router, inbound("STOP"))
    assert only(outs, "optouts").value["opted_out"] is True


def test_stop_with_a_keyword_on_a_shared_number_opts_out_of_that_tenant_only(db, router):
    outs = route(db, router, inbound("stop tea", to=SHARED))
    assert [o.key for o in outs if o.topic == "optouts"] == [f"tea:{BUYER}"]
    assert optout_row(db, "tea").opted_out is True and optout_row(db, "wine") is None


def test_bare_stop_on_a_shared_number_opts_out_of_every_tenant_there_with_one_reply(db, router):
    outs = route(db, router, inbound("STOP", to=SHARED))
    assert sorted(o.key for o in outs if o.topic == "optouts") == [f"tea:{BUYER}", f"wine:{BUYER}"]
    assert only(outs, "sms.outbound").value["attributes"] == {"kind": "optout_confirmation"}
    assert optout_row(db, "tea").opted_out and optout_row(db, "wine").opted_out


# -- tenant resolution -------------------------------------------------------------------------

@pytest.mark.parametrize("text, tenant, topic", [
    ("TEA", "tea", "sms.outbound"),
    ("tea, please", "tea", "sms.outbound"),
    ("Wine list", "wine", "tenant.wine.inbound"),
])
def test_a_shared_number_resolves_the_tenant_by_keyword(db, router, text, tenant, topic):
    [out] = route(db, router, inbound(text, to=SHARED))
    assert out.topic == topic and out.value["tenant_id"] == tenant


def test_a_shared_number_without_a_matching_keyword_answers_with_the_tenants_there(db, router):
    ev = inbound("hello", to=SHARED)
    [out] = route(db, router, ev)
    assert out.topic == "sms.outbound" and out.value["to"] == BUYER
    assert "Lucky Tea" in out.value["text"] and "Red Wine Co" in out.value["text"]
    assert out.value["attributes"] == {"kind": "unmatched"}


def test_an_unknown_destination_is_rejected_with_the_reason(db, router):
    with pytest.raises(Rejected) as exc:
        route(db, router, inbound("STOP", to="10699999"))
    assert (exc.value.reason, exc.value.kind) == ("no tenant for destination 10699999",
                                                  "unknown_destination")


# -- tenant keywords ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, to, reply", [
    ("info", ACME_NUMBER, "Acme news: all systems go."),
    ("ＩＮＦＯ！", ACME_NUMBER, "Acme news: all systems go."),
    ("VIP", ACME_VIP_NUMBER, "VIP desk."),
    ("123456", ACME_NUMBER, "Order numbers go to the web shop."),  # pattern rule
])
def test_a_reply_keyword_answers_with_its_text(db, router, text, to, reply):
    ev = inbound(text, to=to)
    [out] = route(db, router, ev)
    assert_reply(out, ev, "acme", reply, "keyword_reply")


def test_a_keyword_for_another_number_does_not_match(db, router):
    ev = inbound("VIP", to=ACME_NUMBER)
    [out] = route(db, router, ev)
    assert_reply(out, ev, "acme", "Acme: text CODE <code>. STOP to quit.", "unmatched")


@pytest.mark.parametrize("text, code", [
    ("CODE 7F3KQ9XZ", "7F3KQ9XZ"),
    ("code 7f3k-q9xz", "7F3KQ9XZ"),
    ("Code: ＡＢＣＤ １２３４", "ABCD1234"),
    ("a1b2c3d4e5f6", "A1B2C3D4E5F6"),  # pattern rule: the whole text is the code
])
def test_a_code_is_submitted_keyed_by_the_code(db, router, text, code):
    ev = inbound(text)
    [out] = route(db, router, ev)
    assert out.topic == "codes.submitted" and out.key == code
    v = out.value
    assert v["code"] == code and v["tenant_id"] == "acme" and v["from"] == BUYER
    assert v["to"] == ACME_NUMBER and v["inbound_message_id"] == ev["message_id"]
    assert v["received_at"] == ev["received_at"]


@pytest.mark.parametrize("text", ["CODE", "CODE 12", "CODE 防伪"])
def test_an_unreadable_code_gets_a_check_the_code_reply(db, router, text):
    ev = inbound(text)
    [out] = route(db, router, ev)
    assert out.topic == "sms.outbound" and "check the code" in out.value["text"]
    assert out.value["attributes"] == {"kind": "code_hint"}


@pytest.mark.parametrize("text, command, gift", [
    ("GIFT", "list_gifts", None),
    ("gift 2", "redeem", 2),
    ("GIFT ２", "redeem", 2),
    ("BAL", "balance", None),
    ("积分", "balance", None),
])
def test_points_commands_are_keyed_by_member(db, router, text, command, gift):
    ev = inbound(text)
    [out] = route(db, router, ev)
    assert out.topic == "points.commands" and out.key == BUYER
    v = out.value
    assert v["command"] == command and v.get("gift") == gift
    assert v["member"] == BUYER and v["reply_from"] == ACME_NUMBER
    assert v["inbound_message_id"] == ev["message_id"]


def test_an_unreadable_points_command_gets_a_hint(db, router):
    [out] = route(db, router, inbound("GIFT two"))
    assert out.topic == "sms.outbound" and out.value["attributes"] == {"kind": "points_hint"}


@pytest.mark.parametrize("text, keyword", [("hello there", None), ("ERP order 5", "ERP")])
def test_inbox_rules_and_unmatched_texts_of_an_inbox_tenant_go_to_the_tenant_inbox(
        db, router, text, keyword):
    with db.session() as s:
        set_unmatched(s, "acme", "inbox")
    ev = inbound(text)
    [out] = route(db, router, ev)
    assert out.topic == "tenant.acme.inbound" and out.key == BUYER
    v = out.value
    assert v["tenant_id"] == "acme" and v.get("keyword") == keyword
    assert v["text"] == text and v["message_id"] == ev["message_id"]
    assert v["event_id"] != ev["event_id"]


def test_campaigns_keyword_forwards_an_inbound_shaped_copy(db, router):
    ev = inbound("JOIN club")
    with db.session() as s:
        [out] = router._act(ev, normalise(ev["text"]), router.directory.owners(s, ACME_NUMBER)[0]
                            .tenant, router._match(s, "acme", ACME_NUMBER, normalise("JOIN")))
    assert out.topic == "campaigns.inbound" and out.key == BUYER
    encode("sms.inbound", out.value)
    assert out.value["tenant_id"] == "acme" and out.value["keyword"] == "JOIN"


def test_campaigns_keyword_routes_through_schema_validation(db, router):
    [out] = route(db, router, inbound("JOIN club"))
    assert out.topic == "campaigns.inbound"


# -- redelivery and caching --------------------------------------------------------------------

def _stable(outs: list[Out]) -> list[tuple]:
    drop = {"produced_at", "accepted_at"}
    return [(o.topic, o.key, {k: v for k, v in o.value.items() if k not in drop}) for o in outs]


@pytest.mark.parametrize("text", ["STOP", "HELP", "INFO", "CODE ABCD1234", "GIFT 2", "hello"])
def test_a_redelivered_inbound_gives_the_same_events(db, router, text):
    ev = inbound(text)
    first = route(db, router, ev)
    again = route(db, Router(), ev)
    assert _stable(first) == _stable(again)


def test_a_redelivered_stop_leaves_one_opt_out_row(db, router):
    ev = inbound("STOP")
    route(db, router, ev)
    route(db, router, ev)
    with db.session() as s:
        rows = s.scalars(select(OptOut)).all()
    assert [(r.tenant_id, r.msisdn, r.opted_out, r.source_event_id) for r in rows] == [
        ("acme", BUYER, True, ev["message_id"])]


def test_a_batch_routes_in_one_session_with_stop_then_start_for_one_number(db, router):
    stop, start = inbound("STOP"), inbound("START")
    with db.session() as s:
        outs = router.route_batch(s, [stop, start])
    assert [o.value["opted_out"] for o in outs if o.topic == "optouts"] == [True, False]
    assert optout_row(db, "acme").opted_out is False


def test_lookups_are_cached_for_the_ttl(db):
    now = [0.0]
    router = Router(Directory(ttl=5.0, clock=lambda: now[0]))
    assert route(db, router, inbound("NEWS"))[0].value["attributes"] == {"kind": "unmatched"}
    with db.session() as s:
        add_keyword(s, "acme", "NEWS", "reply", reply_text="fresh news")
    now[0] = 4.0
    assert route(db, router, inbound("NEWS"))[0].value["attributes"] == {"kind": "unmatched"}
    now[0] = 5.5
    assert route(db, router, inbound("NEWS"))[0].value["text"] == "fresh news"
