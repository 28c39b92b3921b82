"""Throttling and unreachable carriers are back-pressure, not failure: the policy stops without
sleeping past ``max_wait``, a throttled carrier is paused for everyone, and egress parks the
message and sends it when the carrier takes traffic again, within its validity period."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.carriers.base import ConnectionFailed, Submission, SubmitResult, Throttled
from services.core.processor import In
from services.core.settings import Settings
from services.egress.deferral import DeferredSend
from services.egress.delivery import RetryBudgetExhausted, submit_with_failover
from tests.unit.test_egress_domain import CARRIERS, db, optouts, outbound, row  # noqa: F401

SUB = Submission(message_id="m-1", to="+14155550123", sender=None, text="hi", encoding="gsm7", segments=1)


class Scripted:
    """A connector that raises ``error`` while it is set, and takes messages otherwise."""

    def __init__(self, name: str, error: Exception | None = None) -> None:
        self.name, self.error, self.subs = name, error, []

    async def submit(self, sub):
        self.subs.append(sub)
        if self.error is not None:
            raise self.error
        return SubmitResult(f"{self.name}-{len(self.subs)}", self.name)

    async def close(self) -> None:
        pass


class PausableBucket:
    """The rate limiter's interface: ``pause`` makes ``acquire(max_wait=)`` answer the wait."""

    def __init__(self) -> None:
        self.until = 0.0
        self.pauses: list[float] = []

    async def acquire(self, n=1, max_wait=None) -> float:
        wait = self.until - time.time()
        if wait > 0 and max_wait is not None and wait > max_wait:
            return wait
        return 0.0

    async def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.until = max(self.until, time.time() + seconds)

    async def close(self) -> None:
        pass


def test_a_throttle_longer_than_max_wait_ends_the_try_at_once_with_the_carriers_retry_after():
    sleeps, pauses = [], []

    async def sleep(d):
        sleeps.append(d)

    async def throttled(name, retry_after):
        pauses.append((name, retry_after))

    a = Scripted("a", Throttled(retry_after=10))
    with pytest.raises(RetryBudgetExhausted) as info:
        asyncio.run(submit_with_failover([a], SUB, max_attempts=5, backoff_base=0.1, sleep=sleep,
                                         max_wait=1.0, throttled=throttled))
    assert info.value.retry_after == 10 and sleeps == [] and len(a.subs) == 1
    assert pauses == [("a", 10)]


def test_a_paused_carrier_hands_its_messages_to_the_next_carrier_without_trying_it():
    a, b = Scripted("a"), Scripted("b")

    async def acquire(name):
        return 30.0 if name == "a" else 0.0

    res = asyncio.run(submit_with_failover([a, b], SUB, max_attempts=3, backoff_base=0.1,
                                           acquire=acquire, max_wait=1.0))
    assert res.carrier == "b" and a.subs == []


def test_when_every_carrier_is_paused_the_try_ends_with_the_shortest_pause():
    async def acquire(name):
        return {"a": 30.0, "b": 5.0}[name]

    with pytest.raises(RetryBudgetExhausted) as info:
        asyncio.run(submit_with_failover([Scripted("a"), Scripted("b")], SUB, max_attempts=3,
                                         backoff_base=0.1, acquire=acquire, max_wait=1.0))
    assert info.value.retry_after == 5.0


def egress(db, optouts, connector, bucket, validity_s=86400.0):  # noqa: F811
    from types import SimpleNamespace

    from services.egress.app import Egress

    settings = Settings(database_url=db.url, egress_max_attempts=2, egress_backoff_base_ms=1,
                        egress_validity_s=validity_s)
    p = SimpleNamespace(name="egress", db=db, settings=settings)
    return Egress(p, {"sim": CARRIERS["sim"]}, {"sim": connector}, {"sim": bucket}, optouts)


def batch(e, events) -> list:
    return asyncio.run(e.on_outbound([In(ev, ev["to"], 0, i) for i, ev in enumerate(events)]))


def parked(database) -> int:
    with database.session() as s:
        return s.scalar(select(func.count()).select_from(DeferredSend))


def make_due(database) -> None:
    with database.session() as s:
        for r in s.scalars(select(DeferredSend)):
            r.due_at = 0.0


def test_a_throttled_message_waits_and_is_sent_when_the_carrier_recovers(db, optouts):  # noqa: F811
    conn, bucket = Scripted("sim", Throttled(retry_after=5)), PausableBucket()
    e = egress(db, optouts, conn, bucket)
    ev = outbound()
    outs = batch(e, [ev])
    assert [o.value["status"] for o in outs] == ["accepted"]  # not failed, not dead-lettered
    assert all(o.topic == "sms.status" for o in outs)
    assert row(db, ev["message_id"]).status == "accepted" and parked(db) == 1
    assert bucket.pauses == [5]  # the carrier is paused for every worker, as it asked

    # Its event redelivered meanwhile: not sent from the batch, it is parked.
    batch(e, [ev])
    assert len(conn.subs) == 1

    # Not due yet: nothing is sent.
    assert asyncio.run(e.redrive()) == [] and len(conn.subs) == 1
    conn.error, bucket.until = None, 0.0
    make_due(db)
    outs = asyncio.run(e.redrive())
    assert [o.value["status"] for o in outs] == ["sent"]
    assert row(db, ev["message_id"]).status == "sent" and parked(db) == 0
    assert len(conn.subs) == 2


def test_an_unreachable_carrier_parks_the_message_again_until_it_answers(db, optouts):  # noqa: F811
    conn = Scripted("sim", ConnectionFailed("connect failed: refused"))
    e = egress(db, optouts, conn, PausableBucket())
    ev = outbound()
    batch(e, [ev])
    make_due(db)
    assert asyncio.run(e.redrive()) == []  # still unreachable: parked again, not failed
    assert row(db, ev["message_id"]).status == "accepted" and parked(db) == 1
    conn.error = None
    make_due(db)
    assert [o.value["status"] for o in asyncio.run(e.redrive())] == ["sent"]


def test_a_message_whose_validity_ends_while_it_waits_expires_instead_of_failing(db, optouts):  # noqa: F811
    conn = Scripted("sim", Throttled(retry_after=120))
    e = egress(db, optouts, conn, PausableBucket())
    soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    ev = outbound(accepted_at=datetime.now(UTC), expires_at=soon)
    outs = batch(e, [ev])
    assert [o.value["status"] for o in outs] == ["accepted", "expired"]
    assert "validity ended" in outs[-1].value["reason"] and "Throttled" in outs[-1].value["reason"]
    assert row(db, ev["message_id"]).status == "expired" and parked(db) == 0


def due_in(database) -> dict[str, float]:
    """Parked message id -> seconds until it is due."""
    with database.session() as s:
        return {r.message_id: r.due_at - time.time() for r in s.scalars(select(DeferredSend))}


def test_a_carrier_taking_a_message_again_pulls_its_parked_messages_forward(db, optouts):  # noqa: F811
    conn, bucket = Scripted("sim", Throttled(retry_after=50)), PausableBucket()
    e = egress(db, optouts, conn, bucket)
    waiting = [outbound(f"wait-{i}") for i in range(3)]
    batch(e, waiting)
    assert parked(db) == 3 and all(s > 40 for s in due_in(db).values())

    # The carrier answers again; a new message goes out at once. Right after its trouble that
    # is no proof it is back: the parked ones keep their backoff.
    conn.error, bucket.until = None, 0.0
    batch(e, [outbound("fresh-1")])
    assert all(s > 40 for s in due_in(db).values())

    # Some seconds later, a message it takes brings the parked ones forward: due now, sent by
    # the next redrive, each once.
    e._trouble["sim"] = time.monotonic() - 10
    batch(e, [outbound("fresh-2")])
    assert all(s <= 0 for s in due_in(db).values())
    outs = asyncio.run(e.redrive())
    assert sorted(o.value["status"] for o in outs) == ["sent"] * 3 and parked(db) == 0
    assert sorted(sub.message_id for sub in conn.subs[-3:]) == sorted(ev["message_id"] for ev in waiting)


def test_pulling_forward_leaves_messages_under_a_workers_lease_and_other_carriers_alone(db):  # noqa: F811
    from services.core.secrets import SecretBox
    from services.egress import deferral
    from services.egress.domain import SendPlan

    box = SecretBox("k" * 32, deferral.SEAL_PURPOSE)
    later = datetime.now(UTC) + timedelta(hours=1)
    now = time.time()
    with db.session() as s:
        for mid, carriers in (("a", ["sim"]), ("b", ["other", "sim"]), ("c", ["other"]),
                              ("d", ["sim"]), ("e", ["sim_x"])):
            sub = Submission(message_id=mid, to="+14155550123", sender=None, text="hi",
                             encoding="gsm7", segments=1)
            deferral.park(s, box, SendPlan(sub, carriers), deadline=later, due_at=now + 50,
                          reason="throttled", attempts=1)
    with db.session() as s:  # "d" is being sent by a worker: its due_at is its lease
        claimed = deferral.claim_due(s, box, now + 60, limit=1, lease_s=120)
    assert [p.plan.submission.message_id for p in claimed] == ["a"]
    with db.session() as s:
        deferral.park(s, box, claimed[0].plan, deadline=later, due_at=now + 50, reason="again",
                      attempts=2)  # parked again: no longer claimed
        d = s.get(DeferredSend, "d")
        d.claimed, d.due_at = True, now + 120
    with db.session() as s:
        assert deferral.pull_forward(s, "sim", now, limit=10) == 2
    with db.session() as s:
        due = {r.message_id: r.due_at for r in s.scalars(select(DeferredSend))}
    assert due["a"] == due["b"] == now  # waiting for "sim" (first or second choice)
    assert due["c"] == now + 50 and due["e"] == now + 50  # another carrier, another name
    assert due["d"] == now + 120  # under a lease: the worker holding it sends it
