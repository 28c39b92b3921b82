"""The inbound path alone (MO webhook -> router -> egress -> carrier, 3 partitions x 1 worker),
as bench/run.py measures it, with longer runs after a longer warm-up: the broker's JIT and the
processors' caches warm before anything counts. For comparing two trees back to back.

    python -m bench.bench_inbound [--events 3000] [--runs 3] [--warmup 5000]
        [--dlr-batch 50] [--carrier-batch 50] [--rate 500]

The broker's CPU is given as its work and its JIT compiler's apart (``run.cpu_seconds``).

Prints one line per run (rate, latencies, CPU ms per message per process) and writes
``bench/results/bench-inbound.json``. Its broker is the one on HERALD_BENCH_KAFKA_PORT (19192),
started here if none runs there.
"""

from __future__ import annotations

import argparse
import json
import os

from bench import run as suite
from tests.support.infra import Broker


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=5000,
                    help="messages through the path before the runs, not counted (the broker's JIT)")
    ap.add_argument("--dlr-batch", type=int, default=suite.DLR_BATCH,
                    help="most delivery reports per DLR webhook from the simulator (1: one each)")
    ap.add_argument("--rate", type=float, default=None,
                    help="webhooks offered per second (default: as fast as 64 in flight allow)")
    ap.add_argument("--carrier-batch", type=int, default=suite.CARRIER_BATCH,
                    help="most messages per submit request to the simulator (0: one each)")
    a = ap.parse_args()
    broker = Broker(int(os.environ.get("HERALD_BENCH_KAFKA_PORT", "19192")))
    started = broker.start()
    suite.BROKER_PID["pid"] = broker.pid

    def runs(plat) -> list[dict]:
        suite.inbound_path(plat, a.warmup, None)
        return [suite.inbound_path(plat, a.events, a.rate) for _ in range(a.runs)]

    try:
        results = suite.with_platform(broker, os.environ.get("HERALD_BENCH_DATABASE_URL"), 3, 1, runs,
                                      dlr_batch=a.dlr_batch, carrier_batch=a.carrier_batch)
    finally:
        if started:
            broker.stop()
    for r in results:
        cpu = r["cpu_s_per_1000"]
        herald = cpu["ingress"] + cpu["router"] + cpu["egress"]
        print(f"{r['per_s']:.0f} msg/s, p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms; "
              f"CPU ms per message: Herald {herald:.3f} ("
              + ", ".join(f"{k} {v:.3f}" for k, v in cpu.items()) + ")")
    suite.RESULTS.mkdir(parents=True, exist_ok=True)
    (suite.RESULTS / "bench-inbound.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
