"""The carriers misbehaving while the load flows: down, slow, 429 and 500 storms, and the
preferred carrier down with a second one to fail over to. The simulators' /control switches the
fault on for a stretch of the load and off again."""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest

from tests.faults.harness import Checker, Load
from tests.faults.scenario import record

pytestmark = pytest.mark.e2e

CALLS, RATE = 40, 3  # about 13 s of load; the fault covers calls 5 to 35, about 10 s


def run_fault(p, table, name: str, on: dict, off: dict, sim: str = "*", duplicates_allowed: int = 0,
              until_call: int = 35):
    check = Checker(p)
    load = Load(p, calls=CALLS, rate=RATE).start()
    load.wait_sent(5)
    p.control(sim, **on)
    began = time.monotonic()
    load.wait_sent(until_call)
    p.control(sim, **off)
    ended = time.monotonic()
    recovery = p.seconds_until_healthy(ended)
    row = check.settle(name, load.join(), recovery, f"fault for {ended - began:.0f} s", since=ended)
    carriers = Counter(s["carrier"] for s in p.submissions() if s["reference"] in load.result.expected)
    row.note += "; submits by carrier: " + ", ".join(f"{k} {v}" for k, v in sorted(carriers.items()))
    if table is not None:
        record(table, row, duplicates_allowed=duplicates_allowed)
    return row, carriers


def test_with_every_carrier_down_for_a_while_messages_wait_and_are_sent_once(fault_platform, fault_table):
    run_fault(fault_platform, fault_table, "carriers down ~10 s, then back", {"down": True}, {"down": False})


def test_with_a_slow_carrier_every_message_is_sent_once(fault_platform, fault_table):
    run_fault(fault_platform, fault_table, "carrier slow (2 s per request)",
              {"latency_ms": 2000}, {"latency_ms": 0})


def test_a_429_storm_is_back_pressure_and_every_message_is_sent_once(fault_platform, fault_table):
    run_fault(fault_platform, fault_table, "429 storm ~10 s", {"throttle": True}, {"throttle": False})


def test_a_500_storm_is_retried_and_every_message_is_sent_once(fault_platform, fault_table):
    run_fault(fault_platform, fault_table, "500 storm ~10 s", {"fail_ratio": 1, "fail_status": 500},
              {"fail_ratio": 0, "fail_status": 503})


def test_with_the_preferred_carrier_down_messages_fail_over_to_the_second(fault_platform, fault_table):
    _row, carriers = run_fault(fault_platform, fault_table, "preferred carrier down, failover to sim2",
                               {"down": True}, {"down": False}, sim="sim")
    assert carriers["sim2"] > 0, carriers


def test_connections_reset_before_the_carrier_takes_a_message_leave_it_sent_once(fault_platform, fault_table):
    # ~5 s: a longer one is parked like the outage above (same wait), only slower to run
    run_fault(fault_platform, fault_table, "connections reset (before accept) ~5 s",
              {"drop_connection": "before_accept"}, {"drop_connection": None}, until_call=20)


def test_connections_reset_after_the_carrier_took_a_message_duplicate_at_most_once_per_reset(
        fault_platform, fault_table):
    # The carrier took the message but its answer was lost: the sender cannot tell this from a
    # submit that never arrived, and the HTTP submit has no idempotency key, so a retry is
    # submitted again. Bounded: at most one duplicate per reset.
    p = fault_platform
    before = {n: stats(p, n)["dropped"] for n in p.sims}
    row, _carriers = run_fault(p, None, "connections reset (after accept) ~10 s, preferred carrier",
                               {"drop_connection": "after_accept"}, {"drop_connection": None}, sim="sim")
    resets = sum(stats(p, n)["dropped"] - before[n] for n in p.sims)
    row.note += (f"; {resets} submits reset after the carrier took them: each may be submitted again "
                 "(an HTTP submit has no idempotency key)")
    record(fault_table, row, duplicates_allowed=resets)


def stats(p, sim: str) -> dict:
    return httpx.get(f"{p.sims[sim].url}/stats", timeout=5).json()
