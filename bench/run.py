"""Herald's benchmark suite: `make bench-quick` (under two minutes) and `make bench`.

Runs against a real broker (started here on its own port), a real database and the carrier
simulator, with every processor a separate process. Prints one table and writes it as JSON and
a PNG chart under bench/results/. Every Herald figure is also given as a ratio to a raw
confluent-kafka round trip of the same number of same-sized events through the same broker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as pyplatform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from services.core.carriers import sign  # noqa: E402
from services.core.db.migrate import upgrade  # noqa: E402
from services.core.messages import message_id_for  # noqa: E402
from services.core.topics import ensure_topics  # noqa: E402
from services.ingress.domain import mo_message_id  # noqa: E402
from tests.support.infra import Broker, Proc, Stack, empty_postgres, wait_until  # noqa: E402
from tests.support.platform import SECRET, start_platform  # noqa: E402
from tests.support.seed import seed_tenant  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BROKER_PID: dict[str, int] = {}
NUMBER = "10690001"
HERALD_PROCESSES = ("ingress", "router", "egress", "verifier", "ledger", "campaigns")


class Progress:
    """One line per figure and run as the suite goes, with an estimate of the time left: the
    planned steps' estimates, scaled by how the finished steps compared with theirs. The scale
    starts from a minute of the plan taken as exact, so one short step far off its estimate (a
    baseline done in a second) does not swing the estimate of everything after it."""

    PRIOR_S = 60.0

    def __init__(self, plan: list[tuple[str, float]]) -> None:
        self.plan = plan  # (label, estimated seconds)
        self.i = 0
        self.t0 = time.monotonic()
        self.started: float | None = None
        self.spent = 0.0  # seconds of the finished steps
        self.estimated = 0.0  # their estimates

    def next(self, label: str | None = None) -> None:
        now = time.monotonic()
        if self.started is not None:
            self.spent += now - self.started
            self.estimated += self.plan[self.i - 1][1]
        self.started = now
        name, _ = self.plan[min(self.i, len(self.plan) - 1)]
        self.i += 1
        scale = (self.spent + self.PRIOR_S) / (self.estimated + self.PRIOR_S)
        left = sum(est for _, est in self.plan[self.i - 1:]) * scale
        print(f"[bench {_clock(now - self.t0)}] {self.i}/{len(self.plan)} {label or name} "
              f"(about {_clock(left)} left)", flush=True)

    def done(self) -> None:
        print(f"[bench {_clock(time.monotonic() - self.t0)}] done", flush=True)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


def cpu_summary(cpu: dict[str, float]) -> dict[str, float]:
    """Herald's own CPU per message (its processors together) and the broker's, from a
    per-process figure in ms per message (worker processes named "verifier 1", ...); the broker's
    JIT compiler apart (``cpu_seconds``)."""
    herald = sum(v for k, v in cpu.items() if k.split(" ")[0] in HERALD_PROCESSES)
    return {"herald_cpu_ms_per_msg": herald, "broker_cpu_ms_per_msg": cpu.get("broker", float("nan")),
            "broker_jit_cpu_ms_per_msg": cpu.get("broker JIT", float("nan"))}


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The JVM's compiler threads (/proc's thread names are cut at 15 characters).
JIT_THREADS = ("C1 CompilerThre", "C2 CompilerThre")


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process, the broker's split in two: "broker", its work,
    and "broker JIT", its JIT compiler's threads. Compiling Kafka's code is a cost of the broker's
    start that fades as it warms (55-60% of its CPU in the first runs after a start, 15-30% after
    20,000 messages: docs/performance.md, part 8), not a cost of the messages; the two are
    reported apart so the figure says which it is. A compiler thread that has ended takes its
    time out of the JIT's share into the work's, so the work is never under-counted."""
    out: dict[str, float] = {}
    for name, pid in pids.items():
        total = proc_cpu_seconds(pid)
        if name == "broker":
            jit = sum(v for t, v in thread_cpu_seconds(pid).items() if t.startswith(JIT_THREADS))
            out["broker"], out["broker JIT"] = total - jit, jit
        else:
            out[name] = total
    return out


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of a process, so a figure says whose CPU it is: Python's own
    threads (the event loop and asyncio's workers are all named "python") against librdkafka's
    rdk:* threads."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        # rdk:broker1/localhost:9092... -> rdk:broker1; Python's own threads are all "python"
        name = comm.split("/")[0] if comm.startswith("rdk:") else comm
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def load_average() -> str:
    """The machine's 1/5/15-minute load: benchmarks share it, and say how busy it was."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


# -- 1. baseline ------------------------------------------------------------------------------
def baseline(bootstrap: str, n: int, size: int, partitions: int) -> dict:
    """Raw confluent-kafka: produce n events of `size` bytes, then consume them back."""
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result()
    payload = b"x" * size
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True,
                  "compression.type": "lz4"})
    t0 = time.perf_counter()
    for i in range(n):
        while True:
            try:
                p.produce(topic, payload, key=str(i % 1000).encode())
                break
            except BufferError:
                p.poll(0.01)
    p.flush(60)
    produce_s = time.perf_counter() - t0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, i, 0) for i in range(partitions)])
    got = 0
    t1 = None  # from the first record: the consumer's connection set-up is not throughput
    deadline = time.perf_counter() + 60
    while got < n and time.perf_counter() < deadline:
        msgs = c.consume(1000, 0.5)
        if msgs and t1 is None:
            t1 = time.perf_counter()
        got += sum(1 for m in msgs if not m.error())
    consume_s = time.perf_counter() - (t1 or deadline)
    c.close()
    return {"produced_per_s": n / produce_s, "consumed_per_s": got / consume_s,
            "round_trip_per_s": n / (produce_s + consume_s)}


# -- 2. inbound path --------------------------------------------------------------------------
async def _fire_mos(url: str, n: int, tag: str, rate: float | None, concurrency: int) -> dict[str, float]:
    """POST n signed MO webhooks ("INFO"); returns reply message id -> send time (monotonic)."""
    # aiohttp rather than httpx here: the load generator shares the two cores with what it
    # measures, and aiohttp's client costs about a third of httpx's CPU per request.
    sent: dict[str, float] = {}
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as client:
        async def one(i: int) -> None:
            cmid = f"{tag}-{i}"
            body = json.dumps({"id": cmid, "from": f"+86138{i % 100000000:08d}", "to": NUMBER,
                               "text": "INFO"}).encode()
            reply = message_id_for("bench", f"reply-{mo_message_id('sim', cmid)}")
            async with sem:
                t = time.monotonic()
                async with client.post(url, data=body, headers={
                        "X-Herald-Signature": sign(SECRET, body),
                        "Content-Type": "application/json"}) as r:
                    await r.read()
                    if r.status == 200:
                        sent[reply] = t

        start = time.monotonic()
        tasks = []
        for i in range(n):
            if rate:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return sent


def inbound_path(plat, n: int, rate: float | None, concurrency: int = 64) -> dict:
    httpx.delete(f"{plat.sim.url}/submissions")
    procs = {"ingress": plat.ingress, "router": plat.router, "egress": plat.egress,
             "simulator": plat.sim}
    # The second and later workers count too ("router 2", "egress 2"): Herald's CPU is all of it.
    for module in ("router", "egress"):
        more = [p for p in plat.stack.procs if p.module == f"services.{module}"
                and p is not procs[module]]
        procs.update({f"{module} {i + 2}": p for i, p in enumerate(more)})
    pids = {k: p.popen.pid for k, p in procs.items()}
    broker_pid = BROKER_PID.get("pid")
    if broker_pid:
        pids["broker"] = broker_pid
    pids["load generator"] = os.getpid()
    cpu0 = cpu_seconds(pids)
    tag = uuid.uuid4().hex[:8]
    t0 = time.monotonic()
    sent = asyncio.run(_fire_mos(f"{plat.ingress.url}/carriers/sim/mo", n, tag, rate, concurrency))

    def done():
        subs = httpx.get(f"{plat.sim.url}/submissions", timeout=30).json()
        got = [s for s in subs if s["reference"] in sent]
        return got if len(got) >= len(sent) else None

    try:
        subs = wait_until(done, timeout=max(60, n / 50), interval=0.5, what="all replies submitted")
    except AssertionError:
        subs = [s for s in httpx.get(f"{plat.sim.url}/submissions", timeout=30).json()
                if s["reference"] in sent]
    lat = [(s["received_monotonic"] - sent[s["reference"]]) * 1000 for s in subs]
    last = max((s["received_monotonic"] for s in subs), default=t0)
    elapsed = last - t0
    cpu = {k: (v - cpu0[k]) * 1000 / max(1, len(subs)) for k, v in cpu_seconds(pids).items()}
    return {"messages": n, "completed": len(subs), "per_s": len(subs) / elapsed if elapsed else 0,
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
            "cpu_s_per_1000": cpu,
            "peak_rss_mb": {k: proc_peak_rss_mb(p.popen.pid) for k, p in procs.items()},
            "elapsed_s": elapsed}


# The simulator posts its delivery reports up to this many to a request, as aggregators that
# batch their callbacks do, and egress submits up to CARRIER_BATCH messages a request to its
# batch endpoint: the carrier side shares the machine and must not be what bounds the figures.
# DLR_BATCH 1 and CARRIER_BATCH 0: a request per report and per message.
DLR_BATCH = 50
CARRIER_BATCH = 50


def with_platform(broker: Broker, db_url: str | None, partitions: int, workers: int, fn,
                  dlr_batch: int = DLR_BATCH, carrier_batch: int = CARRIER_BATCH):
    stack = Stack(broker.bootstrap, db_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    if db_url and db_url.startswith("postgresql"):
        empty_postgres(db_url)
    upgrade(stack.database_url)
    ensure_topics(stack.settings(topic_partitions=partitions))
    seed_tenant(stack, "bench", number=NUMBER, keywords=[("INFO", "reply", {"reply_text": "Herald: OK"})])
    tmp = Path(tempfile.mkdtemp())
    env = {"HERALD_LOG_LEVEL": "warn"}
    plat = start_platform(stack, tmp, sim_dlr_batch=dlr_batch, carrier_batch=carrier_batch, **env)
    extra: list[Proc] = []
    for _ in range(workers - 1):
        extra.append(stack.start("services.router", HERALD_CARRIERS_FILE=str(tmp / "carriers.json"), **env))
        extra.append(stack.start("services.egress", HERALD_CARRIERS_FILE=str(tmp / "carriers.json"), **env))
    try:
        # Warm up: the consumer groups settle and the first events pay for connections.
        inbound_path(plat, 50, None, 8)
        return fn(plat)
    finally:
        stack.stop_all()


def verification_path(bootstrap: str, quick: bool, progress: Progress | None = None) -> list[dict]:
    """Codes: generate+store, then code submissions through verifier and ledger processes until
    every reply is out and every points entry is in the ledger, with 1+1 and (full mode) 2+2
    workers (bench/bench_codes.py does the work; its lines are folded into the table)."""
    import re
    import subprocess

    count, verify = (20_000, 2_000) if quick else (1_000_000, 10_000)
    rows: list[dict] = []
    for workers in (1,) if quick else (1, 2):
        if progress:
            progress.next(f"verification path, {workers}+{workers} workers")
        broker = ["--broker-pid", str(BROKER_PID["pid"])] if BROKER_PID.get("pid") else []
        out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_codes.py"),
                              "--count", str(count if workers == 1 else 1_000), "--verify", str(verify),
                              "--e2e", "--bootstrap", bootstrap, "--workers", str(workers), *broker],
                             capture_output=True, text=True, timeout=900)
        found = False
        cpu: dict[str, float] = {}
        for line in out.stdout.splitlines():
            if line.startswith("cpu ms per verification: "):
                for part in line.split(": ", 1)[1].split(", "):
                    k, _, v = part.rpartition(" ")
                    cpu[k] = float(v)
            m = re.search(r"generate\+store: ([\d,]+) codes in [\d.]+s = ([\d,]+) codes/s", line)
            if m and workers == 1:
                rows.append({"figure": f"codes generated+stored ({m.group(1)})",
                             "per_s": float(m.group(2).replace(",", "")), "spread": 0.0})
            m = re.search(r"end to end: ([\d,]+)/([\d,]+) verifications answered and in the ledger "
                          r"in [\d.]+s = ([\d,]+)/s", line)
            if m:
                found = True
                rows.append({"figure": f"verifications + points entries, {workers}+{workers} workers",
                             "per_s": float(m.group(3).replace(",", "")), "spread": 0.0,
                             "completed": f"{m.group(1)}/{m.group(2)}"})
        if found and cpu:
            rows[-1]["cpu_s_per_1000"] = cpu
            rows[-1].update(cpu_summary(cpu))
        if not found:
            print("bench_codes.py produced no figures:\n" + out.stdout[-2000:] + out.stderr[-2000:])
    return rows


def fan_out(kafka_port: int, contacts: int) -> list[dict]:
    """One notification campaign to `contacts` recipients through campaigns -> egress ->
    simulator (bench/bench_campaigns.py does the work; its figures are folded in)."""
    import subprocess

    out_json = Path(tempfile.mkdtemp()) / "fanout.json"
    env = {**os.environ, "HERALD_BENCH_KAFKA_PORT": str(kafka_port)}
    subprocess.run([sys.executable, "-m", "bench.bench_campaigns", "--contacts", str(contacts),
                    "--json", str(out_json)], cwd=ROOT, env=env, capture_output=True, timeout=1800)
    if not out_json.exists():
        return [{"figure": f"fan-out {contacts} recipients: did not finish", "per_s": float("nan"),
                 "spread": 0.0}]
    r = json.loads(out_json.read_text())
    return [{"figure": f"fan-out campaign {contacts} recipients -> carrier",
             "per_s": r.get("end_to_end_per_s", float("nan")), "spread": 0.0,
             "completed": f"{r.get('simulator_submitted')}/{contacts}",
             "expanded_per_s": r.get("expanded_per_s"),
             "peak_rss_mb": {"campaigns": r.get("campaigns_peak_rss_mb")},
             "exactly_once": r.get("exactly_once")}]


def median_spread(runs: list[float]) -> tuple[float, float]:
    return statistics.median(runs), (max(runs) - min(runs)) if len(runs) > 1 else 0.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["quick", "full"], default="quick")
    args = ap.parse_args()
    quick = args.mode == "quick"
    n = 500 if quick else 2000
    runs = 1 if quick else 3
    db_url = os.environ.get("HERALD_BENCH_DATABASE_URL")
    broker = Broker(int(os.environ.get("HERALD_BENCH_KAFKA_PORT", "19192")))
    started = broker.start()
    BROKER_PID["pid"] = broker.pid
    rows: list[dict] = []
    configs = [(3, 1)] if quick else [(3, 1), (3, 2), (1, 1)]
    paced_n = 500 if quick else 3000
    run_s = n / 600 + 3  # a run of the inbound path at today's rate, and its wait
    # Messages through the inbound path before anything counts, once: the broker's JIT compiles
    # Kafka's hot code over its first tens of thousands of requests (docs/performance.md, part 8)
    warm_n = 1000 if quick else 5000
    plan = [(f"raw confluent-kafka baseline, run {i + 1} of {runs}", 3.0) for i in range(runs)]
    for partitions, workers in configs:
        plan += [(f"inbound {partitions}p x {workers}w: start the platform", 10.0 + 5 * workers)]
        if (partitions, workers) == configs[0]:
            plan += [(f"inbound {partitions}p x {workers}w: warm-up, {warm_n:,} messages (not counted)",
                      warm_n / 600 + 3)]
        plan += [(f"inbound {partitions}p x {workers}w, run {i + 1} of {runs}", run_s)
                 for i in range(runs)]
    plan += [("inbound paced at 500/s: start the platform", 10.0)]
    plan += [(f"inbound paced at 500/s, run {i + 1} of {runs}", paced_n / 480 + 3) for i in range(runs)]
    plan += [(f"verification path, {w}+{w} workers", 12.0 if quick else 120.0)
             for w in ((1,) if quick else (1, 2))]
    if not quick:
        plan += [("fan-out campaign, 10,000 recipients", 120.0), ("SMPP through egress", 90.0)]
    progress = Progress(plan)

    def runs_of(label: str, count: int, rate: float | None, warm: int = 0):
        def go(plat) -> list[dict]:
            if warm:
                progress.next(f"{label}: warm-up, {warm:,} messages (not counted)")
                inbound_path(plat, warm, None)
            out = []
            for i in range(runs):
                progress.next(f"{label}, run {i + 1} of {runs}")
                out.append(inbound_path(plat, count, rate))
            return out
        return go

    try:
        base = []
        for i in range(runs):
            progress.next(f"raw confluent-kafka baseline, run {i + 1} of {runs}")
            base.append(baseline(broker.bootstrap, 100_000, 400, 3))
        raw_rt, raw_spread = median_spread([b["round_trip_per_s"] for b in base])
        rows.append({"figure": "raw confluent-kafka produce+consume (100k x 400 B)", "per_s": raw_rt,
                     "spread": raw_spread,
                     "produce_per_s": statistics.median(b["produced_per_s"] for b in base),
                     "consume_per_s": statistics.median(b["consumed_per_s"] for b in base)})

        for partitions, workers in configs:
            label = f"inbound {partitions}p x {workers}w"
            progress.next(f"{label}: start the platform")
            res = with_platform(broker, db_url, partitions, workers,
                                runs_of(label, n, None, warm_n if (partitions, workers) == configs[0] else 0))
            per_s, spread = median_spread([r["per_s"] for r in res])
            cpu = {k: statistics.median(r["cpu_s_per_1000"][k] for r in res)
                   for k in res[-1]["cpu_s_per_1000"]}
            rows.append({"figure": f"inbound MO->router->egress->carrier, {partitions}p x {workers}w",
                         "per_s": per_s, "spread": spread,
                         "completed": f"{res[-1]['completed']}/{res[-1]['messages']}",
                         "p50_ms": statistics.median(r["p50_ms"] for r in res),
                         "p99_ms": statistics.median(r["p99_ms"] for r in res),
                         "ratio_to_raw": per_s / raw_rt,
                         "cpu_s_per_1000": cpu, **cpu_summary(cpu),
                         "peak_rss_mb": res[-1]["peak_rss_mb"]})
        progress.next("inbound paced at 500/s: start the platform")
        res = with_platform(broker, db_url, 3, 1, runs_of("inbound paced at 500/s", paced_n, 500.0))
        cpu = {k: statistics.median(r["cpu_s_per_1000"][k] for r in res)
               for k in res[-1]["cpu_s_per_1000"]}
        rows.append({"figure": "inbound at 500/s paced: latency",
                     "per_s": statistics.median(r["per_s"] for r in res),
                     "spread": 0.0, "p50_ms": statistics.median(r["p50_ms"] for r in res),
                     "p99_ms": statistics.median(r["p99_ms"] for r in res),
                     "completed": f"{res[-1]['completed']}/{res[-1]['messages']}",
                     "cpu_s_per_1000": cpu, **cpu_summary(cpu),
                     "peak_rss_mb": res[-1]["peak_rss_mb"]})
        rows += verification_path(broker.bootstrap, quick, progress)
        if not quick:
            progress.next("fan-out campaign, 10,000 recipients")
            rows += fan_out(broker.port, 10_000)
            progress.next("SMPP through egress")
            from bench.bench_smpp import egress_row  # its own module: bench/bench_smpp.py

            rows.append(egress_row(broker))
        progress.done()
    finally:
        if started:
            broker.stop()

    meta = {"mode": args.mode, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": f"{os.cpu_count()} cores, Python {pyplatform.python_version()}",
            "database": (db_url or "sqlite").split("@")[-1], "events_per_run": n, "runs": runs}
    print_table(rows, meta)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench-{args.mode}.json"
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    chart(rows, RESULTS / f"bench-{args.mode}.png")
    print(f"\nwritten: {out.relative_to(ROOT)} and {out.with_suffix('.png').relative_to(ROOT)}")
    return 0


def print_table(rows: list[dict], meta: dict) -> None:
    print(f"\nHerald benchmarks ({meta['mode']}): {meta['machine']}, database {meta['database']}, "
          f"{meta['events_per_run']} events per run, median of {meta['runs']}")
    print(f"{'figure':<52} {'msg/s':>9} {'spread':>8} {'p50 ms':>8} {'p99 ms':>8} {'x raw':>7} "
          f"{'Herald CPU':>10} {'broker CPU':>10} {'its JIT':>8}")
    print(f"{'':<52} {'':>9} {'':>8} {'':>8} {'':>8} {'':>7} {'ms/msg':>10} {'ms/msg':>10} {'ms/msg':>8}")
    def f(r: dict, k: str, fmt: str = "{:.1f}") -> str:
        return fmt.format(r[k]) if k in r and r[k] == r[k] else "-"

    for r in rows:
        print(f"{r['figure']:<52} {f(r, 'per_s', '{:.0f}'):>9} {f(r, 'spread', '{:.0f}'):>8} "
              f"{f(r, 'p50_ms'):>8} {f(r, 'p99_ms'):>8} {f(r, 'ratio_to_raw', '{:.3f}'):>7} "
              f"{f(r, 'herald_cpu_ms_per_msg', '{:.3f}'):>10} {f(r, 'broker_cpu_ms_per_msg', '{:.3f}'):>10} "
              f"{f(r, 'broker_jit_cpu_ms_per_msg', '{:.3f}'):>8}")
    for r in rows:
        if "cpu_s_per_1000" not in r and "peak_rss_mb" in r:
            print(f"  {r['figure']}: peak RSS MB {r['peak_rss_mb']}, expanded/s "
                  f"{r.get('expanded_per_s')}, exactly once: {r.get('exactly_once')}")
        if "cpu_s_per_1000" in r:
            cpu = ", ".join(f"{k} {v:.3f}" for k, v in r["cpu_s_per_1000"].items())
            rss = ", ".join(f"{k} {v:.0f}" for k, v in r.get("peak_rss_mb", {}).items())
            print(f"  {r['figure']}: CPU ms per message: {cpu}" + (f"; peak RSS MB: {rss}" if rss else ""))


def chart(rows: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    labels = [r["figure"].replace(", ", "\n") for r in rows]
    values = [r["per_s"] for r in rows]
    fig, ax = plt.subplots(figsize=(10, 4 + len(rows) * 0.3))
    ax.barh(labels, values, xerr=[r.get("spread", 0) for r in rows], color="#3b7dd8")
    ax.set_xscale("log")
    ax.set_xlabel("messages per second (log scale)")
    ax.set_title("Herald throughput vs raw confluent-kafka, same broker, same run")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
