"""The platform on the three-node cluster, two worker processes for each hot processor: while
5,000 texts flow through the inbound path (carrier MO -> ingress -> router -> egress -> carrier)
and 2,000 anti-counterfeit codes are verified (MO -> router -> verifier -> ledger, replies out
through egress), one broker is killed with SIGKILL.

What must hold: no text lost, none submitted twice to the carrier, no points entry doubled; the
broker restarts and rejoins every in-sync replica set; no processor needed a restart. The run's
figures (throughput before the kill, the dip, time to recover) go to
.run/test-logs/cluster-figures.json and the test's output."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import threading
import time

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
from tests.support.infra import ROOT, wait_until
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
    load.start()
    # Kill while ingress is still writing and the processors are consuming and producing.
    wait_until(lambda: stats["accepted"] >= KILL_AFTER * len(items), 300, 0.25,
               "a third of the texts accepted by ingress")
    killed_at = time.monotonic()
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

    # Nothing lost, nothing submitted twice.
    refs = collections.Counter(x["reference"] for x in subs)
    assert [r for r, n in refs.items() if n > 1] == []
    assert expected <= set(refs)
    # No points doubled: one award per verified code, ten points each.
    with platform.db.session() as s:
        awards = s.execute(select(LedgerEntry.member, func.count(), func.sum(LedgerEntry.points))
                           .where(LedgerEntry.kind == "award").group_by(LedgerEntry.member)).all()
    assert len(awards) == len(codes)
    assert all(n == 1 and pts == 10 for _m, n, pts in awards)
    # No processor needed a restart.
    assert all(p.alive() and p.popen.pid == pids[id(p)] for p in procs), \
        [p.module for p in procs if not p.alive()]

    times = sorted(x["received_monotonic"] for x in subs if x["reference"] in expected)
    before = rate(times, max(times[0], killed_at - 10), killed_at)
    windows = [(t, rate(times, t, t + 2)) for t in [killed_at + k * 0.5 for k in range(60)]
               if t + 2 <= times[-1]]
    dip = min((r for _t, r in windows), default=0.0)
    recovered = next((t for t, r in windows if t > killed_at + 1 and r >= 0.8 * before), None)
    figures = {
        "texts": TEXTS, "codes": CODES, "offered_per_s": RATE, "submissions": len(subs), "load": dict(stats),
        "per_s_before_kill": round(before, 1), "per_s_lowest_2s_after_kill": round(dip, 1),
        "seconds_to_80pct_rate_after_kill": round(recovered - killed_at, 1) if recovered else None,
        "per_s_overall": round(len(times) / (times[-1] - t0), 1),
        "seconds": {"to_kill": round(killed_at - t0, 1), "all_sent": round(sent_at - t0, 1),
                    "broker_back": round(restarted_at - t0, 1), "all_replied": round(done_at - t0, 1),
                    "replicas_in_sync_after_restart": round(in_sync_at - restarted_at, 1)},
    }
    out = ROOT / ".run" / "test-logs" / "cluster-figures.json"
    out.write_text(json.dumps(figures, indent=2))
    print("cluster figures:", json.dumps(figures))
