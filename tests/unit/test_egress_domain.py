"""Egress decisions and delivery-report matching against a migrated SQLite database, with a
fake opt-out view and no broker or carrier."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from services.carriers.base import SubmitResult
from services.core.carriers import Carrier
from services.core.db import Database
from services.core.db.models import Message, MessageEvent, OptOut, PendingDlr, Tenant
from services.core.messages import message_id_for
from services.core.schemas import encode, new_event
from services.egress import dlr, domain
from services.egress.optouts import OptOutView, state_blocks

CARRIERS = {
    "sim": Carrier(name="sim", submit_url="http://sim/submit", prefixes=("+",), priority=10),
    "cn": Carrier(name="cn", submit_url="http://cn/submit", prefixes=("+86",), priority=50),
}
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def ts(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


class FakeOptOuts:
    def __init__(self) -> None:
        self.stops: dict[tuple[str, str], datetime] = {}

    def blocked_many(self, s, items) -> list[bool]:
        out = []
        for tenant_id, msisdn, accepted_at in items:
            at = self.stops.get((tenant_id, msisdn))
            out.append(at is not None and at <= accepted_at.replace(tzinfo=accepted_at.tzinfo or UTC))
        return out


@pytest.fixture
def db(migrated_url):
    """Each test on SQLite, and on PostgreSQL where one is configured (CI): the batch statements
    (INSERT ... ON CONFLICT, UPDATE ... RETURNING) differ per dialect."""
    d = Database(migrated_url)
    yield d
    d.dispose()


@pytest.fixture
def optouts():
    return FakeOptOuts()


def outbound(request_id: str = "order-1", to: str = "+14155550123", text: str = "Your order shipped.",
             accepted_at: datetime = T0, **extra) -> dict:
    ev = new_event("sms.outbound", tenant_id="acme", message_id=message_id_for("acme", request_id),
                   request_id=request_id, to=to, text=text, source="api", accepted_at=ts(accepted_at),
                   **extra)
    encode("sms.outbound", ev)  # the tests' events are valid ones
    return ev


def accept(db, optouts, ev, now=T0 + timedelta(seconds=1)) -> domain.Decision:
    with db.session() as s:
        return domain.accept(s, ev, optouts=optouts, carriers=CARRIERS, now=now)


def sent(db, message_id, carrier="sim", cmid="SM1"):
    with db.session() as s:
        msg, out = domain.record_sent(s, message_id, SubmitResult(cmid, carrier), now=T0 + timedelta(seconds=2))
        return out + dlr.match_pending(s, msg)


def delivery(carrier="sim", cmid="SM1", status="delivered", **extra) -> dict:
    ev = new_event("sms.delivery", carrier=carrier, carrier_message_id=cmid, status=status,
                   reported_at=ts(T0 + timedelta(seconds=3)), **extra)
    encode("sms.delivery", ev)
    return ev


def handle(db, ev) -> list[dict]:
    with db.session() as s:
        return dlr.handle_delivery(s, ev)


def statuses(events) -> list[str]:
    for e in events:
        encode("sms.status", e)  # every status event is valid on the topic
    return [e["status"] for e in events]


def row(db, message_id) -> Message:
    with db.session() as s:
        return s.get(Message, message_id)


def test_a_new_message_is_accepted_and_planned_for_the_carriers_that_serve_it(db, optouts):
    d = accept(db, optouts, outbound(to="+8613800138000"))
    assert statuses(d.statuses) == ["accepted"]
    assert d.plan is not None
    assert d.plan.carriers == ["cn", "sim"]  # longest prefix first
    assert d.plan.submission.encoding == "gsm7" and d.plan.submission.segments == 1


def test_the_tenants_preference_and_default_sender_are_used(db, optouts):
    with db.session() as s:
        s.add(Tenant(id="acme", name="Acme", default_sender="ACME", carrier_preference=["sim"]))
    d = accept(db, optouts, outbound(to="+8613800138000"))
    assert d.plan.carriers == ["sim", "cn"]
    assert d.plan.submission.sender == "ACME"
    d = accept(db, optouts, outbound("order-2", to="+8613800138000", carrier_preference=["cn"],
                                     **{"from": "10690001"}))
    assert d.plan.carriers == ["cn", "sim"] and d.plan.submission.sender == "10690001"


def test_a_duplicate_request_id_is_sent_once(db, optouts):
    first = accept(db, optouts, outbound())
    assert first.plan is not None
    sent(db, first.plan.submission.message_id)
    again = accept(db, optouts, outbound())  # same request id, new event id
    assert again.duplicate and again.plan is None
    # Only the current status is announced again, under the same event id as the first time.
    (st,) = again.statuses
    assert st["status"] == "sent" and st["message_id"] == first.plan.submission.message_id


def test_a_message_recorded_but_not_yet_sent_is_still_sent_on_redelivery(db, optouts):
    ev = outbound()
    # The worker stopped before the carrier answered: the redelivered event must still go out.
    first_statuses = accept(db, optouts, ev).statuses
    d = accept(db, optouts, ev)
    assert d.plan is not None and not d.duplicate
    # 'accepted' is announced again with the same event id: consumers dedupe on it.
    assert [e["event_id"] for e in d.statuses] == [e["event_id"] for e in first_statuses]


def test_an_opted_out_recipient_is_suppressed_but_the_optout_confirmation_passes(db, optouts):
    optouts.stops[("acme", "+14155550123")] = T0 - timedelta(minutes=5)
    d = accept(db, optouts, outbound())
    assert statuses(d.statuses) == ["accepted", "suppressed"]
    assert "opted out" in d.statuses[1]["reason"]
    assert d.plan is None
    assert row(db, d.statuses[0]["message_id"]).status == "suppressed"

    stop_ack = outbound("stop-ack", text="You are unsubscribed.", attributes={"kind": "optout_confirmation"})
    stop_ack["source"] = "router"  # Herald's own answer to the STOP (tests/unit/test_consent.py)
    confirm = accept(db, optouts, stop_ack)
    assert statuses(confirm.statuses) == ["accepted"] and confirm.plan is not None


def test_a_stop_after_the_message_was_accepted_does_not_suppress_it(db, optouts):
    optouts.stops[("acme", "+14155550123")] = T0 + timedelta(seconds=1)
    assert accept(db, optouts, outbound(accepted_at=T0)).plan is not None


def test_an_expired_message_is_not_sent(db, optouts):
    d = accept(db, optouts, outbound(expires_at=ts(T0)), now=T0 + timedelta(seconds=1))
    assert statuses(d.statuses) == ["accepted", "expired"]
    assert d.plan is None


def test_300_chinese_characters_go_as_ucs2_in_5_segments_recorded_for_billing(db, optouts):
    d = accept(db, optouts, outbound(to="+8613800138000", text="你" * 300))
    assert d.plan.submission.encoding == "ucs2"
    assert d.plan.submission.segments == 5
    msg = row(db, d.plan.submission.message_id)
    assert (msg.encoding, msg.segments) == ("ucs2", 5)
    out = sent(db, msg.id)
    assert out[0]["encoding"] == "ucs2" and out[0]["segments"] == 5


def test_a_number_no_carrier_serves_fails_with_the_reason(db, optouts):
    only_cn = {"cn": CARRIERS["cn"]}
    with db.session() as s:
        d = domain.accept(s, outbound(), optouts=optouts, carriers=only_cn, now=T0)
    assert statuses(d.statuses) == ["accepted", "failed"]
    assert "no carrier" in d.statuses[1]["reason"]


def test_sent_then_delivered_each_emit_one_status_and_a_late_dlr_changes_nothing(db, optouts):
    mid = accept(db, optouts, outbound()).plan.submission.message_id
    out = sent(db, mid)
    assert statuses(out) == ["sent"]
    assert out[0]["carrier"] == "sim" and out[0]["carrier_message_id"] == "SM1"
    assert statuses(handle(db, delivery())) == ["delivered"]
    assert handle(db, delivery()) == []  # the same report again
    assert handle(db, delivery(status="undeliverable", error_code="30003")) == []  # late, contrary
    assert row(db, mid).status == "delivered"
    with db.session() as s:
        n = s.scalar(select(func.count()).select_from(MessageEvent).where(MessageEvent.message_id == mid))
    assert n == 3  # accepted, sent, delivered


def test_a_failure_report_carries_the_error_code(db, optouts):
    mid = accept(db, optouts, outbound()).plan.submission.message_id
    sent(db, mid)
    out = handle(db, delivery(status="undeliverable", error_code="30003"))
    assert statuses(out) == ["failed"] and "30003" in out[0]["reason"]
    assert handle(db, delivery(status="accepted")) == []


def test_a_dlr_before_the_submit_response_is_matched_when_the_carrier_id_is_recorded(db, optouts):
    mid = accept(db, optouts, outbound()).plan.submission.message_id
    assert handle(db, delivery(cmid="SM-early")) == []
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(PendingDlr)) == 1
    out = sent(db, mid, cmid="SM-early")
    assert statuses(out) == ["sent", "delivered"]
    assert out[1]["occurred_at"] >= out[0]["occurred_at"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(PendingDlr)) == 0


def test_a_dlr_echoing_our_message_id_matches_before_the_carrier_id_is_known(db, optouts):
    mid = accept(db, optouts, outbound()).plan.submission.message_id
    assert statuses(handle(db, delivery(cmid="SM9", message_id=mid))) == ["delivered"]
    assert sent(db, mid, cmid="SM9") == []  # already delivered: no 'sent' after it
    msg = row(db, mid)
    assert (msg.status, msg.carrier_message_id) == ("delivered", "SM9")


def test_an_unknown_carrier_id_is_kept_pending_then_purged_after_the_window(db, optouts):
    assert handle(db, delivery(cmid="SM-nobody")) == []
    assert handle(db, delivery(cmid="SM-nobody")) == []  # redelivered: still one row
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(PendingDlr)) == 1
        assert dlr.purge_pending(s, 3600) == 0  # still inside the window
    with db.session() as s:
        assert dlr.purge_pending(s, 3600, now=datetime.now(UTC) + timedelta(seconds=3601)) == 1
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(PendingDlr)) == 0


def test_the_optout_view_keeps_the_latest_state_and_the_newer_of_topic_and_database_wins(db):
    from services.core.settings import Settings

    view = OptOutView(Settings(), db)
    stop = new_event("optouts", tenant_id="acme", msisdn="+14155550123", opted_out=True,
                     keyword="STOP", changed_at=ts(T0))
    view.apply(b"acme:+14155550123", encode("optouts", stop))
    assert view.is_opted_out("acme", "+14155550123", T0 + timedelta(seconds=1))
    assert not view.is_opted_out("acme", "+14155550123", T0 - timedelta(seconds=1))
    start = {**stop, "event_id": str(uuid.uuid4()), "opted_out": False, "changed_at": ts(T0 + timedelta(hours=1))}
    view.apply(b"acme:+14155550123", encode("optouts", start))
    assert not view.is_opted_out("acme", "+14155550123", T0 + timedelta(hours=2))
    view.apply(b"acme:+14155550123", b"{not json")  # skipped, state unchanged
    assert len(view) == 1
    # The router's database row is newer than what the topic view has read: it counts.
    with db.session() as s:
        s.add(OptOut(tenant_id="acme", msisdn="+14155550123", opted_out=True, source_event_id="e",
                     updated_at=T0 + timedelta(hours=3)))
        s.add(OptOut(tenant_id="acme", msisdn="+14155550199", opted_out=True, source_event_id="f",
                     updated_at=T0))
    assert view.is_opted_out("acme", "+14155550123", T0 + timedelta(hours=4))
    assert view.is_opted_out("acme", "+14155550199", T0 + timedelta(seconds=1))  # only in the DB
    # The batch form gives the same answers, in order, for numbers of several tenants.
    with db.session() as s:
        assert view.blocked_many(s, [
            ("acme", "+14155550123", T0 + timedelta(hours=4)),  # newer DB row: stopped again
            ("acme", "+14155550123", T0 + timedelta(hours=2)),  # accepted before that STOP
            ("acme", "+14155550199", T0 + timedelta(seconds=1)),  # only in the DB
            ("acme", "+14155550100", T0 + timedelta(seconds=1)),  # never stopped
            ("other", "+14155550199", T0 + timedelta(seconds=1)),  # another tenant's number
        ]) == [True, False, True, False, False]
    view.apply(b"acme:+14155550123", None)  # tombstone
    assert len(view) == 0
    assert not state_blocks(None, T0)


def test_a_report_stored_while_the_carrier_id_was_being_recorded_is_matched_by_the_sweep(db, optouts):
    mid = accept(db, optouts, outbound()).plan.submission.message_id
    sent(db, mid, cmid="SM-race")
    # The report's transaction did not see the carrier id: it stored the report as pending.
    with db.session() as s:
        dlr.store_pending(s, delivery(cmid="SM-race"), T0 + timedelta(seconds=3))
    with db.session() as s:
        assert statuses(dlr.match_stragglers(s)) == ["delivered"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(PendingDlr)) == 0


# -- the outbound handler with fake carriers -------------------------------------------------

class FakeConnector:
    def __init__(self, name: str, fail_with: Exception | None = None) -> None:
        self.name, self.fail_with, self.subs = name, fail_with, []

    async def submit(self, sub):
        self.subs.append(sub)
        if self.fail_with is not None:
            raise self.fail_with
        return SubmitResult(f"{self.name}-{len(self.subs)}", self.name)

    async def close(self) -> None:
        pass


class FreeBucket:
    carrier = "any"

    async def acquire(self, n=1, max_wait=None) -> float:
        return 0.0

    async def pause(self, seconds: float) -> None:
        pass


def egress_with(db, optouts, connector):
    from types import SimpleNamespace

    from services.core.settings import Settings
    from services.egress.app import Egress

    # Only what the handler uses of a Processor: no Faust app is needed to call it.
    settings = Settings(database_url=db.url, egress_max_attempts=2, egress_backoff_base_ms=1)
    p = SimpleNamespace(name="egress", db=db, settings=settings)
    return Egress(p, {"sim": CARRIERS["sim"]}, {"sim": connector}, {"sim": FreeBucket()}, optouts)


def run_batch(egress, events) -> list:
    import asyncio

    from services.core.processor import In

    items = [In(ev, ev["to"], 0, i) for i, ev in enumerate(events)]
    return asyncio.run(egress.on_outbound(items))


def test_the_same_request_twice_in_one_batch_is_submitted_once(db, optouts):
    conn = FakeConnector("sim")
    outs = run_batch(egress_with(db, optouts, conn), [outbound(), outbound(), outbound("order-2")])
    assert len(conn.subs) == 2
    assert sorted(o.value["status"] for o in outs) == ["accepted", "accepted", "sent", "sent"]
    assert {o.topic for o in outs} == {"sms.status"}
    assert all(o.key == o.value["message_id"] for o in outs)


def test_a_carrier_that_stays_down_parks_the_message_instead_of_failing_it(db, optouts):
    from services.carriers.base import TransientError

    conn = FakeConnector("sim", TransientError("service unavailable"))
    ev = outbound()
    outs = run_batch(egress_with(db, optouts, conn), [ev])
    assert len(conn.subs) == 2  # egress_max_attempts per try
    assert [(o.topic, o.value["status"]) for o in outs] == [("sms.status", "accepted")]
    assert row(db, ev["message_id"]).status == "accepted"  # waits for the carrier (test_backpressure)


def test_a_carrier_refusal_fails_the_message_with_the_carriers_reason_and_no_dead_letter(db, optouts):
    from services.carriers.base import RejectedByCarrier

    outs = run_batch(egress_with(db, optouts, FakeConnector("sim", RejectedByCarrier("invalid destination"))),
                     [outbound()])
    assert [o.topic for o in outs] == ["sms.status", "sms.status"]
    assert outs[1].value["status"] == "failed" and "invalid destination" in outs[1].value["reason"]


def test_a_card_password_is_sent_but_never_stored(db, optouts):
    from services.core.db.models import Message

    ev = outbound(text="Card 1234 password 987654", attributes={"kind": "prize"})
    d = accept(db, optouts, ev)
    assert d.plan.submission.text == "Card 1234 password 987654"
    with db.session() as s:
        stored = s.get(Message, ev["message_id"]).text
    assert "987654" not in stored and "redacted" in stored


def test_a_dlr_and_the_submit_response_racing_in_two_sessions_end_delivered(db, optouts):
    """The submit response and the DLR of one message are recorded by two transactions that
    both saw 'accepted': the later writer must not overwrite the earlier one's 'delivered'."""
    from services.core.db.models import Message
    from services.core.messages import transition

    ev = outbound(request_id="race-1")
    accept(db, optouts, ev)
    s1, s2 = db.sessions(), db.sessions()
    try:
        m1, m2 = s1.get(Message, ev["message_id"]), s2.get(Message, ev["message_id"])
        assert m1.status == m2.status == "accepted"
        assert transition(s2, m2, "delivered")  # the DLR, matched by our echoed reference
        s2.commit()
        assert not transition(s1, m1, "sent")  # the submit response, a moment late
        s1.commit()
    finally:
        s1.close()
        s2.close()
    with db.session() as s:
        assert s.get(Message, ev["message_id"]).status == "delivered"


def test_a_mixed_batch_is_decided_per_message_in_order(db, optouts):
    optouts.stops[("acme", "+14155550999")] = T0 - timedelta(minutes=1)
    done = outbound("done-1")
    first = accept(db, optouts, done)
    assert first.plan is not None
    assert statuses(sent(db, first.plan.submission.message_id, cmid="SM-done")) == ["sent"]
    batch = [
        outbound("new-1"),
        outbound("stopped", to="+14155550999"),
        outbound("late", expires_at=ts(T0 - timedelta(seconds=1))),
        outbound("new-1"),  # the same request again in the batch
        {**done, "event_id": str(uuid.uuid4())},  # redelivered after it was sent
        outbound("cn", to="+8613800138000", text="你好" * 150),
    ]
    with db.session() as s:
        ds = domain.accept_batch(s, batch, optouts=optouts, carriers=CARRIERS, now=T0 + timedelta(seconds=1))
    assert len(ds) == len(batch)
    assert ds[0].plan is not None and statuses(ds[0].statuses) == ["accepted"]
    assert ds[1].plan is None and statuses(ds[1].statuses) == ["accepted", "suppressed"]
    assert ds[2].plan is None and statuses(ds[2].statuses) == ["accepted", "expired"]
    assert ds[3].duplicate and ds[3].plan is None and ds[3].statuses == []
    assert ds[4].duplicate and statuses(ds[4].statuses) == ["sent"]  # its status again, not a send
    assert ds[5].plan.submission.encoding == "ucs2" and ds[5].plan.submission.segments == 5
    assert row(db, ds[5].plan.submission.message_id).segments == 5  # kept for billing
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 5
        assert s.scalar(select(func.count()).select_from(MessageEvent)
                        .where(MessageEvent.status == "accepted")) == 5


def test_a_batch_of_submit_responses_moves_each_once_and_keeps_a_settled_one_settled(db, optouts):
    mids = [accept(db, optouts, outbound(f"r-{i}")).plan.submission.message_id for i in range(3)]
    # the carrier's DLR for the second one, echoing our id, won the race with its submit response
    assert statuses(handle(db, delivery(cmid="SM-b", message_id=mids[1]))) == ["delivered"]
    # and one for the third arrived with only the carrier's id: kept pending
    assert handle(db, delivery(cmid="SM-c")) == []
    with db.session() as s:
        recorded = domain.record_sent_batch(s, [(mids[0], SubmitResult("SM-a", "sim")),
                                                (mids[1], SubmitResult("SM-b", "sim")),
                                                (mids[2], SubmitResult("SM-c", "sim"))],
                                            now=T0 + timedelta(seconds=2))
        late = dlr.match_pending_many(s, [m for m, _ in recorded])
    assert [statuses(events) for _, events in recorded] == [["sent"], [], ["sent"]]
    assert statuses(late) == ["delivered"] and late[0]["message_id"] == mids[2]
    assert [(row(db, m).status, row(db, m).carrier_message_id) for m in mids] == [
        ("sent", "SM-a"), ("delivered", "SM-b"), ("delivered", "SM-c")]
    with db.session() as s:  # the same responses again (a retried batch) change nothing
        again = domain.record_sent_batch(s, [(mids[0], SubmitResult("SM-a", "sim"))])
        assert again[0][1] == []
        assert s.scalar(select(func.count()).select_from(MessageEvent)
                        .where(MessageEvent.status == "sent")) == 2
        assert set(s.scalars(select(MessageEvent.carrier).where(MessageEvent.status == "sent"))) == {"sim"}


def test_a_batch_of_reports_is_matched_with_one_lookup_and_applied_in_order(db, optouts):
    mids = [accept(db, optouts, outbound(f"d-{i}")).plan.submission.message_id for i in range(2)]
    for i, mid in enumerate(mids):
        sent(db, mid, cmid=f"SM-{i}")
    batch = [delivery(cmid="SM-0"), delivery(cmid="SM-1", status="undeliverable", error_code="1"),
             delivery(cmid="SM-0"),  # the same report again
             delivery(cmid="SM-x"),  # nobody's yet: kept pending
             delivery(cmid="SM-1", status="accepted")]  # not final: says nothing
    with db.session() as s:
        out = dlr.handle_deliveries(s, batch)
    assert [(e["message_id"], e["status"]) for e in out] == [(mids[0], "delivered"), (mids[1], "failed")]
    assert "error 1" in out[1]["reason"]
    assert [row(db, m).status for m in mids] == ["delivered", "failed"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(PendingDlr)) == 1


def test_a_bulk_move_leaves_a_message_another_writer_moved_first(db, optouts):
    from services.core.messages import Move, transition_many

    mids = [accept(db, optouts, outbound(f"m-{i}")).plan.submission.message_id for i in range(2)]
    for i, mid in enumerate(mids):
        sent(db, mid, cmid=f"SM-{i}")
    at = T0 + timedelta(seconds=5)
    with db.session() as s:
        stale = [s.get(Message, mid) for mid in mids]  # both read as 'sent'
        with db.session() as other:  # meanwhile another writer fails the first one
            assert statuses(dlr.handle_delivery(other, delivery(cmid="SM-0", status="rejected"))) == ["failed"]
        moved = transition_many(s, [Move(m, "delivered", at) for m in stale])
        assert [m.msg.id for m in moved] == [mids[1]]
        assert stale[1].status == "delivered"
    assert [row(db, m).status for m in mids] == ["failed", "delivered"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(MessageEvent)
                        .where(MessageEvent.status == "delivered")) == 1


def test_a_report_that_read_accepted_while_the_submit_response_recorded_sent_still_delivers(db, optouts):
    """The lost-report race found under a half-failing carrier: a report batch reads the message
    as 'accepted' (it echoes our id, before the carrier id is known), the submit response commits
    'sent' before the report's update runs; the report must move it on from 'sent', not vanish."""
    from services.core.messages import Move, transition_many

    mid = accept(db, optouts, outbound("raced")).plan.submission.message_id
    at = T0 + timedelta(seconds=5)
    with db.session() as s:
        stale = s.get(Message, mid)
        assert stale.status == "accepted"
        assert statuses(sent(db, mid, cmid="SM-r")) == ["sent"]  # another transaction, committed
        moved = transition_many(s, [Move(stale, "delivered", at)])
        assert [(m.msg.id, m.status) for m in moved] == [(mid, "delivered")]
    assert row(db, mid).status == "delivered"
    with db.session() as s:
        history = s.scalars(select(MessageEvent.status).where(MessageEvent.message_id == mid)
                            .order_by(MessageEvent.occurred_at)).all()
    assert history == ["accepted", "sent", "delivered"]


def test_reports_echoing_our_ids_before_the_submit_responses_are_applied_as_a_batch(db, optouts):
    mids = [accept(db, optouts, outbound(f"e-{i}")).plan.submission.message_id for i in range(3)]
    batch = [delivery(cmid=f"SM-e{i}", message_id=mid) for i, mid in enumerate(mids)]
    batch.append(delivery(cmid="SM-e0", message_id=mids[0]))  # the first one again
    with db.session() as s:
        out = dlr.handle_deliveries(s, batch)
    assert sorted((e["message_id"], e["status"]) for e in out) == sorted((m, "delivered") for m in mids)
    assert [(row(db, m).status, row(db, m).carrier_message_id) for m in mids] == [
        ("delivered", f"SM-e{i}") for i in range(3)]
    assert sent(db, mids[0], cmid="SM-e0") == []  # the submit response after it: no 'sent'


def test_the_rows_a_batch_records_are_returned_as_the_database_holds_them(db, optouts):
    """The rows a batch inserts come back as they were written, not read back: they must say
    what a later read says (times compared as UTC), for new rows and for ones already there."""
    from services.core.messages import MessageRow, load_rows, record_accepted_many
    from services.core.utc import aware

    old = outbound("kept-1")
    accept(db, optouts, old)
    batch = [old, outbound("fresh-1"), outbound("fresh-2", to="+8613800138000", text="你好" * 80,
                                                category="marketing", campaign_id="c-1")]
    with db.session() as s:
        written = record_accepted_many(s, batch)
    with db.session() as s:
        read = load_rows(s, [e["message_id"] for e in batch])
    assert set(written) == set(read) == {e["message_id"] for e in batch}
    for mid, row in written.items():
        assert isinstance(row, MessageRow)
        again = read[mid]
        for name in MessageRow.__slots__:
            a, b = getattr(row, name), getattr(again, name)
            if name.endswith("_at"):
                a, b = aware(a), aware(b)
            assert a == b, (mid, name, a, b)
    assert written[batch[2]["message_id"]].encoding == "ucs2"
    assert written[batch[2]["message_id"]].segments == 3


def test_a_plain_message_row_has_every_column_of_the_messages_table():
    """A column added to ``messages`` must be added to ``MessageRow`` too (egress reads rows
    through it), and the row written at insert must fill every one of them."""
    from services.core.messages import MessageRow, _row

    columns = {c.name for c in Message.__table__.columns}
    assert set(MessageRow.__slots__) == columns
    assert set(_row(outbound("cols-1"))) == columns


def test_a_list_of_ids_longer_than_sqlites_variable_limit_is_matched_in_one_statement(db, optouts):
    from services.core.db.schemes import among

    events = [outbound(f"among-{i}") for i in range(3)]
    with db.session() as s:
        domain.accept_batch(s, events, optouts=optouts, carriers=CARRIERS, now=T0)
    known = [e["message_id"] for e in events]
    unknown = [str(uuid.uuid4()) for _ in range(40_000)]  # SQLite binds at most 32,766 values
    with db.session() as s:
        t = Message.__table__
        found = set(s.scalars(select(t.c.id).where(among(s, t.c.id, unknown[:20_000] + known + unknown[20_000:]))))
        none = s.scalars(select(t.c.id).where(among(s, t.c.id, []))).all()
        moved = s.execute(update(t).where(among(s, t.c.id, known[:2]), t.c.status == "accepted")
                          .values(status="sent").returning(t.c.id)).scalars().all()
    assert found == set(known)
    assert none == []
    assert sorted(moved) == sorted(known[:2])
