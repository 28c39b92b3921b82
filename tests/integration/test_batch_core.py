"""The librdkafka processor core (services/core/rdkafka_core.py) against the real broker: the
guarantees of the Faust core it replaces for the hot processors. Each test runs a processor
in this process on codes.submitted -> sms.outbound under its own topic prefix."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from sqlalchemy.exc import OperationalError

from services.core.events import In, Out
from services.core.processor import Processor
from services.core.rdkafka_core import BatchProcessor
from services.core.schemas import encode, new_event
from tests.support.infra import read_topic, wait_until

SOURCE, TARGET = "codes.submitted", "sms.outbound"
ROOT = Path(__file__).resolve().parents[2]


def submission(code: str) -> dict:
    return new_event(SOURCE, tenant_id="acme", submission_id=str(uuid.uuid4()), code=code,
                     **{"from": "+8613812345678"}, to="10690001",
                     inbound_message_id=str(uuid.uuid4()), received_at="2026-11-28T10:00:00Z")


def reply_to(event: dict) -> Out:
    return Out(TARGET, event["code"], new_event(
        TARGET, tenant_id="acme", message_id=event["submission_id"], request_id=event["code"],
        to=event["from"], **{"from": "10690001"}, text="ok", category="transactional",
        source="api", priority=5, accepted_at="2026-11-28T10:00:01Z"))


def produce(stack, records: list[bytes | dict]) -> None:
    p = Producer({"bootstrap.servers": stack.bootstrap})
    for r in records:
        raw = encode(SOURCE, r) if isinstance(r, dict) else r
        p.produce(stack.topic(SOURCE), raw, key=b"k")  # one key: one partition, in order
    assert p.flush(10) == 0


class Running:
    """A BatchProcessor on its own event loop in a thread, stopped like SIGTERM stops it."""

    def __init__(self, p: BatchProcessor) -> None:
        self.p = p
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self.p.run(self.stop))
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            self.error = exc

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(60)
        assert not self.thread.is_alive(), "the processor did not stop"


def committed(stack, group: str) -> int:
    c = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": group})
    try:
        md = c.list_topics(stack.topic(SOURCE), timeout=10)
        parts = [TopicPartition(stack.topic(SOURCE), i) for i in md.topics[stack.topic(SOURCE)].partitions]
        return sum(max(tp.offset, 0) for tp in c.committed(parts, timeout=10))
    finally:
        c.close()


def test_bad_bytes_and_a_failing_event_reach_the_dlq_while_the_rest_of_the_batch_takes_effect(stack):
    seen_transient: list[str] = []

    def handle(items: list[In]) -> list[Out]:
        outs = []
        for i in items:
            code = i.event["code"]
            if code == "BADBADBA":
                raise ValueError("this code breaks the handler")
            if code == "FLAKY234" and not seen_transient:
                seen_transient.append(code)
                raise OperationalError("SELECT 1", {}, Exception("database is away"))
            outs.append(reply_to(i.event))
        return outs

    p = Processor("probe", port=0, settings=stack.settings(), use_db=False, core="librdkafka")
    assert isinstance(p, BatchProcessor)
    p.consume(SOURCE, handle)
    good = [submission(f"GOOD{n:04d}") for n in range(20)]
    culprit, flaky = submission("BADBADBA"), submission("FLAKY234")
    produce(stack, [b"{not json", *good[:10], culprit, flaky, *good[10:]])
    with Running(p):
        replies = read_topic(stack.bootstrap, stack.topic(TARGET),
                             until=lambda recs: len(recs) >= 21, timeout=60)
        dlq = read_topic(stack.bootstrap, stack.topic(f"{SOURCE}.dlq"),
                         until=lambda recs: len(recs) >= 2, timeout=30)
        wait_until(lambda: committed(stack, p.group) == 23, timeout=30, what="offsets committed")
    assert sorted(r["request_id"] for r in replies) == sorted(
        [e["code"] for e in good] + ["FLAKY234"]), "the transient failure was retried, not dropped"
    assert {r["error_type"] for r in dlq} == {"invalid_json", "processing_error"}
    by_kind = {r["error_type"]: r for r in dlq}
    assert base64.b64decode(by_kind["invalid_json"]["value_b64"]) == b"{not json"
    failing = by_kind["processing_error"]
    assert json.loads(base64.b64decode(failing["value_b64"]))["code"] == "BADBADBA"
    assert "this code breaks the handler" in failing["reason"]
    assert failing["processor"] == "probe" and failing["tenant_id"] == "acme"
    assert len(replies) == 21 and len(dlq) == 2, "each record once: nothing twice, nothing lost"


CRASHING_CHILD = """
import os, sys
from services.core.processor import Processor
from services.core.settings import Settings

def handle(items):
    with open(sys.argv[1], "a") as f:
        f.write("\\n".join(i.event["code"] for i in items) + "\\n")
    os._exit(70)  # as a crash: before the outputs are produced or the offsets committed

p = Processor("redelivery", port=0, settings=Settings(), use_db=False, core="librdkafka")
p.consume("codes.submitted", handle)
p.main()
"""


def die_in_child(stack, script: str, seen) -> None:
    """Run ``script`` (a processor that records what it got in ``seen`` and dies with 70) as a
    process of its own, and check it died where it should."""
    child = subprocess.run([sys.executable, "-c", script, str(seen)], cwd=ROOT,
                           env=stack.env(HERALD_SESSION_TIMEOUT_S="6"), timeout=120,
                           capture_output=True, text=True)
    assert child.returncode == 70, child.stderr[-2000:]


def test_a_batch_whose_processor_dies_before_its_acks_is_handled_again_by_the_next_one(stack, tmp_path):
    """The first processor dies inside its handler: nothing of the batch was committed, and a
    second processor of the same group handles every event of it again."""
    events = [submission(f"AGAIN{n:03d}") for n in range(10)]
    produce(stack, events)
    seen = tmp_path / "seen.txt"
    die_in_child(stack, CRASHING_CHILD, seen)
    assert seen.read_text().split(), "the first processor got the records"

    s = stack.settings(session_timeout_s=6)
    second = Processor("redelivery", port=0, settings=s, use_db=False, core="librdkafka")
    assert committed(stack, second.group) == 0, "nothing may be committed before the acks"
    second.consume(SOURCE, lambda items: [reply_to(i.event) for i in items])
    with Running(second):
        replies = read_topic(stack.bootstrap, stack.topic(TARGET),
                             until=lambda recs: len(recs) >= 10, timeout=90)
        wait_until(lambda: committed(stack, second.group) == 10, timeout=30,
                   what="offsets committed")
    assert sorted(r["request_id"] for r in replies) == sorted(e["code"] for e in events)


def test_start_hooks_run_before_consuming_and_stop_hooks_after_the_last_commit(stack):
    order: list[str] = []

    def handle(items: list[In]) -> list[Out]:
        order.append("batch")
        return [reply_to(i.event) for i in items]

    async def running() -> None:
        order.append("running")

    p = Processor("hooks", port=0, settings=stack.settings(), use_db=False, core="librdkafka")
    p.consume(SOURCE, handle)
    p.on_start(lambda: order.append("start"))
    p.on_running(running)
    p.on_stop(lambda: order.append("stop"))
    ticks: list[int] = []

    async def tick() -> None:
        ticks.append(1)

    p.every(0.01, tick, name="hooks.tick")
    produce(stack, [submission("HOOKS234")])
    with Running(p):
        read_topic(stack.bootstrap, stack.topic(TARGET), until=lambda recs: len(recs) >= 1,
                   timeout=60)
        wait_until(lambda: len(ticks) >= 3, timeout=10, what="the periodic job ran")
    assert order[0] == "start" and order[-1] == "stop"
    assert "running" in order and "batch" in order


def test_a_second_processor_joining_the_group_takes_partitions_and_every_event_is_handled(stack):
    """A rebalance while events flow: the first processor gives up partitions to the second;
    every event gets its reply (a redelivered one may twice: effects are idempotent) and the
    group's committed offsets reach the end of every partition."""
    s = stack.settings(session_timeout_s=6)

    handled: dict[str, list[str]] = {"first": [], "second": []}

    def replying(who: str):
        def handle(items: list[In]) -> list[Out]:
            handled[who] += [i.event["code"] for i in items]
            return [reply_to(i.event) for i in items]
        return handle

    first = Processor("rebalance", port=0, settings=s, use_db=False, core="librdkafka")
    second = Processor("rebalance", port=0, settings=s, use_db=False, core="librdkafka")
    first.consume(SOURCE, replying("first"))
    second.consume(SOURCE, replying("second"))
    p = Producer({"bootstrap.servers": stack.bootstrap})
    events = [submission(f"SPREAD{n:03d}") for n in range(60)]

    def send(batch: list[dict]) -> None:
        for e in batch:
            p.produce(stack.topic(SOURCE), encode(SOURCE, e), key=e["code"].encode())
        assert p.flush(10) == 0

    with Running(first):
        send(events[:30])
        read_topic(stack.bootstrap, stack.topic(TARGET), until=lambda recs: len(recs) >= 30,
                   timeout=60)
        with Running(second):
            wait_until(lambda: second._assigned, timeout=60, what="the second processor's share")
            send(events[30:])
            replies = read_topic(
                stack.bootstrap, stack.topic(TARGET), timeout=90,
                until=lambda recs: {r["request_id"] for r in recs} >= {e["code"] for e in events})
            wait_until(lambda: committed(stack, first.group) == 60, timeout=60,
                       what="offsets committed to the end")
    assert set(handled["second"]) & {e["code"] for e in events[30:]}, "the second took a share"
    assert {r["request_id"] for r in replies} == {e["code"] for e in events}


HELD_ACKS_CHILD = """
import asyncio, os, sys
from services.core.kafka import AsyncProducer
from services.core.processor import Processor
from services.core.settings import Settings
from tests.integration.test_batch_core import reply_to

real_produce_all = AsyncProducer.produce_all
produced = []

async def first_acks_held(self, records):
    fut = await real_produce_all(self, records)  # the outputs do reach the broker...
    produced.append(fut)
    if len(produced) == 1:  # ...but the first batch's acknowledgements never reach the core
        return asyncio.get_running_loop().create_future()
    return fut

AsyncProducer.produce_all = first_acks_held
calls = []

def handle(items):
    calls.append(1)
    with open(sys.argv[1], "a") as f:
        f.write(" ".join(i.event["code"] for i in items) + "\\n")
    if len(calls) == 2:
        os._exit(70)  # the second batch is handled; the first still awaits its acks
    return [reply_to(i.event) for i in items]

p = Processor("overlapkill", port=0, settings=Settings(), use_db=False, core="librdkafka")
p.consume("codes.submitted", handle, batch=5, in_flight=2)
p.main()
"""


def test_a_processor_killed_after_handling_the_next_batch_before_the_first_ones_acks_commits_neither(
        stack, tmp_path):
    """Two batches in flight: the second is handled while the first one's acknowledgements are
    awaited, and the process dies then. Nothing is committed, and the next processor of the
    group handles both batches again."""
    events = [submission(f"KILL{n:04d}") for n in range(10)]
    produce(stack, events)
    seen = tmp_path / "seen.txt"
    die_in_child(stack, HELD_ACKS_CHILD, seen)
    batches = [line.split() for line in seen.read_text().splitlines()]
    assert len(batches) == 2 and sorted(sum(batches, [])) == sorted(e["code"] for e in events), \
        "the second batch was handled while the first one's acks were awaited"

    s = stack.settings(session_timeout_s=6)
    second = Processor("overlapkill", port=0, settings=s, use_db=False, core="librdkafka")
    assert committed(stack, second.group) == 0, "neither batch may be committed"
    second.consume(SOURCE, lambda items: [reply_to(i.event) for i in items], in_flight=2)
    with Running(second):
        wait_until(lambda: committed(stack, second.group) == 10, timeout=60,
                   what="both batches committed by the next processor")
    replies = read_topic(stack.bootstrap, stack.topic(TARGET))
    assert {r["request_id"] for r in replies} == {e["code"] for e in events}


def test_the_next_batchs_outputs_are_acknowledged_but_not_committed_before_the_first_batchs_acks(stack):
    """A real broker, two batches in flight, the first batch's acknowledgements held back by the
    test: the second batch is handled and its replies are on the topic, yet the group's offset
    does not move until the first batch's acks arrive; then it covers both."""
    release = threading.Event()
    handled: list[list[str]] = []

    class FirstAcksHeld(BatchProcessor):
        async def _settle(self, batch):
            if batch.seq == 1:  # the first batch produced: its acks are in only when released
                await asyncio.to_thread(release.wait, 60)
            await super()._settle(batch)

    def handle(items: list[In]) -> list[Out]:
        handled.append([i.event["code"] for i in items])
        return [reply_to(i.event) for i in items]

    p = FirstAcksHeld("overlap", port=0, settings=stack.settings(), use_db=False)
    p.consume(SOURCE, handle, batch=5, in_flight=2)
    first, second = ([submission(f"{tag}{n:04d}") for n in range(5)] for tag in ("FIRST", "NEXT"))
    with Running(p):
        produce(stack, first)
        wait_until(lambda: len(handled) >= 1, timeout=60, what="the first batch handled")
        produce(stack, second)
        read_topic(stack.bootstrap, stack.topic(TARGET), timeout=60,
                   until=lambda recs: {r["request_id"] for r in recs} >= {e["code"] for e in second})
        assert [e["code"] for e in second] in handled
        assert committed(stack, p.group) == 0, "the second batch commits only after the first"
        release.set()
        wait_until(lambda: committed(stack, p.group) == 10, timeout=30, what="both committed")
