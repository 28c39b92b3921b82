"""Health of a processor's dependencies: the broker and the database."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka.admin import AdminClient

from .db import Database
from .settings import Settings
from .topics import wait_for_topics


def fail_fast(name: str, settings: Settings, db: Database | None, topics: Sequence[str]) -> None:
    """Stop a processor at start-up with a clear message when its database is unreachable or a
    topic it consumes is missing (a consumer group formed before its topics are visible gets no
    partitions). Both processor cores call this."""
    if db is not None:
        try:
            db.ping()
        except Exception as exc:
            sys.exit(f"{name}: database {db.engine.url!r} unreachable: {exc}")
    if topics:
        try:
            wait_for_topics(settings.kafka_config(), list(topics), settings.topic_wait_s)
        except TimeoutError as exc:
            sys.exit(f"{name}: {exc} (create them with `make topics`)")


class HealthCheck:
    """Checks are cheap and cached for a second so a busy prober cannot load the broker."""

    def __init__(self, kafka: dict[str, Any], db: Database | None) -> None:
        """``kafka``: the confluent client settings (``Settings.kafka_config()``)."""
        self._kafka = {**kafka, "socket.timeout.ms": 2000}
        self._admin: AdminClient | None = None  # made at the first check, not before it is asked
        self._db = db
        self._cached: tuple[float, dict[str, Any]] | None = None

    def _check(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            if self._admin is None:
                self._admin = AdminClient(self._kafka)
            md = self._admin.list_topics(timeout=2)
            out["broker"] = {"ok": True, "brokers": len(md.brokers)}
        except Exception as exc:
            out["broker"] = {"ok": False, "error": type(exc).__name__}
        if self._db is not None:
            try:
                self._db.ping()
                out["database"] = {"ok": True, "dialect": self._db.dialect}
            except Exception as exc:
                out["database"] = {"ok": False, "error": type(exc).__name__}
        return out

    async def status(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > 1.0:
            checks = await asyncio.to_thread(self._check)
            self._cached = (now, checks)
        checks = self._cached[1]
        ok = all(c["ok"] for c in checks.values())
        return {"status": "ok" if ok else "degraded", "checks": checks}
