"""The fault suite's platform, load and checker.

One platform serves every scenario: two carrier simulators (``sim``, preferred, and ``sim2`` to
fail over to), ingress, router, egress, verifier and ledger as processes over the real broker
and a PostgreSQL server of the suite's own (so it may be restarted without touching anyone
else's), with a tenant that runs a code scheme with a lottery.

A scenario runs a steady mixed ``Load`` (API sends, HELP texts that get a reply, product codes
that get a verification reply, points and sometimes a prize) on a thread while the test injects
its fault, then ``Checker.settle`` compares what was accepted with what happened and returns a
``Row`` of the table in docs/reliability.md."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import func, select

from services.core.carriers import sign
from services.core.db import Database
from services.core.db.models import Message
from services.core.db.schemes import Code, Draw, LedgerEntry, PrizeCard
from services.core.messages import message_id_for
from services.core.topics import all_specs, tenant_dlq
from services.ingress.domain import mo_message_id
from services.router.domain import derived_id
from tests.faults.table import Row
from tests.support.infra import Proc, Stack, free_port, wait_until

TENANT, NUMBER = "acme", "10690001"
TOKEN = "sim-token"
SECRETS = {"sim": "sim-secret", "sim2": "sim2-secret"}
MEMBERS = [f"+861370000{i:04d}" for i in range(30)]
# What a scenario may take to settle: a message parked by egress during a carrier fault is
# redriven with a growing delay, so the wait is longer than the fault itself.
SETTLE_S = 150


@dataclass
class FaultPlatform:
    stack: Stack
    sims: dict[str, Proc]
    procs: dict[str, Proc]  # processor name -> its process (ingress, router, egress, ...)
    codes: list[str]
    db: Database
    key: str = ""
    common_env: dict[str, str] = field(default_factory=dict)
    supervisor: Supervisor | None = None
    pg: object = None  # the suite's LocalPostgres

    @property
    def ingress(self) -> Proc:
        return self.procs["ingress"]

    def control(self, sim: str = "*", **settings) -> None:
        for name, proc in self.sims.items():
            if sim in ("*", name):
                httpx.post(f"{proc.url}/control", json=settings, timeout=5).raise_for_status()

    def submissions(self) -> list[dict]:
        out: list[dict] = []
        for name, proc in self.sims.items():
            out += [{**s, "carrier": name} for s in httpx.get(f"{proc.url}/submissions", timeout=10).json()]
        return out

    def restart(self, name: str) -> Proc:
        """Start a processor again on its port after it died (what a supervisor does)."""
        old = self.procs[name]
        proc = Proc(old.module, old.port, old.env)
        proc.log_path = old.log_path.with_suffix(f".{int(time.time() * 1000)}.log")
        self.stack.procs.append(proc)
        proc.start(health=False)
        self.procs[name] = proc
        return proc

    def healthy(self) -> bool:
        return all(proc.healthy() for proc in list(self.procs.values()))

    def seconds_until_healthy(self, since: float, timeout: float = 120) -> float:
        """Seconds from ``since`` (time.monotonic) until every processor answers /health ok; one
        that exited is started again by the supervisor only, as systemd would."""
        wait_until(self.healthy, timeout, 0.2, "every processor healthy")
        return time.monotonic() - since

    def mo(self, cmid: str, sender: str, text: str) -> httpx.Response:
        raw = json.dumps({"id": cmid, "from": sender, "to": NUMBER, "text": text}).encode()
        return httpx.post(f"{self.ingress.url}/carriers/sim/mo", content=raw, timeout=30,
                          headers={"X-Herald-Signature": sign(SECRETS["sim"], raw),
                                   "Content-Type": "application/json"})

    def dlr(self, carrier: str, body: dict) -> httpx.Response:
        raw = json.dumps(body).encode()
        return httpx.post(f"{self.ingress.url}/carriers/{carrier}/dlr", content=raw, timeout=10,
                          headers={"X-Herald-Signature": sign(SECRETS[carrier], raw),
                                   "Content-Type": "application/json"})

    def send(self, request_id: str, to: str, text: str) -> httpx.Response:
        return httpx.post(f"{self.ingress.url}/v1/messages", timeout=30,
                          json={"to": to, "text": text, "request_id": request_id},
                          headers={"Authorization": f"Bearer {self.key}"})


@dataclass
class Exit:
    name: str
    code: int | None
    why: str
    exited_at: float
    healthy_at: float | None = None


class Supervisor(threading.Thread):
    """Restarts a processor that exited, ``restart_after`` seconds later, as the systemd unit
    does (deploy/systemd/herald@.service: Restart=on-failure, RestartSec=2), and keeps what
    happened: the suite reports every exit, and a fault's recovery lasts until the last
    restarted processor is healthy. A processor the test killed is restarted the same way."""

    def __init__(self, platform: FaultPlatform, restart_after: float = 2.0) -> None:
        super().__init__(daemon=True, name="supervisor")
        self.p, self.restart_after = platform, restart_after
        self.exits: list[Exit] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            for name, proc in list(self.p.procs.items()):
                if proc.alive() or self.stopping.is_set():
                    continue
                # its last word, not librdkafka's connection noise (lines starting "%<level>|")
                lines = [x for x in proc.log_path.read_text(errors="replace").splitlines()
                         if x.strip() and not x.startswith("%")]
                ex = Exit(name, proc.popen.returncode, lines[-1][-160:] if lines else "", time.monotonic())
                self.exits.append(ex)
                if self.stopping.wait(self.restart_after):
                    return
                new = self.p.restart(name)
                try:
                    wait_until(lambda n=new: self._ok(n), 90, 0.2, f"{name} healthy after its restart")
                    ex.healthy_at = time.monotonic()
                except AssertionError:
                    pass

    @staticmethod
    def _ok(proc: Proc) -> bool:
        if not proc.alive():
            return False
        r = httpx.get(f"{proc.url}/health", timeout=2)
        return r.status_code == 200 and r.json().get("status") == "ok"

    def since(self, t: float) -> list[Exit]:
        return [e for e in self.exits if e.exited_at >= t]


def carriers_json(sim_port: int, sim2_port: int) -> dict:
    def carrier(name: str, port: int, priority: int) -> dict:
        return {"name": name, "kind": "http", "submit_url": f"http://127.0.0.1:{port}/submit",
                "api_token": TOKEN, "webhook_auth": "hmac", "webhook_secret": SECRETS[name],
                "prefixes": ["+"], "priority": priority, "rate_per_second": 1000, "timeout_s": 3,
                "options": {"max_connections": 4}}

    return {"carriers": [carrier("sim", sim_port, 10), carrier("sim2", sim2_port, 20)]}


def start_fault_platform(stack: Stack, tmp: Path, logs: Path, key: str, codes: list[str],
                         db: Database) -> FaultPlatform:
    ports = {"sim": free_port(), "sim2": free_port()}
    ingress_port = free_port()
    carriers = tmp / "carriers.json"
    carriers.write_text(json.dumps(carriers_json(ports["sim"], ports["sim2"])))
    common = {"HERALD_CARRIERS_FILE": str(carriers), "HERALD_API_RATE_PER_SECOND": "10000",
              "HERALD_API_RATE_BURST": "10000", "HERALD_TEST_LOG_DIR": str(logs)}
    sims = {}
    for name, port in ports.items():
        sims[name] = stack.start("services.simulator", port=port, health=False, HERALD_TEST_LOG_DIR=str(logs),
                                 HERALD_SIM_PORT=str(port), HERALD_SIM_NAME=name,
                                 HERALD_SIM_DLR_SECRET=SECRETS[name], HERALD_SIM_DLR_DELAY_MS="100",
                                 HERALD_SIM_DLR_URL=f"http://127.0.0.1:{ingress_port}/carriers/{name}/dlr")
    for proc in sims.values():
        wait_until(lambda p=proc: httpx.get(f"{p.url}/health", timeout=2).status_code == 200, 30,
                   what="simulator up")
    procs = {"ingress": stack.start("services.ingress", port=ingress_port, **common)}
    for name in ("router", "egress", "verifier", "ledger"):
        procs[name] = stack.start(f"services.{name}", **common)
    platform = FaultPlatform(stack, sims, procs, codes, db, key, common)
    platform.supervisor = Supervisor(platform)
    platform.supervisor.start()
    return platform


@dataclass
class Accepted:
    """What the platform said yes to, and the outbound messages each yes must lead to."""

    expected: set[str] = field(default_factory=set)  # message ids that must reach a carrier
    accepted: int = 0
    refused: Counter = field(default_factory=Counter)  # why a call was not accepted
    codes: int = 0


class Load:
    """A steady mixed load: per round an API send, a HELP text and a product code (a
    verification with points and a lottery draw), ``rate`` calls a second, each call on a worker
    of its own (as many clients would: one held up by a fault does not hold up the next)."""

    _run = itertools.count()

    def __init__(self, platform: FaultPlatform, calls: int = 36, rate: float = 8.0) -> None:
        self.p, self.calls, self.rate = platform, calls, rate
        self.tag = f"r{next(self._run)}-{uuid.uuid4().hex[:6]}"
        self.result = Accepted()
        self.sent = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=24, thread_name_prefix="load")
        self._futures: list[Future] = []
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def wait_sent(self, n: int, timeout: float = 60) -> None:
        """Until ``n`` calls have been made (not necessarily answered)."""
        wait_until(lambda: self.sent >= n, timeout, 0.05, f"{n} calls of the load made")

    def join(self, timeout: float = 180) -> Accepted:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the load did not finish"
        for f in self._futures:
            f.result(timeout)
        self._pool.shutdown()
        return self.result

    def _loop(self) -> None:
        began = time.monotonic()
        for i in range(self.calls):
            time.sleep(max(0.0, began + i / self.rate - time.monotonic()))
            self._futures.append(self._pool.submit(self._one, i))
            self.sent += 1

    def _one(self, i: int) -> None:
        member = MEMBERS[i % len(MEMBERS)]
        kind = ("api", "help", "code")[i % 3]
        try:
            if kind == "api":
                r = self.p.send(f"{self.tag}-{i}", member, f"Order {self.tag}-{i} shipped")
                ok = r.status_code in (200, 202)
                mid = r.json()["message_id"] if ok else None
            elif kind == "help" or not self.p.codes:
                cmid = f"{self.tag}-mo-{i}"
                r = self.p.mo(cmid, member, "help")
                ok = r.status_code == 200
                mid = message_id_for(TENANT, f"reply-{mo_message_id('sim', cmid)}")
            else:
                cmid = f"{self.tag}-code-{i}"
                with self._lock:
                    code = self.p.codes.pop()
                r = self.p.mo(cmid, member, code)
                ok = r.status_code == 200
                sid = derived_id(mo_message_id("sim", cmid), "code")
                mid = message_id_for(TENANT, f"verify-{sid}")
        except httpx.HTTPError as exc:
            with self._lock:
                self.result.refused[f"{kind}: {type(exc).__name__}"] += 1
            return
        with self._lock:
            if not ok:
                self.result.refused[f"{kind}: HTTP {r.status_code}"] += 1
                return
            self.result.accepted += 1
            self.result.codes += kind == "code"
            self.result.expected.add(mid)


class DlqWatch:
    """Every DLQ topic's end offsets at the start of a scenario; ``since`` reads what came after."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        names = [s.name for s in all_specs() if s.name.endswith(".dlq")] + [tenant_dlq(TENANT)]
        self.topics = [stack.topic(n) for n in names]
        with self._consumer() as c:
            self.start = self._ends(c)

    @contextmanager
    def _consumer(self) -> Iterator[Consumer]:
        c = Consumer({"bootstrap.servers": self.stack.bootstrap, "group.id": f"faults-{uuid.uuid4().hex}",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        try:
            yield c
        finally:
            c.close()

    def _ends(self, c: Consumer) -> dict[str, int]:
        # polled: just after a broker restart its partitions answer "not leader" for a while
        return wait_until(lambda: {t: c.get_watermark_offsets(TopicPartition(t, 0), timeout=10)[1]
                                   for t in self.topics}, 90, 0.5, "the DLQ topics' end offsets")

    def since(self) -> list[dict]:
        out: list[dict] = []
        with self._consumer() as c:
            for topic, end in self._ends(c).items():
                begin = self.start[topic]
                if end <= begin:
                    continue
                c.assign([TopicPartition(topic, 0, begin)])
                while begin < end:
                    msg = c.poll(5)
                    if msg is None:
                        break
                    if msg.error():
                        continue
                    begin = msg.offset() + 1
                    rec = json.loads(msg.value())
                    out.append({"topic": topic.removeprefix(self.stack.prefix),
                                "reason": rec.get("reason", ""), "error_type": rec.get("error_type", "")})
        return out


def effects(db: Database) -> dict[str, int]:
    """Counts that must never exceed their causes: awards per first valid query, prize cards and
    draws per submission."""
    with db.session() as s:
        awards = s.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "award"))
        firsts = s.scalar(select(func.count()).select_from(Code).where(Code.first_submission_id.is_not(None)))
        cards = s.scalar(select(func.count()).select_from(PrizeCard).where(PrizeCard.submission_id.is_not(None)))
        card_subs = s.scalar(select(func.count(func.distinct(PrizeCard.submission_id))))
        draws = s.scalar(select(func.count()).select_from(Draw))
        draw_subs = s.scalar(select(func.count(func.distinct(Draw.submission_id))))
    return {"awards": awards, "first_queries": firsts, "doubled_cards": cards - card_subs,
            "doubled_draws": draws - draw_subs}


class Checker:
    """Compares what a scenario's load had accepted with what reached the carriers and the
    database once the platform has settled."""

    def __init__(self, platform: FaultPlatform) -> None:
        self.p = platform
        self.dlq = DlqWatch(platform.stack)
        self.began = time.monotonic()

    def settle(self, name: str, accepted: Accepted, recovery_s: float | None, note: str = "",
               timeout: float = SETTLE_S, extra: set[str] = frozenset(), since: float | None = None) -> Row:
        """``recovery_s`` as measured when the fault ended (at ``since``); it grows to cover any
        processor that exited later and was restarted by the supervisor."""
        expected = accepted.expected | set(extra)
        started = time.monotonic()
        counts: Counter = Counter()

        def arrived() -> bool:
            counts.clear()
            counts.update(s["reference"] for s in self.p.submissions() if s["reference"] in expected)
            return set(counts) >= expected

        try:
            wait_until(arrived, timeout, 0.5, f"{name}: every accepted message at a carrier")
        except AssertionError:
            pass
        settled = time.monotonic() - started
        lost = sorted(expected - set(counts))
        if lost:
            with self.p.db.session() as s:
                states = dict(s.execute(select(Message.id, Message.status).where(Message.id.in_(lost))).all())
            # A message Herald settled on purpose (opted out, past its validity) is not lost.
            lost = [m for m in lost if states.get(m) not in ("suppressed", "expired")]
        duplicated = sum(n - 1 for n in counts.values() if n > 1)
        # every first valid query has been recorded before its reply went out: awards follow it
        try:
            wait_until(lambda: (e := effects(self.p.db))["awards"] >= e["first_queries"], 60, 0.5,
                       "every first valid query awarded")
        except AssertionError:
            pass
        eff = effects(self.p.db)
        doubles = max(0, eff["awards"] - eff["first_queries"]) + eff["doubled_cards"] + eff["doubled_draws"]
        dlq = self.dlq.since()
        notes = [note] if note else []
        exits = self.p.supervisor.since(self.began) if self.p.supervisor else []
        if exits:
            self.p.seconds_until_healthy(time.monotonic())
            notes.append("exited and restarted by the supervisor: " + "; ".join(
                f"{e.name} ({'SIGKILL' if e.code == -9 else f'exit {e.code}: {e.why}'})" for e in exits))
            back = [e.healthy_at for e in exits if e.healthy_at is not None]
            if since is not None and back and recovery_s is not None:
                recovery_s = max(recovery_s, max(back) - since)
        if accepted.refused:
            notes.append("refused at the edge: " + ", ".join(f"{n}× {k}" for k, n in sorted(accepted.refused.items())))
        if dlq:
            why = Counter(f"{r['topic']}: {r['error_type'] or r['reason'][:60]}" for r in dlq)
            notes.append("DLQ: " + ", ".join(f"{n}× {k}" for k, n in sorted(why.items())))
        if lost:
            notes.append(f"lost ids: {', '.join(lost[:3])}")
        if eff["awards"] < eff["first_queries"]:
            notes.append(f"{eff['first_queries'] - eff['awards']} first valid queries without their points")
        notes.append(f"all at a carrier {settled:.0f} s after the load" if not lost else "")
        return Row(name, len(expected), len(lost), duplicated, doubles, recovery_s, len(dlq),
                   "; ".join(n for n in notes if n), dict(accepted.refused))


def timed(fn: Callable[[], object]) -> float:
    t = time.monotonic()
    fn()
    return time.monotonic() - t
