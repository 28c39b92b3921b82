"""The campaigns domain's pure parts: templates, the cron parser, quiet hours and frequency
periods, greetings' dates, survey definitions and answers, segment filters, contact validation
and CSV rows, the send-rate bucket, and the inquiry endpoint client's retries and fallback."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.campaigns.domain import audience, contacts, cron, greetings, inquiry, policy, surveys, templates
from services.campaigns.engine import TokenBucket

# -- templates -----------------------------------------------------------------------------------


def test_a_template_renders_fields_fallbacks_and_literal_braces():
    t = templates.parse("Hi {name|friend}, {{code}} {amount} due {due_date}")
    assert t.fields == {"name", "amount", "due_date"}
    assert t.render({"amount": 12, "due_date": "7/1"}) == "Hi friend, {code} 12 due 7/1"


def test_a_template_without_a_value_for_a_field_raises_missing_field():
    with pytest.raises(templates.MissingField) as exc:
        templates.parse("Due {due_date}").render({})
    assert exc.value.name == "due_date"


@pytest.mark.parametrize("source,reason", [
    ("", "empty"), ("Hi {name", "unmatched '{'"), ("Hi name}", "unmatched '}'"),
    ("{a.b}", "not a field name"), ("{0}", "not a field name"), ("x" * 1601, "at most 1600"),
])
def test_a_broken_template_is_refused_with_the_reason(source, reason):
    with pytest.raises(templates.TemplateError, match=reason):
        templates.parse(source)


def test_an_unknown_field_is_named_with_the_known_ones():
    with pytest.raises(templates.TemplateError, match=r"unknown field\(s\) \{amout\}; known fields: .*amount"):
        templates.check_fields(templates.parse("{name} {amout}"), {"amount"})


# -- cron ----------------------------------------------------------------------------------------


def test_cron_fields_take_lists_ranges_steps_and_names():
    c = cron.parse("*/15 8-10 * JAN,jul mon-fri")
    assert c.minutes == {0, 15, 30, 45} and c.hours == {8, 9, 10} and c.months == {1, 7}
    assert c.weekdays == {1, 2, 3, 4, 5}
    assert cron.parse("0 0 * * 7").weekdays == {0}


def test_cron_next_firing_is_in_the_schedules_time_zone():
    c = cron.parse("0 8 * * *")
    after = datetime(2026, 6, 15, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai
    assert c.next_after(after, "Asia/Shanghai") == datetime(2026, 6, 16, 0, 0, tzinfo=UTC)
    assert c.next_after(after) == datetime(2026, 6, 15, 8, 0, tzinfo=UTC)


def test_cron_day_of_month_or_weekday_fires_on_either_when_both_are_set():
    c = cron.parse("0 12 13 * fri")
    d = c.next_after(datetime(2026, 3, 1, tzinfo=UTC))
    assert d == datetime(2026, 3, 6, 12, 0, tzinfo=UTC)  # the first Friday comes before the 13th


def test_cron_finds_29_february_years_ahead():
    assert cron.parse("0 0 29 2 *").next_after(datetime(2026, 3, 1, tzinfo=UTC)).year == 2028


def test_cron_across_a_dst_jump_never_goes_back_in_time():
    # 02:30 does not exist on 8 March 2026 in New York.
    after = datetime(2026, 3, 8, 6, 0, tzinfo=UTC)  # 01:00 EST
    nxt = cron.parse("30 2 * * *").next_after(after, "America/New_York")
    assert nxt > after


@pytest.mark.parametrize("expr,reason", [
    ("* * * *", "expected 5 fields"), ("60 * * * *", "minute: 60 is outside 0-59"),
    ("0 25 * * *", "hour: 25"), ("0 0 31 2 *", "never fires"), ("*/0 * * * *", "step"),
    ("5-1 * * * *", "backwards"), ("0 0 * FOO *", "not a number"), ("1,,2 * * * *", "empty"),
])
def test_a_bad_cron_is_refused_with_the_field_and_reason(expr, reason):
    with pytest.raises(cron.CronError, match=reason):
        cron.parse(expr)


@settings(max_examples=60, deadline=None)
@given(minute=st.sampled_from(["*", "0", "*/7", "5-20/5", "59"]),
       hour=st.sampled_from(["*", "0", "9-17", "*/6", "23"]),
       dom=st.sampled_from(["*", "1", "15", "28-31"]),
       month=st.sampled_from(["*", "2", "6-8", "*/3"]),
       dow=st.sampled_from(["*", "0", "1-5", "6,0"]),
       start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2030, 1, 1)))
def test_cron_next_fires_on_a_matching_minute_with_no_match_between(minute, hour, dom, month, dow, start):
    c = cron.parse(f"{minute} {hour} {dom} {month} {dow}")
    nxt = c.next_local(start)
    assert nxt > start and nxt.minute in c.minutes and nxt.hour in c.hours and c.day_matches(nxt.date())
    probe = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(200):  # no earlier matching minute just after the start
        if probe >= nxt:
            break
        assert not (probe.minute in c.minutes and probe.hour in c.hours and c.day_matches(probe.date()))
        probe += timedelta(minutes=1)


# -- policy --------------------------------------------------------------------------------------


def test_quiet_hours_span_midnight_and_end_at_the_local_end_time():
    q = policy.QuietHours.of("21:00", "08:00")
    assert q.contains(time(23, 0)) and q.contains(time(7, 59)) and not q.contains(time(8, 0))
    shanghai = ZoneInfo("Asia/Shanghai")
    now = datetime(2026, 6, 15, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai
    assert q.ends_after(now, shanghai) == datetime(2026, 6, 16, 0, 0, tzinfo=UTC)
    assert q.ends_after(now, ZoneInfo("Europe/London")) is None  # 15:00 there
    assert policy.QuietHours.of(None, None) is None


def test_frequency_periods_are_in_the_contacts_calendar():
    now = datetime(2026, 6, 14, 20, 0, tzinfo=UTC)  # Sunday in UTC, Monday in Tokyo
    assert policy.period_key("day", now, ZoneInfo("Asia/Tokyo")) == "2026-06-15"
    assert policy.period_key("week", now, ZoneInfo("UTC")) == "2026-W24"
    assert policy.period_key("week", now, ZoneInfo("Asia/Tokyo")) == "2026-W25"
    assert policy.period_key("month", now, ZoneInfo("UTC")) == "2026-06"


def test_the_opt_out_hint_is_appended_once():
    assert policy.with_hint("Sale!", "Reply STOP to opt out") == "Sale! Reply STOP to opt out"
    assert policy.with_hint("Sale! reply stop to opt out", "Reply STOP to opt out") == \
        "Sale! reply stop to opt out"
    with pytest.raises(ValueError, match="opt-out hint"):
        policy.with_hint("x" * 1590, "Reply STOP to opt out")


def test_an_unknown_zone_falls_back_to_the_tenants_then_utc():
    assert policy.zone("Mars/Base", "Asia/Shanghai") == ZoneInfo("Asia/Shanghai")
    assert policy.zone(None, "nope") == ZoneInfo("UTC")


# -- greetings -----------------------------------------------------------------------------------


def test_a_greeting_is_due_on_the_local_day_after_send_at():
    rule = greetings.GreetingRule.from_config({"date_field": "birthday", "send_at": "09:00"})
    tokyo = ZoneInfo("Asia/Tokyo")
    fields = {"birthday": "1990-06-16"}
    assert rule.due(fields, datetime(2026, 6, 15, 23, 0, tzinfo=UTC), tokyo) is None  # 08:00 local
    assert rule.due(fields, datetime(2026, 6, 16, 0, 0, tzinfo=UTC), tokyo) == 2026
    assert rule.due({"birthday": "nope"}, datetime(2026, 6, 16, tzinfo=UTC), tokyo) is None


def test_29_february_is_celebrated_on_28_february_in_common_years():
    assert greetings.is_day((2, 29), date(2027, 2, 28))
    assert not greetings.is_day((2, 29), date(2028, 2, 28)) and greetings.is_day((2, 29), date(2028, 2, 29))


def test_a_holiday_greeting_has_a_fixed_date_for_everyone():
    rule = greetings.GreetingRule.from_config({"date": "01-01", "send_at": "00:00"})
    assert rule.due({}, datetime(2026, 1, 1, 5, tzinfo=UTC), ZoneInfo("UTC")) == 2026
    with pytest.raises(greetings.GreetingError):
        greetings.GreetingRule.from_config({"date": "13-01"})
    with pytest.raises(greetings.GreetingError):
        greetings.GreetingRule.from_config({})


# -- surveys -------------------------------------------------------------------------------------

QUESTIONS = [
    {"key": "q1", "text": "Coffee or tea?", "type": "choice", "choices": ["Coffee", "Tea"],
     "branches": {"tea": "q3"}},
    {"key": "q2", "text": "Cups a day?", "type": "number", "min": 0, "max": 20},
    {"key": "q3", "text": "Anything else?", "type": "text"},
]


def test_answers_are_validated_per_question_type():
    qs = surveys.define(QUESTIONS)
    assert surveys.parse_answer(qs[0], " 2 ") == ("Tea", None)
    assert surveys.parse_answer(qs[0], "coffee!") == ("Coffee", None)
    assert surveys.parse_answer(qs[1], "2,5") == ("2.5", 2.5)
    assert surveys.parse_answer(qs[1], "３") == ("3", 3.0)  # full-width digits
    assert surveys.parse_answer(qs[2], "  more   cake ") == ("more cake", None)
    for q, text, reason in [(qs[0], "3", "1 to 2"), (qs[1], "many", "a number"),
                            (qs[1], "21", "from 0 to 20")]:
        with pytest.raises(surveys.InvalidAnswer, match=reason):
            surveys.parse_answer(q, text)


def test_branches_jump_forward_and_the_last_question_ends():
    qs = surveys.define(QUESTIONS)
    assert surveys.next_question(qs, qs[0], "Tea").key == "q3"
    assert surveys.next_question(qs, qs[0], "Coffee").key == "q2"
    assert surveys.next_question(qs, qs[2], "x") is None
    assert qs[0].prompt() == "Coffee or tea? Reply 1) Coffee 2) Tea"


@pytest.mark.parametrize("questions,reason", [
    ([], "non-empty"),
    ([{"key": "a", "text": "?", "type": "choice", "choices": ["x"]}], "2 to 20"),
    ([{"key": "a", "text": "?", "type": "scale"}], "type 'scale'"),
    ([{"key": "a", "text": "?"}, {"key": "a", "text": "?"}], "used twice"),
    ([{"key": "a", "text": "?"}, {"key": "b", "text": "?", "next": "a"}], "only jump forward"),
    ([{"key": "a", "text": "?", "next": "zz"}], "no question"),
    ([{"key": "a", "text": "?", "type": "number", "min": 5, "max": 1}], "min is above max"),
])
def test_a_bad_survey_is_refused_with_the_question_and_reason(questions, reason):
    with pytest.raises(surveys.SurveyError, match=reason):
        surveys.define(questions)


# -- segments ------------------------------------------------------------------------------------


def contact(**kw):
    base = {"msisdn": "+8613800000001", "name": "Li", "language": "zh", "timezone": None,
            "fields": {}, "tags": []}
    return SimpleNamespace(**{**base, **kw})


def test_segment_filters_combine_fields_tags_and_numbers():
    f = {"all": [{"field": "city", "value": "Shanghai"}, {"any": [{"tag": "VIP"},
                                                                  {"field": "spend", "op": "gte", "value": 100}]},
                 {"not": {"field": "language", "op": "in", "value": ["en"]}}]}
    audience.check_filter(f)
    assert audience.matches(f, contact(fields={"city": "shanghai", "spend": "150"}))
    assert audience.matches(f, contact(fields={"city": "Shanghai"}, tags=["vip"]))
    assert not audience.matches(f, contact(fields={"city": "Shanghai", "spend": "99"}))
    assert not audience.matches(f, contact(fields={"city": "Shanghai"}, tags=["vip"], language="en"))
    assert audience.matches({"field": "birthday", "op": "exists"}, contact(fields={"birthday": "01-01"}))


@pytest.mark.parametrize("f,reason", [
    ({}, "expected an object"), ({"all": []}, "non-empty list"),
    ({"field": "x", "op": "like", "value": 1}, "'like' is not one of"),
    ({"field": "x", "op": "in", "value": "a"}, "needs a list"), ({"foo": 1}, "expected one of"),
])
def test_a_bad_segment_filter_is_refused_with_where_and_why(f, reason):
    with pytest.raises(audience.FilterError, match=reason):
        audience.check_filter(f)


# -- contacts ------------------------------------------------------------------------------------


def test_a_contact_is_normalised_and_its_custom_fields_checked():
    c = contacts.validate({"phone": "0086 138-0000-0001", "name": " Li ", "tags": "VIP; coffee|vip",
                           "timezone": "Asia/Shanghai", "birthday": "02-29", "City": "Shanghai"})
    assert (c.msisdn, c.name, c.tags, c.timezone) == ("+8613800000001", "Li", ["coffee", "vip"], "Asia/Shanghai")
    assert c.fields == {"birthday": "02-29", "city": "Shanghai"}
    for row, reason in [({"msisdn": "138"}, "E.164"), ({"msisdn": "+8613800000001", "timezone": "X/Y"}, "unknown"),
                        ({"msisdn": "+8613800000001", "birthday": "1990-02-30"}, "not a date"),
                        ({"msisdn": "+8613800000001", "language": "english"}, "language"),
                        ({"msisdn": "+8613800000001", "first_name": "x"}, "built-in"), ({}, "no phone")]:
        with pytest.raises(contacts.ContactError, match=reason):
            contacts.validate(row)


def test_csv_rows_carry_their_line_numbers_and_quoted_newlines_stay_in_one_row():
    data = 'msisdn,name,note\n+8613800000001,"Li\nLei",ok\n\n+8613800000002,Wang\n'
    rows = list(contacts.read_rows(io.StringIO(data)))
    assert rows[0] == (3, {"msisdn": "+8613800000001", "name": "Li\nLei", "note": "ok"})
    assert rows[1] == (5, "expected 3 columns, found 2")


@pytest.mark.parametrize("data,reason", [
    ("", "empty"), ("name,city\n", "no phone number column"), ("msisdn,msisdn\n", "twice"),
    ("msisdn,na me!\n", "usable field name"),
])
def test_a_csv_with_a_bad_header_is_refused_whole(data, reason):
    with pytest.raises(contacts.CsvError, match=reason):
        list(contacts.read_rows(io.StringIO(data)))


# -- send rate -----------------------------------------------------------------------------------


def test_the_rate_bucket_paces_steps_to_the_tenants_rate(monkeypatch):
    clock = [0.0]

    async def no_sleep(s):
        clock[0] += s

    monkeypatch.setattr("services.campaigns.engine.asyncio.sleep", no_sleep)
    bucket = TokenBucket(10.0, clock=lambda: clock[0])

    async def go():
        waits = [await bucket.acquire(10), await bucket.acquire(10)]
        clock[0] += 5.0  # idle: at most one second of burst is saved up
        waits.append(await bucket.acquire(10))
        return waits

    assert asyncio.run(go()) == [0.0, 1.0, 0.0]


# -- inquiry endpoint ----------------------------------------------------------------------------


def ask_with(handler, retries: int = 2) -> tuple[str | None, int]:
    calls = [0]

    def counted(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        return handler(request, calls[0])

    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(counted)) as client:
            call = inquiry.EndpointCall("http://erp.test/q", 1.0, retries, {"argument": "1"})
            return await inquiry.ask(client, call, backoff_s=0.001)
    return asyncio.run(go()), calls[0]


def test_the_endpoint_is_retried_after_errors_and_its_reply_used():
    def flaky(request, n):
        if n == 1:
            raise httpx.ConnectTimeout("slow")
        if n == 2:
            return httpx.Response(503)
        return httpx.Response(200, json={"reply": "  Balance:\n 42 "})
    assert ask_with(flaky) == ("Balance: 42", 3)


def test_an_endpoint_that_keeps_failing_or_refuses_gives_no_reply_so_the_fallback_goes():
    assert ask_with(lambda r, n: httpx.Response(500)) == (None, 3)
    assert ask_with(lambda r, n: httpx.Response(404)) == (None, 1)  # not retried
    assert ask_with(lambda r, n: httpx.Response(200, json={"answer": "x"})) == (None, 1)
    assert ask_with(lambda r, n: httpx.Response(200, text="Plain answer")) == ("Plain answer", 1)
