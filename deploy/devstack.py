"""`make run`: the whole platform on embedded defaults, supervised, until Ctrl-C.

Order: broker -> topics -> database migrations -> demo data -> carrier simulator -> processors.
``HERALD_DEMO_CARRIER=smpp``: the demo carrier is an SMPP bind to jSMPP's SMSC simulator
(deploy/smsc/smsc.sh, started before the processors and stopped after them) instead of the
HTTP simulator.
A process that exits on its own is restarted with backoff (and a line naming it and its exit
status); the others keep working. The supervisor's state (per process: pid, state, restarts,
last exit status, since) is kept in ``.run/stack.json``; ``python deploy/devstack.py status``
prints it. Only Ctrl-C (or SIGTERM) stops everything, in ``stop_group`` order: first what
takes input (ingress), then the stream processors, then egress (its in-flight sends still
reach the carrier), then the carrier simulator, and the broker last.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STATE_FILE = ROOT / ".run" / "stack.json"


@dataclass(frozen=True)
class ProcSpec:
    """One supervised process. ``stop_group``: lower groups are stopped (and waited for) first."""

    name: str
    argv: Sequence[str]
    port: int | None = None
    stop_group: int = 1
    env: tuple[tuple[str, str], ...] = ()  # extra environment of this process only


HOT = ("router", "egress", "verifier", "ledger")  # the stream processors that carry every message


def is_cluster(bootstrap: str) -> bool:
    return len([a for a in bootstrap.split(",") if a.strip()]) > 1


SMSC_PORT = 8056  # jSMPP's simulator with HERALD_DEMO_CARRIER=smpp


def smpp_demo_carriers(path: Path, port: int = SMSC_PORT) -> Path:
    """The demo carrier as an SMPP bind to jSMPP's simulator (deploy/smsc), which takes the one
    account herald/herald, answers submit_sm and sends a receipt for each about a second later."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"carriers": [{
        "name": "sim", "kind": "smpp", "api_token": "herald", "prefixes": ["+"], "priority": 10,
        "rate_per_second": 2000, "timeout_s": 5,
        "options": {"host": "127.0.0.1", "port": port, "system_id": "herald", "window": 10}}]}, indent=2))
    return path


def platform_specs(s: Any, workers: int = 1, carrier: str = "http") -> list[ProcSpec]:
    """The processes of `make run`, in start order. Add a process here (name, module, port).
    ``workers`` > 1 runs that many worker processes of each hot processor (same consumer group,
    each its own /health port: the first's port + 100 * n). ``carrier`` "smpp": no HTTP carrier
    simulator (deploy/smsc/smsc.sh runs jSMPP's instead, outside the supervisor, like the broker)."""
    py = sys.executable
    specs = [] if carrier == "smpp" else [
        ProcSpec("simulator", [py, "-m", "services.simulator"], None, stop_group=4)]
    for name, group in (("ingress", 0), ("console", 0), ("router", 1), ("egress", 2), ("campaigns", 1),
                        ("verifier", 1), ("ledger", 1), ("bridge", 1), ("metrics", 3)):
        port = getattr(s, f"{name}_port")
        specs.append(ProcSpec(name, [py, "-m", f"services.{name}"], port, stop_group=group))
        for n in range(2, (workers if name in HOT else 1) + 1):
            extra = port + 100 * (n - 1)
            specs.append(ProcSpec(f"{name}-{n}", [py, "-m", f"services.{name}"], extra,
                                  stop_group=group, env=((f"HERALD_{name.upper()}_PORT", str(extra)),)))
    return specs


@dataclass
class Child:
    spec: ProcSpec
    proc: subprocess.Popen | None = None
    state: str = "starting"  # starting | running | backoff | stopping | stopped
    restarts: int = 0
    last_exit: int | None = None
    since: float = field(default_factory=time.time)
    started_at: float = 0.0
    restart_at: float = 0.0


def describe_exit(code: int | None) -> str:
    if code is None:
        return "-"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


class Supervisor:
    """Starts, watches and restarts child processes; stops them in groups.

    Backoff: ``backoff_base`` doubled for each restart in a row of a process that ran less than
    ``stable_after`` seconds, capped at ``backoff_max``; a process that ran longer starts again
    from ``backoff_base``.
    """

    def __init__(self, specs: Sequence[ProcSpec], *, log_dir: Path, state_file: Path = STATE_FILE,
                 backoff_base: float = 1.0, backoff_max: float = 30.0, stable_after: float = 60.0,
                 stop_timeout: float = 20.0, say: Callable[[str], None] | None = None,
                 env: dict[str, str] | None = None) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"process names must be unique: {names}")
        self.children = [Child(s) for s in specs]
        self.log_dir, self.state_file = log_dir, state_file
        self.backoff_base, self.backoff_max, self.stable_after = backoff_base, backoff_max, stable_after
        self.stop_timeout = stop_timeout
        self.say = say or step
        self.env = env
        self._streak: dict[str, int] = {}

    # -- running ------------------------------------------------------------------------------
    def _spawn(self, c: Child) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{c.spec.name}.log", "ab") as log:
            # Own session: Ctrl-C reaches only us, and we stop children in order.
            env = {**(self.env if self.env is not None else os.environ), **dict(c.spec.env)}
            c.proc = subprocess.Popen(list(c.spec.argv), stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True, env=env)
        c.state, c.since, c.started_at = "running", time.time(), time.monotonic()

    def start_all(self) -> None:
        for c in self.children:
            self._spawn(c)
        self.write_state()

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.spec.name == name)

    def poll(self) -> bool:
        """Notice exits and due restarts; returns whether anything changed."""
        changed = False
        now = time.monotonic()
        for c in self.children:
            if c.state == "running" and c.proc is not None and c.proc.poll() is not None:
                c.last_exit = c.proc.returncode
                ran = now - c.started_at
                streak = 0 if ran >= self.stable_after else self._streak.get(c.spec.name, 0)
                delay = min(self.backoff_max, self.backoff_base * 2**streak)
                self._streak[c.spec.name] = streak + 1
                c.state, c.since, c.restart_at = "backoff", time.time(), now + delay
                self.say(f"{c.spec.name} (pid {c.proc.pid}) exited unexpectedly "
                         f"({describe_exit(c.last_exit)}) after {ran:.1f}s; restarting in "
                         f"{delay:.2f}s (see .run/logs/{c.spec.name}.log)")
                changed = True
            elif c.state == "backoff" and now >= c.restart_at:
                c.restarts += 1
                self._spawn(c)
                self.say(f"{c.spec.name} restarted (pid {c.proc.pid}, restart #{c.restarts})")
                changed = True
        if changed:
            self.write_state()
        return changed

    # -- stopping -----------------------------------------------------------------------------
    def stop_all(self) -> None:
        """Stop group by group (lowest first); each group is waited for before the next."""
        for group in sorted({c.spec.stop_group for c in self.children}):
            members = [c for c in self.children if c.spec.stop_group == group]
            for c in members:
                if c.proc is not None and c.proc.poll() is None:
                    c.state, c.since = "stopping", time.time()
                    c.proc.terminate()
                else:
                    c.state = "stopped"
            self.write_state()
            for c in members:
                if c.proc is None or c.state == "stopped":
                    continue
                try:
                    c.proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    self.say(f"{c.spec.name} did not stop in {self.stop_timeout:.0f}s; killing")
                    os.killpg(c.proc.pid, signal.SIGKILL)
                    c.proc.wait(5)
                c.state, c.since, c.last_exit = "stopped", time.time(), c.proc.returncode
            self.write_state()

    # -- state --------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "updated_at": iso(time.time()),
            "supervisor_pid": os.getpid(),
            "processes": [{
                "name": c.spec.name,
                "pid": c.proc.pid if c.proc is not None else None,
                "port": c.spec.port,
                "state": c.state,
                "restarts": c.restarts,
                "last_exit_status": c.last_exit,
                "last_exit": describe_exit(c.last_exit),
                "since": iso(c.since),
            } for c in self.children],
        }

    def write_state(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot(), indent=2))
        tmp.replace(self.state_file)  # readers never see half a file


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def status_table(state: dict[str, Any]) -> str:
    rows = [("NAME", "PID", "STATE", "RESTARTS", "LAST EXIT", "SINCE")]
    for p in state.get("processes", []):
        rows.append((p["name"], str(p["pid"] or "-"), p["state"], str(p["restarts"]),
                     p.get("last_exit") or describe_exit(p.get("last_exit_status")), p["since"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([*lines, f"(updated {state.get('updated_at', '?')})"])


def console_sign_in(path: Path = ROOT / ".run" / "demo-console-login") -> str:
    """The demo owner's first sign-in, written by services.console.demo on the first run."""
    try:
        email, password = path.read_text().split()[:2]
    except (FileNotFoundError, ValueError):
        return "(no demo sign-in file; create users with the console's operator pages)"
    return f"sign in as {email} / {password} (also in {path.relative_to(ROOT)})"


def step(msg: str) -> None:
    print(f"herald: {msg}", flush=True)


def status(state_file: Path = STATE_FILE) -> int:
    try:
        state = json.loads(state_file.read_text())
    except FileNotFoundError:
        print(f"no stack state at {state_file}: is `make run` running?")
        return 1
    print(status_table(state))
    return 0


def main() -> int:
    import httpx

    from services.core.settings import get_settings

    os.chdir(ROOT)
    s = get_settings()
    logs = ROOT / ".run" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    kafka_port = s.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1]
    kafka_env = {**os.environ, "KAFKA_PORT": kafka_port}
    # Three addresses: the local three-node cluster (deploy/kafka/cluster.sh), its first node's
    # port less one as the base; the hot processors run two workers each there by default.
    cluster = is_cluster(s.kafka_bootstrap)
    broker = ["deploy/kafka/cluster.sh"] if cluster else ["deploy/kafka/kafka.sh"]
    if cluster:
        kafka_env["CLUSTER_BASE_PORT"] = str(int(kafka_port) - 1)
        # topics replicated on every node, a write needing two in sync (children inherit these)
        os.environ.setdefault("HERALD_TOPIC_REPLICATION", "3")
        os.environ.setdefault("HERALD_TOPIC_MIN_ISR", "2")
    workers = int(os.environ.get("HERALD_RUN_WORKERS", "2" if cluster else "1"))
    carrier = os.environ.get("HERALD_DEMO_CARRIER", "http")
    if carrier not in ("http", "smpp"):
        sys.exit(f"HERALD_DEMO_CARRIER must be http or smpp, not {carrier!r}")
    smsc_env = {**os.environ, "SMSC_PORT": str(SMSC_PORT)}
    if carrier == "smpp":  # every process reads this carriers file (children inherit it)
        os.environ["HERALD_CARRIERS_FILE"] = str(smpp_demo_carriers(ROOT / ".run" / "carriers-smpp.json"))
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    sup = Supervisor(platform_specs(s, workers, carrier), log_dir=logs)
    try:
        step("starting the Kafka broker")
        subprocess.run([*broker, "start"], check=True, env=kafka_env)
        step("creating topics")
        subprocess.run([sys.executable, "-m", "services.core.topics"], check=True)
        step(f"migrating {s.database_url}")
        subprocess.run([sys.executable, "-m", "services.core.db.migrate", "up"], check=True)
        subprocess.run([sys.executable, "-m", "services.core.demo"], check=True)
        subprocess.run([sys.executable, "-m", "services.console.demo"], check=True)
        if carrier == "smpp":
            step(f"starting jSMPP's SMSC simulator on 127.0.0.1:{SMSC_PORT} (the demo carrier)")
            subprocess.run(["deploy/smsc/smsc.sh", "start"], check=True, env=smsc_env)
        sup.start_all()

        deadline = time.monotonic() + 90
        pending = {c.spec.name: c.spec.port for c in sup.children if c.spec.port}
        while pending and not stopping and time.monotonic() < deadline:
            sup.poll()
            for name, port in list(pending.items()):
                try:
                    if httpx.get(f"http://{s.web_host}:{port}/health", timeout=2).status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        if pending and not stopping:
            step(f"not healthy after 90s: {sorted(pending)}; see .run/logs/ (still supervised)")
        if not stopping:
            for c in sup.children:
                where = f"http://{s.web_host}:{c.spec.port}/health" if c.spec.port else "http://127.0.0.1:8900"
                step(f"{c.spec.name:<10} up   {where}")
            step(f"ready. Send API: POST http://127.0.0.1:{s.ingress_port}/v1/messages. "
                 "`python deploy/devstack.py status` shows the processes. Ctrl-C stops all.")
            step(f"console: http://{s.web_host}:{s.console_port}/  {console_sign_in()}")
        while not stopping:
            sup.poll()
            time.sleep(0.5)
        return 0
    finally:
        step("stopping")
        sup.stop_all()
        if carrier == "smpp":
            subprocess.run(["deploy/smsc/smsc.sh", "stop"], check=False, env=smsc_env)
        subprocess.run([*broker, "stop"], check=False, env=kafka_env)
        step("stopped")


if __name__ == "__main__":
    if sys.argv[1:] == ["status"]:
        sys.exit(status())
    if sys.argv[1:]:
        sys.exit(f"usage: {sys.argv[0]} [status]")
    sys.exit(main())
