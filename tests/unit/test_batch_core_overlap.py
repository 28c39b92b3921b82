"""The librdkafka core with batches in flight (``consume(..., in_flight=N)``), without a broker:
a scripted consumer and a producer whose acknowledgements the test holds, fails or gives. What
is pinned: the next batch is handled while the previous one's acks are awaited, offsets are
committed only in batch order and only once every output up to them is acknowledged, a failed
delivery is produced again before anything later commits (and what was produced after it goes
again behind it), and a revocation or a stop commits what is acknowledged, in order."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable

import pytest

from services.core.events import In, Out
from services.core.kafka import BrokerUnavailable
from services.core.rdkafka_core import BatchProcessor, _Batch, _InFlight
from services.core.schemas import encode, new_event
from services.core.settings import Settings

TOPIC = "codes.submitted"
WAIT_S = 10.0  # a bound on every wait below, never a pause


class Record:
    """What confluent-kafka's consumer hands out, as far as the core reads it."""

    def __init__(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        self._t, self._p, self._o, self._v = topic, partition, offset, value

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes:
        return self._v

    def key(self) -> bytes:
        return b"k"

    def error(self) -> None:
        return None


class ScriptedConsumer:
    """Hands out the records the test adds, at most ``n`` per consume(); logs every commit."""

    def __init__(self, log: list[tuple], topic: str) -> None:
        self.log, self.topic = log, topic
        self.waiting: list[Record] = []
        self.next_offset = 0
        self.lock = threading.Condition()

    def add(self, codes: list[str], partition: int = 0) -> None:
        with self.lock:
            for code in codes:
                ev = new_event(TOPIC, tenant_id="acme", submission_id=str(uuid.uuid4()), code=code,
                               **{"from": "+8613812345678"}, to="10690001",
                               inbound_message_id=str(uuid.uuid4()),
                               received_at="2026-11-28T10:00:00Z")
                self.waiting.append(Record(self.topic, partition, self.next_offset,
                                           encode(TOPIC, ev)))
                self.next_offset += 1
            self.lock.notify_all()

    def consume(self, n: int, timeout: float) -> list[Record]:
        with self.lock:
            if not self.waiting and timeout:
                self.lock.wait(min(timeout, 0.05))
            out, self.waiting = self.waiting[:n], self.waiting[n:]
            return out

    def commit(self, offsets, asynchronous: bool) -> None:
        assert asynchronous is False
        self.log.append(("commit", {(tp.partition): tp.offset for tp in offsets}))


class HeldProducer:
    """produce_all() gives each call's future to the test (``futures``) instead of settling it;
    send_all() (the core's producing again) is acknowledged at once. Both are logged."""

    def __init__(self, log: list[tuple]) -> None:
        self.log = log
        self.futures: list[asyncio.Future] = []

    async def produce_all(self, records) -> asyncio.Future:
        self.log.append(("produce", [r[2].decode() for r in records]))
        fut = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut

    async def send_all(self, records) -> None:
        self.log.append(("again", [r[2].decode() for r in records]))


def reply(event: dict) -> Out:
    return Out("sms.outbound", event["code"], new_event(
        "sms.outbound", tenant_id="acme", message_id=event["submission_id"],
        request_id=event["code"], to=event["from"], **{"from": "10690001"}, text="ok",
        category="transactional", source="api", priority=5, accepted_at="2026-11-28T10:00:01Z"))


class Harness:
    """A BatchProcessor's consume loop on this event loop over the scripted consumer."""

    def __init__(self, in_flight: int, batch: int = 5) -> None:
        self.log: list[tuple] = []
        self.p = BatchProcessor("overlap", settings=Settings(), use_db=False)
        self.consumer = ScriptedConsumer(self.log, self.p.settings.topic(TOPIC))
        self.producer = HeldProducer(self.log)
        self.p._consumer = self.consumer  # type: ignore[assignment]
        self.p.producer = self.producer  # type: ignore[assignment]
        self.p._assigned = {(self.consumer.topic, 0), (self.consumer.topic, 1)}
        self.p.consume(TOPIC, self.handle, batch=batch, in_flight=in_flight)

    def handle(self, items: list[In]) -> list[Out]:
        self.log.append(("handle", [i.event["code"] for i in items]))
        return [reply(i.event) for i in items]

    async def until(self, what: str, ok: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not ok():
                await asyncio.sleep(0.005)  # polling the condition, bounded by WAIT_S

    def entries(self, kind: str) -> list:
        return [e[1] for e in self.log if e[0] == kind]


def codes(prefix: str, n: int = 5) -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


def run(test) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


def test_the_next_batch_is_handled_while_the_first_ones_acks_are_awaited_and_nothing_commits_before_them():
    async def scenario() -> None:
        h = Harness(in_flight=2)
        loop = asyncio.create_task(h.p._consume_loop())
        h.consumer.add(codes("AAAA"))
        await h.until("batch A handled", lambda: len(h.producer.futures) == 1)
        h.consumer.add(codes("BBBB"))
        await h.until("batch B handled", lambda: len(h.producer.futures) == 2)
        h.producer.futures[1].set_result(None)  # B acknowledged, A not yet
        h.consumer.add(codes("CCCC"))  # a third batch waits: two are in flight
        await asyncio.sleep(0)  # let the loop see B's ack
        assert h.entries("commit") == [], "nothing commits while the first batch is unacknowledged"
        assert h.entries("handle") == [codes("AAAA"), codes("BBBB")]
        h.producer.futures[0].set_result(None)
        await h.until("A and B committed", lambda: h.entries("commit"))
        assert h.entries("commit")[0] == {0: 10}, "A and B together, once A's acks are in"
        await h.until("C produced", lambda: len(h.producer.futures) == 3)
        h.producer.futures[2].set_result(None)
        await h.until("C committed", lambda: {0: 15} in h.entries("commit"))
        h.p._stopping.set()
        await loop
        assert [e[0] for e in h.log if e[0] != "commit"][:4] == ["handle", "produce", "handle", "produce"]
        assert h.entries("again") == [], "acknowledged outputs are not produced again"

    run(scenario)


def test_with_one_batch_in_flight_each_batch_commits_before_the_next_is_handled():
    async def scenario() -> None:
        h = Harness(in_flight=1)
        loop = asyncio.create_task(h.p._consume_loop())
        h.consumer.add(codes("AAAA") + codes("BBBB"))
        await h.until("A produced", lambda: len(h.producer.futures) == 1)
        asyncio.get_running_loop().call_later(0.05, h.producer.futures[0].set_result, None)
        await h.until("B produced", lambda: len(h.producer.futures) == 2)
        h.producer.futures[1].set_result(None)
        await h.until("B committed", lambda: {0: 10} in h.entries("commit"))
        h.p._stopping.set()
        await loop
        kinds = [(e[0], e[1] if e[0] == "commit" else None) for e in h.log]
        assert kinds.index(("commit", {0: 5})) < [e[0] for e in h.log].index("handle", 1), \
            "A committed before B was handled"

    run(scenario)


def test_a_failed_delivery_is_produced_again_before_a_later_batch_commits_and_the_later_one_goes_again_behind_it():
    async def scenario() -> None:
        h = Harness(in_flight=2)
        loop = asyncio.create_task(h.p._consume_loop())
        h.consumer.add(codes("AAAA"))
        await h.until("A produced", lambda: len(h.producer.futures) == 1)
        h.consumer.add(codes("BBBB"))
        await h.until("B produced", lambda: len(h.producer.futures) == 2)
        h.producer.futures[1].set_result(None)  # B acknowledged first
        h.producer.futures[0].set_exception(BrokerUnavailable("not acknowledged: timed out"))
        await h.until("both committed", lambda: {0: 10} in h.entries("commit"))
        h.p._stopping.set()
        await loop
        order = [(e[0], e[1][0]) for e in h.log if e[0] in ("produce", "again", "commit")]  # first code; a commit: partition 0's offset
        assert order == [("produce", "AAAA0000"), ("produce", "BBBB0000"),
                         ("again", "AAAA0000"), ("again", "BBBB0000"), ("commit", 10)], \
            "A again, B again behind it, and only then the commit of both"
        assert h.entries("commit") == [{0: 10}]

    run(scenario)


def test_stopping_waits_for_the_batches_in_flight_and_commits_them_in_order():
    async def scenario() -> None:
        h = Harness(in_flight=3)
        loop = asyncio.create_task(h.p._consume_loop())
        h.consumer.add(codes("AAAA"))
        await h.until("A produced", lambda: len(h.producer.futures) == 1)
        h.consumer.add(codes("BBBB"))
        await h.until("B produced", lambda: len(h.producer.futures) == 2)
        h.producer.futures[1].set_result(None)
        h.p._stopping.set()
        await asyncio.sleep(0)
        assert not loop.done() and h.entries("commit") == [], "the stop waits for A's acks"
        h.producer.futures[0].set_result(None)
        await asyncio.wait_for(loop, WAIT_S)
        assert h.entries("commit") == [{0: 10}]

    run(scenario)


def _batch(flight: _InFlight, offsets: dict, outcome: str | None) -> _Batch:
    loop = asyncio.get_running_loop()
    b = _Batch(offsets)
    fut = loop.create_future()
    flight.add(b, fut)
    if outcome == "acked":
        fut.set_result(None)
    elif outcome == "failed":
        fut.set_exception(BrokerUnavailable("not acknowledged"))
    return b


@pytest.mark.parametrize("second", ["failed", None])
def test_a_revocation_commits_the_acknowledged_batches_at_the_head_and_leaves_the_rest_to_the_new_owner(second):
    """Batch 1 acknowledged; batch 2 failed (or its acks never come within the wait); batch 3
    acknowledged. Only batch 1 commits; batches 2 and 3 keep the partition still owned."""
    async def scenario() -> None:
        flight = _InFlight()
        b1 = _batch(flight, {("t", 0): 5, ("t", 1): 3}, "acked")
        b2 = _batch(flight, {("t", 0): 9, ("t", 1): 6}, second)
        b3 = _batch(flight, {("t", 0): 12}, "acked")
        await asyncio.sleep(0)  # the done-callbacks run
        # the consumer's thread, as librdkafka calls on_revoke; the event loop stays free
        done = await asyncio.to_thread(flight.drain, {("t", 0)}, 0.2)
        assert {(tp.topic, tp.partition): tp.offset for tp in done} == {("t", 0): 5, ("t", 1): 3}
        assert b1.offsets == {} and b2.offsets == {("t", 1): 6} and b3.offsets == {}
        if second is None:
            b2.acked.cancel()

    run(scenario)


def test_a_revocation_waits_for_acknowledgements_on_their_way():
    async def scenario() -> None:
        flight = _InFlight()
        b1 = _batch(flight, {("t", 0): 5}, None)
        _batch(flight, {("t", 0): 9}, "acked")
        asyncio.get_running_loop().call_later(0.05, b1.acked.set_result, None)
        done = await asyncio.to_thread(flight.drain, {("t", 0)}, WAIT_S)
        assert [(tp.partition, tp.offset) for tp in done] == [(0, 9)]

    run(scenario)
