"""An idle platform logs no ERROR: quiet partitions are not reported as stalls, and periodic jobs
(metrics publishing, egress's sweeps) run as loops that cannot overlap."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import faust.types as faust_types
import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from services.core.faust_core import QuietPartitionsConsumerThread, partition_is_quiet
from services.core.processor import Processor


@pytest.mark.parametrize("highwater, position, committed, read, quiet", [
    (None, None, None, None, True),   # never fetched, nothing read: nothing waits
    (10, 10, 10, 9, True),            # everything read was committed
    (0, 0, None, None, True),         # empty partition
    (10, 10, None, None, True),       # all before our start was committed by a previous member
    (10, 4, 4, 3, False),             # records waiting beyond what was read: a real stall
    (10, 10, 7, 9, False),            # read but not committed: a real stall
    (None, None, None, 5, False),     # read, then no fetch response: a real stall
])
def test_a_partition_is_quiet_only_when_nothing_on_it_waits_for_the_processor(
        highwater, position, committed, read, quiet):
    assert partition_is_quiet(highwater, position, committed, read) is quiet


TP = faust_types.TP("sms.inbound", 0)


def fake_thread(highwater, position, committed, read):
    t = QuietPartitionsConsumerThread.__new__(QuietPartitionsConsumerThread)
    state = SimpleNamespace(highwater=highwater, position=position,
                            has_valid_position=position is not None)
    assignment = SimpleNamespace(state_value=lambda tp: state)
    aio = SimpleNamespace(_fetcher=SimpleNamespace(_subscriptions=SimpleNamespace(
        subscription=SimpleNamespace(assignment=assignment))))
    t._ensure_consumer = lambda: aio
    t.__dict__["consumer"] = SimpleNamespace(_committed_offset={TP: committed}, _read_offset={TP: read})
    return t


def test_faust_checks_only_partitions_with_records_waiting(monkeypatch):
    checked = []
    monkeypatch.setattr(faust_aiokafka.AIOKafkaConsumerThread, "verify_event_path",
                        lambda self, now, tp: checked.append(tp))
    fake_thread(10, 10, 10, 9).verify_event_path(0.0, TP)  # quiet
    assert checked == []
    fake_thread(10, 4, 4, 3).verify_event_path(0.0, TP)  # records waiting
    assert checked == [TP]


def test_every_processor_uses_the_quiet_consumer(tmp_path):
    from services.core.settings import Settings

    p = Processor("probe", port=18999, use_db=False,
                  settings=Settings(database_url=f"sqlite:///{tmp_path}/x.db"))
    assert isinstance(p.app.consumer._new_consumer_thread(), QuietPartitionsConsumerThread)


def test_a_periodic_job_never_overlaps_itself_and_survives_a_failing_run(caplog):
    class FakeApp:
        should_stop = False

        def __init__(self):
            self.tasks = []

        def task(self, fn):
            self.tasks.append(fn)

        async def sleep(self, s):
            await asyncio.sleep(s)

    p = Processor.__new__(Processor)
    p.name, p.app = "probe", FakeApp()
    running, most, runs = 0, 0, []

    async def job():
        nonlocal running, most
        running += 1
        most = max(most, running)
        runs.append(1)
        try:
            await asyncio.sleep(0.03)  # slower than the interval
            if len(runs) == 2:
                raise RuntimeError("database away")
            if len(runs) >= 4:
                p.app.should_stop = True
        finally:
            running -= 1

    p.every(0.001, job, name="probe.job")
    with caplog.at_level(logging.WARNING):
        asyncio.run(asyncio.wait_for(p.app.tasks[0](), 5))
    assert most == 1 and len(runs) == 4
    assert [r.levelname for r in caplog.records if "probe.job failed" in r.getMessage()] == ["ERROR"]
    assert not any("overlapping" in r.getMessage() for r in caplog.records)
