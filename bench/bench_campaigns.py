"""Benchmark: expand and send a 100,000-contact campaign end to end through the real broker.

    .venv/bin/python -m bench.bench_campaigns [--contacts 100000] [--rate 5000]

Starts (or reuses) a Kafka broker on HERALD_BENCH_KAFKA_PORT (19192), a fresh SQLite database
(or HERALD_BENCH_DATABASE_URL), the carrier simulator, ingress, router, egress and campaigns as
separate processes; imports the contacts through the console's admin API as one CSV; creates one
notification campaign to all of them and measures:

- import: the CSV upload and its import;
- expanded: campaign created -> every message produced to sms.outbound and its chunk committed
  (campaign status "completed");
- at carrier: campaign created -> the simulator has accepted every message (end to end);
- delivered: the same until the campaign report counts every message delivered;
- the campaigns process's peak RSS (VmHWM from /proc/<pid>/status) and CPU seconds,
- every processor's peak RSS (VmHWM, and the largest VmRSS sampled every 0.5 s), its RSS when
  the campaign is created (what start-up and imports cost), CPU seconds from the campaign's
  creation to the end, and CPU milliseconds per recipient,
- and exactly-once: the simulator's accepted submissions must equal the number of contacts.

Not a test: it prints its figures (and writes them as JSON with --json PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import CARRIER_BATCH, DLR_BATCH, load_average, proc_cpu_seconds  # noqa: E402
from services.core.db.migrate import upgrade  # noqa: E402
from services.core.topics import ensure_topics  # noqa: E402
from tests.support.infra import Broker, Stack  # noqa: E402
from tests.support.platform import start_platform  # noqa: E402
from tests.support.seed import seed_tenant  # noqa: E402

NUMBER = "10690001"


def proc_status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    """Samples VmRSS every 0.5 s, to show the footprint over time beside the kernel's VmHWM."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                self.samples.append(proc_status_kb(self.pid, "VmRSS"))
            except OSError:
                return


def processor_figures(pids: dict[str, int], samplers: dict[str, RssSampler], cpu0: dict[str, float],
                      rss0_kb: dict[str, int], contacts: int) -> dict[str, dict]:
    """Per processor: peak RSS (kernel's VmHWM and the largest sample), RSS at the start
    (``rss0_kb``), CPU seconds since cpu0 and CPU milliseconds per recipient."""
    out = {}
    for name, pid in pids.items():
        try:
            cpu = proc_cpu_seconds(pid) - cpu0[name]
            out[name] = {"peak_rss_mb": round(proc_status_kb(pid, "VmHWM") / 1024, 1),
                         "max_sampled_rss_mb": round(max(samplers[name].samples or [0]) / 1024, 1),
                         "rss_at_start_mb": round(rss0_kb[name] / 1024, 1),
                         "cpu_s": round(cpu, 1), "cpu_ms_per_recipient": round(cpu * 1000 / contacts, 3)}
        except OSError:
            out[name] = {"exited": True}
    return out


def wait_for(what: str, check, timeout: float, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def run(contacts: int, rate: float, db_url: str | None, chunk: int, timeout: float,
        expand_only: bool = False, egress_workers: int = 1) -> dict:
    broker = Broker(int(os.environ.get("HERALD_BENCH_KAFKA_PORT", "19192")))
    started = broker.start()
    tmp = Path(tempfile.mkdtemp(prefix="herald-bench-campaigns-"))
    url = db_url or f"sqlite:///{tmp / 'herald.db'}"
    upgrade(url)
    stack = Stack(broker.bootstrap, url)
    ensure_topics(stack.settings(topic_partitions=3))
    try:
        key = seed_tenant(stack, "bench", number=NUMBER)
        # The carrier allows the tenant's rate (the platform's default, 1,000/s, would cap a
        # 100,000-recipient run at 100 s by itself).
        # The carrier side batches as bench/run.py's does (DLR_BATCH, CARRIER_BATCH).
        plat = None if expand_only else start_platform(
            stack, tmp, carrier_rate=max(1000.0, rate), sim_dlr_batch=DLR_BATCH,
            carrier_batch=CARRIER_BATCH, egress_workers=egress_workers)
        camp = stack.start("services.campaigns", HERALD_CAMPAIGNS_CHUNK_SIZE=str(chunk),
                           HERALD_LOG_LEVEL="warn")
        pid = camp.popen.pid
        # The admin API is the console's (the platform's, or one of its own without egress).
        console = plat.console if plat else stack.start("services.console", HERALD_LOG_LEVEL="warn")
        api = httpx.Client(base_url=console.url, timeout=600, headers={"Authorization": f"Bearer {key}"})
        sim = httpx.Client(base_url=plat.sim.url, timeout=30) if plat else None
        rss_idle_kb = proc_status_kb(pid, "VmRSS")

        body = "msisdn,name,due_date\n" + "".join(
            f"+86139{i:08d},Customer {i},2026-12-{1 + i % 28:02d}\n" for i in range(contacts))
        t0 = time.monotonic()
        r = api.post("/v1/contacts/import", params={"list": "everyone"}, content=body.encode())
        r.raise_for_status()
        import_s = time.monotonic() - t0
        assert r.json()["created"] == contacts, r.text
        api.put("/v1/settings", json={"rate_per_second": rate}).raise_for_status()

        pids = {"campaigns": pid}
        if plat:
            pids.update(ingress=plat.ingress.popen.pid, router=plat.router.popen.pid,
                        egress=plat.egress.popen.pid, console=plat.console.popen.pid,
                        simulator=plat.sim.popen.pid)
            extra = [p for p in stack.procs if p.module == "services.egress" and p is not plat.egress]
            pids.update({f"egress {i + 2}": p.popen.pid for i, p in enumerate(extra)})
        samplers = {name: RssSampler(p) for name, p in pids.items()}
        sampler = samplers["campaigns"]
        for s in samplers.values():
            s.start()
        cpu_all0 = {name: proc_cpu_seconds(p) for name, p in pids.items()}
        rss_all0 = {name: proc_status_kb(p, "VmRSS") for name, p in pids.items()}
        cpu0 = cpu_all0["campaigns"]
        load0 = load_average()
        t0 = time.monotonic()
        r = api.post("/v1/campaigns", json={"name": "bench", "kind": "notification",
                                            "audience": {"list": "everyone"},
                                            "template": "Dear {name}, your bill is due on {due_date}."})
        r.raise_for_status()
        cid = r.json()["id"]

        def status() -> str:
            return api.get(f"/v1/campaigns/{cid}").json()["status"]

        wait_for("expansion", lambda: status() == "completed", timeout, 0.25)
        expanded_s = time.monotonic() - t0
        cpu_expand = proc_cpu_seconds(pid) - cpu0
        result = {
            "contacts": contacts, "rate_per_second": rate, "chunk_size": chunk,
            "database": url.split("@")[-1] if db_url else "sqlite (file)",
            "machine": f"{os.cpu_count()} cores",
            "mode": "expansion only (no egress)" if expand_only else "end to end",
            "egress_workers": 0 if expand_only else egress_workers,
            "import_s": round(import_s, 1),
            "expanded_s": round(expanded_s, 1),
            "expanded_per_s": round(contacts / expanded_s, 1),
            "campaigns_cpu_s_expanding": round(cpu_expand, 1),
        }
        if sim is not None:
            wait_for("the simulator to accept every message",
                     lambda: sim.get("/stats").json()["submitted"] >= contacts, timeout, 0.5)
            at_carrier_s = time.monotonic() - t0
            delivered_s = None
            try:
                wait_for("delivery reports", lambda: api.get(f"/v1/campaigns/{cid}/report").json()
                         ["delivered"] >= contacts, 120, 2.0)
                delivered_s = time.monotonic() - t0
            except SystemExit as exc:
                print(f"note: {exc}", file=sys.stderr)
            stats = sim.get("/stats").json()
            result.update(at_carrier_s=round(at_carrier_s, 1),
                          delivered_s=round(delivered_s, 1) if delivered_s else None,
                          end_to_end_per_s=round(contacts / at_carrier_s, 1),
                          simulator_submitted=stats["submitted"],
                          exactly_once=stats["submitted"] == contacts)
        for s in samplers.values():
            s.stop.set()
        report = api.get(f"/v1/campaigns/{cid}/report").json()
        result.update(
            load_average_before=load0,
            load_average_after=load_average(),
            processors=processor_figures(pids, samplers, cpu_all0, rss_all0, contacts),
            campaigns_peak_rss_mb=round(proc_status_kb(pid, "VmHWM") / 1024, 1),
            campaigns_rss_before_mb=round(rss_idle_kb / 1024, 1),
            campaigns_rss_max_sampled_mb=round(max(sampler.samples or [0]) / 1024, 1),
            report={k: report[k] for k in ("queued", "sent", "delivered", "failed", "suppressed")})
        return result
    finally:
        stack.stop_all()
        if started:
            broker.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contacts", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=5000.0, help="the tenant's send rate per second")
    ap.add_argument("--chunk", type=int, default=500, help="HERALD_CAMPAIGNS_CHUNK_SIZE")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--expand-only", action="store_true",
                    help="campaigns alone, no egress: the expander's own speed and memory")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--egress-workers", type=int, default=1,
                    help="egress processes sharing sms.outbound's 3 partitions")
    args = ap.parse_args()
    res = run(args.contacts, args.rate, os.environ.get("HERALD_BENCH_DATABASE_URL"), args.chunk,
              args.timeout, args.expand_only, args.egress_workers)
    width = max(len(k) for k in res)
    for k, v in res.items():
        if k == "processors":
            for name, fig in v.items():
                print(f"{'  ' + name:<{width}}  " + ", ".join(f"{a} {b}" for a, b in fig.items()))
        else:
            print(f"{k:<{width}}  {v}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0 if res.get("exactly_once", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
