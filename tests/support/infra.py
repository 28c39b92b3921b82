"""Starting and waiting for the real things tests talk to: the Kafka broker, PostgreSQL and
Herald's processors as separate processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, TopicPartition

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1,
               what: str = "condition") -> Any:
    """Poll until predicate returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - polled again until the deadline
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})")


class Broker:
    """The real Apache Kafka broker started by deploy/kafka/kafka.sh on a test port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self.data_dir = ROOT / ".run" / f"test-kafka-{port}"
        self.env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_DATA_DIR": str(self.data_dir)}

    def start(self) -> bool:
        """Start the broker on empty storage; False if one was already running there (then leave
        it running). Tests and benchmarks make topics under fresh prefixes every run: kept, they
        pile up (thousands of partitions after a few runs) and slow the broker down."""
        if subprocess.run([str(KAFKA_SH), "status"], env=self.env).returncode == 0:
            return False
        subprocess.run([str(KAFKA_SH), "wipe"], check=True, env=self.env)
        subprocess.run([str(KAFKA_SH), "start"], check=True, env=self.env)
        return True

    def stop(self) -> None:
        subprocess.run([str(KAFKA_SH), "stop"], check=False, env=self.env)

    def resume(self) -> None:
        """Start the broker again on the storage it had (after ``stop``; ``start`` wipes it)."""
        subprocess.run([str(KAFKA_SH), "start"], check=True, env=self.env)

    @property
    def pid(self) -> int:
        return int((self.data_dir / "broker.pid").read_text().strip())


class Stack:
    """Settings shared by every process of one test: broker, database and a topic prefix."""

    def __init__(self, bootstrap: str, database_url: str, prefix: str | None = None) -> None:
        self.bootstrap = bootstrap
        self.database_url = database_url
        self.prefix = prefix or f"t{uuid.uuid4().hex[:8]}."
        self.procs: list[Proc] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "HERALD_KAFKA_BOOTSTRAP": self.bootstrap,
               "HERALD_DATABASE_URL": self.database_url, "HERALD_TOPIC_PREFIX": self.prefix,
               "HERALD_SESSION_TIMEOUT_S": "6", "HERALD_COMMIT_INTERVAL_S": "0.5",
               "HERALD_LOG_LEVEL": "info", "PYTHONUNBUFFERED": "1"}
        env.update(extra)
        return env

    def settings(self, **overrides: Any):
        from services.core.settings import Settings

        return Settings(kafka_bootstrap=self.bootstrap, database_url=self.database_url,
                        topic_prefix=self.prefix, **overrides)

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def start(self, module: str, port: int | None = None, health: bool = True,
              **extra_env: str) -> Proc:
        port = port or free_port()
        name = module.rsplit(".", 1)[-1]
        env = self.env(**{f"HERALD_{name.upper()}_PORT": str(port)}, **extra_env)
        proc = Proc(module, port, env)
        self.procs.append(proc)
        proc.start(health)
        return proc

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()


class Proc:
    """One Herald process (python -m services.<name>) with its log in .run/test-logs/."""

    def __init__(self, module: str, port: int, env: dict[str, str]) -> None:
        self.module, self.port, self.env = module, port, env
        # HERALD_TEST_LOG_DIR: a suite's own log folder (ports are reused across runs and engineers)
        logs = Path(env.get("HERALD_TEST_LOG_DIR") or ROOT / ".run" / "test-logs")
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"{module.replace('.', '-')}-{port}.log"
        self.popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, health: bool = True) -> None:
        self.log = open(self.log_path, "wb")
        self.popen = subprocess.Popen([sys.executable, "-m", self.module], cwd=ROOT, env=self.env,
                                      stdout=self.log, stderr=subprocess.STDOUT)
        if health:
            self.wait_healthy()

    def wait_healthy(self, timeout: float = 60.0) -> None:
        def ok() -> bool:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.module} exited with {self.popen.returncode}: "
                                   f"{self.log_path.read_text()[-3000:]}")
            r = httpx.get(f"{self.url}/health", timeout=2)
            return r.status_code == 200 and r.json()["status"] == "ok"

        wait_until(ok, timeout, 0.2, f"{self.module} /health ok")

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def healthy(self) -> bool:
        """Running, and its /health answers 200 with status ok (no answer counts as not)."""
        if not self.alive():
            return False
        try:
            r = httpx.get(f"{self.url}/health", timeout=2)
        except httpx.HTTPError:
            return False
        return r.status_code == 200 and r.json().get("status") == "ok"

    def kill(self) -> None:
        if self.alive():
            self.popen.kill()
            self.popen.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self.log.close()
        return self.popen.returncode


def read_topic(bootstrap: str, topic: str, until: Callable[[list[dict]], bool] | None = None,
               timeout: float = 30.0, decode_json: bool = True) -> list[Any]:
    """Read a topic from the beginning until ``until(records)`` holds, or, without ``until``,
    everything it holds now: up to each partition's high watermark at the call (an idle poll
    is not "the end": the first fetch after assigning can take longer than one poll)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    md = c.list_topics(topic, timeout=10)
    parts = [TopicPartition(topic, p, 0) for p in md.topics[topic].partitions]
    ends: dict[int, int] = {}
    if until is None:
        for tp in parts:
            low, high = c.get_watermark_offsets(tp, timeout=10)
            if high > low:
                ends[tp.partition] = high
    c.assign(parts)
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if until is None and not ends:
                return out
            msg = c.poll(0.2)
            if msg is None:
                if until is not None and until(out):
                    return out
                continue
            if msg.error():
                continue
            if until is None and msg.offset() + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)  # this partition is read to where it ended
            out.append(json.loads(msg.value()) if decode_json else msg)
            if until is not None and until(out):
                return out
        raise AssertionError(f"timed out reading {topic}; got {len(out)} records: {out[-5:]}")
    finally:
        c.close()


def empty_postgres(url: str) -> None:
    """Drop everything in the database's public schema (tests and benchmarks start empty)."""
    from sqlalchemy import text

    from services.core.db.session import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            # Connections a finished test left behind (a pool not yet disposed, a process still
            # exiting) would hold locks the DROP waits on, or deadlock with it: end them first.
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                              "AND usename = current_user"))
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
            conn.commit()
    finally:
        engine.dispose()


class LocalPostgres:
    """A PostgreSQL server of the test's own (initdb in a temporary directory, a free port), so a
    test may stop and restart it without touching the one other tests share. None of it exists
    unless Debian's (or any) PostgreSQL binaries are installed: see ``bindir``."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"postgresql+psycopg://herald@127.0.0.1:{self.port}/herald"

    @staticmethod
    def bindir() -> Path | None:
        """Where initdb and pg_ctl are: pg_config's answer, else the newest Debian version."""
        try:
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
            found = Path(out.stdout.strip())
            if (found / "initdb").exists():
                return found
        except (OSError, subprocess.CalledProcessError):
            pass
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                          key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
        return versions[-1].parent if versions else None

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        # PostgreSQL refuses to run as root: as root, run it as the postgres user.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, str(self.bindir() / args[0]), *args[1:]], check=True,
                              capture_output=True, text=True)

    def start(self) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(self.data_dir, "postgres", "postgres")
            self._run("initdb", "-D", str(self.data_dir), "-U", "herald", "--auth=trust",
                      "-E", "UTF8", "--no-sync")
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.data_dir / "server.log"), "-w",
                  "-o", f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 "
                        "-c fsync=off -c max_connections=200", "start")
        wait_until(self._answers, 30, 0.2, "private PostgreSQL up")
        with self._connect("postgres") as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'herald'").fetchone():
                conn.execute("CREATE DATABASE herald")

    def _connect(self, db: str):
        import psycopg

        return psycopg.connect(f"host=127.0.0.1 port={self.port} user=herald dbname={db}",
                               autocommit=True, connect_timeout=2)

    def _answers(self) -> bool:
        with self._connect("postgres") as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """A fast restart: open connections are cut, as when a server is restarted in service."""
        self.stop()
        self.start()
