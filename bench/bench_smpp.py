"""SMPP figures, against jSMPP's SMSC simulator (deploy/smsc), window 10 on one transceiver bind,
with the simulator's receipts flowing back and matched (hex submit ids to decimal receipt ids).

Two measurements:

- the connector alone (default): it runs as egress runs it (same Session, same receipt path)
  with an in-memory sink instead of the Kafka producer, so the figure is the SMPP path's own
  cost, in this process's CPU per submission;
      python -m bench.bench_smpp [--messages 20000] [--port 19490]
- through egress (``--through-egress``): the egress process as `make run` starts it, with a
  carriers file naming the simulator as an smpp carrier: events produced to ``sms.outbound`` ->
  egress -> the bind -> the simulator -> receipts back over the bind -> ``sms.delivery`` ->
  egress -> ``sms.status`` ``delivered``. Submissions per second (from producing the events to
  the last ``sent``, and to the last ``delivered``, by the status records' timestamps; egress
  announces ``sent`` per batch, so its first ``sent`` is no start), egress and broker
  CPU per submission (/proc/<pid>/stat; egress's also per thread), peak RSS; ``--profile`` samples
  egress with py-spy up to the last ``sent``.
      python -m bench.bench_smpp --through-egress [--messages 5000] [--profile] [--smsc smpp34]
  ``--smsc smpp34``: smpp34's server in this process instead, sending each receipt at once
  (jSMPP's simulator sends at most ~100 receipts a second, so "to last delivered" is its figure).
  `make bench` runs it in its table (bench/run.py calls ``egress_row``); its broker is the one
  on HERALD_BENCH_KAFKA_PORT (19192), started here if none runs there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from services.carriers.base import Submission
from services.carriers.smpp.connector import SmppConnector
from services.core.carriers import Carrier

ROOT = Path(__file__).resolve().parents[1]
TENANT, NUMBER = "bench", "10690001"
SMSC_PORT = 19490


class CountingSink:
    def __init__(self) -> None:
        self.receipts = 0

    async def publish(self, topic: str, key: str, event: dict) -> None:
        if topic == "sms.delivery":
            self.receipts += 1

    async def collect_part(self, *args: object) -> None:
        return None

    async def drop_parts(self, *args: object) -> None:
        return None


async def measure(port: int, n: int, window: int) -> dict:
    conn = SmppConnector(Carrier("jsmpp", kind="smpp", api_token="herald", options={
        "host": "127.0.0.1", "port": port, "system_id": "herald", "window": window}))
    sink = CountingSink()
    await conn.start(sink)
    deadline = time.monotonic() + 30
    while not conn.is_up():
        if time.monotonic() > deadline:
            raise SystemExit("bench_smpp: no bind to the simulator within 30s")
        await asyncio.sleep(0.05)
    sem = asyncio.Semaphore(window * 4)

    async def one(i: int) -> None:
        async with sem:
            await conn.submit(Submission(f"m{i}", "+8613800138000", "10690001", f"bench {i}", "gsm7", 1))

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    end = time.monotonic() + 60
    while sink.receipts < n and time.monotonic() < end:
        await asyncio.sleep(0.1)
    await conn.close()
    return {"messages": n, "window": window, "submissions_per_s": round(n / wall),
            "cpu_ms_per_submission": round(cpu * 1000 / n, 4), "receipts_back_within_60s": sink.receipts,
            "receipt_ids_detected": list(conn.ids.pair or ())}


# -- through egress ----------------------------------------------------------------------------
class StatusWatch(threading.Thread):
    """Reads sms.status from its start and keeps, per message, the broker timestamp (ms) of its
    first ``sent`` and ``delivered`` and any other final status."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.sent: dict[str, int] = {}
        self.delivered: dict[str, int] = {}
        self.other: dict[str, str] = {}
        self.halt = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        parts = c.list_topics(self.topic, timeout=10).topics[self.topic].partitions
        c.assign([TopicPartition(self.topic, p, 0) for p in parts])
        self.ready.set()
        try:
            while not self.halt.is_set():
                for m in c.consume(1000, 0.2):
                    if m.error():
                        continue
                    ev = json.loads(m.value())
                    seen = {"sent": self.sent, "delivered": self.delivered}.get(ev["status"])
                    if seen is not None:
                        seen.setdefault(ev["message_id"], m.timestamp()[1])
                    elif ev["status"] != "accepted":
                        self.other[ev["message_id"]] = f"{ev['status']}: {ev.get('reason')}"
        finally:
            c.close()

    def wait(self, ids: list[str], timeout: float, status: str = "delivered") -> bool:
        """Until every one of ``ids`` is ``status`` (sent, delivered) or ended otherwise."""
        seen = self.sent if status == "sent" else self.delivered
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(i in seen or i in self.delivered or i in self.other for i in ids):
                return True
            time.sleep(0.05)
        return False


def _produce(bootstrap: str, topic: str, events: list[dict]) -> None:
    from confluent_kafka import Producer

    from services.core.schemas import encode

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for ev in events:
        while True:
            try:
                p.produce(topic, encode("sms.outbound", ev), key=ev["to"].encode())
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    if p.flush(60):
        raise SystemExit("bench_smpp: the broker did not take the outbound events within 60s")


def _outbound(tag: str, n: int) -> list[dict]:
    from services.core.sending import parse_send

    # the send API's own event, so egress sees what it sees in production
    return [parse_send(TENANT, {"to": f"+86138{i:08d}", "text": f"bench {tag} {i}",
                                "request_id": f"{tag}-{i}"}) for i in range(n)]


def receipting_smpp34(port: int):
    """smpp34's server (tests/support/smsc.py) answering each submit_sm at once and sending its
    receipt right after, ten in flight per bind: an SMSC whose receipts do not wait, to see what
    Herald does with them (jSMPP's simulator sends at most ~100 a second)."""
    from tests.support.smsc import ThreadedSmpp34

    class Receipting(ThreadedSmpp34):
        async def _run(self) -> None:
            binds: dict[str, object] = {}
            window = asyncio.Semaphore(10)
            tasks: set[asyncio.Task] = set()
            count = 0
            while True:
                ev = await self.server.next()
                if isinstance(ev, self._smpp34.SubmitSmEvent):
                    count += 1
                    ev.accept(str(count))
                    t = asyncio.ensure_future(self._receipt(binds[ev.session_id], window, ev, count))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
                elif isinstance(ev, self._smpp34.Esme):
                    binds[ev.session_id] = ev

        async def _receipt(self, esme, window, ev, mid: int) -> None:
            when = time.strftime("%y%m%d%H%M", time.gmtime())
            text = (f"id:{mid} sub:001 dlvrd:001 submit date:{when} done date:{when} stat:DELIVRD "
                    "err:000 text:").encode()
            async with window:
                await esme.deliver_sm(ev.source_addr, text, source_addr=ev.destination_addr,
                                      esm_class=0x04)

    return Receipting(port)


def egress_path(broker, n: int, window: int, smsc_port: int = SMSC_PORT,
                profile: Path | None = None, smsc: str = "jsmpp", binds: int = 1) -> dict:
    """sms.outbound -> egress -> the SMSC -> receipts -> sms.status delivered (module docstring).
    ``smsc``: "jsmpp" (deploy/smsc) or "smpp34" (receipting_smpp34, in this process)."""
    from bench.run import cpu_seconds, proc_peak_rss_mb, thread_cpu_seconds
    from services.core.db.migrate import upgrade
    from services.core.topics import ensure_topics
    from tests.support.infra import Stack, empty_postgres
    from tests.support.seed import seed_tenant
    from tests.support.smsc import JsmppSimulator

    tmp = Path(tempfile.mkdtemp(prefix="herald-bench-smpp-"))
    db_url = os.environ.get("HERALD_BENCH_DATABASE_URL") or f"sqlite:///{tmp / 'herald.db'}"
    if db_url.startswith("postgresql"):
        empty_postgres(db_url)
    upgrade(db_url)
    stack = Stack(broker.bootstrap, db_url)
    ensure_topics(stack.settings(topic_partitions=3))
    seed_tenant(stack, TENANT, number=NUMBER)
    carriers = tmp / "carriers.json"
    carriers.write_text(json.dumps({"carriers": [{
        "name": "jsmpp", "kind": "smpp", "api_token": JsmppSimulator.password, "prefixes": ["+"],
        "priority": 10, "rate_per_second": 10000, "timeout_s": 10,
        "options": {"host": "127.0.0.1", "port": smsc_port, "system_id": JsmppSimulator.system_id,
                    "window": window, "binds": binds}}]}))
    sim = JsmppSimulator(smsc_port) if smsc == "jsmpp" else receipting_smpp34(smsc_port)
    sim.start()
    watch = StatusWatch(broker.bootstrap, stack.topic("sms.status"))
    spy = None
    try:
        egress = stack.start("services.egress", HERALD_CARRIERS_FILE=str(carriers),
                             HERALD_LOG_LEVEL="warn")  # healthy once the bind is up
        watch.start()
        watch.ready.wait(30)
        outbound = stack.topic("sms.outbound")
        # Warm-up: the consumer group settles, the first batches pay for connections.
        warm = _outbound("warm", 200)
        _produce(broker.bootstrap, outbound, warm)
        if not watch.wait([e["message_id"] for e in warm], 120):
            raise SystemExit(f"bench_smpp: the warm-up was not delivered; see {egress.log_path}")

        pids = {"egress": egress.popen.pid, "broker": broker.pid,
                # smpp34's server runs in this process, with the sms.status reader
                "simulator" if smsc == "jsmpp" else "bench process (smpp34 SMSC)":
                    int((sim.data_dir / "smsc.pid").read_text()) if smsc == "jsmpp" else os.getpid()}
        events = _outbound(uuid.uuid4().hex[:8], n)
        ids = [e["message_id"] for e in events]
        if profile is not None:
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record",
                                    "--nonblocking", "-r", "250", "-f", "raw", "-o", str(profile),
                                    "-p", str(pids["egress"])],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load0 = os.getloadavg()[0]  # the machine is shared: say how busy it was
        cpu0 = cpu_seconds(pids)
        threads0 = thread_cpu_seconds(pids["egress"])
        # The clock starts as the events go out: egress records and announces `sent` per batch,
        # so the first `sent` comes a whole batch after the first submission.
        start_ms = time.time() * 1000
        _produce(broker.bootstrap, outbound, events)
        # CPU until every message is submitted (receipts handled by then included), then until
        # every receipt is in: the simulator sends receipts far slower than it takes messages,
        # so the second figure also holds egress's idle cost over the receipts' tail.
        watch.wait(ids, max(120, n / 50), status="sent")
        cpu_sent = {k: v - cpu0[k] for k, v in cpu_seconds(pids).items()}
        threads = {k: v - threads0.get(k, 0.0) for k, v in thread_cpu_seconds(pids["egress"]).items()}
        if spy is not None:  # the profile covers the submissions, not the receipts' slow tail
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            spy.wait(30)
        finished = watch.wait(ids, max(120, n / 50))
        cpu = {k: v - cpu0[k] for k, v in cpu_seconds(pids).items()}
        rss = {k: round(proc_peak_rss_mb(pid)) for k, pid in pids.items()}
        load = (round(load0, 1), round(os.getloadavg()[0], 1))
    finally:
        watch.halt.set()
        stack.stop_all()
        sim.stop()
    sent = [watch.sent[i] for i in ids if i in watch.sent]
    delivered = [watch.delivered[i] for i in ids if i in watch.delivered]
    others = [watch.other[i] for i in ids if i in watch.other]
    sent_s = (max(sent, default=start_ms) - start_ms) / 1000
    delivered_s = (max(delivered, default=start_ms) - start_ms) / 1000
    done = max(1, len(sent))
    return {"smsc": smsc, "messages": n, "window": window, "binds": binds, "finished": finished,
            "sent": len(sent),
            "delivered": len(delivered), "not_delivered": others[:5],
            "submissions_per_s": round(len(sent) / sent_s) if sent_s > 0 else None,
            "delivered_per_s": round(len(delivered) / delivered_s) if delivered_s > 0 else None,
            "to_last_sent_s": round(sent_s, 2), "to_last_delivered_s": round(delivered_s, 2),
            "cpu_ms_per_submission": {k: round(v * 1000 / done, 3) for k, v in cpu.items()},
            "cpu_ms_per_submission_to_last_sent": {k: round(v * 1000 / done, 3)
                                                   for k, v in cpu_sent.items()},
            "egress_threads_cpu_ms_per_submission_to_last_sent": {
                k: round(v * 1000 / done, 3) for k, v in sorted(threads.items(), key=lambda kv: -kv[1])
                if v > 0},
            "peak_rss_mb": rss, "database": db_url.split("@")[-1].split(":")[0],
            "load_average_before_after": load}


def egress_row(broker, n: int = 5000) -> dict:
    """The through-egress figure as a row of bench/run.py's table."""
    from bench.run import cpu_summary

    r = egress_path(broker, n, 10)
    return {"figure": "SMPP sms.outbound->egress->jSMPP, window 10",
            "per_s": r["submissions_per_s"] or float("nan"), "spread": 0.0,
            "completed": f"{r['delivered']}/{n} delivered",
            "delivered_per_s": r["delivered_per_s"],
            # CPU to the last `sent` (issue 13's figure); to the last receipt it also holds egress's
            # idle cost over the simulator's slow tail of receipts (kept apart)
            "cpu_s_per_1000": r["cpu_ms_per_submission_to_last_sent"],
            **cpu_summary(r["cpu_ms_per_submission_to_last_sent"]),
            "cpu_ms_per_submission_to_last_receipt": r["cpu_ms_per_submission"],
            "peak_rss_mb": r["peak_rss_mb"]}


def _median_range(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def through_egress(a: argparse.Namespace) -> None:
    from bench.profile import print_summary
    from tests.support.infra import Broker

    broker = Broker(int(os.environ.get("HERALD_BENCH_KAFKA_PORT", "19192")))
    started = broker.start()
    profile = ROOT / "bench/results/profile-egress-smpp.txt" if a.profile else None
    runs: list[dict] = []
    try:
        for i in range(a.runs):
            runs.append(egress_path(broker, a.messages, a.window, a.port,
                                    profile if i == 0 else None, a.smsc, a.binds))
            if a.runs > 1:
                r = runs[-1]
                print(f"run {i + 1} of {a.runs}: {r['submissions_per_s']} submissions/s, egress "
                      f"{r['cpu_ms_per_submission_to_last_sent']['egress']:.3f} ms CPU per "
                      f"submission to the last sent", flush=True)
    finally:
        if started:
            broker.stop()
    result = runs[0] if a.runs == 1 else {
        "runs": runs,
        # the figures of issue 13, as medians over the runs with their range
        "submissions_per_s": _median_range([r["submissions_per_s"] or 0 for r in runs]),
        "egress_cpu_ms_per_submission_to_last_sent": _median_range(
            [r["cpu_ms_per_submission_to_last_sent"]["egress"] for r in runs])}
    print(json.dumps(result if a.runs == 1 else {k: v for k, v in result.items() if k != "runs"},
                     indent=2))
    suffix = "" if a.smsc == "jsmpp" else f"-{a.smsc}"
    (ROOT / f"bench/results/bench-smpp-egress{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
    if profile is not None and profile.exists():
        print_summary(profile, "egress under py-spy")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=None,
                    help="20000 for the connector alone, 5000 through egress")
    ap.add_argument("--port", type=int, default=SMSC_PORT, help="the simulator's port")
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--binds", type=int, default=1, help="with --through-egress: transceiver binds")
    ap.add_argument("--through-egress", action="store_true",
                    help="through the egress process and the broker, receipts to delivered")
    ap.add_argument("--profile", action="store_true", help="with --through-egress: py-spy on egress")
    ap.add_argument("--runs", type=int, default=1,
                    help="with --through-egress: runs on one broker, medians and ranges reported")
    ap.add_argument("--smsc", choices=["jsmpp", "smpp34"], default="jsmpp",
                    help="with --through-egress: smpp34 sends each receipt at once (no 100/s cap)")
    a = ap.parse_args()
    if a.through_egress:
        a.messages = a.messages or 5000
        through_egress(a)
        return
    a.messages = a.messages or 20000
    env = {**os.environ, "SMSC_PORT": str(a.port)}
    script = ROOT / "deploy/smsc/smsc.sh"
    subprocess.run([script, "start"], check=True, env=env)
    try:
        result = asyncio.run(measure(a.port, a.messages, a.window))
    finally:
        subprocess.run([script, "stop"], check=False, env=env)
    print(json.dumps(result, indent=2))
    out = ROOT / "bench/results/bench-smpp.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
