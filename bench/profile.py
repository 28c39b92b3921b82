"""Where the time goes on the inbound path: py-spy samples ingress, router and egress while
``bench.run``'s inbound path runs, and prints each one's top functions by own time and the
Herald functions by time spent inside them. ``make bench-profile``.

Raw samples (py-spy's collapsed-stack format, one line per distinct stack with its count) are
kept in ``bench/results/profile-<processor>.txt`` for flame graphs.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
from pathlib import Path

from bench.run import BROKER_PID, RESULTS, inbound_path, with_platform
from tests.support.infra import Broker

PROCESSORS = ("ingress", "router", "egress")
SPY = Path(sys.executable).with_name("py-spy")


def summarise(raw: Path, top: int) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, [(leaf frame, samples)], [(Herald frame, samples inside it)])."""
    own: collections.Counter[str] = collections.Counter()
    inside: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[_short(frames[-1])] += n
        for frame in {_short(f) for f in frames if "services/" in f or "(services." in f}:
            inside[frame] += n
    return total, own.most_common(top), inside.most_common(top)


def print_summary(raw: Path, title: str, top: int = 15) -> None:
    """Print a py-spy raw file's top frames: own time, and time inside Herald functions."""
    total, own, inside = summarise(raw, top)
    print(f"\n== {title}: {total} samples (idle waits included)")
    print("  own time:")
    for frame, n in own:
        print(f"    {100 * n / total:5.1f}%  {frame}")
    print("  inside Herald functions:")
    for frame, n in inside:
        print(f"    {100 * n / total:5.1f}%  {frame}")


def _short(frame: str) -> str:
    # "fn (path/to/module.py:123)" -> "fn (module.py)"
    name, _, where = frame.partition(" (")
    file = where.split(":")[0].rstrip(")")
    parts = file.split("/")
    return f"{name} ({'/'.join(parts[-2:])})"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    broker = Broker(int(os.environ.get("HERALD_BENCH_KAFKA_PORT", "19192")))
    started = broker.start()
    BROKER_PID["pid"] = broker.pid
    RESULTS.mkdir(parents=True, exist_ok=True)
    outs = {name: RESULTS / f"profile-{name}.txt" for name in PROCESSORS}

    def profiled(plat):
        spies = [subprocess.Popen([str(SPY), "record", "--nonblocking", "-r", "250", "-f", "raw",
                                   "-o", str(outs[name]), "-p", str(getattr(plat, name).popen.pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for name in PROCESSORS]
        try:
            return inbound_path(plat, args.messages, None)
        finally:
            for spy in spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            for spy in spies:
                spy.wait(30)

    try:
        res = with_platform(broker, os.environ.get("HERALD_BENCH_DATABASE_URL"), 3, 1, profiled)
    finally:
        if started:
            broker.stop()
    print(f"\ninbound path under the profiler: {res['per_s']:.0f} msg/s "
          f"({res['completed']}/{res['messages']}); CPU ms per message: "
          + ", ".join(f"{k} {v:.2f}" for k, v in res["cpu_s_per_1000"].items()))
    for name in PROCESSORS:
        if not outs[name].exists():
            print(f"\n{name}: no samples (is py-spy allowed to attach here?)")
            continue
        print_summary(outs[name], name, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
