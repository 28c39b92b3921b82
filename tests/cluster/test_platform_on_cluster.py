"""The platform on the three-node cluster, two worker processes for each hot processor: while
5,000 texts flow through the inbound path (carrier MO -> ingress -> router -> egress -> carrier)
and 2,000 anti-counterfeit codes are verified (MO -> router -> verifier -> ledger, replies out
through egress), one broker is killed with SIGKILL.

What must hold: no text lost, none submitted twice to the carrier, no points entry doubled; the
broker restarts and rejoins every in-sync replica set; no processor needed a restart. The run's
figures (throughput before the kill, the dip, time to recover) go to
.run/test-logs/cluster-figures.json and the test's output, and, when it passed, its row (the
fault table's columns) to docs/reliability.md under the fault suite's table."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import aiohttp
import httpx
import pytest
from sqlalchemy import func, select

from services.core.carriers import sign
from services.core.db import Database
from services.core.db.schemes import LedgerEntry
from services.core.messages import message_id_for
from services.core.topics import all_specs, tenant_topics
from services.ingress.domain import mo_message_id
from services.router.domain import derived_id
from services.verifier.demo import seed_scheme
from tests.faults.harness import DlqWatch, effects
from tests.faults.table import CLUSTER_TABLE, Row, write_table
from tests.support.infra import ROOT, Proc, wait_until
from tests.support.platform import SECRET, start_platform
from tests.support.seed import seed_tenant

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

NUMBER = "10690001"
TEXTS = int(os.environ.get("HERALD_CLUSTER_TEST_TEXTS", "5000"))
CODES = int(os.environ.get("HERALD_CLUSTER_TEST_CODES", "2000"))
# Offered load, MOs per second: steady, so the carrier-side rate shows the kill's dip.
RATE = float(os.environ.get("HERALD_CLUSTER_TEST_RATE", "100"))
KILL_AFTER = 0.3  # of the texts accepted by ingress
KEY_SECRET = "dev-only-change-me"
VICTIM = 2
SCENARIO = "one broker of three killed (SIGKILL) mid-stream, started again once the load is in"


async def fire(urls: list[str], items: list[tuple[str, str, str]], stats: dict, rate: float,
               concurrency: int = 48) -> None:
    """POST each (carrier message id, from, text) as a signed MO at ``rate`` per second,
    alternating ingress workers; a carrier retries what was not answered 200, as real ones do
    (the MO id makes it idempotent)."""
    sem = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=timeout) as client:
        async def one(i: int, cmid: str, sender: str, text: str) -> None:
            body = json.dumps({"id": cmid, "from": sender, "to": NUMBER, "text": text}).encode()
            headers = {"X-Herald-Signature": sign(SECRET, body), "Content-Type": "application/json"}
            async with sem:
                for attempt in range(20):
                    try:
                        async with client.post(f"{urls[(i + attempt) % len(urls)]}/carriers/sim/mo",
                                               data=body, headers=headers) as r:
                            await r.read()
                            if r.status == 200:
                                stats["accepted"] += 1
                                return
                            stats[f"http_{r.status}"] += 1
                    except (aiohttp.ClientError, TimeoutError):
                        stats["connection_errors"] += 1
                    await asyncio.sleep(0.5)
                stats["given_up"] += 1

        start, tasks = time.monotonic(), []
        for i, item in enumerate(items):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, *item)))
        await asyncio.gather(*tasks)


def rate(times: list[float], start: float, end: float) -> float:
    return sum(start <= t < end for t in times) / (end - start) if end > start else 0.0


class HealthWatch(threading.Thread):
    """Every processor's /health, asked once a second (all at once) from before the kill to the
    end: recovery lasts until the first poll after which every answer was ok."""

    def __init__(self, procs: list[Proc]) -> None:
        super().__init__(daemon=True, name="health-watch")
        self.procs = procs
        self.polls: list[tuple[float, list[str]]] = []  # (when, the processors not ok)
        self.stopping = threading.Event()

    def run(self) -> None:
        with ThreadPoolExecutor(len(self.procs)) as pool:
            while True:
                at = time.monotonic()
                oks = list(pool.map(Proc.healthy, self.procs))
                self.polls.append((at, [p.module for p, ok in zip(self.procs, oks, strict=True) if not ok]))
                if self.stopping.wait(1.0):
                    return

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)

    def ok_again(self, since: float) -> float | None:
        """When every processor was ok again after ``since``, for good (``since`` itself if no
        poll after it found one not ok); None if not by the end."""
        polls = [(at, bad) for at, bad in self.polls if at >= since]
        last_bad = max((i for i, (_at, bad) in enumerate(polls) if bad), default=None)
        if last_bad is None:
            return since if polls else None
        return polls[last_bad + 1][0] if last_bad + 1 < len(polls) else None

    def not_ok(self, since: float) -> collections.Counter:
        return collections.Counter(m for at, bad in self.polls if at >= since for m in bad)


@pytest.fixture
def platform(cluster, cluster_stack, tmp_path):
    stack = cluster_stack
    seed_tenant(stack, "acme", number=NUMBER,
                keywords=[("INFO", "reply", {"reply_text": "Acme: thanks"}), ("YZ", "codes")])
    db = Database(stack.database_url)
    with db.session() as s:
        scheme = seed_scheme(s, KEY_SECRET, codes=CODES, points=10)
    db.dispose()
    env = {"HERALD_LOG_LEVEL": "warn", "HERALD_SECRET_KEY": KEY_SECRET}
    plat = start_platform(stack, tmp_path, egress_workers=2, **env)
    carriers = {"HERALD_CARRIERS_FILE": plat.ingress.env["HERALD_CARRIERS_FILE"], **env}
    plat.ingress2 = stack.start("services.ingress", **carriers)
    stack.start("services.router", **carriers)
    for module in ("services.verifier", "services.verifier", "services.ledger", "services.ledger"):
        stack.start(module, **carriers)
    plat.codes = list(scheme.codes)
    plat.db = Database(stack.database_url)
    yield plat
    plat.db.dispose()


def test_a_broker_killed_mid_stream_loses_nothing_and_doubles_nothing(cluster, cluster_stack, platform):
    stack, sim = cluster_stack, platform.sim
    procs = [p for p in stack.procs]
    pids = {id(p): p.popen.pid for p in procs}
    httpx.delete(f"{sim.url}/submissions", timeout=10)
    dlq = DlqWatch(stack)
    health = HealthWatch([p for p in procs if p is not sim])

    tag = f"c{int(time.time())}"
    texts = [(f"{tag}-t{i}", f"+86138{i:08d}", "INFO") for i in range(TEXTS)]
    codes = [(f"{tag}-c{i}", f"+86139{i:08d}", f"YZ {code}") for i, code in enumerate(platform.codes)]
    items = [x for pair in zip(texts, codes + [None] * (len(texts) - len(codes)), strict=True)
             for x in pair if x is not None]
    expected = {message_id_for("acme", f"reply-{mo_message_id('sim', cmid)}") for cmid, _, _ in texts}
    expected |= {message_id_for("acme", f"verify-{derived_id(mo_message_id('sim', cmid), 'code')}")
                 for cmid, _, _ in codes}
    stats: collections.Counter = collections.Counter()
    load = threading.Thread(target=lambda: asyncio.run(fire([platform.ingress.url, platform.ingress2.url],
                                                            items, stats, RATE)), daemon=True)

    def submissions() -> list[dict]:
        return httpx.get(f"{sim.url}/submissions", timeout=30).json()

    t0 = time.monotonic()
    health.start()
    load.start()
    # Kill while ingress is still writing and the processors are consuming and producing.
    wait_until(lambda: stats["accepted"] >= KILL_AFTER * len(items), 300, 0.25,
               "a third of the texts accepted by ingress")
    killed_at = time.monotonic()
    accepted_at_kill = stats["accepted"]
    cluster.kill(VICTIM)

    # The traffic carries on over the two survivors; the broker comes back once it is all sent.
    wait_until(lambda: not load.is_alive(), 600, 0.5, "every MO accepted by ingress")
    sent_at = time.monotonic()
    assert killed_at < sent_at and stats["given_up"] == 0, stats
    assert stats["accepted"] == len(items), stats
    cluster.start_node(VICTIM)
    restarted_at = time.monotonic()

    subs = wait_until(lambda: (s := submissions()) and expected <= {x["reference"] for x in s} and s,
                      600, 1.0, "every reply at the carrier")
    done_at = time.monotonic()
    names = [stack.topic(s.name) for s in (*all_specs(), *tenant_topics("acme"))]
    cluster.wait_in_sync(names, 180)
    in_sync_at = time.monotonic()
    health.stop()

    # Nothing lost, nothing submitted twice.
    refs = collections.Counter(x["reference"] for x in subs)
    lost = expected - set(refs)
    duplicated = sum(n - 1 for r, n in refs.items() if n > 1)
    assert [r for r, n in refs.items() if n > 1] == []
    assert not lost, sorted(lost)[:5]
    # No points doubled: one award per verified code, ten points each.
    with platform.db.session() as s:
        awards = s.execute(select(LedgerEntry.member, func.count(), func.sum(LedgerEntry.points))
                           .where(LedgerEntry.kind == "award").group_by(LedgerEntry.member)).all()
    assert len(awards) == len(codes)
    assert all(n == 1 and pts == 10 for _m, n, pts in awards)
    # The fault suite's count of double effects: awards beyond first valid queries, cards or
    # draws beyond one per submission.
    eff = effects(platform.db)
    doubles = max(0, eff["awards"] - eff["first_queries"]) + eff["doubled_cards"] + eff["doubled_draws"]
    assert doubles == 0, eff
    # No processor needed a restart, and each answers /health ok again after the kill.
    assert all(p.alive() and p.popen.pid == pids[id(p)] for p in procs), \
        [p.module for p in procs if not p.alive()]
    health_back = health.ok_again(killed_at)
    assert health_back is not None, health.polls[-3:]

    times = sorted(x["received_monotonic"] for x in subs if x["reference"] in expected)
    before = rate(times, max(times[0], killed_at - 10), killed_at)
    # two-second windows every half second from the kill to the last reply: the dip in the first
    # 30 s, and the first window back at 80 % of the rate before the kill
    windows = [(t, rate(times, t, t + 2)) for t in [killed_at + k * 0.5 for k in range(int(times[-1] - killed_at) * 2)]
               if t + 2 <= times[-1]]
    dip = min((r for t, r in windows if t < killed_at + 30), default=0.0)
    recovered = next((t for t, r in windows if t > killed_at + 1 and r >= 0.8 * before), None)
    # recovery: from the kill until every processor is healthy and the rate is back
    recovery = max(recovered, health_back) - killed_at if recovered else None
    figures = {
        "texts": TEXTS, "codes": CODES, "offered_per_s": RATE, "submissions": len(subs), "load": dict(stats),
        "per_s_before_kill": round(before, 1), "per_s_lowest_2s_after_kill": round(dip, 1),
        "seconds_to_80pct_rate_after_kill": round(recovered - killed_at, 1) if recovered else None,
        "seconds_to_every_processor_healthy_after_kill": round(health_back - killed_at, 1),
        "recovery_s": round(recovery, 1) if recovery is not None else None,
        "per_s_overall": round(len(times) / (times[-1] - t0), 1),
        "seconds": {"to_kill": round(killed_at - t0, 1), "all_sent": round(sent_at - t0, 1),
                    "broker_back": round(restarted_at - t0, 1), "all_replied": round(done_at - t0, 1),
                    "replicas_in_sync_after_restart": round(in_sync_at - restarted_at, 1)},
    }
    out = ROOT / ".run" / "test-logs" / "cluster-figures.json"
    out.write_text(json.dumps(figures, indent=2))
    print("cluster figures:", json.dumps(figures))

    # Its row of the fault table, written only now that everything above held.
    topic = stack.topic("sms.inbound")
    replicas = sorted({len(p.replicas) for p in cluster.partitions(topic).values()})
    min_isr = cluster.configs(topic)["min.insync.replicas"]
    dead = dlq.since()
    not_ok = health.not_ok(killed_at)
    retried = {k: n for k, n in stats.items() if k != "accepted"}
    notes = [
        f"node {VICTIM} killed after {accepted_at_kill} of {len(items)} MOs were accepted, started again "
        f"{restarted_at - killed_at:.0f} s later; every replica in sync {in_sync_at - restarted_at:.1f} s after its start",
        f"topics: {'/'.join(map(str, replicas))} replicas, min.insync.replicas {min_isr}",
        f"replies at the carrier {before:.0f}/s before the kill, {dip:.0f}/s in the lowest 2 s after it, "
        + (f"back to 80 % {recovered - killed_at:.1f} s after it" if recovered else "not back to 80 % before the load ended"),
        "every processor's /health ok throughout" if not not_ok else
        "/health not ok after the kill: " + ", ".join(f"{m} {n}× (1 s polls)" for m, n in sorted(not_ok.items())),
        f"no processor restarted ({len(procs) - 1} processes, 2 of each hot one)",
    ]
    if retried:
        notes.append("retried by the sending carrier: " + ", ".join(f"{n}× {k}" for k, n in sorted(retried.items())))
    if dead:
        why = collections.Counter(f"{r['topic']}: {r['error_type'] or r['reason'][:60]}" for r in dead)
        notes.append("DLQ: " + ", ".join(f"{n}× {k}" for k, n in sorted(why.items())))
    notes.append(f"last reply at the carrier {max(0.0, times[-1] - sent_at):.1f} s after the last MO was accepted")
    row = Row(SCENARIO, len(expected), len(lost), duplicated, doubles, recovery, len(dead), "; ".join(notes), retried)
    print(row)
    write_table([row], datetime.now(UTC), "`tests/cluster` in `make test`, three-node cluster", CLUSTER_TABLE)
