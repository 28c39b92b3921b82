"""SIGKILL of each processor in turn while the load flows, then a restart (what a supervisor
does): whatever it had done but not yet committed is redelivered and must not take effect twice."""

from __future__ import annotations

import time

import pytest

from tests.faults.harness import Checker, Load
from tests.faults.scenario import record
from tests.support.infra import wait_until

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("name", ["ingress", "router", "egress", "verifier", "ledger"])
def test_a_processor_killed_mid_stream_and_restarted_loses_nothing_and_doubles_nothing(
        fault_platform, fault_table, name):
    p = fault_platform
    check = Checker(p)
    load = Load(p, calls=30, rate=6).start()
    load.wait_sent(10)
    pid = p.procs[name].popen.pid
    p.procs[name].kill()  # SIGKILL: no shutdown, no last commit; the supervisor restarts it
    killed = time.monotonic()
    wait_until(lambda: p.procs[name].alive() and p.procs[name].popen.pid != pid, 30, 0.1,
               f"{name} restarted by the supervisor")
    recovery = p.seconds_until_healthy(killed)
    record(fault_table, check.settle(f"SIGKILL {name}", load.join(), recovery,
                                     "recovery counted from the kill (2 s restart delay included)",
                                     since=killed))
