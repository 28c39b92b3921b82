"""Level-1 services end to end: every processor its own process over the real broker and a
migrated database, driven from outside through the campaigns admin API and carrier MO webhooks,
observed at the carrier simulator (and on the topics).

One platform (simulator, ingress, router, egress, campaigns) serves the module; each test has its
own tenant and sender number, so tests do not see each other's contacts, settings or texts.
The crash-and-resume test has a stack of its own (tests/e2e/test_campaigns_crash.py).
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import update

from services.core.db import Database
from services.core.db.campaigns_models import SubscriptionSchedule
from services.core.db.migrate import upgrade
from services.core.tenancy import add_number
from services.core.topics import ensure_topics
from tests.conftest import POSTGRES_URL
from tests.conftest import _fresh_url as fresh_url
from tests.support.infra import Stack, wait_until
from tests.support.platform import start_platform
from tests.support.seed import seed_tenant

pytestmark = pytest.mark.e2e
CATCH_ALL = ("", "campaigns", {"pattern": ".*", "priority": 1000})


class Tenant:
    def __init__(self, env: Env, tenant_id: str, number: str, key: str) -> None:
        self.env, self.id, self.number, self.key = env, tenant_id, number, key
        self.api = env.platform.admin(key)
        self._mo = 0

    def mo(self, sender: str, text: str, to: str | None = None) -> None:
        self._mo += 1
        r = self.env.platform.mo(f"{self.id}-mo-{self._mo}", sender, to or self.number, text)
        assert r.status_code == 200, r.text

    def texts_to(self, msisdn: str) -> list[str]:
        return [s["text"] for s in self.env.platform.submissions(to=msisdn)]

    def wait_texts(self, msisdn: str, n: int, timeout: float = 60) -> list[str]:
        return wait_until(lambda: (t := self.texts_to(msisdn)) and len(t) >= n and t, timeout, 0.25,
                          f"{n} text(s) to {msisdn}")

    def wait_text(self, msisdn: str, text: str, timeout: float = 60) -> None:
        wait_until(lambda: text in self.texts_to(msisdn), timeout, 0.25, f"{text!r} to {msisdn}")

    def report(self, cid: str) -> dict:
        r = self.api.get(f"/v1/campaigns/{cid}/report")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_report(self, cid: str, check, timeout: float = 60) -> dict:
        return wait_until(lambda: (r := self.report(cid)) and check(r) and r, timeout, 0.3,
                          f"report of {cid}")

    def campaign(self, **body) -> str:
        r = self.api.post("/v1/campaigns", json=body)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def import_csv(self, text: str, **params) -> httpx.Response:
        return self.api.post("/v1/contacts/import", params=params, content=text.encode(),
                             headers={"Content-Type": "text/csv"})


class Env:
    def __init__(self, stack: Stack, platform, campaigns) -> None:
        self.stack, self.platform, self.campaigns = stack, platform, campaigns
        self._n = 0

    def tenant(self, tenant_id: str, keywords: list[tuple] = (CATCH_ALL,)) -> Tenant:
        self._n += 1
        number = f"1069{self._n:04d}"
        key = seed_tenant(self.stack, tenant_id, number=number, keywords=list(keywords))
        return Tenant(self, tenant_id, number, key)


@pytest.fixture(scope="module")
def env(broker, tmp_path_factory):
    # Like the ``stack`` fixture (same database choice), but shared by the module's tests.
    url = os.environ.get("HERALD_TEST_STACK_DB") or \
        f"sqlite:///{tmp_path_factory.mktemp('campaigns-db') / 'herald.db'}"
    if url == POSTGRES_URL:
        url = fresh_url("postgresql", tmp_path_factory)
    upgrade(url)
    stack = Stack(broker.bootstrap, url)
    ensure_topics(stack.settings(topic_partitions=3))
    try:
        platform = start_platform(stack, tmp_path_factory.mktemp("campaigns-platform"))
        campaigns = stack.start("services.campaigns", HERALD_CAMPAIGNS_TICK_S="0.2")
        e = Env(stack, platform, campaigns)
        yield e
        assert all(p.alive() for p in [*platform.processors, campaigns]), "a processor died"
    finally:
        stack.stop_all()


# -- notification ---------------------------------------------------------------------------------

def test_a_notification_reaches_each_imported_contact_with_their_own_fields(env):
    t = env.tenant("notify")
    csv_text = ("msisdn,name,due_date,amount\n"
                "+8613900000001,Li Lei,2026-07-01,120\n"
                "+8613900000002,Han Meimei,2026-07-02,80\n"
                "not-a-number,Nobody,2026-07-03,1\n"
                "+8613900000004,Bad Date,2026-02-30,5\n"
                "+8613900000005,Short Row\n")
    r = t.import_csv(csv_text, list="customers")
    assert r.status_code == 200, r.text
    rep = r.json()
    assert (rep["created"], rep["rejected"]) == (2, 3)
    assert [x["line"] for x in rep["rejected_rows"]] == [4, 5, 6]
    assert "E.164" in rep["rejected_rows"][0]["reason"]

    # Bad campaigns: a clear 4xx each, and no campaign exists afterwards.
    bad = t.api.post("/v1/campaigns", json={"name": "bill", "kind": "notification",
                                            "audience": {"list": "customers"},
                                            "template": "Dear {name}, pay {amout} by {due_date}"})
    assert bad.status_code == 400 and "{amout}" in bad.json()["error"]
    past = t.api.post("/v1/campaigns", json={"name": "bill", "kind": "notification",
                                             "audience": {"list": "customers"}, "template": "Hi",
                                             "schedule_at": "2020-01-01T08:00:00Z"})
    assert past.status_code == 400 and "in the past" in past.json()["error"]
    assert t.api.get("/v1/campaigns").json()["campaigns"] == []

    cid = t.campaign(name="bill", kind="notification", audience={"list": "customers"},
                     template="Dear {name}, please pay {amount} yuan by {due_date}.")
    assert t.wait_texts("+8613900000001", 1) == ["Dear Li Lei, please pay 120 yuan by 2026-07-01."]
    assert t.wait_texts("+8613900000002", 1) == ["Dear Han Meimei, please pay 80 yuan by 2026-07-02."]
    rep = t.wait_report(cid, lambda r: r["sent"] == 2 and r["status"] == "completed")
    assert (rep["queued"], rep["failed"], rep["suppressed"]) == (2, 0, 0)


def test_a_scheduled_campaign_waits_for_its_time_and_can_be_paused_resumed_and_cancelled(env):
    t = env.tenant("schedule")
    hana = "+8613200000001"
    assert t.api.post("/v1/contacts", json={"list": "l", "contacts": [{"msisdn": hana}]}).status_code == 201
    at = datetime.now(UTC) + timedelta(seconds=3)
    cid = t.campaign(name="later", kind="notification", audience={"list": "l"},
                     template="Your table is ready.", schedule_at=at.isoformat())
    assert t.api.get(f"/v1/campaigns/{cid}").json()["status"] == "scheduled"
    assert t.api.post(f"/v1/campaigns/{cid}/pause").json()["status"] == "paused"
    again = t.api.post(f"/v1/campaigns/{cid}/pause")
    assert again.status_code == 409 and "paused" in again.json()["error"]
    # Past its time while paused (the engine looks every 0.2 s): nothing goes.
    wait_until(lambda: datetime.now(UTC) > at + timedelta(seconds=1.5), 10, 0.1, "the schedule passed")
    assert t.texts_to(hana) == [] and t.report(cid)["queued"] == 0
    assert t.api.post(f"/v1/campaigns/{cid}/resume").json()["status"] == "scheduled"
    assert t.wait_texts(hana, 1) == ["Your table is ready."]
    (sub,) = t.env.platform.submissions(to=hana)
    assert datetime.fromisoformat(sub["received_at"].replace("Z", "+00:00")) >= at

    never = t.campaign(name="never", kind="notification", audience={"list": "l"}, template="Never",
                       schedule_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    assert t.api.post(f"/v1/campaigns/{never}/cancel").json()["status"] == "cancelled"
    assert t.api.post(f"/v1/campaigns/{never}/cancel").status_code == 409
    assert t.api.post(f"/v1/campaigns/{never}/resume").status_code == 409
    assert t.api.post(f"/v1/campaigns/{never}/explode").status_code == 404
    assert t.api.get("/v1/campaigns/nope/report").status_code == 404
    assert httpx.get(f"{env.platform.console.url}/v1/campaigns", timeout=5).status_code == 401


# -- promotion ------------------------------------------------------------------------------------

def test_a_promotion_skips_opted_out_waits_out_quiet_hours_caps_frequency_and_carries_the_hint(env):
    t = env.tenant("promo")
    now = datetime.now(UTC)
    # Quiet hours are the two hours around now in UTC: a UTC contact is inside them, a contact in
    # Kolkata (UTC+05:30) is not.
    quiet = {"start": (now - timedelta(hours=1)).strftime("%H:%M"),
             "end": (now + timedelta(hours=1)).strftime("%H:%M")}
    assert t.api.put("/v1/settings", json={"quiet_hours": quiet, "frequency_cap": 1,
                                           "frequency_period": "week"}).status_code == 200
    awake, asleep, quitter = "+919800000001", "+447700900002", "+919800000003"
    r = t.api.post("/v1/contacts", json={"list": "fans", "contacts": [
        {"msisdn": awake, "name": "Asha", "timezone": "Asia/Kolkata"},
        {"msisdn": asleep, "name": "Sam", "timezone": "UTC"},
        {"msisdn": quitter, "name": "Ravi", "timezone": "Asia/Kolkata"}]})
    assert r.status_code == 201, r.text
    t.mo(quitter, "STOP")
    t.wait_texts(quitter, 1)  # the opt-out confirmation

    body = {"kind": "promotion", "audience": {"list": "fans"}, "template": "{name}, 2 for 1 on lattes today!"}
    cid = t.campaign(name="latte", **body)
    assert t.wait_texts(awake, 1) == ["Asha, 2 for 1 on lattes today! Reply STOP to opt out"]
    rep = t.wait_report(cid, lambda r: r["sent"] == 1 and r["deferred"] == 1)
    assert rep["status"] == "running"  # waiting for the quiet hours to end in the UTC contact's zone
    assert rep["detail"]["campaign_suppressed"] == {"opted out": 1}
    assert t.texts_to(asleep) == [] and len(t.texts_to(quitter)) == 1

    cid2 = t.campaign(name="latte again", **body)
    rep2 = t.wait_report(cid2, lambda r: r["suppressed"] == 2 and r["deferred"] == 1)
    assert rep2["detail"]["campaign_suppressed"] == {"frequency cap": 1, "opted out": 1}
    assert len(t.texts_to(awake)) == 1


# -- survey ---------------------------------------------------------------------------------------

VISIT = {"questions": [
    {"key": "enjoy", "text": "Did you enjoy your visit?", "type": "choice", "choices": ["Yes", "No"],
     "branches": {"No": "improve"}},
    {"key": "cups", "text": "How many cups a week?", "type": "number", "min": 0, "max": 50},
    {"key": "improve", "text": "What should we improve?", "type": "text"}],
    "thanks": "Thank you!"}


def test_a_survey_run_by_a_contact_through_the_simulator(env):
    t = env.tenant("survey")
    other_number = "10699901"
    db = Database(env.stack.database_url)
    with db.session() as s:
        add_number(s, "survey", other_number)
    db.dispose()
    alice, bob = "+8613700000001", "+8613700000002"
    assert t.api.post("/v1/contacts", json={"list": "guests", "contacts": [
        {"msisdn": alice, "name": "Alice"}, {"msisdn": bob, "name": "Bob"}]}).status_code == 201
    visit = t.campaign(name="visit", kind="survey", audience={"list": "guests"}, config=VISIT)
    assert t.wait_texts(alice, 1) == ["Did you enjoy your visit? Reply 1) Yes 2) No"]

    t.mo(alice, "maybe")
    assert t.wait_texts(alice, 2)[1] == "Please answer with a number from 1 to 2. " \
                                        "Did you enjoy your visit? Reply 1) Yes 2) No"
    t.mo(alice, "1")
    assert t.wait_texts(alice, 3)[2] == "How many cups a week?"

    # Alice is now in a second survey, asked from the other number.
    club = t.campaign(name="club", kind="survey", audience={"list": "guests"}, sender=other_number,
                      config={"questions": [{"key": "join", "text": "Join our member club?",
                                             "type": "choice", "choices": ["Yes", "No"]}]})
    assert t.wait_texts(alice, 4)[3] == "Join our member club? Reply 1) Yes 2) No"
    t.mo(alice, "2", to=other_number)  # answers the club survey
    assert t.wait_texts(alice, 5)[4] == "Thank you for taking part!"
    t.mo(alice, "4")  # answers the visit survey, on its number
    assert t.wait_texts(alice, 6)[5] == "What should we improve?"
    t.mo(alice, "More seats by the window")
    assert t.wait_texts(alice, 7)[6] == "Thank you!"
    t.mo(bob, "No")  # Bob branches straight to the last question
    t.wait_text(bob, "What should we improve?")
    t.mo(bob, "Faster service")
    t.wait_text(bob, "Thank you!")

    res = t.api.get(f"/v1/campaigns/{visit}/results").json()
    assert res["sessions"]["completed"] == 2
    by_key = {q["key"]: q for q in res["questions"]}
    assert by_key["enjoy"]["counts"] == {"Yes": 1, "No": 1}
    assert (by_key["cups"]["answers"], by_key["cups"]["mean"]) == (1, 4)
    assert sorted(by_key["improve"]["latest"]) == ["Faster service", "More seats by the window"]
    assert t.api.get(f"/v1/campaigns/{club}/results").json()["questions"][0]["counts"] == {"Yes": 0, "No": 1}
    exported = list(csv.reader(io.StringIO(t.api.get(f"/v1/campaigns/{visit}/results.csv").text)))
    assert exported[0] == ["msisdn", "status", "started_at", "completed_at", "enjoy", "cups", "improve"]
    rows = {r[0]: r for r in exported[1:]}
    assert rows[alice][4:] == ["Yes", "4", "More seats by the window"]
    assert rows[bob][4:] == ["No", "", "Faster service"]
    assert t.report(visit)["replies"] == 6


# -- inquiry, on-demand, subscription -------------------------------------------------------------

class Balance(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = json.dumps({"reply": f"Balance of {body['from']}: 42 points"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def test_inquiry_answers_from_a_table_and_from_the_tenants_endpoint_with_a_polite_fallback(env):
    t = env.tenant("inquiry")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Balance)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/balance"
        assert t.api.put("/v1/endpoints/erp", json={"url": url, "timeout_s": 1,
                                                    "retries": 1}).status_code == 200
        t.campaign(name="balance", kind="inquiry", config={
            "keyword": "BAL", "source": "endpoint", "endpoint": "erp",
            "fallback": "Sorry, balances are unavailable right now. Please try later."})
        orders = t.campaign(name="orders", kind="inquiry", config={
            "keyword": "ORDER", "reply": "Order {key}: {status}.", "not_found": "No order {argument}."})
        up = t.api.put(f"/v1/campaigns/{orders}/table", content=b"order,status\n12345,shipped\n777,packed\n")
        assert up.json()["loaded"] == 2, up.text
        bad = t.api.put(f"/v1/campaigns/{orders}/table", content=b"order,state\n1,x\n")
        assert bad.status_code == 400 and "status" in bad.json()["error"]

        carol = "+8613600000001"
        t.mo(carol, "ORDER 12345")
        assert t.wait_texts(carol, 1) == ["Order 12345: shipped."]  # the bad upload changed nothing
        t.mo(carol, "order 9")
        assert t.wait_texts(carol, 2)[1] == "No order 9."
        t.mo(carol, "BAL")
        assert t.wait_texts(carol, 3)[2] == f"Balance of {carol}: 42 points"
    finally:
        server.shutdown()
        server.server_close()
    t.mo(carol, "BAL")  # the endpoint is gone: retried, then the fallback
    assert t.wait_texts(carol, 4)[3] == "Sorry, balances are unavailable right now. Please try later."


def test_on_demand_content_subscriptions_on_a_cron_schedule_and_an_unknown_keyword(env):
    t = env.tenant("content")
    assert t.api.put("/v1/content/prices", json={"body": "Latte 30, Mocha 32"}).status_code == 200
    t.campaign(name="prices", kind="on_demand", config={"keyword": "PRICE", "content": "prices"})
    assert t.api.post("/v1/topics", json={"name": "weather"}).status_code == 201
    assert t.api.put("/v1/content/forecast", json={"body": "Sunny, 25C"}).status_code == 200
    sch = t.api.post("/v1/topics/WEATHER/schedules",
                     json={"cron": "0 7 * * mon-fri", "timezone": "Asia/Shanghai", "content": "forecast"})
    assert sch.status_code == 201, sch.text
    bad = t.api.post("/v1/topics/WEATHER/schedules", json={"cron": "0 25 * * *", "content": "forecast"})
    assert bad.status_code == 400 and "hour" in bad.json()["error"]

    dan, eve = "+8613500000001", "+8613500000002"
    t.mo(dan, "price")
    assert t.wait_texts(dan, 1) == ["Latte 30, Mocha 32"]
    t.mo(dan, "SUB WEATHER")
    assert t.wait_texts(dan, 2)[1] == "You are subscribed to WEATHER. Text UNSUB WEATHER to stop."
    t.mo(eve, "SUB weather")
    t.wait_texts(eve, 1)
    t.mo(eve, "UNSUB WEATHER")
    assert t.wait_texts(eve, 2)[1] == "You left WEATHER."
    t.mo(eve, "FOO")
    assert t.wait_texts(eve, 3)[2] == \
        'Sorry, we did not recognise "FOO". Text one of: PRICE, SUB <topic>. Text HELP for help.'
    assert t.api.get("/v1/topics/WEATHER/subscribers").json()["subscribers"] == [dan]

    # Bring the next 07:00 firing forward to now rather than wait for it.
    db = Database(env.stack.database_url)
    with db.session() as s:
        s.execute(update(SubscriptionSchedule).where(SubscriptionSchedule.tenant_id == "content")
                  .values(next_run_at=datetime.now(UTC) - timedelta(seconds=1)))
    db.dispose()
    assert t.wait_texts(dan, 3)[2] == "Sunny, 25C\nText UNSUB WEATHER to stop."
    (s1,) = t.api.get("/v1/topics/WEATHER/schedules").json()["schedules"]
    nxt = datetime.fromisoformat(s1["next_run_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
    assert (nxt.hour, nxt.minute) == (7, 0) and nxt.isoweekday() <= 5
    assert t.texts_to(eve)[3:] == []


# -- greeting -------------------------------------------------------------------------------------

def test_a_birthday_greeting_goes_once_on_the_contacts_own_day(env):
    t = env.tenant("greet")
    now = datetime.now(UTC)
    tz_today, tz_tomorrow = "Pacific/Kiritimati", "Pacific/Pago_Pago"  # UTC+14 and UTC-11
    today_there = now.astimezone(ZoneInfo(tz_today)).date()
    day_there = now.astimezone(ZoneInfo(tz_tomorrow)).date()
    fay, gus = "+8613400000001", "+8613400000002"
    assert t.api.post("/v1/contacts", json={"contacts": [
        {"msisdn": fay, "name": "Fay", "timezone": tz_today, "birthday": f"1990-{today_there:%m-%d}"},
        # Gus's birthday is the day after his own today: not yet.
        {"msisdn": gus, "name": "Gus", "timezone": tz_tomorrow,
         "birthday": f"{(day_there + timedelta(days=1)):%m-%d}"}]}).status_code == 201
    cid = t.campaign(name="birthdays", kind="greeting", audience="all",
                     template="Happy birthday, {name}! A free coffee awaits you.",
                     config={"date_field": "birthday", "send_at": "00:00", "check_every_s": 1})
    assert t.wait_texts(fay, 1) == ["Happy birthday, Fay! A free coffee awaits you. Reply STOP to opt out"]
    t.wait_report(cid, lambda r: r["passes"] >= 3)  # three more passes over everyone
    assert len(t.texts_to(fay)) == 1 and t.texts_to(gus) == []
    assert t.report(cid)["status"] == "running"
