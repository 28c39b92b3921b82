"""Delivery reports that misbehave: each one arriving before the submit is answered (the
simulator's dlr_before_response), then, posted to ingress's DLR webhook signed as the carrier
signs them, the same reports again (duplicated), an earlier status after the final one
(reordered), and reports for messages nobody sent (unknown). Every message must end delivered,
with one delivered transition in its history and one delivered event on sms.status."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
from sqlalchemy import func, select

from services.core.db.models import Message, MessageEvent
from tests.faults.harness import Checker, Load
from tests.faults.scenario import record
from tests.support.infra import read_topic, wait_until

pytestmark = pytest.mark.e2e


def test_duplicated_reordered_early_and_unknown_reports_leave_each_message_delivered_once(
        fault_platform, fault_table):
    p = fault_platform
    check = Checker(p)
    p.control(dlr_before_response=True)
    try:
        load = Load(p, calls=30, rate=6).start()
        accepted = load.join()
    finally:
        p.control(dlr_before_response=False)
    ids = accepted.expected

    def statuses() -> dict[str, str]:
        with p.db.session() as s:
            return dict(s.execute(select(Message.id, Message.status).where(Message.id.in_(ids))).all())

    wait_until(lambda: set(statuses().values()) == {"delivered"} and len(statuses()) == len(ids), 120, 0.5,
               "every message delivered although its report came before the submit's answer")

    # The same reports again, an earlier status after the final one, and reports for nobody.
    subs = [s for s in p.submissions() if s["reference"] in ids]
    answers: Counter = Counter()
    for sub in subs:
        body = {"carrier_message_id": sub["carrier_message_id"], "reference": sub["reference"],
                "reported_at": sub["received_at"]}
        for status in ("delivered", "delivered", "enroute"):
            answers[p.dlr(sub["carrier"], {**body, "status": status}).status_code] += 1
    for _ in range(5):
        unknown = {"carrier_message_id": uuid.uuid4().hex, "reference": str(uuid.uuid4()),
                   "status": "delivered", "reported_at": subs[0]["received_at"]}
        answers[p.dlr("sim", unknown).status_code] += 1
    assert set(answers) <= {200, 202, 204}, answers
    recovery = p.seconds_until_healthy(time.monotonic())

    # A sentinel sent after them, delivered, means egress has read the reports before it on its
    # partition; every message must still be delivered with one delivered transition.
    sentinel = Load(p, calls=3, rate=10).start().join()
    wait_until(lambda: all(v == "delivered" for v in statuses().values()), 30, 0.5, "still delivered")
    check_ids = ids | sentinel.expected
    wait_until(lambda: (st := statuses_of(p, sentinel.expected)) and set(st.values()) == {"delivered"},
               60, 0.5, "the sentinel delivered")
    with p.db.session() as s:
        per_message = dict(s.execute(
            select(MessageEvent.message_id, func.count()).where(
                MessageEvent.message_id.in_(check_ids), MessageEvent.status == "delivered")
            .group_by(MessageEvent.message_id)).all())
    regressed = [m for m, st in statuses().items() if st != "delivered"]
    events = read_topic(p.stack.bootstrap, p.stack.topic("sms.status"), timeout=3)
    delivered_events = Counter(e["message_id"] for e in {e["event_id"]: e for e in events}.values()
                               if e["message_id"] in check_ids and e["status"] == "delivered")
    twice = [m for m, n in per_message.items() if n > 1] + [m for m, n in delivered_events.items() if n > 1]
    row = check.settle("DLRs early, duplicated, reordered, unknown", accepted, recovery,
                       f"{len(subs)} messages: each report twice more and an 'enroute' after it; "
                       f"5 reports for unknown ids; answers {dict(answers)}", extra=sentinel.expected)
    row.double_effects += len(twice) + len(regressed)
    if twice or regressed:
        row.note += f"; delivered twice: {twice[:3]}; regressed: {regressed[:3]}"
    record(fault_table, row)


def statuses_of(p, ids: set[str]) -> dict[str, str]:
    with p.db.session() as s:
        return dict(s.execute(select(Message.id, Message.status).where(Message.id.in_(ids))).all())
