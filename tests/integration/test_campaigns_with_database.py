"""The campaigns domain against a real migrated database (SQLite, and PostgreSQL when configured):
streaming expansion and its cursor, crash-and-resume by lease, promotions' rules, greetings once
a year, surveys and the routing of answers, inquiry, on-demand content, subscriptions, the live
report, and bad input changing nothing. No broker: the events a step returns are inspected."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.campaigns.domain import campaigns, contacts, conversations, subscriptions, surveys
from services.campaigns.domain import content as content_lib
from services.campaigns.domain import settings as tenant_settings
from services.campaigns.domain.expansion import Expander
from services.core.db import Database
from services.core.db.campaigns_models import (
    Campaign,
    CampaignInbound,
    CampaignRecipient,
    Segment,
    Subscriber,
    SurveySession,
)
from services.core.db.models import Contact, OptOut
from services.core.messages import record_accepted, transition
from services.core.tenancy import add_number, create_tenant

pytestmark = pytest.mark.integration

NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)  # a Monday, 18:00 in Shanghai
NUMBER = "10690001"


@pytest.fixture
def db(migrated_url):
    d = Database(migrated_url)
    with d.session() as s:
        create_tenant(s, "acme", "Acme", default_sender=NUMBER, optout_hint="Reply STOP to opt out")
        add_number(s, "acme", NUMBER)
    yield d
    d.dispose()


def add_contacts(db: Database, rows: list[dict], list_name: str | None = "all") -> None:
    with db.session() as s:
        created, _, _ = contacts.upsert(s, "acme", [contacts.validate(r) for r in rows])
        if list_name:
            contacts.add_members(s, contacts.get_or_create_list(s, "acme", list_name).id,
                                 [c.id for c in created])


def people(n: int, start: int = 0, **extra) -> list[dict]:
    return [{"msisdn": f"+86138000{i:05d}", "name": f"Person {i}", **extra} for i in range(start, start + n)]


def create(db: Database, body: dict, now: datetime = NOW) -> str:
    with db.session() as s:
        return campaigns.create(s, "acme", body, now=now).id


def run_to_end(ex: Expander, cid: str, now: datetime, limit: int = 100) -> list[dict]:
    ex.promote_due(now)
    sent: list[dict] = []
    for _ in range(1000):
        if cid not in ex.runnable(now):
            return sent
        step = ex.prepare(cid, now, limit)
        assert step is not None
        sent += [o.value for o in step.outs]
        assert ex.commit(step, now)
    raise AssertionError("campaign did not finish")


def inbound(text: str, sender: str, *, mid: str, keyword: str | None = None, to: str = NUMBER) -> dict:
    ev = {"event_id": mid, "event_type": "sms.inbound", "tenant_id": "acme", "message_id": mid,
          "carrier": "sim", "carrier_message_id": mid, "from": sender, "to": to, "text": text,
          "received_at": "2026-06-15T10:00:00Z"}
    if keyword:
        ev["keyword"] = keyword
    return ev


def talk(db: Database, ev: dict, now: datetime = NOW) -> str | None:
    with db.session() as s:
        outs = conversations.handle(s, ev, now)
    assert not isinstance(outs, conversations.NeedsEndpoint)
    return outs[0].value["text"] if outs else None


def uid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


# -- expansion -----------------------------------------------------------------------------------

def test_a_notification_streams_in_chunks_and_a_crashed_chunk_is_redone_with_the_same_ids(db):
    add_contacts(db, people(25, due_date="2026-07-01"))
    cid = create(db, {"name": "bills", "kind": "notification", "audience": {"list": "all"},
                      "template": "Hi {first_name}, your bill is due on {due_date}."})
    a = Expander(db.session, "worker-a", lease_s=10)
    a.promote_due(NOW)
    first = a.prepare(cid, NOW, 10)
    assert len(first.outs) == 10 and first.new_cursor > first.old_cursor
    assert first.outs[0].value["text"] == "Hi Person, your bill is due on 2026-07-01."
    assert first.outs[0].value["campaign_id"] == cid and first.outs[0].value["source"] == "campaigns"
    assert first.outs[0].value["category"] == "transactional"
    assert a.commit(first, NOW)
    second = a.prepare(cid, NOW, 10)
    # worker-a dies here: the second chunk was produced but never committed.
    b = Expander(db.session, "worker-b", lease_s=10)
    assert b.prepare(cid, NOW + timedelta(seconds=5), 10) is None  # a's lease still holds
    later = NOW + timedelta(seconds=11)
    redo = b.prepare(cid, later, 10)
    assert [o.value["message_id"] for o in redo.outs] == [o.value["message_id"] for o in second.outs]
    assert b.commit(redo, later)
    assert not a.commit(second, later)  # the dead worker's late commit changes nothing
    rest = run_to_end(b, cid, later, 10)
    assert len(rest) == 5
    with db.session() as s:
        rows = s.scalars(select(CampaignRecipient).where(CampaignRecipient.campaign_id == cid)).all()
        c = s.get(Campaign, cid)
    assert len(rows) == 25 and len({r.member_id for r in rows}) == 25
    assert c.status == "completed" and c.queued == 25 and c.expanded == 25


def test_a_contact_without_a_template_field_is_suppressed_with_the_reason(db):
    add_contacts(db, people(1, due_date="2026-07-01") + people(1, start=1))
    cid = create(db, {"name": "bills", "kind": "notification", "audience": "all",
                      "template": "Due {due_date}. {name|Customer}"})
    sent = run_to_end(Expander(db.session, "w"), cid, NOW)
    assert len(sent) == 1
    with db.session() as s:
        r = campaigns.report(s, "acme", cid)
    assert r["suppressed"] == 1 and r["detail"]["campaign_suppressed"] == {"no value for field due_date": 1}


def test_a_promotion_respects_optouts_quiet_hours_and_the_frequency_cap_and_carries_the_hint(db):
    add_contacts(db, [
        {"msisdn": "+8613800000001", "name": "Li", "timezone": "Asia/Shanghai"},  # 18:00 there
        {"msisdn": "+8613800000002", "name": "Wang", "timezone": "Asia/Shanghai"},  # opted out
        {"msisdn": "+12125550003", "name": "Bob", "timezone": "America/New_York"},  # 06:00 there
    ])
    with db.session() as s:
        s.add(OptOut(tenant_id="acme", msisdn="+8613800000002", opted_out=True, source_event_id="x",
                     updated_at=NOW))
        tenant_settings.update(s, "acme", {"quiet_hours": {"start": "21:00", "end": "08:00"},
                                           "frequency_cap": 1, "frequency_period": "week"})
    body = {"kind": "promotion", "audience": "all", "template": "{name}: 20% off today!"}
    cid = create(db, {"name": "sale", **body})
    ex = Expander(db.session, "w")
    sent = run_to_end(ex, cid, NOW)
    assert [(e["to"], e["text"], e["category"]) for e in sent] == [
        ("+8613800000001", "Li: 20% off today! Reply STOP to opt out", "marketing")]
    with db.session() as s:
        r = campaigns.report(s, "acme", cid)
        c = s.get(Campaign, cid)
    assert r["deferred"] == 1 and r["detail"]["campaign_suppressed"] == {"opted out": 1}
    assert c.status == "running" and c.next_run_at is not None  # asleep until New York's 08:00
    morning = NOW + timedelta(hours=2, minutes=1)
    later = run_to_end(ex, cid, morning)
    assert [e["to"] for e in later] == ["+12125550003"]
    with db.session() as s:
        assert s.get(Campaign, cid).status == "completed"
    # A second promotion the same week: everyone who got one is at the cap.
    cid2 = create(db, {"name": "sale 2", **body}, now=morning)
    assert run_to_end(ex, cid2, morning + timedelta(minutes=1)) == []
    with db.session() as s:
        r2 = campaigns.report(s, "acme", cid2)
    assert r2["detail"]["campaign_suppressed"] == {"frequency cap": 2, "opted out": 1}


def test_a_segment_selects_by_fields_and_tags(db):
    add_contacts(db, [
        {"msisdn": "+8613800000001", "city": "Shanghai", "tags": "vip;coffee"},
        {"msisdn": "+8613800000002", "city": "Beijing", "tags": "vip"},
        {"msisdn": "+8613800000003", "city": "Shanghai"},
    ])
    with db.session() as s:
        s.add(Segment(tenant_id="acme", name="sh-vip", filter={"all": [
            {"field": "city", "op": "eq", "value": "shanghai"}, {"tag": "VIP"}]}))
    cid = create(db, {"name": "n", "kind": "notification", "audience": {"segment": "sh-vip"},
                      "template": "Hello {city}"})
    sent = run_to_end(Expander(db.session, "w"), cid, NOW, limit=1)
    assert [e["to"] for e in sent] == ["+8613800000001"]


def test_a_birthday_greeting_goes_on_the_local_day_once_a_year(db):
    add_contacts(db, [
        {"msisdn": "+8613800000001", "name": "Li", "birthday": "1990-06-16", "timezone": "Asia/Tokyo"},
        {"msisdn": "+12125550002", "name": "Bob", "birthday": "06-16", "timezone": "America/New_York"},
    ])
    cid = create(db, {"name": "bday", "kind": "greeting", "audience": "all",
                      "template": "Happy birthday, {name}!",
                      "config": {"date_field": "birthday", "send_at": "09:00", "check_every_s": 60}})
    ex = Expander(db.session, "w")
    # 2026-06-16 00:30 UTC: already 09:30 on the 16th in Tokyo, still the 15th in New York.
    t1 = datetime(2026, 6, 16, 0, 30, tzinfo=UTC)
    ex.promote_due(t1)
    step = ex.prepare(cid, t1, 100)
    assert [o.value["to"] for o in step.outs] == ["+8613800000001"]
    assert step.outs[0].value["request_id"].endswith(":2026")
    ex.commit(step, t1)
    # Later that day both are due; Li was greeted already.
    t2 = datetime(2026, 6, 16, 14, 0, tzinfo=UTC)
    step = ex.prepare(cid, t2, 100)
    assert [o.value["to"] for o in step.outs] == ["+12125550002"]
    ex.commit(step, t2)
    step = ex.prepare(cid, t2 + timedelta(minutes=5), 100)
    assert step.outs == []
    with db.session() as s:
        assert s.get(Campaign, cid).status == "running"  # recurring: next year again


def test_bad_campaigns_are_refused_with_the_reason_and_nothing_is_stored(db):
    add_contacts(db, people(2))
    cases = [
        ({"name": "x", "kind": "notification", "audience": "all", "template": "Hi {nmae}"},
         "unknown field(s) {nmae}"),
        ({"name": "x", "kind": "notification", "audience": "all", "template": "Hi",
          "schedule_at": "2020-01-01T00:00:00Z"}, "in the past"),
        ({"name": "x", "kind": "notification", "audience": {"list": "nope"}, "template": "Hi"},
         "no list named"),
        ({"name": "x", "kind": "inquiry", "config": {"keyword": "STOP"}}, "reserved"),
        ({"name": "x", "kind": "survey", "audience": "all", "config": {"questions": [
            {"key": "a", "text": "?", "type": "choice", "choices": ["x", "y"], "branches": {"z": "a"}}]}},
         "not a choice"),
    ]
    for body, reason in cases:
        with pytest.raises(campaigns.CampaignError, match=reason.replace("(", r"\(").replace(")", r"\)")
                           .replace("{", r"\{").replace("}", r"\}")):
            create(db, body)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Campaign)) == 0


def test_pause_resume_and_cancel(db):
    add_contacts(db, people(30))
    cid = create(db, {"name": "n", "kind": "notification", "audience": "all", "template": "Hi"})
    ex = Expander(db.session, "w")
    ex.promote_due(NOW)
    ex.commit(ex.prepare(cid, NOW, 10), NOW)
    with db.session() as s:
        campaigns.act(s, "acme", cid, "pause")
    assert cid not in ex.runnable(NOW) and ex.prepare(cid, NOW, 10) is None
    with db.session() as s:
        campaigns.act(s, "acme", cid, "resume")
    ex.commit(ex.prepare(cid, NOW, 10), NOW)
    with db.session() as s:
        campaigns.act(s, "acme", cid, "cancel")
        with pytest.raises(campaigns.CampaignError, match="already cancelled"):
            campaigns.act(s, "acme", cid, "cancel")
    assert ex.prepare(cid, NOW, 10) is None
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(CampaignRecipient)) == 20


def test_the_report_counts_what_egress_recorded_for_each_message(db):
    add_contacts(db, people(3))
    cid = create(db, {"name": "n", "kind": "notification", "audience": "all", "template": "Hi"})
    sent = run_to_end(Expander(db.session, "w"), cid, NOW)
    with db.session() as s:
        msgs = [record_accepted(s, e)[0] for e in sent[:2]]
        transition(s, msgs[0], "sent")
        transition(s, msgs[0], "delivered")
        transition(s, msgs[1], "suppressed")
    with db.session() as s:
        r = campaigns.report(s, "acme", cid)
    assert (r["queued"], r["sent"], r["delivered"], r["suppressed"], r["failed"]) == (3, 1, 1, 1, 0)
    assert r["detail"]["messages"]["pending"] == 1


# -- contacts ------------------------------------------------------------------------------------

def test_a_csv_with_broken_rows_imports_the_good_ones_and_reports_the_rest(db):
    data = ("msisdn,name,birthday,city,timezone\n"
            "+8613800000001,Li,1990-01-02,Shanghai,Asia/Shanghai\n"
            "12345,Bad Number,,,\n"
            "+8613800000003,Wang,1990-13-40,Beijing,\n"
            "+8613800000004,Zhao,,Beijing\n"
            "+8613800000005,Qian,,Beijing,Mars/Base\n"
            "+8613800000006,\"Sun, Jr\",02-29,Hangzhou,\n")
    report = contacts.import_csv(db.session, "acme", io.StringIO(data), list_name="imported")
    assert (report.rows, report.created, report.rejected) == (6, 2, 4)
    reasons = {r["line"]: r["reason"] for r in report.rejects}
    assert "E.164" in reasons[3] and "YYYY-MM-DD" in reasons[4]
    assert "expected 5 columns, found 4" in reasons[5] and "Mars/Base" in reasons[6]
    with db.session() as s:
        assert sorted(s.scalars(select(Contact.msisdn))) == ["+8613800000001", "+8613800000006"]
        assert contacts.known_fields(s, "acme") == {"birthday", "city"}
    # atomic: one bad row and nothing at all is written
    report = contacts.import_csv(db.session, "acme", io.StringIO(
        "msisdn,name\n+8613800000007,A\nnope,B\n"), atomic=True)
    assert not report.written and report.rejected == 1
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 2


def test_a_csv_without_a_number_column_is_refused_whole(db):
    with pytest.raises(contacts.CsvError, match="no phone number column"):
        contacts.import_csv(db.session, "acme", io.StringIO("name,city\nLi,Shanghai\n"))


# -- conversations -------------------------------------------------------------------------------

SURVEY = {"questions": [
    {"key": "q1", "text": "Did you enjoy your visit?", "type": "choice", "choices": ["Yes", "No"],
     "branches": {"No": "q3"}},
    {"key": "q2", "text": "How many cups a week?", "type": "number", "min": 0, "max": 50},
    {"key": "q3", "text": "What should we improve?", "type": "text"},
], "thanks": "Thanks!"}


def test_a_survey_validates_branches_and_routes_answers_to_the_latest_session_on_the_number(db):
    alice = "+8613800000001"
    add_contacts(db, [{"msisdn": alice, "name": "Alice"}])
    s1 = create(db, {"name": "visit", "kind": "survey", "audience": "all", "config": SURVEY})
    ex = Expander(db.session, "w")
    sent = run_to_end(ex, s1, NOW)
    assert sent[0]["text"] == "Did you enjoy your visit? Reply 1) Yes 2) No"
    assert talk(db, inbound("maybe", alice, mid=uid(1))) == \
        "Please answer with a number from 1 to 2. Did you enjoy your visit? Reply 1) Yes 2) No"
    assert talk(db, inbound("1", alice, mid=uid(2))) == "How many cups a week?"
    # A second survey starts later, from another number: its question is the latest asked there.
    s2 = create(db, {"name": "club", "kind": "survey", "audience": "all", "sender": "10690002",
                     "config": {"questions": [{"key": "join", "text": "Join our club?", "type": "choice",
                                               "choices": ["Yes", "No"]}]}})
    later = NOW + timedelta(minutes=5)
    run_to_end(ex, s2, later)
    assert talk(db, inbound("yes", alice, mid=uid(3), to="10690002"), later) == "Thank you for taking part!"
    assert talk(db, inbound("99", alice, mid=uid(4)), later) == \
        "Please answer with a number from 0 to 50. How many cups a week?"
    assert talk(db, inbound("3", alice, mid=uid(5)), later) == "What should we improve?"
    assert talk(db, inbound("More cake", alice, mid=uid(6)), later) == "Thanks!"
    # A redelivered answer replays its reply and changes nothing.
    assert talk(db, inbound("3", alice, mid=uid(5)), later) == "What should we improve?"
    with db.session() as s:
        res = surveys.results(s, s1)
        csv_text = "".join(surveys.export_csv(s, s1))
        club = surveys.results(s, s2)
    assert res["sessions"]["completed"] == 1
    assert [q.get("counts") or q.get("mean") or q.get("latest") for q in res["questions"]] == [
        {"Yes": 1, "No": 0}, 3, ["More cake"]]
    assert club["questions"][0]["counts"] == {"Yes": 1, "No": 0}
    assert csv_text.splitlines() == ["msisdn,status,started_at,completed_at,q1,q2,q3",
                                     csv_text.splitlines()[1]]
    assert csv_text.splitlines()[1].startswith(f"{alice},completed,") and \
        csv_text.splitlines()[1].endswith(",Yes,3,More cake")


def test_a_survey_reminds_once_when_unanswered(db):
    add_contacts(db, [{"msisdn": "+8613800000001"}])
    cid = create(db, {"name": "v", "kind": "survey", "audience": "all",
                      "config": {**SURVEY, "reminder_after_s": 3600}})
    run_to_end(Expander(db.session, "w"), cid, NOW)
    with db.session() as s:
        assert surveys.reminders_due(s, NOW + timedelta(minutes=30)) == []
        due = surveys.reminders_due(s, NOW + timedelta(hours=2))
    assert len(due) == 1 and due[0][1].value["text"].startswith("Reminder: Did you enjoy")
    with db.session() as s:
        surveys.mark_reminded(s, [due[0][0]], NOW + timedelta(hours=2))
    with db.session() as s:
        assert surveys.reminders_due(s, NOW + timedelta(hours=3)) == []


def test_inquiry_from_a_table_on_demand_content_and_an_unknown_keyword(db):
    bob = "+8613800000009"
    order = create(db, {"name": "orders", "kind": "inquiry", "config": {
        "keyword": "order", "reply": "Order {key}: {status}, arriving {eta}.",
        "not_found": "No order {argument}."}})
    with db.session() as s:
        from services.campaigns.domain import inquiry
        result = inquiry.load_table(s, s.get(Campaign, order), io.StringIO(
            "order,status,eta\n12345,shipped,Friday\n12345,lost,never\n777,packed\n"))
    assert result["loaded"] == 1 and result["rejected"] == 2
    assert talk(db, inbound("ORDER 12345", bob, mid=uid(1), keyword="ORDER")) == \
        "Order 12345: shipped, arriving Friday."
    assert talk(db, inbound("order 999", bob, mid=uid(2))) == "No order 999."
    create(db, {"name": "prices", "kind": "on_demand", "config": {"keyword": "PRICE", "content": "prices"}})
    assert "nothing to send for PRICE" in talk(db, inbound("price", bob, mid=uid(3)))
    with db.session() as s:
        content_lib.put(s, "acme", "prices", {"body": "Latte 30, Mocha 32"})
        content_lib.put(s, "acme", "prices", {"body": "Today only: Latte 25", "for_date": "2026-06-15"})
    assert talk(db, inbound("PRICE", bob, mid=uid(4))) == "Today only: Latte 25"
    assert talk(db, inbound("PRICE", bob, mid=uid(5)), NOW + timedelta(days=1)) == "Latte 30, Mocha 32"
    reply = talk(db, inbound("FOO bar", bob, mid=uid(6)))
    assert reply == 'Sorry, we did not recognise "FOO". Text one of: ORDER, PRICE. Text HELP for help.'
    with db.session() as s:
        assert s.get(CampaignInbound, uid(6)).kind == "unknown"


def test_sub_and_unsub_and_a_cron_schedule_sends_content_to_subscribers(db):
    with db.session() as s:
        topic = subscriptions.create_topic(s, "acme", {"name": "news"})
        content_lib.put(s, "acme", "daily-news", {"body": "Today: {big} news"})
        sched = subscriptions.add_schedule(s, topic, {"cron": "0 8 * * *", "timezone": "Asia/Shanghai",
                                                      "content": "daily-news"}, NOW)
        assert sched.next_run_at.replace(tzinfo=UTC) == datetime(2026, 6, 16, 0, 0, tzinfo=UTC)
    a, b = "+8613800000001", "+8613800000002"
    assert talk(db, inbound("SUB NEWS", a, mid=uid(1))) == "You are subscribed to NEWS. Text UNSUB NEWS to stop."
    assert talk(db, inbound("sub news", b, mid=uid(2))).startswith("You are subscribed")
    assert talk(db, inbound("SUB SPORTS", b, mid=uid(3))) == "There is no topic SPORTS. Topics: NEWS."
    assert talk(db, inbound("UNSUB NEWS", b, mid=uid(4))) == "You left NEWS."
    fire = datetime(2026, 6, 16, 0, 0, 30, tzinfo=UTC)
    with db.session() as s:
        assert subscriptions.fire_due(s, NOW) == []
        (cid,) = subscriptions.fire_due(s, fire)
        assert subscriptions.fire_due(s, fire) == []  # the next one is tomorrow
    sent = run_to_end(Expander(db.session, "w"), cid, fire)
    assert [(e["to"], e["text"]) for e in sent] == [(a, "Today: {big} news\nText UNSUB NEWS to stop.")]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Subscriber).where(Subscriber.active.is_(True))) == 1


def test_a_survey_started_by_keyword_opens_a_session_on_that_number(db):
    create(db, {"name": "v", "kind": "survey", "config": {**SURVEY, "keyword": "VISIT"}})
    assert talk(db, inbound("visit", "+8613800000001", mid=uid(1))).startswith("Did you enjoy")
    with db.session() as s:
        (x,) = s.scalars(select(SurveySession)).all()
    assert x.number == NUMBER and x.status == "open"
