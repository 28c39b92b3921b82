"""PostgreSQL restarted (fast shutdown: every open connection cut) while the load flows."""

from __future__ import annotations

import time

import pytest

from tests.faults.harness import Checker, Load
from tests.faults.scenario import record

pytestmark = pytest.mark.e2e


def test_with_postgresql_restarted_mid_stream_nothing_accepted_is_lost(fault_platform, fault_table):
    p = fault_platform
    check = Checker(p)
    load = Load(p, calls=30, rate=6).start()
    load.wait_sent(10)
    p.pg.restart()
    back = time.monotonic()
    recovery = p.seconds_until_healthy(back)
    record(fault_table, check.settle("PostgreSQL restarted", load.join(), recovery, since=back))
