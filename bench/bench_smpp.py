"""SMPP figure: submissions per second through Herald's SMPP connector to jSMPP's SMSC simulator
(deploy/smsc), window 10 on one transceiver bind, with the simulator's receipts flowing back
and matched (hex submit ids to decimal receipt ids), and this process's CPU per submission.

The connector runs as egress runs it (same Session, same receipt path), with an in-memory sink
instead of the Kafka producer, so the figure is the SMPP path's own cost.
    python -m bench.bench_smpp [--messages 20000] [--port 19490]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

from services.carriers.base import Submission
from services.carriers.smpp.connector import SmppConnector
from services.core.carriers import Carrier

ROOT = Path(__file__).resolve().parents[1]


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--port", type=int, default=19490)
    ap.add_argument("--window", type=int, default=10)
    a = ap.parse_args()
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
