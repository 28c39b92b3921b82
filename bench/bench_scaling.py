"""Scaling figure that does not depend on the machine's shared cores: 1 -> 2 workers, one core each.

    python -m bench.bench_scaling [--events 20000] [--runs 3] [--partitions 6]
                                  [--processors router,verifier] [--broker-cores 1]

For each processor (router: ``sms.inbound`` "INFO" texts -> keyword replies; verifier:
``codes.submitted`` first valid queries -> replies and points), on a broker of its own
(``HERALD_BENCH_KAFKA_PORT``, default 19192) and a fresh SQLite database
(``HERALD_BENCH_DATABASE_URL`` for PostgreSQL):

- the input topic has ``--partitions`` partitions; worker 1 runs pinned to core 0
  (``taskset -a -p -c 0``: every thread), worker 2, when it runs, to core 1;
- a run puts ``--events`` events on the input topic inside one Kafka transaction (the workers
  read committed records only, librdkafka's default), so the producer's work is done before the
  clock starts: the clock starts at the transaction's commit, when all N become visible at once,
  and stops when the group's committed offsets reach the end of every partition (lag 0, polled
  every 20 ms). Events are spread evenly over the partitions, so two workers get equal halves;
- CPU seconds of each worker and of the broker come from /proc/<pid>/stat over the same window,
  and each core's busy share from /proc/stat;
- runs come in pairs, 1 worker then 2 workers (worker 2 is started, joins, is stopped again), so
  a change in the machine's load between runs hits both sides of a ratio alike; before each
  measured run a small warm-up transaction is handled by the same workers.

Reported per processor: messages per second with 1 and 2 workers (median of ``--runs`` and the
spread), their ratio (near-linear is close to 2.0), messages per CPU-second per worker (the
throughput at a fixed CPU share: 1 / CPU per message, far steadier than messages per second
on a shared machine) and its efficiency (two workers' figure over one's, in the same pair),
each worker's use of its core (CPU seconds / wall seconds), the broker's CPU per message and
where it ran, and what the two cores could carry at the measured CPU per message of workers
and broker together (the ceiling any number of workers meets on this machine). The broker is a
JVM on the same two cores (unpinned unless ``--broker-cores``), so it takes its share from the
workers' cores; that, other load, and SQLite's single writer (verifier) is what bounds the
ratio here. Writes bench/results/bench-scaling.json.

Egress is not measured here: its carrier side (the HTTP or SMPP simulator) costs about half of
egress's own CPU per message and would have to run on one of the two measured cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as pyplatform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, ConsumerGroupState, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

from bench.bench_codes import submission  # noqa: E402
from bench.run import Progress, load_average, proc_cpu_seconds  # noqa: E402
from services.core import topics  # noqa: E402
from services.core.db import Database  # noqa: E402
from services.core.db.migrate import upgrade  # noqa: E402
from services.core.schemas import encode, new_event, now_iso  # noqa: E402
from services.core.topics import ensure_topics  # noqa: E402
from tests.support.infra import Broker, Proc, Stack, empty_postgres, wait_until  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SECRET = "bench-scaling-secret"
NUMBER = "10690001"
WARMUP_PER_PARTITION = 100
POLL_S = 0.02


# -- what each processor is fed ---------------------------------------------------------------
@dataclass
class Workload:
    """A processor, its input topic, and a maker of its i-th input event (with its key)."""

    name: str
    topic: str
    make: Callable[[int], tuple[dict, str]]


def router_workload(stack: Stack, _events_needed: int) -> Workload:
    from tests.support.seed import seed_tenant

    seed_tenant(stack, "bench", number=NUMBER, keywords=[("INFO", "reply", {"reply_text": "Herald: OK"})])
    tag = uuid.uuid4().hex[:8]

    def make(i: int) -> tuple[dict, str]:
        sender = f"+86138{i % 100_000_000:08d}"
        ev = new_event("sms.inbound", message_id=str(uuid.uuid4()), carrier="sim",
                       carrier_message_id=f"SM-{tag}-{i}", to=NUMBER, text="INFO",
                       received_at=now_iso(), **{"from": sender})
        return ev, sender

    return Workload("router", topics.SMS_INBOUND, make)


def verifier_workload(stack: Stack, events_needed: int) -> Workload:
    from services.verifier.demo import seed_scheme

    db = Database(stack.database_url)
    try:
        with db.session() as s:
            scheme = seed_scheme(s, SECRET, brand="scale", product="scale-1", codes=events_needed)
    finally:
        db.dispose()
    codes = scheme.codes

    def make(i: int) -> tuple[dict, str]:
        # Every submission a first valid query of its own code: a reply and a points award each.
        ev = submission(codes[i], f"+86139{i % 100_000_000:08d}")
        return ev, ev["code"]

    return Workload("verifier", topics.CODES_SUBMITTED, make)


WORKLOADS = {"router": router_workload, "verifier": verifier_workload}


# -- pinning and the machine ------------------------------------------------------------------
def pin(pid: int, cores: str) -> None:
    """Pin every thread of ``pid`` to ``cores`` (threads made later inherit it)."""
    taskset = shutil.which("taskset")
    if taskset:
        subprocess.run([taskset, "-a", "-p", "-c", cores, str(pid)], check=True,
                       stdout=subprocess.DEVNULL)
        return
    wanted = {int(c) for c in cores.split(",")}
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), wanted)


def allowed_cores(pid: int) -> str:
    """The cores the process's threads may run on (their union), as the kernel lists them."""
    lists = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    lists.add(line.split()[1])
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return ",".join(sorted(lists))


def core_times() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per core from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *vals = line.split()
        if name.startswith("cpu") and name != "cpu":
            v = [int(x) for x in vals[:8]]
            idle = v[3] + v[4]
            out[name] = (sum(v) - idle, sum(v))
    return out


def core_busy(before: dict, after: dict) -> dict[str, float]:
    return {k: round((after[k][0] - before[k][0]) / max(1, after[k][1] - before[k][1]), 3)
            for k in after if k in before}


# -- one processor's runs ---------------------------------------------------------------------
class Bench:
    def __init__(self, broker: Broker, stack: Stack, work: Workload, partitions: int, tmp: Path) -> None:
        self.broker, self.stack, self.work, self.partitions = broker, stack, work, partitions
        self.topic = stack.topic(work.topic)
        self.group = f"{stack.prefix}herald-{work.name}"
        self.admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        self.offsets = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": self.group,
                                 "enable.auto.commit": False})  # only reads the group's offsets
        self.producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5,
                                  "compression.type": "lz4",
                                  "transactional.id": f"bench-scaling-{uuid.uuid4().hex}"})
        self.producer.init_transactions(30)
        self.next_event = 0
        self.ends = {p: 0 for p in range(partitions)}  # next offset after our last record
        self.workers: list[Proc] = []
        self.env = {"HERALD_LOG_LEVEL": "warn", "HERALD_SECRET_KEY": SECRET,
                    "HERALD_TEST_LOG_DIR": str(tmp)}

    def close(self) -> None:
        self.offsets.close()
        self.producer = None  # its client threads go with it, before the broker does
        for w in self.workers:
            w.stop()

    # workers
    def set_workers(self, n: int) -> None:
        while len(self.workers) > n:
            self.workers.pop().stop()
        while len(self.workers) < n:
            core = str(len(self.workers))
            proc = self.stack.start(f"services.{self.work.name}", **self.env)
            pin(proc.popen.pid, core)
            self.workers.append(proc)
        wait_until(lambda: self._group_settled(n), timeout=60, interval=0.2,
                   what=f"{n} {self.work.name} worker(s) sharing {self.partitions} partitions")

    def _group_settled(self, n: int) -> bool:
        desc = self.admin.describe_consumer_groups([self.group])[self.group].result(10)
        if desc.state != ConsumerGroupState.STABLE or len(desc.members) != n:
            return False
        owned = [tp.partition for m in desc.members for tp in m.assignment.topic_partitions
                 if tp.topic == self.topic]
        return sorted(owned) == list(range(self.partitions))

    # events
    def put(self, count: int) -> None:
        """Produce ``count`` events, spread evenly over the partitions, in an open transaction."""
        def delivered(err, msg) -> None:
            if err is not None:
                raise RuntimeError(f"bench event not delivered: {err}")
            self.ends[msg.partition()] = max(self.ends[msg.partition()], msg.offset() + 1)

        self.producer.begin_transaction()
        for k in range(count):
            ev, key = self.work.make(self.next_event)
            self.next_event += 1
            while True:
                try:
                    self.producer.produce(self.topic, encode(self.work.topic, ev), key=key.encode(),
                                          partition=k % self.partitions, on_delivery=delivered)
                    break
                except BufferError:
                    self.producer.poll(0.01)
            self.producer.poll(0)
        self.producer.flush(60)

    def committed(self) -> dict[int, int]:
        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        return {tp.partition: tp.offset for tp in self.offsets.committed(tps, timeout=10)}

    def lag(self) -> int:
        got = self.committed()
        return sum(max(0, end - max(0, got[p])) for p, end in self.ends.items())

    def warm_up(self) -> None:
        self.put(WARMUP_PER_PARTITION * self.partitions)
        self.producer.commit_transaction(30)
        wait_until(lambda: self.lag() == 0, timeout=120, interval=0.1, what="warm-up handled")

    def run(self, n: int) -> dict:
        workers = len(self.workers)
        self.warm_up()
        before = self.committed()
        self.put(n)
        if self.committed() != before:  # nothing of an uncommitted transaction may be handled
            raise RuntimeError("the workers handled events of a transaction not yet committed")
        pids = {f"worker {i + 1}": w.popen.pid for i, w in enumerate(self.workers)}
        pids["broker"] = self.broker.pid
        cpu0 = {k: proc_cpu_seconds(pid) for k, pid in pids.items()}
        cores0 = core_times()
        load0 = load_average()
        t0 = time.monotonic()
        self.producer.commit_transaction(30)
        deadline = t0 + max(120, n / 50)
        while self.lag() and time.monotonic() < deadline:
            for w in self.workers:
                if not w.alive():
                    raise RuntimeError(f"{w.module} exited: {w.log_path.read_text()[-2000:]}")
            time.sleep(POLL_S)
        elapsed = time.monotonic() - t0
        left = self.lag()
        cpu = {k: proc_cpu_seconds(pid) - cpu0[k] for k, pid in pids.items()}
        # lag counts offsets, and each partition's commit marker takes one: near enough for a
        # run cut off by the deadline, exact (0) for a finished one
        done = n - min(n, left)
        worker_cpu = [cpu[f"worker {i + 1}"] for i in range(workers)]
        busy = core_busy(cores0, core_times())
        return {
            "workers": workers, "events": n, "handled": done, "elapsed_s": round(elapsed, 3),
            "per_s": round(done / elapsed, 1),
            "worker_cpu_s": [round(c, 3) for c in worker_cpu],
            "worker_core_use": [round(c / elapsed, 3) for c in worker_cpu],
            "msg_per_cpu_s_per_worker": round(done / sum(worker_cpu), 1),
            "worker_cpu_ms_per_msg": round(sum(worker_cpu) * 1000 / max(1, done), 4),
            "broker_cpu_ms_per_msg": round(cpu["broker"] * 1000 / max(1, done), 4),
            "broker_core_use": round(cpu["broker"] / elapsed, 3),
            # what the machine's cores could carry at this run's CPU per message, workers and
            # broker together (the broker shares them): the most any number of workers could do
            "cores_ceiling_per_s": round(len(busy) * max(1, done) / (sum(worker_cpu) + cpu["broker"]), 1),
            "core_busy": busy,
            # what else ran on the two cores meanwhile (other engineers' work, this process)
            "others_core_use": round(max(0.0, sum(busy.values()) - sum(worker_cpu) / elapsed
                                         - cpu["broker"] / elapsed), 3),
            "load_average": f"{load0} before, {load_average()} after",
            "worker_cores": [allowed_cores(w.popen.pid) for w in self.workers],
        }


def code_revision() -> str:
    """The commit measured, and whether the processors' code had local changes."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "services"],
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"not a git checkout: {ROOT.name}"
    return head + (" with local changes in services/" if dirty else "")


def median_spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3),
            "spread": round(max(values) - min(values), 3) if len(values) > 1 else 0.0}


def summarise(name: str, pairs: list[tuple[dict, dict]]) -> dict:
    one = [a for a, _ in pairs]
    two = [b for _, b in pairs]
    return {
        "processor": name,
        "per_s_1_worker": median_spread([r["per_s"] for r in one]),
        "per_s_2_workers": median_spread([r["per_s"] for r in two]),
        "ratio_2_to_1": median_spread([b["per_s"] / a["per_s"] for a, b in pairs]),
        "msg_per_cpu_s_per_worker_1": median_spread([r["msg_per_cpu_s_per_worker"] for r in one]),
        "msg_per_cpu_s_per_worker_2": median_spread([r["msg_per_cpu_s_per_worker"] for r in two]),
        # per-worker CPU cost with two workers against one: 1.0 = a second worker adds no cost
        # per message, so with a core each to themselves two would do twice the work
        "cpu_efficiency_2_to_1": median_spread([b["msg_per_cpu_s_per_worker"] / a["msg_per_cpu_s_per_worker"]
                                                for a, b in pairs]),
        "worker_core_use_1": median_spread([r["worker_core_use"][0] for r in one]),
        "worker_core_use_2": median_spread([statistics.mean(r["worker_core_use"]) for r in two]),
        # the 2-worker rate as a share of what the two cores could carry at the CPU per message
        "ceiling_per_s_2_workers": median_spread([r["cores_ceiling_per_s"] for r in two]),
        "share_of_ceiling_2_workers": median_spread([r["per_s"] / r["cores_ceiling_per_s"] for r in two]),
        "broker_core_use_2": median_spread([r["broker_core_use"] for r in two]),
        "others_core_use_2": median_spread([r["others_core_use"] for r in two]),
        "broker_cpu_ms_per_msg_1": median_spread([r["broker_cpu_ms_per_msg"] for r in one]),
        "broker_cpu_ms_per_msg_2": median_spread([r["broker_cpu_ms_per_msg"] for r in two]),
        "runs": [r for pair in pairs for r in pair],
    }


def measure(broker: Broker, name: str, n: int, runs: int, partitions: int, progress: Progress,
            db_url: str | None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="herald-bench-scaling-"))
    stack = Stack(broker.bootstrap, db_url or f"sqlite:///{tmp}/bench.db")
    if db_url and db_url.startswith("postgresql"):
        empty_postgres(db_url)
    upgrade(stack.database_url)
    ensure_topics(stack.settings(topic_partitions=partitions))
    per_run = n + WARMUP_PER_PARTITION * partitions
    work = WORKLOADS[name](stack, 2 * runs * per_run)
    bench = Bench(broker, stack, work, partitions, tmp)
    pairs = []
    try:
        def one(workers: int, cores: str, i: int, against: dict | None = None) -> dict:
            progress.next(f"{name}, {workers} worker{'s' if workers > 1 else ''} ({cores}), "
                          f"run {i + 1} of {runs}")
            bench.set_workers(workers)
            r = bench.run(n)
            ratio = f" (x{r['per_s'] / against['per_s']:.2f})" if against else ""
            print(f"  {name} {workers} worker{'s' if workers > 1 else ''}: {r['per_s']:,.0f} msg/s{ratio}, "
                  f"{r['msg_per_cpu_s_per_worker']:,.0f} msg per CPU-second per worker, core use "
                  f"{r['worker_core_use']}, broker {r['broker_core_use']}, others {r['others_core_use']}",
                  flush=True)
            return r

        for i in range(runs):
            a = one(1, "core 0", i)
            pairs.append((a, one(2, "cores 0 and 1", i, a)))
    finally:
        bench.close()
        stack.stop_all()
        drop_topics(broker, stack.prefix)
    return summarise(name, pairs)


def drop_topics(broker: Broker, prefix: str) -> None:
    """The run's topics go: kept, every run's partitions pile up on the broker and slow it."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    mine = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    for fut in (admin.delete_topics(mine, operation_timeout=30).values() if mine else []):
        try:
            fut.result()
        except Exception as exc:  # noqa: BLE001 - left for the broker's next wipe
            print(f"  (topic not deleted: {exc})")


def print_table(rows: list[dict], meta: dict) -> None:
    print(f"\nScaling, 1 -> 2 workers with one core each ({meta['machine']}; {meta['events_per_run']:,} "
          f"events per run over {meta['partitions']} partitions, median of {meta['runs']} (± half the "
          f"spread); broker on cores {meta['broker_cores']}; load average {meta['load_average']})")
    print(f"{'processor':<10} {'1 worker':>14} {'2 workers':>14} {'ratio':>11} "
          f"{'msg/CPU-s 1w':>13} {'msg/CPU-s 2w':>13} {'efficiency':>11}")

    def ms(d: dict, fmt: str = "{:,.0f}") -> str:
        return f"{fmt.format(d['median'])} ±{fmt.format(d['spread'] / 2)}"

    def m(d: dict, fmt: str = "{:.2f}") -> str:
        return fmt.format(d["median"])

    for r in rows:
        print(f"{r['processor']:<10} {ms(r['per_s_1_worker']):>14} {ms(r['per_s_2_workers']):>14} "
              f"{ms(r['ratio_2_to_1'], '{:.2f}'):>11} {ms(r['msg_per_cpu_s_per_worker_1']):>13} "
              f"{ms(r['msg_per_cpu_s_per_worker_2']):>13} {ms(r['cpu_efficiency_2_to_1'], '{:.2f}'):>11}")
    for r in rows:
        print(f"  {r['processor']}: a worker's use of its core {m(r['worker_core_use_1'])} alone, "
              f"{m(r['worker_core_use_2'])} in two; with two, the broker used {m(r['broker_core_use_2'])} "
              f"of a core and other processes {m(r['others_core_use_2'])}; broker CPU per message "
              f"{m(r['broker_cpu_ms_per_msg_1'], '{:.3f}')} / {m(r['broker_cpu_ms_per_msg_2'], '{:.3f}')} ms")
        print(f"  {r['processor']}: at that CPU per message (workers + broker) the two cores could carry "
              f"{m(r['ceiling_per_s_2_workers'], '{:,.0f}')} msg/s; two workers did "
              f"{m(r['share_of_ceiling_2_workers'])} of it")
    print("msg/CPU-s: messages per CPU-second of one worker process (1 / its CPU per message); "
          "efficiency: msg/CPU-s with two workers over one (1.0: a second worker costs nothing extra).")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000, help="events per measured run")
    ap.add_argument("--runs", type=int, default=3, help="pairs of runs (1 worker, 2 workers)")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--processors", default="router,verifier")
    ap.add_argument("--broker-cores", default=None,
                    help="pin the broker's threads to these cores (e.g. 1); default: leave it be")
    ap.add_argument("--out", default=str(RESULTS / "bench-scaling.json"))
    args = ap.parse_args()
    names = [p for p in args.processors.split(",") if p]
    if os.cpu_count() is None or os.cpu_count() < 2:
        sys.exit("bench_scaling needs two cores")
    taskset = shutil.which("taskset")
    print(f"pinning with {taskset or 'sched_setaffinity (taskset not found: util-linux missing)'}")
    db_url = os.environ.get("HERALD_BENCH_DATABASE_URL")
    broker = Broker(int(os.environ.get("HERALD_BENCH_KAFKA_PORT", "19192")))
    plan = [("start the broker", 10.0)]
    run_s = 2 * args.events / 2500 + 8  # a run at about today's rate, with its warm-up and set-up
    for name in names:
        plan += [(f"{name}, {w}, run {i + 1} of {args.runs}", run_s)
                 for i in range(args.runs) for w in ("1 worker", "2 workers")]
    progress = Progress(plan)
    progress.next()
    started = broker.start()
    original = allowed_cores(broker.pid)
    if args.broker_cores is not None:
        pin(broker.pid, args.broker_cores)
    broker_cores = allowed_cores(broker.pid)
    load0 = load_average()
    rows = []
    try:
        for name in names:
            rows.append(measure(broker, name, args.events, args.runs, args.partitions, progress, db_url))
        progress.done()
    finally:
        if started:
            broker.stop()
        elif args.broker_cores is not None:
            pin(broker.pid, original)
    meta = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": f"{os.cpu_count()} cores, Python {pyplatform.python_version()}",
            "database": (db_url or "sqlite").split("@")[-1], "events_per_run": args.events,
            "code": code_revision(), "runs": args.runs, "partitions": args.partitions,
            "pinning": taskset or "sched_setaffinity",
            "broker_cores": broker_cores + ("" if args.broker_cores
                                            else " (not pinned: shares the workers' cores)"),
            "load_average": f"{load0} at start, {load_average()} at end",
            "method": "events put in one Kafka transaction before the clock starts; clock from its "
                      "commit to the group's lag 0; worker 1 on core 0, worker 2 on core 1"}
    print_table(rows, meta)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
