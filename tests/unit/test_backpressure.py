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
