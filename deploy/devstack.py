"""`make run`: the whole platform on embedded defaults, until Ctrl-C.

Order: broker -> topics -> database migrations -> demo data -> carrier simulator -> processors.
Ctrl-C (or SIGTERM) stops them in reverse order and leaves no process behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.core.settings import get_settings

PROCESSORS = ["ingress", "router", "egress", "campaigns", "verifier", "ledger", "bridge", "metrics"]


def step(msg: str) -> None:
    print(f"herald: {msg}", flush=True)


def main() -> int:
    os.chdir(ROOT)
    s = get_settings()
    logs = ROOT / ".run" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    kafka_port = s.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1]
    kafka_env = {**os.environ, "KAFKA_PORT": kafka_port}
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    procs: list[tuple[str, subprocess.Popen, int | None]] = []
    try:
        step("starting the Kafka broker")
        subprocess.run(["deploy/kafka/kafka.sh", "start"], check=True, env=kafka_env)
        step("creating topics")
        subprocess.run([sys.executable, "-m", "services.core.topics"], check=True)
        step(f"migrating {s.database_url}")
        subprocess.run([sys.executable, "-m", "services.core.db.migrate", "up"], check=True)
        subprocess.run([sys.executable, "-m", "services.core.demo"], check=True)

        def spawn(name: str, module: str, port: int | None) -> None:
            log = open(logs / f"{name}.log", "ab")
            # Own process group: Ctrl-C reaches us, and we stop children in order.
            p = subprocess.Popen([sys.executable, "-m", module], stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
            procs.append((name, p, port))

        spawn("simulator", "services.simulator", None)
        for name in PROCESSORS:
            spawn(name, f"services.{name}", getattr(s, f"{name}_port"))

        deadline = time.monotonic() + 90
        pending = {name: port for name, _, port in procs if port}
        while pending and not stopping and time.monotonic() < deadline:
            for name, p, _ in procs:
                if p.poll() is not None:
                    step(f"{name} exited with {p.returncode}; see .run/logs/{name}.log")
                    return 1
            for name, port in list(pending.items()):
                try:
                    r = httpx.get(f"http://{s.web_host}:{port}/health", timeout=2)
                    if r.status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        if pending and not stopping:
            step(f"not healthy after 90s: {sorted(pending)}; see .run/logs/")
            return 1
        if not stopping:
            for name, _, port in procs:
                where = f"http://{s.web_host}:{port}/health" if port else "http://127.0.0.1:8900"
                step(f"{name:<10} up   {where}")
            step(f"ready. Send API: POST http://127.0.0.1:{s.ingress_port}/v1/messages. "
                 "Ctrl-C stops all.")
        while not stopping:
            for name, p, _ in procs:
                if p.poll() is not None:
                    step(f"{name} exited with {p.returncode}; stopping (see .run/logs/{name}.log)")
                    stopping = True
            time.sleep(0.5)
        return 0
    finally:
        step("stopping")
        for _name, p, _ in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for name, p, _ in reversed(procs):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                step(f"{name} did not stop in 20s; killing")
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        subprocess.run(["deploy/kafka/kafka.sh", "stop"], check=False, env=kafka_env)
        step("stopped")


if __name__ == "__main__":
    sys.exit(main())
