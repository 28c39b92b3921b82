"""Garbage between valid events on the input topics of egress, the verifier and the ledger while
the load flows (the router's own input is tests/fuzz/test_garbage_on_a_topic.py, whose garbage
this reuses): each bad record is dead-lettered with its reason, the load is untouched."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from tests.faults.harness import Checker, Load
from tests.faults.scenario import record
from tests.fuzz.test_garbage_on_a_topic import GARBAGE

pytestmark = pytest.mark.e2e

TOPICS = ["sms.outbound", "codes.submitted", "points.awarded"]


def test_garbage_on_processors_input_topics_is_dead_lettered_and_the_load_is_untouched(
        fault_platform, fault_table):
    p = fault_platform
    check = Checker(p)
    producer = Producer({"bootstrap.servers": p.stack.bootstrap, "message.max.bytes": 2_000_000})
    load = Load(p, calls=30, rate=6).start()
    load.wait_sent(10)
    began = time.monotonic()
    for topic in TOPICS:
        for key, value in GARBAGE.items():
            producer.produce(p.stack.topic(topic), key=key, value=value)
    assert producer.flush(10) == 0
    recovery = p.seconds_until_healthy(began)
    row = check.settle("garbage on egress/verifier/ledger inputs", load.join(), recovery,
                       f"{len(GARBAGE)} bad records on each of {', '.join(TOPICS)}", since=began)
    record(fault_table, row)
    assert row.dlq >= len(TOPICS) * len(GARBAGE), row
