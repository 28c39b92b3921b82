"""Metric windows from events, on a migrated SQLite database: exact counts, dedupe, late events,
regions, latency, and the published records against their schema."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.core.db.bridge_models import MetricWindow
from services.core.schemas import SCHEMA_DIR, EventInvalid, new_event, validate
from services.core.tenancy import add_number, create_tenant
from services.metrics import domain

T = datetime(2026, 11, 28, 10, 15, 30, tzinfo=UTC)


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


@pytest.fixture
def db(sqlite_db):
    with sqlite_db.session() as s:
        create_tenant(s, "acme", "Acme")
        add_number(s, "acme", "10690001")
        create_tenant(s, "beta", "Beta")
        add_number(s, "beta", "10690009", shared=True)
        create_tenant(s, "gamma", "Gamma")
        add_number(s, "gamma", "10690009", shared=True)
    return sqlite_db


def feed(db, topic: str, *events, counter=None) -> int:
    counter = counter or domain.Counter()
    with db.session() as s:
        incs = [i for e in events for i in counter.count(s, topic, e)]
        new = domain.fresh(s, incs)
        domain.apply(s, new)
    return len(new)


def inbound(at=T, to="10690001", mid=None):
    return new_event("sms.inbound", message_id=mid or str(uuid.uuid4()), carrier="sim",
                     carrier_message_id="x", to=to, text="hi", received_at=iso(at),
                     **{"from": "+8613800000001"})


def outbound(mid, at=T, tenant="acme", **kw):
    return new_event("sms.outbound", tenant, message_id=mid, request_id=mid[:8], to="+8613800000001",
                     text="x", source=kw.pop("source", "api"), accepted_at=iso(at), **kw)


def status(mid, st, at, tenant="acme", carrier="sim"):
    return new_event("sms.status", tenant, message_id=mid, to="+8613800000001", status=st,
                     occurred_at=iso(at), carrier=carrier if st != "accepted" else None)


def windows(db, granularity="minute") -> dict[tuple, MetricWindow]:
    with db.session() as s:
        rows = s.scalars(select(MetricWindow).where(MetricWindow.granularity == granularity)).all()
        return {(domain._aware(r.window_start), r.tenant_id, r.carrier, r.campaign_id, r.product,
                 r.region): r for r in rows}


def test_events_land_in_the_minute_and_hour_of_their_own_time():
    start, end = domain.window_of(T, "minute")
    assert (start, end) == (T.replace(second=0), T.replace(second=0) + timedelta(minutes=1))
    start, end = domain.window_of(datetime(2026, 11, 28, 18, 59, 59, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Shanghai")), "hour")
    assert start == datetime(2026, 11, 28, 18, tzinfo=UTC)


def test_inbound_texts_are_counted_once_per_message_by_tenant_of_the_number(db):
    mid = str(uuid.uuid4())
    assert feed(db, "sms.inbound", inbound(mid=mid), inbound(mid=mid), inbound()) == 2
    assert feed(db, "sms.inbound", inbound(mid=mid)) == 0  # redelivered: nothing new
    feed(db, "sms.inbound", inbound(to="10690009"))  # a shared number: no single tenant
    w = windows(db)
    minute = T.replace(second=0)
    assert w[(minute, "acme", "sim", "", "", "")].messages_in == 2
    assert w[(minute, "", "sim", "", "", "")].messages_in == 1
    assert windows(db, "hour")[(T.replace(minute=0, second=0), "acme", "sim", "", "", "")].messages_in == 2


def test_outcomes_carry_the_campaign_of_their_message_and_delivery_latency(db):
    m1, m2, m3 = (str(uuid.uuid4()) for _ in range(3))
    feed(db, "sms.outbound", outbound(m1, campaign_id="spring", attributes={"product": "red-box"}),
         outbound(m2, campaign_id="spring", attributes={"product": "red-box"}), outbound(m3))
    feed(db, "sms.status", status(m1, "accepted", T), status(m1, "sent", T + timedelta(seconds=1)),
         status(m1, "delivered", T + timedelta(seconds=3)), status(m2, "sent", T + timedelta(seconds=1)),
         status(m2, "delivered", T + timedelta(seconds=20)), status(m3, "failed", T + timedelta(seconds=2)))
    feed(db, "sms.status", status(m1, "delivered", T + timedelta(seconds=3)))  # again: no change
    w = windows(db)
    minute = T.replace(second=0)
    out = w[(minute, "acme", "", "spring", "red-box", "")]
    assert out.messages_out == 2
    done = w[(minute, "acme", "sim", "spring", "red-box", "")]
    assert (done.sent, done.delivered, done.latency_count) == (2, 2, 2)
    assert done.latency_sum_ms == pytest.approx(23_000)
    assert (done.latency_le_1s, done.latency_le_5s, done.latency_le_30s) == (0, 1, 2)
    assert w[(minute, "acme", "sim", "", "", "")].failed == 1


def test_a_status_seen_before_its_request_is_moved_to_its_campaign_once_the_request_is_seen(db):
    m1 = str(uuid.uuid4())
    feed(db, "sms.status", status(m1, "sent", T + timedelta(seconds=1)),
         status(m1, "delivered", T + timedelta(seconds=4)))
    minute = T.replace(second=0)
    early = windows(db)[(minute, "acme", "sim", "", "", "")]
    assert (early.sent, early.delivered, early.revision) == (1, 1, 1)
    with db.session() as s:
        assert domain.attribute_pending(s) == []  # the request is still unknown: nothing moves
    feed(db, "sms.outbound", outbound(m1, campaign_id="spring", attributes={"product": "red-box"}))
    with db.session() as s:
        assert len(domain.attribute_pending(s)) == 4  # two statuses, each out of one row, into another
    with db.session() as s:
        assert domain.attribute_pending(s) == []  # done once
    w = windows(db)
    moved = w[(minute, "acme", "sim", "", "", "")]
    assert (moved.sent, moved.delivered, moved.revision) == (0, 0, 2)  # republished as zero
    now = w[(minute, "acme", "sim", "spring", "red-box", "")]
    assert (now.sent, now.delivered) == (1, 1)
    # Its latency was unknown when counted (no request, no message row): it is known now.
    assert (now.latency_count, now.latency_sum_ms, now.latency_le_5s) == (1, 4000, 1)
    hour = windows(db, "hour")[(T.replace(minute=0, second=0), "acme", "sim", "spring", "red-box", "")]
    assert hour.delivered == 1


def test_verifications_and_counterfeit_warnings_are_counted_by_region_of_the_number(db):
    counter = domain.Counter(domain.Regions({"+86138": "CN-mobile-138", "+86": "CN", "+44": "GB"}))

    def code(sender):
        return new_event("codes.submitted", "acme", submission_id=str(uuid.uuid4()), code="7F3KQ9XZ",
                         to="10690001", inbound_message_id=str(uuid.uuid4()), received_at=iso(T),
                         **{"from": sender})

    def verdict(to, kind):
        return new_event("sms.outbound", "acme", message_id=str(uuid.uuid4()), request_id="v", to=to,
                         text="x", source="verifier", accepted_at=iso(T), attributes={"kind": kind})
    feed(db, "codes.submitted", code("+8613800000001"), code("+8613800000002"), code("+8615900000001"),
         code("+447700900123"), counter=counter)
    feed(db, "sms.outbound", verdict("+8613800000001", "genuine"),
         verdict("+8613800000002", "repeat"), verdict("+447700900123", "counterfeit"),
         verdict("+447700900123", "mistyped"), verdict("+447700900123", "locked"), counter=counter)
    w = windows(db)
    minute = T.replace(second=0)
    assert w[(minute, "acme", "", "", "", "CN-mobile-138")].verifications == 2
    assert w[(minute, "acme", "", "", "", "CN")].verifications == 1
    gb = w[(minute, "acme", "", "", "", "GB")]
    assert (gb.verifications, gb.counterfeit_warnings, gb.genuine) == (1, 1, 0)
    cn = w[(minute, "acme", "", "", "", "CN-mobile-138")]
    assert (cn.genuine, cn.counterfeit_warnings) == (1, 1)


def test_points_awarded_and_redemptions(db):
    def award(points, product="red-box"):
        return new_event("points.awarded", "acme", entry_id=str(uuid.uuid4()), member="+8613800000001",
                         points=points, reason="first valid query", source_event_id=str(uuid.uuid4()),
                         product=product)

    def ledger_reply(kind):
        return new_event("sms.outbound", "acme", message_id=str(uuid.uuid4()), request_id="l",
                         to="+8613800000001", text="x", source="ledger", accepted_at=iso(T),
                         attributes={"kind": kind})
    a = award(10)
    feed(db, "points.awarded", a, a, award(5), award(7, product="blue-box"))
    redeemed = ledger_reply("gift_redeemed")
    feed(db, "sms.outbound", redeemed, redeemed, ledger_reply("gift_insufficient"),
         ledger_reply("gift_redeemed"), ledger_reply("points_balance"))
    assert feed(db, "points.commands", new_event(
        "points.commands", "acme", command_id=str(uuid.uuid4()), member="+8613800000001",
        command="redeem", gift=2, reply_from="10690001", inbound_message_id=str(uuid.uuid4()))) == 0
    # Points count at their produced time (now), so sum over whatever hours that spans.
    hour = windows(db, "hour")
    red = [r for k, r in hour.items() if k[1:] == ("acme", "", "", "red-box", "")]
    assert sum(r.points_awarded for r in red) == 15 and sum(r.points_awards for r in red) == 2
    blue = [r for k, r in hour.items() if k[1:] == ("acme", "", "", "blue-box", "")]
    assert sum(r.points_awarded for r in blue) == 7
    assert windows(db)[(T.replace(second=0), "acme", "", "", "", "")].redemptions == 2


def test_a_window_is_published_after_its_end_and_again_when_a_late_event_changes_it(db):
    feed(db, "sms.inbound", inbound(), inbound())
    end = T.replace(second=0) + timedelta(minutes=1)
    with db.session() as s:
        assert domain.due(s, end, grace_s=5) == []  # not yet: the grace period
        rows = [w for w in domain.due(s, end + timedelta(seconds=5), grace_s=5) if w.granularity == "minute"]
        assert len(rows) == 1 and rows[0].revision == 1
        topic, key, event = domain.window_event(rows[0], end + timedelta(seconds=5))
        validate("metrics.window", event)
        assert topic == "metrics.minute" and key == "acme|sim|||"
        assert event["counts"]["messages_in"] == 2 and event["revision"] == 1
        domain.mark_published(s, [(rows[0].id, rows[0].revision)])
    with db.session() as s:
        assert [w for w in domain.due(s, end + timedelta(seconds=6), 5) if w.granularity == "minute"] == []
    feed(db, "sms.inbound", inbound(at=T + timedelta(seconds=10)))  # late, same minute
    with db.session() as s:
        (late,) = [w for w in domain.due(s, end + timedelta(seconds=60), 5) if w.granularity == "minute"]
        _, _, again = domain.window_event(late)
        assert again["counts"]["messages_in"] == 3 and again["revision"] == 2
        assert again["event_id"] != event["event_id"]


def test_regions_fall_back_to_other():
    r = domain.Regions()
    assert r.of("+8613800000001") == "CN" and r.of("+14155550123") == "NANP"
    assert r.of("+85291234567") == "HK" and r.of("+99912345") == "other" and r.of("10690001") == "other"


def test_the_metrics_window_schema_has_examples_descriptions_and_rejects_bad_records():
    doc = json.loads((SCHEMA_DIR / "metrics.window" / "v1.json").read_text())
    assert doc["$id"] == "https://schemas.herald.dev/metrics.window/v1.json"
    assert doc["unevaluatedProperties"] is False and len(doc["examples"]) >= 2

    def undocumented(node, where=""):
        if isinstance(node, dict):
            for k, sub in node.get("properties", {}).items():
                if not sub.get("description"):
                    yield f"{where}/{k}"
                yield from undocumented(sub, f"{where}/{k}")
    assert list(undocumented(doc)) == []
    for ex in doc["examples"]:
        validate("metrics.window", ex)
    bad = json.loads(json.dumps(doc["examples"][0]))
    for mutate in (lambda e: e["counts"].update(sent=-1), lambda e: e.update(granularity="day"),
                   lambda e: e["dimensions"].pop("region"), lambda e: e.update(extra=1),
                   lambda e: e["counts"].update(bogus=1), lambda e: e.update(revision=0)):
        e = json.loads(json.dumps(bad))
        mutate(e)
        with pytest.raises(EventInvalid):
            validate("metrics.window", e)
