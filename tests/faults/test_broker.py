"""The broker stopped and restarted while the load flows: once for less than the producers'
message timeout (15 s), once for longer, when a send still waiting is given up."""

from __future__ import annotations

import time

import pytest

from tests.faults.harness import Checker, Load
from tests.faults.scenario import record
from tests.support.infra import wait_until

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("away_s", [5, 25])
def test_with_the_broker_stopped_and_restarted_mid_stream_nothing_accepted_is_lost(
        fault_platform, fault_table, broker, away_s):
    p = fault_platform
    check = Checker(p)
    load = Load(p, calls=36, rate=3).start()
    load.wait_sent(8)
    broker.stop()
    down = time.monotonic()
    # calls made while the broker is away wait for it, then are accepted or told to retry (503)
    wait_until(lambda: time.monotonic() - down >= away_s, away_s + 5, 0.2, "the outage to last")
    broker.resume()
    back = time.monotonic()
    note = f"broker unreachable {back - down:.0f} s in all (stopped, held, started)"
    recovery = p.seconds_until_healthy(back, timeout=180)
    record(fault_table, check.settle(f"broker stopped, started again {away_s} s later", load.join(), recovery,
                                     note, since=back))
