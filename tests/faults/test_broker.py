"""The broker stopped and restarted while the load flows."""

from __future__ import annotations

import time

import pytest

from tests.faults.harness import Checker, Load
from tests.faults.scenario import record

pytestmark = pytest.mark.e2e


def test_with_the_broker_stopped_and_restarted_mid_stream_nothing_accepted_is_lost(
        fault_platform, fault_table, broker):
    p = fault_platform
    check = Checker(p)
    load = Load(p, calls=36, rate=4).start()
    load.wait_sent(8)
    broker.stop()
    down = time.monotonic()
    load.wait_sent(20)  # calls made while the broker is away are refused (503), not lost
    broker.resume()
    back = time.monotonic()
    note = f"broker away {back - down:.0f} s"
    recovery = p.seconds_until_healthy(back, timeout=180)
    record(fault_table, check.settle("broker stopped and restarted", load.join(), recovery, note, since=back))
