"""Benchmark of the anti-counterfeit codes (not a test).

    python bench/bench_codes.py                       # 1,000,000 codes on a fresh SQLite file
    python bench/bench_codes.py --database-url postgresql+psycopg://...   # or PostgreSQL (schema reset!)
    python bench/bench_codes.py --count 200000 --verify 20000
    python bench/bench_codes.py --e2e --bootstrap 127.0.0.1:19092 --workers 2 --verify 5000

Phases:
1. generate + store: a batch of ``--count`` codes generated from ``secrets``, HMAC'd and bulk
   inserted (COPY on PostgreSQL, executemany on SQLite), and written to a CSV, as
   ``herald batches generate`` does. Prints codes/second.
2. verify (in process, no broker): ``--verify`` first valid queries, then as many repeats and
   unknown codes, through ``Verifier.handle`` in batches of ``--batch``, one transaction each,
   as the processor runs them. Prints verifications/second and database statements per
   verification (every statement sent, BEGIN and COMMIT included; an executemany counts once).
3. ledger: ``--verify`` awards (one member per five awards; a threshold crossed once each), then
   the same again as redeliveries. Prints awards/second and statements per award.
4. ``--e2e``: ``--workers`` verifier processes on a real broker; ``--verify`` submissions produced
   to codes.submitted; the time until every reply is on sms.outbound. Prints verifications/second.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402

from bench.run import cpu_seconds, load_average  # noqa: E402
from services.core.db import Database  # noqa: E402
from services.core.db.migrate import upgrade  # noqa: E402
from services.core.db.session import make_engine  # noqa: E402
from services.core.schemas import new_event, now_iso  # noqa: E402
from services.verifier.demo import seed_scheme  # noqa: E402
from services.verifier.domain import CodeFormat, Verifier  # noqa: E402
from services.verifier.domain.admin import TierSpec  # noqa: E402
from services.verifier.domain.codes import CodeHasher, generate_batch  # noqa: E402
from tests.support.infra import empty_postgres  # noqa: E402

SECRET = "bench-secret"


def fresh_database(url: str | None, workdir: Path) -> str:
    if url is None:
        return f"sqlite:///{workdir / 'bench.db'}"
    empty_postgres(url)
    return url


def submission(code: str, sender: str, to: str = "10690001") -> dict:
    return new_event("codes.submitted", "acme", submission_id=str(uuid.uuid4()), code=code, to=to,
                     inbound_message_id=str(uuid.uuid4()), received_at=now_iso(), **{"from": sender})


class StatementCounter:
    def __init__(self, engine) -> None:
        self.n = 0
        event.listen(engine, "before_cursor_execute", self._stmt)
        event.listen(engine, "commit", self._stmt_tx)

    def _stmt(self, *args) -> None:
        self.n += 1

    def _stmt_tx(self, *args) -> None:
        self.n += 1


def phase_generate(db: Database, count: int, workdir: Path) -> None:
    out = workdir / "codes.csv"
    t0 = time.perf_counter()
    batch_id, n = generate_batch(db.session, CodeHasher(SECRET), "acme", "gold-20", count, out)
    dt = time.perf_counter() - t0
    print(f"generate+store: {n:,} codes in {dt:.1f}s = {n / dt:,.0f} codes/s "
          f"({db.dialect}; CSV {out.stat().st_size / 1e6:.0f} MB)")


def run_batches(db: Database, verifier: Verifier, events: list[dict], batch: int) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds): on a shared machine the CPU is the steadier."""
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(events), batch):
        with db.session() as s:
            verifier.handle(s, events[i:i + batch])
    return time.perf_counter() - t0, time.process_time() - c0


def phase_verify(db: Database, codes: list[str], n: int, batch: int) -> None:
    verifier = Verifier(SECRET)
    counter = StatementCounter(db.engine)
    fmt = CodeFormat()
    members = [f"+86138{i:08d}" for i in range(max(1, n // 3))]
    kinds = {
        "first valid": [submission(codes[i], members[i % len(members)]) for i in range(n)],
        "repeat": [submission(codes[i], members[(i + 1) % len(members)]) for i in range(n)],
        "unknown": [submission(fmt.generate(1)[0], f"+1415{i:07d}") for i in range(n)],
    }
    for name, events in kinds.items():
        before = counter.n
        dt, cpu = run_batches(db, verifier, events, batch)
        stmts = (counter.n - before) / len(events)
        print(f"verify {name:>11}: {len(events):,} in {dt:.1f}s = {len(events) / dt:,.0f}/s, "
              f"{cpu * 1000 / len(events):.3f} ms CPU and "
              f"{stmts:.2f} statements per verification (batches of {batch})")
    for name, size in (("first valid, batch of 1", 1),):
        events = [submission(codes[n + i], members[i % len(members)]) for i in range(min(500, n))]
        before = counter.n
        dt, _ = run_batches(db, verifier, events, size)
        print(f"verify {name}: {len(events) / dt:,.0f}/s, "
              f"{(counter.n - before) / len(events):.2f} statements per verification")


def phase_ledger(db: Database, n: int, batch: int) -> None:
    from services.ledger.domain import Ledger, create_gift

    with db.session() as s:
        create_gift(s, "acme", 1, "phone card", 50)
    ledger = Ledger(SECRET)
    counter = StatementCounter(db.engine)
    members = [f"+86137{i:08d}" for i in range(max(1, n // 5))]
    events = [new_event("points.awarded", "acme", entry_id=str(uuid.uuid4()),
                        member=members[i % len(members)],
                        points=10, reason="genuine code", source_event_id=str(uuid.uuid4()))
              for i in range(n)]
    for name, evs in (("new", events), ("redelivered", events)):
        before = counter.n
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, n, batch):
            with db.session() as s:
                ledger.handle_awards(s, evs[i:i + batch])
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"ledger awards {name:>11}: {n:,} in {dt:.1f}s = {n / dt:,.0f}/s, "
              f"{cpu * 1000 / n:.3f} ms CPU and "
              f"{(counter.n - before) / n:.2f} statements per award (batches of {batch})")


def phase_e2e(url: str, codes: list[str], n: int, bootstrap: str, workers: int,
              broker_pid: int | None = None, profile: Path | None = None) -> None:
    from confluent_kafka import Consumer, Producer

    from services.core.schemas import encode
    from services.core.settings import Settings
    from services.core.topics import ensure_topics

    prefix = f"bench{uuid.uuid4().hex[:6]}."
    settings = Settings(kafka_bootstrap=bootstrap, database_url=url, topic_prefix=prefix)
    ensure_topics(settings)
    env = {**os.environ, "HERALD_KAFKA_BOOTSTRAP": bootstrap, "HERALD_DATABASE_URL": url,
           "HERALD_TOPIC_PREFIX": prefix, "HERALD_SECRET_KEY": SECRET, "HERALD_LOG_LEVEL": "warn"}
    procs = []
    import socket

    import httpx
    from sqlalchemy import func, select

    from services.core.db.schemes import LedgerEntry

    db = Database(url)

    def awards() -> int:
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "award"))

    awards_before = awards()
    # As many ledger workers as verifier workers: a verification is done when its reply is out
    # and its points entry is in the ledger.
    for module in ["services.verifier"] * workers + ["services.ledger"] * workers:
        name = module.rsplit(".", 1)[-1]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        procs.append((subprocess.Popen([sys.executable, "-m", module], cwd=ROOT,
                                       env={**env, f"HERALD_{name.upper()}_PORT": str(port)},
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port))
    try:
        for proc, port in procs:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None:
                    sys.exit("a verifier or ledger worker exited at start-up")
                time.sleep(0.2)
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([f"{prefix}sms.outbound"])
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
        events = [submission(codes[i], f"+86139{i:08d}") for i in range(n)]
        pids = {f"{m.rsplit('.', 1)[-1]} {i % workers + 1}": p.pid
                for i, ((p, _), m) in enumerate(zip(procs, ["services.verifier"] * workers
                                                    + ["services.ledger"] * workers, strict=True))}
        if broker_pid:
            pids["broker"] = broker_pid
        pids["load generator"] = os.getpid()
        spies = []
        if profile is not None:  # py-spy on each worker while the submissions flow
            from bench.profile import SPY

            profile.mkdir(parents=True, exist_ok=True)
            spies = [(name, profile / f"profile-codes-{name.replace(' ', '')}.txt")
                     for name in pids]
            spies = [(name, out, subprocess.Popen(
                [str(SPY), "record", "--nonblocking", "-r", "250", "-f", "raw", "-o", str(out),
                 "-p", str(pids[name])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                for name, out in spies if name.split()[0] in ("verifier", "ledger")]
        cpu0 = cpu_seconds(pids)
        load0 = load_average()
        t0 = time.perf_counter()
        for ev in events:
            producer.produce(f"{prefix}codes.submitted", encode("codes.submitted", ev), key=ev["code"])
            producer.poll(0)
        producer.flush(30)
        t_produced = time.perf_counter()
        seen: set[str] = set()
        t_first = None
        deadline = time.monotonic() + 300
        while len(seen) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                rid = json.loads(msg.value())["request_id"]
                if rid.startswith("verify-"):
                    seen.add(rid)
                    t_first = t_first or time.perf_counter()
        t_replies = time.perf_counter()
        consumer.close()
        entries = awards() - awards_before
        while entries < n and time.monotonic() < deadline:
            time.sleep(0.05)
            entries = awards() - awards_before
        dt = time.perf_counter() - t0
        if t_first is not None:
            # Where the time went: the first reply includes the workers' joining their group.
            print(f"timeline: submissions produced {t_produced - t0:.2f}s, first reply "
                  f"{t_first - t0:.2f}s, last reply {t_replies - t0:.2f}s, last ledger entry "
                  f"{dt:.2f}s; replies from the first to the last at "
                  f"{(len(seen) - 1) / max(1e-9, t_replies - t_first):,.0f}/s")
        done = min(len(seen), entries)
        cpu = {k: (v - cpu0[k]) * 1000 / max(1, done) for k, v in cpu_seconds(pids).items()}
        print("cpu ms per verification: " + ", ".join(f"{k} {v:.3f}" for k, v in cpu.items()))
        print(f"load average: {load0} before, {load_average()} after (2 cores, shared)")
        if spies:
            import signal

            from bench.profile import print_summary

            for _name, _out, spy in spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            for name, out, spy in spies:
                spy.wait(30)
                if out.exists():
                    print_summary(out, f"{name} (py-spy, active samples)", 12)
        rate = done / dt
        print(f"end to end: {done:,}/{n:,} verifications answered and in the ledger in {dt:.1f}s = "
              f"{rate:,.0f}/s ({workers} verifier + {workers} ledger workers, broker {bootstrap}, "
              f"{make_engine(url).dialect.name})")
    finally:
        db.dispose()
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--verify", type=int, default=10_000, help="first valid queries to time (0: skip)")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--database-url",
                    help="default: a fresh SQLite file; PostgreSQL: its public schema is reset")
    ap.add_argument("--e2e", action="store_true", help="also time verifications through worker processes")
    ap.add_argument("--broker-pid", type=int, default=None,
                    help="the broker's process, to report its CPU per verification")
    ap.add_argument("--bootstrap", default="127.0.0.1:19092")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--profile", type=Path, default=None,
                    help="a folder: py-spy samples the e2e phase's workers into it and prints "
                         "their top frames")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="herald-bench-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(args.database_url, workdir)
        upgrade(url)
        db = Database(url)
        try:
            need = 2 * args.verify + 500 if args.verify else 0
            with db.session() as s:
                scheme = seed_scheme(s, SECRET, codes=need, tiers=[TierSpec("phone card", 0.01, 1000)],
                                     cards_per_tier=1000)
            phase_generate(db, args.count, workdir)
            if args.verify:
                phase_verify(db, scheme.codes, args.verify, args.batch)
                phase_ledger(db, args.verify, args.batch)
            if args.e2e and args.verify:
                with db.session() as s:
                    extra = seed_scheme(s, SECRET, brand="e2e", product="e2e-1", codes=args.verify)
                phase_e2e(url, extra.codes, args.verify, args.bootstrap, args.workers,
                          args.broker_pid, args.profile)
        finally:
            db.dispose()


if __name__ == "__main__":
    main()
