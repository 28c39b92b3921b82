"""`make run`'s supervisor over a small list of fake processes: a crash is restarted with
backoff and named, the others keep running, the state is in stack.json, and stopping goes group
by group."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys

import pytest

from tests.support.infra import ROOT, wait_until

spec = importlib.util.spec_from_file_location("devstack", ROOT / "deploy" / "devstack.py")
devstack = importlib.util.module_from_spec(spec)
sys.modules["devstack"] = devstack
spec.loader.exec_module(devstack)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def record_stop(path) -> list[str]:
    """A process that writes its name to ``path`` when SIGTERM stops it."""
    code = ("import signal, sys, time\n"
            "def bye(*_):\n"
            f"    open({str(path)!r}, 'a').write(sys.argv[1] + '\\n'); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, bye)\n"
            f"open({str(path)!r} + '.' + sys.argv[1], 'w').close()\n"  # handler installed
            "time.sleep(120)\n")
    return [sys.executable, "-c", code]


def polled(sup) -> bool:
    sup.poll()
    return True


@pytest.fixture
def make(tmp_path):
    sups = []

    def build(specs, **kw):
        lines: list[str] = []
        sup = devstack.Supervisor(specs, log_dir=tmp_path / "logs", state_file=tmp_path / "stack.json",
                                  say=lines.append, **kw)
        sup.lines = lines
        sups.append(sup)
        return sup

    yield build
    for sup in sups:
        sup.stop_timeout = 5
        sup.stop_all()


def test_a_killed_process_is_restarted_with_its_name_and_exit_status_while_the_others_keep_running(make, tmp_path):
    sup = make([devstack.ProcSpec("ledger", SLEEPER), devstack.ProcSpec("router", SLEEPER)],
               backoff_base=0.2)
    sup.start_all()
    router_pid = sup.child("router").proc.pid
    ledger_pid = sup.child("ledger").proc.pid
    os.kill(ledger_pid, signal.SIGKILL)

    wait_until(lambda: polled(sup) and sup.child("ledger").restarts == 1, 10, what="ledger restarted")
    ledger = sup.child("ledger")
    assert ledger.state == "running" and ledger.proc.pid != ledger_pid
    assert ledger.last_exit == -signal.SIGKILL
    assert any("ledger" in line and "killed by SIGKILL" in line for line in sup.lines)
    router = sup.child("router")
    assert router.state == "running" and router.proc.pid == router_pid and router.proc.poll() is None

    state = json.loads((tmp_path / "stack.json").read_text())
    rows = {p["name"]: p for p in state["processes"]}
    assert rows["ledger"]["restarts"] == 1 and rows["ledger"]["pid"] == ledger.proc.pid
    assert rows["ledger"]["last_exit"] == "killed by SIGKILL" and rows["ledger"]["state"] == "running"
    assert rows["router"]["restarts"] == 0 and rows["router"]["since"]
    table = devstack.status_table(state)
    assert "ledger" in table and "killed by SIGKILL" in table and "RESTARTS" in table


def test_a_process_that_keeps_crashing_waits_longer_each_time(make):
    sup = make([devstack.ProcSpec("broken", [sys.executable, "-c", "raise SystemExit(3)"])],
               backoff_base=0.05, backoff_max=0.4)
    sup.start_all()
    wait_until(lambda: polled(sup) and sup.child("broken").restarts >= 3, 15, what="three restarts")
    delays = [float(line.split("restarting in ")[1].split("s")[0]) for line in sup.lines
              if "restarting in" in line]
    assert delays[:3] == [0.05, 0.1, 0.2] and max(delays) <= 0.4
    assert "exit 3" in sup.lines[0]


def test_stopping_goes_group_by_group_so_the_carrier_outlives_the_processors(make, tmp_path):
    order = tmp_path / "order.txt"
    sup = make([devstack.ProcSpec("simulator", record_stop(order) + ["simulator"], stop_group=4),
                devstack.ProcSpec("ingress", record_stop(order) + ["ingress"], stop_group=0),
                devstack.ProcSpec("egress", record_stop(order) + ["egress"], stop_group=2)])
    sup.start_all()
    wait_until(lambda: all(os.path.exists(f"{order}.{n}") for n in ("simulator", "ingress", "egress")),
               10, what="the children's SIGTERM handlers installed")
    sup.stop_all()
    assert order.read_text().split() == ["ingress", "egress", "simulator"]
    assert all(c.state == "stopped" for c in sup.children)
    assert all(p["state"] == "stopped" for p in json.loads((tmp_path / "stack.json").read_text())["processes"])


def test_the_platform_list_names_every_processor_once_and_stops_the_simulator_last():
    from services.core.settings import Settings

    specs = devstack.platform_specs(Settings())
    names = [s.name for s in specs]
    assert len(names) == len(set(names)) and {"ingress", "egress", "ledger", "simulator"} <= set(names)
    by = {s.name: s.stop_group for s in specs}
    assert by["ingress"] < by["router"] < by["egress"] < by["simulator"]
    assert max(by.values()) == by["simulator"]


def test_on_a_cluster_each_hot_processor_runs_two_workers_on_ports_of_their_own():
    from deploy.devstack import HOT, is_cluster, platform_specs
    from services.core.settings import Settings

    s = Settings()
    assert is_cluster("127.0.0.1:19301,127.0.0.1:19302,127.0.0.1:19303")
    assert not is_cluster("127.0.0.1:9092")
    specs = {p.name: p for p in platform_specs(s, workers=2)}
    for name in HOT:
        first, second = specs[name], specs[f"{name}-2"]
        assert second.argv == first.argv
        assert second.port == first.port + 100
        assert dict(second.env) == {f"HERALD_{name.upper()}_PORT": str(first.port + 100)}
    assert "ingress-2" not in specs and "console-2" not in specs
    assert len({p.port for p in specs.values() if p.port}) == len([p for p in specs.values() if p.port])
