"""What one carrier submission costs Herald: the HTTP connector that the carrier registry builds
for a ``kind: http`` carrier submits N messages, C at a time, to the carrier simulator running
in its own process, and the CPU time of this process (the connector's side only) is divided by
the submissions.

CPU time, not wall time: the machine is shared. The best of a few rounds is reported.
``python -m bench.bench_carrier_http``; writes ``bench/results/bench-carrier-http.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from services.carriers import Submission, build
from services.core.carriers import Carrier
from tests.support.infra import free_port, wait_until

RESULTS = Path(__file__).resolve().parent / "results"
TOKEN = "bench-token"


async def one_round(conn, messages: int, concurrency: int, round_no: int) -> float:
    """CPU seconds this process spent submitting ``messages`` messages."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(messages):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            await conn.submit(Submission(message_id=f"r{round_no}-m{i}", to="+8613812345678",
                                         sender="10690000", text="bench message", encoding="gsm7",
                                         segments=1))

    start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.process_time() - start


async def measure(url: str, messages: int, concurrency: int, rounds: int) -> dict[str, float]:
    conn = build(Carrier(name="sim", submit_url=url, api_token=TOKEN, timeout_s=10,
                         options={"max_connections": concurrency}))
    try:
        await one_round(conn, 200, concurrency, -1)  # connections open, code warm
        best = min([await one_round(conn, messages, concurrency, r) for r in range(rounds)])
    finally:
        await conn.close()
    return {"cpu_ms_per_submission": round(best / messages * 1000, 4), "messages": messages,
            "concurrency": concurrency, "rounds": rounds, "connector": type(conn).__name__}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    port = free_port()
    env = {**os.environ, "HERALD_SIM_DLR_DELAY_MS": "600000"}
    sim = subprocess.Popen([sys.executable, "-m", "services.simulator", "--port", str(port),
                            "--api-token", TOKEN], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _get(f"{base}/health") == 200, 30, what="the simulator answers /health")
        req = urllib.request.Request(f"{base}/control", data=json.dumps({"dlr_enabled": False}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(req, timeout=5).close()
        figures = asyncio.run(measure(f"{base}/submit", args.messages, args.concurrency, args.rounds))
    finally:
        sim.terminate()
        sim.wait(10)
    print(f"carrier HTTP ({figures['connector']}): {figures['cpu_ms_per_submission']:.3f} ms CPU per "
          f"submission, connector side (best of {args.rounds} rounds of {args.messages}, "
          f"{args.concurrency} at a time)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench-carrier-http.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except OSError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
