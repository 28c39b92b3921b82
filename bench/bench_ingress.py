"""What ingress spends per request: N send-API calls (``POST /v1/messages``, each recorded and
published to sms.outbound) and N signed MO webhooks (published to sms.inbound), fired at a
running ingress over the real broker and a SQLite database, with nothing else of the platform
running. Reports ingress's CPU milliseconds per request of each kind, from /proc (CPU time, not
wall time: the machine is shared); ``--profile`` also records py-spy samples of ingress during
the send-API run and prints its top functions.

``python -m bench.bench_ingress [--requests 2000]``; the broker on ``HERALD_BENCH_KAFKA_PORT``
(default 19192); writes ``bench/results/bench-ingress.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import aiohttp

from bench.profile import SPY, print_summary
from bench.run import NUMBER, RESULTS, proc_cpu_seconds
from services.core.carriers import sign
from services.core.db.migrate import upgrade
from services.core.topics import ensure_topics
from tests.support.infra import Broker, Stack
from tests.support.platform import SECRET
from tests.support.seed import seed_tenant


async def fire(url: str, bodies: list[tuple[bytes, dict[str, str]]], concurrency: int) -> dict[int, int]:
    """POST every body; returns the count of each answer status."""
    statuses: dict[int, int] = {}
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=60)) as client:
        async def one(body: bytes, headers: dict[str, str]) -> None:
            async with sem, client.post(url, data=body, headers=headers) as r:
                await r.read()
                statuses[r.status] = statuses.get(r.status, 0) + 1

        await asyncio.gather(*(one(b, h) for b, h in bodies))
    return statuses


def api_sends(key: str, n: int, tag: str) -> list[tuple[bytes, dict[str, str]]]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return [(json.dumps({"to": f"+86139{i:08d}", "text": "Your code is 4711",
                         "request_id": f"{tag}-{i}"}).encode(), headers) for i in range(n)]


def mo_webhooks(n: int, tag: str) -> list[tuple[bytes, dict[str, str]]]:
    out = []
    for i in range(n):
        body = json.dumps({"id": f"{tag}-{i}", "from": f"+86138{i:08d}", "to": NUMBER,
                           "text": "HELLO"}).encode()
        out.append((body, {"X-Herald-Signature": sign(SECRET, body), "Content-Type": "application/json"}))
    return out


def measure(pid: int, url: str, bodies, concurrency: int) -> tuple[float, dict[int, int]]:
    cpu0 = proc_cpu_seconds(pid)
    statuses = asyncio.run(fire(url, bodies, concurrency))
    return (proc_cpu_seconds(pid) - cpu0) * 1000 / len(bodies), statuses


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--profile", action="store_true", help="py-spy over ingress during the send-API run")
    args = ap.parse_args()
    broker = Broker(int(os.environ.get("HERALD_BENCH_KAFKA_PORT", "19192")))
    started = broker.start()
    tmp = Path(tempfile.mkdtemp())
    stack = Stack(broker.bootstrap, f"sqlite:///{tmp}/bench.db")
    figures: dict[str, float | dict] = {}
    try:
        upgrade(stack.database_url)
        ensure_topics(stack.settings(topic_partitions=3))
        key = seed_tenant(stack, "bench", number=NUMBER)
        carriers = tmp / "carriers.json"
        carriers.write_text(json.dumps({"carriers": [{
            "name": "sim", "kind": "http", "submit_url": "http://127.0.0.1:9/submit",
            "api_token": "t", "webhook_auth": "hmac", "webhook_secret": SECRET, "prefixes": ["+"]}]}))
        ingress = stack.start("services.ingress", HERALD_CARRIERS_FILE=str(carriers),
                              HERALD_LOG_LEVEL="warn", HERALD_API_RATE_PER_SECOND="1000000",
                              HERALD_API_RATE_BURST="1000000", HERALD_API_KEY_RATE_PER_SECOND="1000000",
                              HERALD_API_KEY_RATE_BURST="1000000")
        pid = ingress.popen.pid
        tag = uuid.uuid4().hex[:8]
        # warm-up: connections to the broker and the database, caches, code paths
        measure(pid, f"{ingress.url}/v1/messages", api_sends(key, 100, f"w{tag}"), args.concurrency)
        measure(pid, f"{ingress.url}/carriers/sim/mo", mo_webhooks(100, f"w{tag}"), args.concurrency)
        spy_out = RESULTS / "profile-ingress-api.txt"
        spy = None
        if args.profile:
            RESULTS.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen([str(SPY), "record", "--nonblocking", "-r", "250", "-f", "raw",
                                    "-o", str(spy_out), "-p", str(pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api_ms, api_status = measure(pid, f"{ingress.url}/v1/messages",
                                     api_sends(key, args.requests, tag), args.concurrency)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        mo_ms, mo_status = measure(pid, f"{ingress.url}/carriers/sim/mo",
                                   mo_webhooks(args.requests, tag), args.concurrency)
        figures = {"api_send_cpu_ms": round(api_ms, 4), "api_send_statuses": api_status,
                   "mo_webhook_cpu_ms": round(mo_ms, 4), "mo_webhook_statuses": mo_status,
                   "requests": args.requests, "concurrency": args.concurrency}
    finally:
        stack.stop_all()
        if started:
            broker.stop()
    print(f"ingress CPU per request (ms, {args.requests} each, {args.concurrency} in flight): "
          f"send API {figures['api_send_cpu_ms']:.3f} {figures['api_send_statuses']}, "
          f"MO webhook {figures['mo_webhook_cpu_ms']:.3f} {figures['mo_webhook_statuses']}")
    if args.profile and spy_out.exists():
        print_summary(spy_out, "ingress during the send API")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench-ingress.json").write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
